//! Bad input: each case gets a clear message naming the file and the cause, a non-zero exit, and
//! no `OUT/<stem>/` (nor `.partial/`) left behind; in a batch the other inputs still complete.
mod common;

use std::path::{Path, PathBuf};

use common::*;

struct Outcome {
    code: i32,
    stderr: String,
}

fn run(out: &Path, pipeline: Option<&Path>, inputs: &[&Path]) -> Outcome {
    let mut cmd = framepipe();
    cmd.args(["-q", "run", "-o"]).arg(out);
    if let Some(p) = pipeline {
        cmd.arg("--pipeline").arg(p);
    }
    let output = cmd.args(inputs).output().unwrap();
    Outcome {
        code: output.status.code().expect("exited, not killed"),
        stderr: stderr(&output),
    }
}

fn fast_pipeline(dir: &Path) -> PathBuf {
    pipeline(
        dir,
        "fast.json",
        r#"{"scenes": {}, "encode": {"preset": "ultrafast"}}"#,
    )
}

/// Runs one bad input next to a good one: the bad one fails with `cause` in its message, the
/// good one still completes, exit code 1.
fn assert_rejected(dir: &Path, bad: &Path, cause: &str) {
    let good = dir.join("good.mp4");
    if !good.exists() {
        make_cut_clip(&good, "160x120", &[("testsrc2", 5)], false, &[]);
    }
    let out = dir.join("out");
    let o = run(&out, Some(&fast_pipeline(dir)), &[bad, &good]);
    assert_eq!(o.code, 1, "exit code for {bad:?}; stderr: {}", o.stderr);
    let name = bad.display().to_string();
    let line = o
        .stderr
        .lines()
        .find(|l| l.starts_with("error:") && l.contains(&name));
    let line = line.unwrap_or_else(|| panic!("no error line naming {name}: {}", o.stderr));
    assert!(
        o.stderr.contains(cause),
        "expected {cause:?} for {name}; got: {}",
        o.stderr
    );
    assert!(line.len() < 400, "message should be short: {line}");
    let stem = bad.file_stem().unwrap().to_str().unwrap();
    assert_no_output(&out, stem);
    assert!(
        out.join("good/good.mp4").exists(),
        "the good input must still complete"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_rejected(dir.path(), &dir.path().join("nope.mp4"), "no such file");
}

#[test]
fn directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("folder.mp4");
    std::fs::create_dir(&d).unwrap();
    assert_rejected(dir.path(), &d, "is a directory");
}

#[test]
fn zero_byte_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("empty.mp4");
    std::fs::write(&f, b"").unwrap();
    assert_rejected(dir.path(), &f, "empty file");
}

#[test]
fn text_file_renamed_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.mp4");
    std::fs::write(&f, "these are my notes, not a video\n".repeat(50)).unwrap();
    assert_rejected(dir.path(), &f, "not a readable media file");
}

#[test]
fn truncated_mp4_without_moov() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.mp4");
    make_cut_clip(&whole, "320x240", &[("testsrc2", 50)], false, &[]);
    // Without faststart the moov box is at the end: cutting the file in half loses it.
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_rejected(dir.path(), &cut, "not a readable media file");
}

/// A damaged MKV whose demuxer stops after a few frames without an error: the output is made
/// from what decoded, and the report says how many frames that was and how long the file
/// claimed to be (it used to say nothing).
#[test]
fn mkv_that_stops_decoding_early_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=25:duration=1.2",
        "-c:v",
        "mjpeg",
        "-q:v",
        "3",
        whole.to_str().unwrap(),
    ]);
    // The Segment Info (with the duration) is at the start; the clusters follow. Keep the
    // header and about a tenth of the frames.
    let bytes = std::fs::read(&whole).unwrap();
    let damaged = dir.path().join("damaged.mkv");
    std::fs::write(&damaged, &bytes[..bytes.len() / 10]).unwrap();
    let out = dir.path().join("out");
    let o = run(&out, Some(&fast_pipeline(dir.path())), &[&damaged]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = typed_report(&out, "damaged");
    let frames = r.stats.frames;
    assert!(frames > 0 && frames < 10, "decoded {frames} of 30");
    let warning = r
        .warnings
        .iter()
        .find(|w| w.starts_with("decoding ended at"))
        .unwrap_or_else(|| panic!("no early-end warning in {:?}", r.warnings));
    assert!(
        warning.contains(&format!("{frames} frame(s) decoded"))
            && warning.contains("of the 1.20 s the file declares")
            && warning.contains("about 30 expected"),
        "{warning}"
    );
    // The whole file: no such warning.
    let out = dir.path().join("out-whole");
    let o = run(&out, Some(&fast_pipeline(dir.path())), &[&whole]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = typed_report(&out, "whole");
    assert_eq!(r.stats.frames, 30);
    assert!(
        !r.warnings
            .iter()
            .any(|w| w.starts_with("decoding ended at")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn audio_only_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("song.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        "-c:a",
        "aac",
        f.to_str().unwrap(),
    ]);
    assert_rejected(dir.path(), &f, "no video stream (streams found: audio)");
}

#[test]
fn unsupported_codec() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.avi");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:rate=5:duration=0.4",
        "-c:v",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        raw.to_str().unwrap(),
    ]);
    // Give the stream a FourCC no decoder knows.
    let mut bytes = std::fs::read(&raw).unwrap();
    let strf = bytes.windows(4).position(|w| w == b"strf").unwrap();
    bytes[strf + 8 + 16..strf + 8 + 20].copy_from_slice(b"ZZZZ");
    let strh = bytes.windows(4).position(|w| w == b"strh").unwrap();
    bytes[strh + 12..strh + 16].copy_from_slice(b"ZZZZ");
    let f = dir.path().join("alien.avi");
    std::fs::write(&f, bytes).unwrap();
    assert_rejected(dir.path(), &f, "unsupported video codec");
}

#[test]
fn one_by_one_pixel_video() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dot.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=16x16:rate=5:duration=0.4",
        "-vf",
        "scale=1:1,format=yuv444p",
        "-c:v",
        "ffv1",
        f.to_str().unwrap(),
    ]);
    assert_rejected(
        dir.path(),
        &f,
        "video is 1x1: smaller than the minimum side of 16 px (limits.min_side)",
    );
}

#[test]
fn eight_k_video_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("huge.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=blue:size=7680x4320:rate=1:duration=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        f.to_str().unwrap(),
    ]);
    assert_rejected(dir.path(), &f, "video is 7680x4320 (33177600 pixels per frame): over the limit of 16777216 (limits.max_pixels)");
}

#[test]
fn mid_stream_corruption_is_a_warning_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.mp4");
    make_cut_clip(&whole, "320x240", &[("testsrc2", 75)], false, &["-g", "25"]);
    let mut bytes = std::fs::read(&whole).unwrap();
    let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap();
    let start = mdat + (bytes.len() - mdat) / 3;
    for b in &mut bytes[start..start + 4000] {
        *b = 0xA5;
    }
    let f = dir.path().join("damaged.mp4");
    std::fs::write(&f, bytes).unwrap();
    let out = dir.path().join("out");
    let o = run(&out, Some(&fast_pipeline(dir.path())), &[&f]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = report(&out, "damaged");
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("could not be read or decoded")
            || warnings.contains("decoded from damaged data"),
        "{warnings}"
    );
    let stats = &r["stats"];
    assert!(
        stats["decode_errors"].as_u64().unwrap() + stats["damaged_frames"].as_u64().unwrap() > 0
    );
    let p = probe_output(&out.join("damaged/damaged.mp4"));
    assert!(p.frames > 0 && p.frames <= 75, "{} frames", p.frames);
}

#[test]
fn undecodable_video_data_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.mp4");
    make_cut_clip(
        &whole,
        "320x240",
        &[("testsrc2", 10)],
        false,
        &["-movflags", "+faststart"],
    );
    let mut bytes = std::fs::read(&whole).unwrap();
    let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap();
    let len = bytes.len();
    for b in &mut bytes[mdat + 4..len] {
        *b = 0;
    }
    let f = dir.path().join("zeroed.mp4");
    std::fs::write(&f, bytes).unwrap();
    assert_rejected(dir.path(), &f, "no frame could be decoded");
}

#[test]
fn unknown_config_key_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = pipeline(
        dir.path(),
        "bad.json",
        r#"{"encode": {"crf": 20, "bitrate": "5M"}}"#,
    );
    let input = dir.path().join("never-opened.mp4");
    let o = run(&dir.path().join("out"), Some(&cfg), &[&input]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("bad.json"), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("unknown field `bitrate`, expected one of"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("`crf`"),
        "allowed keys are listed: {}",
        o.stderr
    );
    assert!(
        !o.stderr.contains("never-opened"),
        "config errors come before any input is touched"
    );
}

#[test]
fn bad_resolution_name_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = pipeline(
        dir.path(),
        "res.json",
        r#"{"normalize": {"resolution": "4k"}}"#,
    );
    let o = run(
        &dir.path().join("out"),
        Some(&cfg),
        &[&dir.path().join("x.mp4")],
    );
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("res.json")
            && o.stderr
                .contains("unknown variant `4k`, expected `720p` or `1080p`"),
        "{}",
        o.stderr
    );
}

#[test]
fn bad_values_and_unparsable_config_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, expected) in [
        (
            "crf.json",
            r#"{"encode": {"crf": 99}}"#,
            "encode.crf = 99: must be in [0, 51]",
        ),
        ("json.json", r#"{"encode": "#, "EOF while parsing"),
        ("missing.json", "", "cannot read"),
    ] {
        let cfg = if name == "missing.json" {
            dir.path().join("does-not-exist.json")
        } else {
            pipeline(dir.path(), name, text)
        };
        let o = run(
            &dir.path().join("out"),
            Some(&cfg),
            &[&dir.path().join("x.mp4")],
        );
        assert_eq!(o.code, 2, "{name}: {}", o.stderr);
        assert!(o.stderr.contains(expected), "{name}: {}", o.stderr);
    }
}

#[test]
fn unavailable_cuda_device_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = framepipe()
        .args(["run", "--device", "cuda:7", "-o"])
        .arg(dir.path().join("out"))
        .arg("x.mp4")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("device cuda:7"), "{}", stderr(&out));
}

#[test]
fn unwritable_output_dir_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    make_cut_clip(&input, "160x120", &[("testsrc2", 5)], false, &[]);
    // A regular file where the output folder should be (root ignores permission bits, so a
    // read-only folder would not prove anything here).
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let o = run(&blocker.join("out"), None, &[&input]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("blocker/out") && o.stderr.contains("cannot create the output folder"),
        "{}",
        o.stderr
    );
}

#[test]
fn two_inputs_with_the_same_name_do_not_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    let a = dir.path().join("a/clip.mp4");
    let b = dir.path().join("b/clip.mp4");
    make_cut_clip(&a, "160x120", &[("testsrc2", 5)], false, &[]);
    std::fs::copy(&a, &b).unwrap();
    let out = dir.path().join("out");
    let o = run(&out, Some(&fast_pipeline(dir.path())), &[&a, &b]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("b/clip.mp4") && o.stderr.contains("also writes"),
        "{}",
        o.stderr
    );
    assert!(out.join("clip/clip.mp4").exists());
}

#[test]
fn probe_reports_errors_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = framepipe()
        .arg("probe")
        .arg(dir.path().join("gone.mp4"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("gone.mp4: no such file"),
        "{}",
        stderr(&out)
    );
}

/// A clip with audio (`-c:a CODEC`) at `path`: 3 s of 160x120 at 10 fps and a sine.
fn clip_with_audio(path: &Path, codec: &str) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=10:duration=3",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        codec,
        path.to_str().unwrap(),
    ]);
}

/// What `ffmpeg -v error` says when decoding every stream of `path` (empty: clean).
fn decode_errors(path: &Path) -> String {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stderr(&out)
}

/// Runs the default pipeline on one input: exit 0, and the report.
fn run_default(out: &Path, input: &Path) -> serde_json::Value {
    let o = run(out, None, &[input]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    report(out, input.file_stem().unwrap().to_str().unwrap())
}

/// Damaged audio packets are left out of the copied audio (the source glitches there; the output
/// still decodes cleanly), counted in a warning; the rest of the audio is there.
#[test]
fn damaged_audio_packets_are_left_out_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clean = d.join("clean.mp4");
    clip_with_audio(&clean, "aac");
    // Scramble the payload of audio packets 10-15 where the MP4 keeps them.
    let probe = ffprobe(
        &clean,
        &["-select_streams", "a", "-show_entries", "packet=pos,size"],
    );
    let mut bytes = std::fs::read(&clean).unwrap();
    for p in &probe["packets"].as_array().unwrap()[10..16] {
        let pos: usize = p["pos"].as_str().unwrap().parse().unwrap();
        let size: usize = p["size"].as_str().unwrap().parse().unwrap();
        for (i, b) in bytes[pos..pos + size].iter_mut().enumerate() {
            *b = (i * 37 + 11) as u8;
        }
    }
    let damaged = d.join("damaged.mp4");
    std::fs::write(&damaged, bytes).unwrap();
    assert!(
        !decode_errors(&damaged).is_empty(),
        "the damage is real: FFmpeg's AAC decoder reports it"
    );
    let out = d.join("out");
    let r = run_default(&out, &damaged);
    assert_eq!(r["output"]["audio"], "copy");
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("damaged audio packet(s) left out"),
        "{warnings}"
    );
    let video = out.join("damaged/damaged.mp4");
    assert_eq!(decode_errors(&video), "", "the output decodes cleanly");
    let p = probe_output(&video);
    assert!(p.has_audio && p.frames == 30, "{p:?}");
}

/// A source whose audio FFmpeg cannot decode at all (a damaged Vorbis setup header): the output
/// has the video and no audio, and says why.
#[test]
fn undecodable_audio_is_left_out_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clean = d.join("clean.mkv");
    clip_with_audio(&clean, "libvorbis");
    let mut bytes = std::fs::read(&clean).unwrap();
    // The setup header starts with packet type 5 and "vorbis"; zero its codebooks.
    let at = bytes
        .windows(7)
        .position(|w| w == b"\x05vorbis")
        .expect("a Vorbis setup header");
    bytes[at + 7..at + 200].fill(0);
    let damaged = d.join("novorbis.mkv");
    std::fs::write(&damaged, bytes).unwrap();
    let out = d.join("out");
    let r = run_default(&out, &damaged);
    assert_eq!(r["output"]["audio"], "none");
    assert_eq!(r["output"]["has_audio"], false);
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("audio cannot be decoded") && warnings.contains("vorbis"),
        "{warnings}"
    );
    let video = out.join("novorbis/novorbis.mp4");
    assert_eq!(decode_errors(&video), "");
    let p = probe_output(&video);
    assert!(!p.has_audio && p.frames == 30, "{p:?}");
}
