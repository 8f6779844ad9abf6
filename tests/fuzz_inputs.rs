//! Fuzzed inputs, kept as a test: small generated clips (several containers and codecs) and, when
//! the shared folder is there, cut-down pieces of the real videos are mutated from a fixed seed
//! (byte flips through the payload, truncation, zeroed ranges, damaged headers) and each mutant
//! goes through `probe`, `run` (the built-in default pipeline) and `check`, each under a timeout.
//!
//! Every command must exit by itself with 0, 1 or 2 (never a signal: a panic abort or a crash)
//! and print no panic; a `run` that succeeds leaves `OUT/<stem>/<stem>.mp4` that FFmpeg decodes
//! without a single error, and one that fails leaves neither `OUT/<stem>/` nor
//! `OUT/<stem>.partial/`. All violations are collected and listed together at the end, each
//! with its case, mutation, seed and command.
//!
//! Knobs (environment): `FRAMEPIPE_FUZZ_SEED` (another base seed, decimal or 0x hex),
//! `FRAMEPIPE_FUZZ_ONLY` (run only the cases whose name contains this), `FRAMEPIPE_FUZZ_KEEP`
//! (a folder: the input, each command's stdout and stderr, and any output of every violating
//! case are copied there),
//! `FRAMEPIPE_FUZZ_THREADS` (cases at once, default 2). Reproducing a listed case:
//! `FRAMEPIPE_FUZZ_ONLY=<case name> FRAMEPIPE_FUZZ_KEEP=/tmp/fuzz cargo test --release --test
//! fuzz_inputs -- --nocapture` (same ffmpeg version: the clips are made by its encoders).
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::watchdog::{head, judge, run_timed};
use common::*;

/// The base seed of every mutation (each case derives its own from it, its clip and its number).
const SEED: u64 = 0x5EED_F00D_2024_0601;
/// Mutated cases per generated clip (a multiple of the four mutation kinds).
const PER_GENERATED_CLIP: usize = 24;
/// Mutated cases per piece of shared media.
const PER_SHARED_CLIP: usize = 8;
/// At least this many mutated cases run, shared media or not.
const MIN_CASES: usize = 200;

const PROBE_LIMIT: Duration = Duration::from_secs(30);
const RUN_LIMIT: Duration = Duration::from_secs(120);
const CHECK_LIMIT: Duration = Duration::from_secs(60);
const VERIFY_LIMIT: Duration = Duration::from_secs(60);

/// Metadata rules plus every decoding rule (video and audio), so `check` reads all of a mutant.
const RULES: &str = r#"{
  "rule_sets": [{
    "name": "fuzz",
    "rules": {
      "video_codec": ["h264", "hevc", "vp9", "mpeg4", "mjpeg", "mpeg2video"],
      "width": {"min": 16, "max": 4096},
      "height": {"min": 16, "max": 4096},
      "duration": {"min": 0.1, "max": 600},
      "decodes_cleanly": true,
      "black": {"max_seconds": 5},
      "frozen": {"max_seconds": 5},
      "silence": {"max_seconds": 5},
      "scenes": {"min": 1, "max": 100}
    }
  }]
}"#;

/// SplitMix64: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            lo
        } else {
            lo + (self.next() % (hi - lo) as u64) as usize
        }
    }

    /// Roughly log-uniform in `1..=max`: small counts as often as large ones.
    fn log_count(&mut self, max: usize) -> usize {
        let bits = usize::BITS - max.max(1).leading_zeros();
        let cap = 1usize << self.range(0, bits as usize + 1);
        self.range(1, cap.min(max) + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn seed_from_env() -> u64 {
    match std::env::var("FRAMEPIPE_FUZZ_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("FRAMEPIPE_FUZZ_SEED={s:?}: not a number"))
        }
        Err(_) => SEED,
    }
}

/// A case's seed: the base seed, its clip's name and its number on that clip.
fn case_seed(base: u64, clip: &str, n: usize) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in clip.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    let mut r = Rng(base ^ h ^ (n as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    r.next()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Container {
    Mp4,
    Matroska,
    Ts,
    Avi,
    /// MPEG program stream.
    Ps,
}

struct Clip {
    name: String,
    path: PathBuf,
    ext: &'static str,
    container: Container,
    shared: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// The clip as made: must go through everything (proves the harness is not refusing all).
    Original,
    Flip,
    Truncate,
    Zero,
    Header,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Original => "original",
            Kind::Flip => "flip",
            Kind::Truncate => "truncate",
            Kind::Zero => "zero",
            Kind::Header => "header",
        }
    }
}

const MUTATIONS: [Kind; 4] = [Kind::Flip, Kind::Truncate, Kind::Zero, Kind::Header];

struct Case {
    name: String,
    clip: usize,
    kind: Kind,
    seed: u64,
}

/// lavfi inputs for 1.6 s of 5 fps video (8 frames) and, optionally, a tone.
fn lavfi(size: &str, audio: bool) -> Vec<String> {
    let mut a = vec![
        "-f".to_string(),
        "lavfi".into(),
        "-i".into(),
        format!("testsrc2=size={size}:rate=5:duration=1.6"),
    ];
    if audio {
        a.extend([
            "-f".to_string(),
            "lavfi".into(),
            "-i".into(),
            "sine=frequency=440:sample_rate=48000:duration=1.6".into(),
        ]);
    }
    a
}

fn make(path: &Path, inputs: Vec<String>, codec_args: &[&str]) {
    let mut args = inputs;
    args.extend(codec_args.iter().map(|s| s.to_string()));
    args.push(path.display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&refs);
}

/// Nine small clips: a 1.6 s, 8-frame video each (a keyframe every 3 frames), in the containers
/// and codecs real uploads come in. Few frames: the default pipeline encodes each at 1280x720
/// with x264's medium preset.
fn generated_clips(dir: &Path) -> Vec<Clip> {
    let h264 = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "3",
    ];
    // (name, extension, container, inputs, codec arguments)
    type Spec<'a> = (&'a str, &'a str, Container, Vec<String>, Vec<&'a str>);
    let specs: Vec<Spec> = vec![
        (
            "h264",
            "mp4",
            Container::Mp4,
            lavfi("128x96", false),
            h264.to_vec(),
        ),
        (
            "h264-aac-faststart",
            "mp4",
            Container::Mp4,
            lavfi("136x76", true),
            [
                &h264[..],
                &["-c:a", "aac", "-b:a", "32k", "-movflags", "+faststart"],
            ]
            .concat(),
        ),
        (
            "h264-opus",
            "mkv",
            Container::Matroska,
            lavfi("128x96", true),
            [&h264[..], &["-c:a", "libopus", "-b:a", "24k"]].concat(),
        ),
        (
            "h264-mp2",
            "ts",
            Container::Ts,
            lavfi("128x96", true),
            [&h264[..], &["-c:a", "mp2", "-b:a", "64k"]].concat(),
        ),
        (
            "vp9-opus",
            "webm",
            Container::Matroska,
            lavfi("128x96", true),
            vec![
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "200k",
                "-g",
                "3",
                "-c:a",
                "libopus",
                "-b:a",
                "24k",
            ],
        ),
        (
            "mpeg4-pcm",
            "avi",
            Container::Avi,
            lavfi("128x96", true),
            vec!["-c:v", "mpeg4", "-q:v", "5", "-g", "3", "-c:a", "pcm_s16le"],
        ),
        (
            "hevc-aac",
            "mp4",
            Container::Mp4,
            lavfi("128x96", true),
            vec![
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                "log-level=error:keyint=3:min-keyint=3",
                "-tag:v",
                "hvc1",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "32k",
            ],
        ),
        (
            "mjpeg-pcm",
            "mov",
            Container::Mp4,
            lavfi("128x96", true),
            vec![
                "-c:v",
                "mjpeg",
                "-q:v",
                "5",
                "-pix_fmt",
                "yuvj420p",
                "-c:a",
                "pcm_s16le",
            ],
        ),
        (
            "mpeg2-mp2",
            "mpg",
            Container::Ps,
            lavfi("128x96", true),
            vec![
                "-c:v",
                "mpeg2video",
                "-q:v",
                "5",
                "-g",
                "3",
                "-c:a",
                "mp2",
                "-b:a",
                "64k",
                "-f",
                "mpeg",
            ],
        ),
    ];
    specs
        .into_iter()
        .map(|(name, ext, container, inputs, codec)| {
            let path = dir.join(format!("{name}.{ext}"));
            make(&path, inputs, &codec);
            Clip {
                name: name.into(),
                path,
                ext,
                container,
                shared: false,
            }
        })
        .collect()
}

/// Pieces of the real videos, made in the temp folder: the first 0.4 s stream-copied (the real
/// encoders' bitstreams) into MP4, one also into MPEG-TS, and one re-encoded small into
/// Matroska with Vorbis audio. Empty when the shared folder is absent.
fn shared_clips(dir: &Path) -> Vec<Clip> {
    let mut clips = Vec::new();
    for file in [
        "bears.mp4",
        "bikes.mp4",
        "carphone_pristine.mp4",
        "orangutan.mp4",
    ] {
        let Some(src) = shared_media(file) else {
            continue;
        };
        let stem = file.trim_end_matches(".mp4").replace('_', "-");
        let s = src.display().to_string();
        let path = dir.join(format!("shared-{stem}.mp4"));
        ffmpeg(&[
            "-i",
            &s,
            "-map",
            "0",
            "-t",
            "0.4",
            "-c",
            "copy",
            path.to_str().unwrap(),
        ]);
        clips.push(Clip {
            name: format!("shared-{stem}"),
            path,
            ext: "mp4",
            container: Container::Mp4,
            shared: true,
        });
        if file == "bears.mp4" {
            let ts = dir.join("shared-bears-ts.ts");
            ffmpeg(&[
                "-i",
                &s,
                "-map",
                "0",
                "-t",
                "0.4",
                "-c",
                "copy",
                "-f",
                "mpegts",
                ts.to_str().unwrap(),
            ]);
            clips.push(Clip {
                name: "shared-bears-ts".into(),
                path: ts,
                ext: "ts",
                container: Container::Ts,
                shared: true,
            });
        }
        if file == "orangutan.mp4" {
            let mkv = dir.join("shared-orangutan-small.mkv");
            ffmpeg(&[
                "-i",
                &s,
                "-t",
                "1",
                "-vf",
                "scale=160:-2,fps=8",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "4",
                "-c:a",
                "libvorbis",
                "-ac",
                "1",
                "-ar",
                "22050",
                mkv.to_str().unwrap(),
            ]);
            clips.push(Clip {
                name: "shared-orangutan-small".into(),
                path: mkv,
                ext: "mkv",
                container: Container::Matroska,
                shared: true,
            });
        }
    }
    clips
}

/// Top-level MP4 boxes: (type, start, end).
fn mp4_boxes(b: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at + 8 <= b.len() {
        let size32 = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = b[at + 4..at + 8].try_into().unwrap();
        let size = match size32 {
            0 => b.len() - at,
            1 if at + 16 <= b.len() => {
                u64::from_be_bytes(b[at + 8..at + 16].try_into().unwrap()) as usize
            }
            s => s,
        };
        if size < 8 {
            break;
        }
        let end = at.saturating_add(size).min(b.len());
        boxes.push((kind, at, end));
        at = end;
    }
    boxes
}

fn find(b: &[u8], needle: &[u8]) -> Option<usize> {
    b.windows(needle.len()).position(|w| w == needle)
}

/// The coded media of a file (where payload flips go): MP4 `mdat`, Matroska clusters, TS
/// after the first PAT/PMT, AVI `movi`; a fallback of the last 90 % otherwise.
fn payload(b: &[u8], c: Container) -> (usize, usize) {
    let fallback = (b.len() / 10, b.len());
    let found = match c {
        Container::Mp4 => mp4_boxes(b)
            .into_iter()
            .find(|(k, _, _)| k == b"mdat")
            .map(|(_, s, e)| (s + 8, e)),
        Container::Matroska => find(b, &[0x1F, 0x43, 0xB6, 0x75]).map(|s| (s, b.len())),
        Container::Ts => Some((188 * 2, b.len())),
        Container::Avi => find(b, b"movi").map(|s| (s + 4, b.len())),
        Container::Ps => None,
    };
    match found {
        Some((s, e)) if s < e && e <= b.len() => (s, e),
        _ => fallback,
    }
}

/// The container's header structures: (name, start, end) ranges a header mutation may hit.
fn header_regions(b: &[u8], c: Container) -> Vec<(&'static str, usize, usize)> {
    let mut r = vec![("first 64 bytes", 0, b.len().min(64))];
    match c {
        Container::Mp4 => {
            for (k, s, e) in mp4_boxes(b) {
                match &k {
                    b"ftyp" => r.push(("ftyp box", s, e)),
                    b"moov" => r.push(("moov box", s, e)),
                    _ => {}
                }
            }
        }
        Container::Matroska => {
            let cluster = find(b, &[0x1F, 0x43, 0xB6, 0x75]).unwrap_or(b.len().min(4096));
            r.push((
                "EBML header + segment head (before the first cluster)",
                0,
                cluster,
            ));
            if let Some(t) = find(&b[..cluster], &[0x16, 0x54, 0xAE, 0x6B]) {
                r.push(("Tracks element", t, cluster));
            }
        }
        Container::Ts => r.push(("PAT/PMT packets", 0, b.len().min(188 * 2))),
        Container::Avi => {
            let movi = find(b, b"movi").unwrap_or(b.len().min(4096));
            r.push(("RIFF/hdrl headers", 0, movi));
        }
        Container::Ps => r.push(("pack + system headers", 0, b.len().min(2048))),
    }
    r.retain(|(_, s, e)| s < e);
    r
}

/// Applies `kind` to `bytes` from `seed`; returns the mutant and a description of what changed.
fn mutate(bytes: &[u8], c: Container, kind: Kind, seed: u64) -> (Vec<u8>, String) {
    let mut rng = Rng(seed);
    let mut b = bytes.to_vec();
    let len = b.len();
    match kind {
        Kind::Original => (b, "unchanged".into()),
        Kind::Flip => {
            let (s, e) = payload(&b, c);
            if rng.chance(25) {
                // A burst: consecutive bytes replaced by noise.
                let n = rng.log_count(512).min(e - s);
                let at = rng.range(s, e - n + 1);
                for x in &mut b[at..at + n] {
                    *x = rng.next() as u8;
                }
                (
                    b,
                    format!("noise burst of {n} bytes at {at} (payload {s}..{e})"),
                )
            } else {
                let n = rng.log_count(48);
                let mut at = Vec::new();
                for _ in 0..n {
                    let p = rng.range(s, e);
                    b[p] ^= 1 << rng.range(0, 8);
                    at.push(p);
                }
                at.sort_unstable();
                let list: Vec<String> = at.iter().take(12).map(|p| p.to_string()).collect();
                let more = if at.len() > 12 { ", ..." } else { "" };
                (
                    b,
                    format!(
                        "{n} bit flips in payload {s}..{e} at {}{more}",
                        list.join(",")
                    ),
                )
            }
        }
        Kind::Truncate => {
            let at = match rng.range(0, 10) {
                0..=1 => rng.range(0, len.min(1024)),
                2..=3 => rng.range(len - len / 10, len),
                _ => rng.range(0, len),
            };
            b.truncate(at);
            (b, format!("truncated to {at} of {len} bytes"))
        }
        Kind::Zero => {
            let n = rng.log_count((len / 3).clamp(1, 16384));
            let at = rng.range(0, len - n + 1);
            b[at..at + n].fill(0);
            (b, format!("zeroed {n} bytes at {at} of {len}"))
        }
        Kind::Header => {
            let special = match (c, rng.range(0, 3)) {
                (Container::Mp4, 0) => {
                    // A box size or type of ftyp/moov.
                    let boxes: Vec<_> = mp4_boxes(&b)
                        .into_iter()
                        .filter(|(k, _, _)| k == b"ftyp" || k == b"moov")
                        .collect();
                    if boxes.is_empty() {
                        None
                    } else {
                        let (k, s, _) = boxes[rng.range(0, boxes.len())];
                        let name = String::from_utf8_lossy(&k).into_owned();
                        if rng.chance(50) {
                            let v = [0u32, 1, 7, 0xFFFF_FFFF, rng.next() as u32][rng.range(0, 5)];
                            b[s..s + 4].copy_from_slice(&v.to_be_bytes());
                            Some(format!("{name} box at {s}: size set to {v:#x}"))
                        } else {
                            let t = [*b"free", *b"moof", *b"mdat", *b"\0\0\0\0"][rng.range(0, 4)];
                            b[s + 4..s + 8].copy_from_slice(&t);
                            Some(format!(
                                "{name} box at {s}: type set to {:?}",
                                String::from_utf8_lossy(&t)
                            ))
                        }
                    }
                }
                (Container::Matroska, 0) => {
                    let at = rng.range(0, 4);
                    b[at] ^= 1 << rng.range(0, 8);
                    Some(format!("EBML magic 1A45DFA3: bit flipped in byte {at}"))
                }
                (Container::Ts, 0) => {
                    // Sync bytes: of the first packets, or of packets all through the file.
                    let packets = (len / 188).max(1);
                    let leading = rng.chance(50);
                    let n = if leading {
                        rng.log_count(packets.min(64))
                    } else {
                        rng.log_count(32)
                    };
                    let mut hit = 0;
                    for i in 0..n {
                        let p = if leading { i } else { rng.range(0, packets) };
                        if p * 188 < len {
                            b[p * 188] = rng.next() as u8 & 0x7E;
                            hit += 1;
                        }
                    }
                    Some(if leading {
                        format!("sync byte 0x47 damaged in the first {hit} packets")
                    } else {
                        format!("sync byte 0x47 damaged in {hit} random packets")
                    })
                }
                _ => None,
            };
            if let Some(desc) = special {
                return (b, desc);
            }
            let regions = header_regions(&b, c);
            let (name, s, e) = regions[rng.range(0, regions.len())];
            if rng.chance(30) {
                // Overwrite its start.
                let n = rng.log_count(e - s);
                let zero = rng.chance(50);
                for x in &mut b[s..s + n] {
                    *x = if zero { 0 } else { rng.next() as u8 };
                }
                let what = if zero { "zeroed" } else { "random" };
                (b, format!("{name} ({s}..{e}): first {n} bytes {what}"))
            } else {
                let n = rng.log_count(16);
                let mut at = Vec::new();
                for _ in 0..n {
                    let p = rng.range(s, e);
                    b[p] = rng.next() as u8;
                    at.push(p);
                }
                at.sort_unstable();
                let list: Vec<String> = at.iter().map(|p| p.to_string()).collect();
                (
                    b,
                    format!("{name} ({s}..{e}): {n} random bytes at {}", list.join(",")),
                )
            }
        }
    }
}

fn fp(args: &[&str]) -> Command {
    let mut c = framepipe();
    c.args(args).env("RUST_BACKTRACE", "1").env("NO_COLOR", "1");
    c
}

/// The decoders an FFmpeg error log names (`[aac @ 0x...] ...`), for the violation message.
fn complaining_decoders(log: &str) -> String {
    let mut names: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix('[')?.split(" @ ").next())
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        "no decoder named".into()
    } else {
        names.join(", ")
    }
}

/// Decodes the whole output (every stream) with the ffmpeg CLI: not a single error may be
/// printed. And ffprobe sees a 1280x720 H.264 video stream with frames in it.
fn verify_output(mp4: &Path, dir: &Path, bad: &mut Vec<String>) {
    let mut c = Command::new("ffmpeg");
    c.args(["-nostdin", "-v", "error", "-i"])
        .arg(mp4)
        .args(["-map", "0", "-f", "null", "-"]);
    let ran = run_timed(c, dir, "verify-ffmpeg", VERIFY_LIMIT);
    match ran.status {
        Some(s) if s.success() && ran.stderr.trim().is_empty() => {}
        Some(s) => bad.push(format!(
            "run: exit 0 but its output does not decode cleanly ({}; ffmpeg {s}): {}",
            complaining_decoders(&ran.stderr),
            head(&ran.stderr)
        )),
        None => bad.push("run: exit 0 but decoding its output with ffmpeg hangs".into()),
    }
    let mut c = Command::new("ffprobe");
    c.args([
        "-v",
        "quiet",
        "-of",
        "json",
        "-select_streams",
        "v:0",
        "-show_streams",
    ])
    .arg(mp4);
    let ran = run_timed(c, dir, "verify-ffprobe", VERIFY_LIMIT);
    let v: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap_or_default();
    let s = &v["streams"][0];
    let frames: u64 = s["nb_frames"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if !(s["codec_name"] == "h264" && s["width"] == 1280 && s["height"] == 720 && frames > 0) {
        bad.push(format!(
            "run: exit 0 but ffprobe does not see a 1280x720 H.264 stream with frames: {}",
            head(&ran.stdout)
        ));
    }
}

#[derive(Default)]
struct Outcome {
    name: String,
    mutation: String,
    seed: u64,
    kind: Option<Kind>,
    shared: bool,
    violations: Vec<String>,
    probe: Option<i32>,
    run: Option<i32>,
    check: Option<i32>,
    secs: f64,
}

fn run_case(case: &Case, clip: &Clip, rules: &Path, root: &Path, keep: Option<&Path>) -> Outcome {
    let start = Instant::now();
    let dir = root.join(&case.name);
    std::fs::create_dir_all(&dir).unwrap();
    let original = std::fs::read(&clip.path).unwrap();
    let (bytes, mutation) = mutate(&original, clip.container, case.kind, case.seed);
    let stem = case.name.clone();
    let input = dir.join(format!("{stem}.{}", clip.ext));
    std::fs::write(&input, &bytes).unwrap();
    let input_s = input.to_str().unwrap().to_string();
    let mut bad = Vec::new();

    // probe
    let ran = run_timed(fp(&["probe", &input_s]), &dir, "probe", PROBE_LIMIT);
    let probe = judge("probe", &ran, PROBE_LIMIT, &mut bad);
    match probe {
        Some(0) if serde_json::from_str::<serde_json::Value>(&ran.stdout).is_err() => {
            bad.push(format!(
                "probe: exit 0 but stdout is not JSON: {}",
                head(&ran.stdout)
            ))
        }
        Some(0) => {}
        Some(_) if !ran.stderr.contains(&input_s) => bad.push(format!(
            "probe: refused without naming the file: {}",
            head(&ran.stderr)
        )),
        _ => {}
    }

    // run (the built-in default pipeline)
    let out = dir.join("out");
    let ran = run_timed(
        fp(&[
            "run",
            "--device",
            "cpu",
            "-o",
            out.to_str().unwrap(),
            &input_s,
        ]),
        &dir,
        "run",
        RUN_LIMIT,
    );
    let run = judge("run", &ran, RUN_LIMIT, &mut bad);
    let folder = out.join(&stem);
    let partial = out.join(format!("{stem}.partial"));
    if partial.exists() {
        bad.push(format!(
            "run: {} left behind (exit {run:?})",
            partial.display()
        ));
    }
    if run == Some(0) {
        let mp4 = folder.join(format!("{stem}.mp4"));
        let json = folder.join(format!("{stem}.json"));
        if !mp4.is_file() {
            bad.push(format!("run: exit 0 but no {}", mp4.display()));
        } else {
            verify_output(&mp4, &dir, &mut bad);
        }
        let report = std::fs::read(&json)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        if report.is_none() {
            bad.push(format!("run: exit 0 but no readable {}", json.display()));
        }
    } else {
        if folder.exists() {
            bad.push(format!("run: exit {run:?} but {} exists", folder.display()));
        }
        if run.is_some() && !ran.stderr.contains(&input_s) {
            bad.push(format!(
                "run: refused without naming the file: {}",
                head(&ran.stderr)
            ));
        }
    }

    // check
    let ran = run_timed(
        fp(&[
            "check",
            "--rules",
            rules.to_str().unwrap(),
            "--format",
            "json",
            &input_s,
        ]),
        &dir,
        "check",
        CHECK_LIMIT,
    );
    let check = judge("check", &ran, CHECK_LIMIT, &mut bad);
    if let Some(0 | 1) = check {
        let v: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap_or_default();
        let files = v["files"].as_array().map_or(0, Vec::len);
        if files != 1 {
            bad.push(format!(
                "check: exit {check:?} but stdout is not a JSON report of 1 file: {}",
                head(&ran.stdout)
            ));
        }
    } else if check == Some(2) {
        bad.push(format!(
            "check: exit 2 (cannot run) for a readable rules file: {}",
            head(&ran.stderr)
        ));
    }

    // The unmutated clip is good media: every command must take it.
    if case.kind == Kind::Original {
        for (what, code) in [("probe", probe), ("run", run)] {
            if code != Some(0) {
                bad.push(format!(
                    "{what}: the unmutated clip is refused (exit {code:?})"
                ));
            }
        }
    }

    if let (Some(keep), false) = (keep, bad.is_empty()) {
        let to = keep.join(&case.name);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.path().is_file() {
                let _ = std::fs::copy(entry.path(), to.join(entry.file_name()));
            }
        }
        for leftover in [&folder, &partial] {
            if let Ok(entries) = std::fs::read_dir(leftover) {
                let to = to.join("out").join(leftover.file_name().unwrap());
                std::fs::create_dir_all(&to).unwrap();
                for entry in entries.flatten() {
                    let _ = std::fs::copy(entry.path(), to.join(entry.file_name()));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Outcome {
        name: case.name.clone(),
        mutation,
        seed: case.seed,
        kind: Some(case.kind),
        shared: clip.shared,
        violations: bad,
        probe,
        run,
        check,
        secs: start.elapsed().as_secs_f64(),
    }
}

/// Every mutant is handled: no panic, hang, signal death or exit code outside 0/1/2, no output
/// folder after a refusal, an ffprobe-clean output after a success (damaged audio packets once
/// were copied as they were: 14 of the 279 cases at the fixed seed made outputs that did not
/// decode cleanly; the muxer now gets only packets that decode).
#[test]
fn mutated_media_is_handled_without_panic_hang_or_stray_output() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let mut clips = generated_clips(&media);
    let generated = clips.len();
    clips.extend(shared_clips(&media));
    let rules = pipeline(tmp.path(), "rules.json", RULES);
    let base = seed_from_env();

    let mut cases = Vec::new();
    for (ci, clip) in clips.iter().enumerate() {
        cases.push(Case {
            name: format!("{}-original", clip.name),
            clip: ci,
            kind: Kind::Original,
            seed: 0,
        });
        let per = if clip.shared {
            PER_SHARED_CLIP
        } else {
            PER_GENERATED_CLIP
        };
        for n in 0..per {
            let kind = MUTATIONS[n % MUTATIONS.len()];
            cases.push(Case {
                name: format!("{}-{}-{n:02}", clip.name, kind.tag()),
                clip: ci,
                kind,
                seed: case_seed(base, &clip.name, n),
            });
        }
    }
    let only = std::env::var("FRAMEPIPE_FUZZ_ONLY").ok();
    if let Some(only) = &only {
        cases.retain(|c| c.name.contains(only.as_str()));
        assert!(
            !cases.is_empty(),
            "FRAMEPIPE_FUZZ_ONLY={only:?} matches no case"
        );
    } else {
        let mutated = cases.iter().filter(|c| c.kind != Kind::Original).count();
        let on_generated = generated * PER_GENERATED_CLIP;
        assert!(
            on_generated >= MIN_CASES,
            "{on_generated} mutated cases on generated clips alone; at least {MIN_CASES} wanted"
        );
        assert!(mutated >= MIN_CASES);
    }
    let keep = std::env::var_os("FRAMEPIPE_FUZZ_KEEP").map(PathBuf::from);
    let threads: usize = std::env::var("FRAMEPIPE_FUZZ_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2)
        .max(1);
    let media_secs = started.elapsed().as_secs_f64();

    let root = tmp.path().join("cases");
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let o = run_case(case, &clips[case.clip], &rules, &root, keep.as_deref());
                if !o.violations.is_empty() {
                    eprintln!("VIOLATION {}: {}", o.name, o.violations.join("; "));
                }
                outcomes.lock().unwrap().push(o);
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by(|a, b| a.name.cmp(&b.name));

    let mutated: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.kind != Some(Kind::Original))
        .collect();
    let count = |f: &dyn Fn(&Outcome) -> bool| mutated.iter().filter(|o| f(o)).count();
    let produced = count(&|o| o.run == Some(0));
    let refused = count(&|o| matches!(o.run, Some(1 | 2)));
    let on_shared = count(&|o| o.shared);
    let slowest = outcomes
        .iter()
        .max_by(|a, b| a.secs.total_cmp(&b.secs))
        .map(|o| format!("{} {:.1} s", o.name, o.secs))
        .unwrap_or_default();
    let mut by_kind = String::new();
    for kind in MUTATIONS {
        let of: Vec<&&Outcome> = mutated.iter().filter(|o| o.kind == Some(kind)).collect();
        let out = of.iter().filter(|o| o.run == Some(0)).count();
        by_kind.push_str(&format!(" {}: {}/{}", kind.tag(), out, of.len()));
    }
    // CPU time of every child (framepipe, ffmpeg, ffprobe): what the cases cost on a quiet
    // machine, whatever else shares it.
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and out-parameter.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let child_cpu = cpu(usage.ru_utime) + cpu(usage.ru_stime);
    eprintln!(
        "fuzz_inputs: seed {base:#x}: {} mutated cases ({} on generated clips, {on_shared} on shared media) + {} originals on {threads} threads; run produced output for {produced}, refused {refused} (exit 1: {}, exit 2: {}); produced per kind:{by_kind}; probe ok {}, check passed {} / failed {}; media {media_secs:.1} s, total {:.1} s wall, {child_cpu:.0} s CPU in child processes; slowest case {slowest}",
        mutated.len(),
        mutated.len() - on_shared,
        outcomes.len() - mutated.len(),
        count(&|o| o.run == Some(1)),
        count(&|o| o.run == Some(2)),
        count(&|o| o.probe == Some(0)),
        count(&|o| o.check == Some(0)),
        count(&|o| o.check == Some(1)),
        started.elapsed().as_secs_f64(),
    );

    let violations: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.violations.is_empty())
        .map(|o| {
            format!(
                "{} [{}; seed {:#x}]:\n    {}",
                o.name,
                o.mutation,
                o.seed,
                o.violations.join("\n    ")
            )
        })
        .collect();
    assert!(
        violations.is_empty(),
        "{} of {} cases mishandled (base seed {base:#x}; rerun one with FRAMEPIPE_FUZZ_ONLY=<name> FRAMEPIPE_FUZZ_KEEP=<dir>):\n{}",
        violations.len(),
        outcomes.len(),
        violations.join("\n")
    );
    if only.is_none() {
        assert!(
            produced > 0 && refused > 0,
            "the mutations should both damage clips that still play and break some outright: {produced} produced, {refused} refused"
        );
    }
}
