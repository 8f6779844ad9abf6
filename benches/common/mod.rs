//! Shared helpers for the comparison benchmarks: media generated with the `ffmpeg` CLI into a
//! fixed cache folder (made once, reused), whole-command timing, medians, peak RSS.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Where generated benchmark media lives between runs.
pub fn media_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-media");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn framepipe_bin() -> PathBuf {
    // Benches are built with the same profile as the release binary, next to it.
    let exe = std::env::current_exe().unwrap();
    let release = exe.parent().unwrap().parent().unwrap();
    let bin = release.join("framepipe");
    assert!(
        bin.exists(),
        "build the binary first: cargo build --release ({bin:?} missing)"
    );
    bin
}

/// A 1080p30 H.264 clip of `seconds` with hard cuts every `cut_every` seconds and AAC audio:
/// testsrc2 (as hard to decode as the reference clip) with a different look per scene.
pub fn clip_1080p30(seconds: u32, cut_every: u32) -> PathBuf {
    let path = media_dir().join(format!("cuts-1080p30-{seconds}s-every{cut_every}s.mp4"));
    if path.exists() {
        return path;
    }
    let looks = [
        "null",
        "negate",
        "hue=h=120",
        "vflip,hue=s=0",
        "hflip,hue=h=240",
    ];
    let segments = seconds.div_ceil(cut_every);
    let mut filter = format!("[0:v]split={segments}");
    for s in 0..segments {
        filter.push_str(&format!("[in{s}]"));
    }
    filter.push(';');
    for s in 0..segments {
        let look = looks[s as usize % looks.len()];
        filter.push_str(&format!(
            "[in{s}]trim=start={}:duration={cut_every},setpts=PTS-STARTPTS,{look}[seg{s}];",
            s * cut_every
        ));
    }
    for s in 0..segments {
        filter.push_str(&format!("[seg{s}]"));
    }
    filter.push_str(&format!(
        "concat=n={segments}:v=1:a=0,trim=duration={seconds}[v]"
    ));
    let tmp = path.with_extension("tmp.mp4");
    eprintln!("generating {} ...", path.display());
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size=1920x1080:rate=30:duration={seconds}"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args(["-filter_complex", &filter, "-map", "[v]", "-map", "1:a"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        ])
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg failed to make {path:?}");
    std::fs::rename(tmp, &path).unwrap();
    path
}

/// A 1080p30 H.264 testsrc2 clip of `seconds` (no cuts) with AAC audio: the content the issue's
/// reference numbers were measured on.
pub fn clip_1080p30_testsrc2(seconds: u32) -> PathBuf {
    let path = media_dir().join(format!("testsrc2-1080p30-{seconds}s.mp4"));
    if !path.exists() {
        let tmp = path.with_extension("tmp.mp4");
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc2=size=1920x1080:rate=30:duration={seconds}"
            ))
            .args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:duration={seconds}"))
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
            ])
            .arg(&tmp)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::rename(tmp, &path).unwrap();
    }
    path
}

pub fn frame_count(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Runs `cmd` to completion; returns wall seconds. Panics with its stderr if it fails.
pub fn time_command(cmd: &mut Command) -> f64 {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// `framepipe -q run --pipeline CFG -o OUT INPUT` to completion; its wall seconds.
pub fn time_run(bin: &Path, cfg: &Path, input: &Path, out: &Path) -> f64 {
    time_command(
        Command::new(bin)
            .args(["-q", "run", "--pipeline"])
            .arg(cfg)
            .arg("-o")
            .arg(out)
            .arg(input),
    )
}

/// The project venv's python (`$FRAMEPIPE_VENV`, default `/opt/framepipe/venv`), where set-up
/// installs the Python baselines.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var("FRAMEPIPE_VENV").unwrap_or_else(|_| "/opt/framepipe/venv".into());
    Path::new(&venv).join("bin/python3")
}

/// Peak RSS in MiB of `cmd` (GNU time's %M), and its wall seconds.
pub fn peak_rss_mib(cmd: &Command) -> (f64, f64) {
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let start = Instant::now();
    let out = timed.output().unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{timed:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kib: f64 = stderr.lines().last().unwrap().trim().parse().unwrap();
    (kib / 1024.0, elapsed)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A named command to time: returns its wall seconds.
pub type Contender<'a> = (&'a str, Box<dyn FnMut() -> f64>);

/// Runs each contender `rounds` times, interleaved (A B C A B C ...) so that drift in the
/// machine's load hits all of them alike; returns the median seconds of each.
pub fn interleaved_medians(rounds: usize, contenders: &mut [Contender]) -> Vec<f64> {
    let mut times = vec![Vec::new(); contenders.len()];
    for round in 0..rounds {
        for (i, (name, run)) in contenders.iter_mut().enumerate() {
            let t = run();
            eprintln!("  round {round}: {name}: {t:.2} s");
            times[i].push(t);
        }
    }
    times.into_iter().map(median).collect()
}

/// A pipeline config file in the media folder.
pub fn pipeline(name: &str, json: &str) -> PathBuf {
    let path = media_dir().join(name);
    std::fs::write(&path, json).unwrap();
    path
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!(
        "{} cores, {cpu}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    )
}

/// Rounds per contender: `FRAMEPIPE_BENCH_ROUNDS`, else `default`.
pub fn rounds(default: usize) -> usize {
    std::env::var("FRAMEPIPE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
