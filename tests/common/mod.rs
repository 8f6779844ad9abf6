//! Shared helpers for the integration tests: media made with the `ffmpeg` CLI, the real
//! `framepipe` binary, and `ffprobe` as the independent judge of what it wrote.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod shared;
#[allow(unused_imports)]
pub use shared::*;
pub mod browser;
pub mod watchdog;

/// The binary under test.
pub fn framepipe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_framepipe"))
}

/// Runs `ffmpeg -v error -y ARGS`, panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ffprobe -of json` with the given args on `path`.
pub fn ffprobe(path: &Path, args: &[&str]) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {path:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe prints JSON")
}

/// What ffprobe says about a file we wrote.
#[derive(Debug)]
pub struct Probed {
    pub width: u64,
    pub height: u64,
    pub codec: String,
    pub profile: String,
    pub pix_fmt: String,
    /// Frames counted by decoding (not the container's claim).
    pub frames: u64,
    pub duration: f64,
    pub frame_rate: String,
    pub has_audio: bool,
    pub audio_codec: Option<String>,
    pub chapters: Vec<(f64, f64, String)>,
}

pub fn probe_output(path: &Path) -> Probed {
    let v = ffprobe(
        path,
        &[
            "-count_frames",
            "-show_streams",
            "-show_format",
            "-show_chapters",
        ],
    );
    let streams = v["streams"].as_array().expect("streams");
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("a video stream");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio");
    let chapters = v["chapters"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["start_time"].as_str().unwrap().parse().unwrap(),
                        c["end_time"].as_str().unwrap().parse().unwrap(),
                        c["tags"]["title"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Probed {
        width: video["width"].as_u64().unwrap(),
        height: video["height"].as_u64().unwrap(),
        codec: video["codec_name"].as_str().unwrap().into(),
        profile: video["profile"].as_str().unwrap_or("").into(),
        pix_fmt: video["pix_fmt"].as_str().unwrap().into(),
        frames: video["nb_read_frames"].as_str().unwrap().parse().unwrap(),
        duration: v["format"]["duration"].as_str().unwrap().parse().unwrap(),
        frame_rate: video["r_frame_rate"].as_str().unwrap().into(),
        has_audio: audio.is_some(),
        audio_codec: audio.map(|a| a["codec_name"].as_str().unwrap().to_string()),
        chapters,
    }
}

/// Frame presentation times of the first video stream, by ffprobe.
pub fn frame_times(path: &Path) -> Vec<f64> {
    let v = ffprobe(
        path,
        &["-select_streams", "v:0", "-show_entries", "frame=pts_time"],
    );
    v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pts_time"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Decodes frame `n` of `path` to 8-bit gray at `w`x`h` with the ffmpeg CLI (its own decoder,
/// its own autorotation).
pub fn gray_frame(path: &Path, n: u32, w: u32, h: u32, extra_filter: &str) -> Vec<u8> {
    let filter = format!("select=eq(n\\,{n}){extra_filter},scale={w}:{h}:flags=area,format=gray");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vf", &filter, "-frames:v", "1", "-f", "rawvideo", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), (w * h) as usize);
    out.stdout
}

pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
        .sum::<f64>()
        / a.len() as f64
}

/// Two 0.8 s H.264 MPEG-TS parts at 25 fps, 320x240 then 640x360, and their byte-wise
/// concatenation, whose decoder meets the new size at frame 20: `[first, second, mixed]`.
pub fn size_change_ts(dir: &Path) -> [PathBuf; 3] {
    let parts = [(dir.join("a.ts"), "320x240"), (dir.join("b.ts"), "640x360")];
    for (path, size) in &parts {
        make_cut_clip(path, size, &[("testsrc2", 20)], false, &[]);
    }
    let mixed = dir.join("mixed.ts");
    let bytes = [
        std::fs::read(&parts[0].0).unwrap(),
        std::fs::read(&parts[1].0).unwrap(),
    ]
    .concat();
    std::fs::write(&mixed, bytes).unwrap();
    let [(a, _), (b, _)] = parts;
    [a, b, mixed]
}

/// A clip of lavfi sources concatenated with hard cuts at known frames (25 fps).
/// `scenes` are (lavfi source, frames). Returns the cut frame numbers.
pub fn make_cut_clip(
    path: &Path,
    size: &str,
    scenes: &[(&str, u32)],
    audio: bool,
    extra: &[&str],
) -> Vec<u32> {
    let mut args: Vec<String> = Vec::new();
    let mut filter = String::new();
    for (i, (source, frames)) in scenes.iter().enumerate() {
        args.extend([
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            format!("{source}=size={size}:rate=25"),
        ]);
        filter.push_str(&format!(
            "[{i}:v]trim=end_frame={frames},setpts=PTS-STARTPTS[v{i}];"
        ));
    }
    for i in 0..scenes.len() {
        filter.push_str(&format!("[v{i}]"));
    }
    filter.push_str(&format!("concat=n={}:v=1:a=0[v]", scenes.len()));
    let total: u32 = scenes.iter().map(|s| s.1).sum();
    if audio {
        args.extend([
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            format!("sine=frequency=440:duration={}", f64::from(total) / 25.0),
        ]);
    }
    args.extend([
        "-filter_complex".into(),
        filter,
        "-map".into(),
        "[v]".into(),
    ]);
    if audio {
        args.extend([
            "-map".into(),
            format!("{}:a", scenes.len()),
            "-c:a".into(),
            "aac".into(),
        ]);
    }
    args.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ]
        .map(String::from),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(path.display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&refs);
    let mut cuts = Vec::new();
    let mut at = 0;
    for (_, frames) in &scenes[..scenes.len() - 1] {
        at += frames;
        cuts.push(at);
    }
    cuts
}

/// A 0.3 s 64x48 H.264 clip of 3 frames at `path`: the cheapest real input (batch and log tests).
pub fn tiny_clip(path: &Path) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=0.3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        path.to_str().unwrap(),
    ]);
}

/// Writes a pipeline config into `dir` and returns its path.
pub fn pipeline(dir: &Path, name: &str, json: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, json).unwrap();
    path
}

/// The report JSON of a finished input, after proving it is exactly what the report's types
/// describe: [`typed_report`] reads it (every struct refuses unknown fields) and writes it back
/// to the same JSON, so no test passes on a report with a field the schema does not have.
pub fn report(out: &Path, stem: &str) -> Value {
    let path = out.join(stem).join(format!("{stem}.json"));
    let value: Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
            .unwrap();
    let typed = typed_report(out, stem);
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        value,
        "{path:?}: the report does not round-trip through framepipe::output::report::Report"
    );
    value
}

/// The report of a finished input, read through the report's own types.
pub fn typed_report(out: &Path, stem: &str) -> framepipe::output::report::Report {
    let path = out.join(stem).join(format!("{stem}.json"));
    framepipe::output::report::Report::read(&path).unwrap_or_else(|e| panic!("{e}"))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Nothing left for `stem` under `out`: neither a finished folder nor a partial one.
pub fn assert_no_output(out: &Path, stem: &str) {
    assert!(
        !out.join(stem).exists(),
        "{stem}/ must not exist after a failure"
    );
    assert!(
        !out.join(format!("{stem}.partial")).exists(),
        "{stem}.partial/ must be cleaned up"
    );
}

/// One tensor of a safetensors file: its dtype, shape, and values as f32 (from f32, f16 or i64).
pub struct StoredTensor {
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Reads tensor `name` of `path`; `None` when the file has no such tensor.
pub fn read_tensor(path: &Path, name: &str) -> Option<StoredTensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).ok()?;
    let values = match t.dtype() {
        safetensors::Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        safetensors::Dtype::F16 => t
            .data()
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        safetensors::Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        other => panic!("{path:?}: {name} has unexpected dtype {other:?}"),
    };
    Some(StoredTensor {
        dtype: t.dtype(),
        shape: t.shape().to_vec(),
        values,
    })
}

/// The `frame_index` tensor of a latents or embeddings file.
pub fn frame_index(path: &Path) -> Vec<i64> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("frame_index").unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::I64);
    t.data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// How a child process ended, with its own peak resident and virtual memory.
#[derive(Debug)]
pub struct Measured {
    pub success: bool,
    pub stderr: String,
    /// Peak RSS (the kernel's ru_maxrss for exactly this child), MiB.
    pub peak_rss_mib: f64,
    /// VmPeak (peak address-space size) as last read from /proc while it ran, bytes.
    pub vm_peak_bytes: u64,
}

/// Runs `cmd` (stdout discarded, stderr kept), optionally under an address-space limit
/// (RLIMIT_AS, bytes): allocations beyond it fail as they do when memory runs out.
pub fn run_measured(mut cmd: Command, address_space_limit: Option<u64>) -> Measured {
    use std::os::unix::process::CommandExt;
    let err_file = tempfile::NamedTempFile::new().unwrap();
    cmd.stdout(std::process::Stdio::null())
        .stderr(err_file.reopen().unwrap());
    if let Some(limit) = address_space_limit {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &r) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = cmd.spawn().expect("child starts");
    let pid = child.id() as libc::pid_t;
    let status_path = format!("/proc/{pid}/status");
    let mut vm_peak_bytes = 0;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmPeak:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                vm_peak_bytes = vm_peak_bytes.max(kb * 1024);
            }
        }
        // SAFETY: pid is our child; status and usage are valid out-parameters.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert!(r >= 0, "wait4 failed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::mem::forget(child); // reaped by wait4 above
    Measured {
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stderr: std::fs::read_to_string(err_file.path()).unwrap_or_default(),
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        vm_peak_bytes,
    }
}

/// `framepipe run --pipeline CFG -o OUT INPUT` (stderr kept: warnings are part of what tests
/// check); its output.
pub fn run_pipeline(cfg: &Path, out: &Path, input: &Path) -> Output {
    framepipe()
        .args(["run", "--pipeline"])
        .arg(cfg)
        .arg("-o")
        .arg(out)
        .arg(input)
        .output()
        .expect("framepipe runs")
}

/// The project venv's python (`$FRAMEPIPE_VENV`, default `/opt/framepipe/venv`), where set-up
/// installs the reference implementations the tests judge by.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("FRAMEPIPE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/framepipe/venv"));
    venv.join("bin/python3")
}

/// What `tests/fixtures/read_export.py MODE DIR` (Python's tarfile + numpy, or pyarrow) finds in
/// an export folder.
pub fn read_export<T: serde::de::DeserializeOwned>(mode: &str, dir: &Path) -> T {
    fixture_json("read_export.py", &[mode.as_ref(), dir.as_os_str()])
}

/// What `tests/fixtures/SCRIPT ARGS...` (an independent judge, run by the venv's python) prints
/// as JSON on stdout; a failing script fails the test with its stderr.
pub fn fixture_json<T: serde::de::DeserializeOwned>(script: &str, args: &[&std::ffi::OsStr]) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(script);
    let out = Command::new(venv_python())
        .arg(path)
        .args(args)
        .output()
        .expect("the venv's python runs");
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

/// 225 frames at 25 fps, 320x180: testsrc2 dissolving into mandelbrot over frames 75..100, a
/// hard cut at 175 to a moving colour field.
pub fn transitions_clip(path: &Path) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25:duration=4",
        "-f",
        "lavfi",
        "-i",
        "mandelbrot=size=320x180:rate=25",
        "-f",
        "lavfi",
        "-i",
        "life=size=320x180:rate=25:mold=10:ratio=0.4:death_color=#204080:life_color=#f0c020",
        "-filter_complex",
        "[1:v]trim=duration=4,setpts=PTS-STARTPTS,format=yuv420p[m];\
         [2:v]trim=duration=2,setpts=PTS-STARTPTS,format=yuv420p[l];\
         [0:v]format=yuv420p[t];[t][m]xfade=transition=dissolve:duration=1:offset=3[x];\
         [x][l]concat=n=2:v=1:a=0[v]",
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        path.to_str().unwrap(),
    ]);
}
