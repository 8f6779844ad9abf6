//! Four (`FRAMEPIPE_BENCH_WORKERS`) `framepipe batch` processes sharing one OUT over clips of mixed lengths: claims (no
//! shards, each worker takes the next free input) against `--shard I/4` (a fixed slice each).
//! The figure is the wall time until the slowest worker ends, which is the batch's time: static
//! slices end when the slice with the most long clips does, claims keep every worker busy.
//!
//! `FRAMEPIPE_BENCH_CLIPS` clips (default 40, small enough for a few minutes on 2 cores; the
//! issue asks for 200), one long clip (8 s, 320x240) in eight, the rest 0.5 s at 160x120; the
//! pipeline is
//! scenes + x264 ultrafast on the CPU, models off. `FRAMEPIPE_BENCH_ROUNDS` rounds (default 1).
//! Run: `cargo bench --bench batch_workers`.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Worker processes: `FRAMEPIPE_BENCH_WORKERS`, default 4.
fn worker_count() -> usize {
    std::env::var("FRAMEPIPE_BENCH_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(4)
}

fn clip_count() -> usize {
    std::env::var("FRAMEPIPE_BENCH_CLIPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(40)
}

/// The clips (made once per count) and a manifest listing them.
fn inputs(n: usize) -> PathBuf {
    let dir = media_dir().join(format!("batch-workers-v2-{n}"));
    let manifest = dir.join("manifest.txt");
    if manifest.exists() {
        return manifest;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let seed = |seconds: &str, size: &str| {
        let path = dir.join(format!("seed-{seconds}.mp4"));
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={size}:rate=25:duration={seconds}"))
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .arg(&path)
            .status()
            .unwrap();
        assert!(st.success());
        path
    };
    let (short, long) = (seed("0.5", "160x120"), seed("8", "320x240"));
    let mut lines = String::new();
    for i in 0..n {
        let name = format!("clip-{i:03}.mp4");
        std::fs::copy(if i % 8 == 3 { &long } else { &short }, dir.join(&name)).unwrap();
        lines += &name;
        lines += "\n";
    }
    std::fs::write(&manifest, lines).unwrap();
    manifest
}

/// Starts the workers together; returns each one's wall seconds (the last ends the batch).
fn workers(
    bin: &Path,
    cfg: &Path,
    manifest: &Path,
    out: &Path,
    count: usize,
    sharded: bool,
) -> Vec<f64> {
    let _ = std::fs::remove_dir_all(out);
    let start = Instant::now();
    let mut children: Vec<_> = (0..count)
        .map(|i| {
            let shard = if sharded {
                format!("{i}/{count}")
            } else {
                "none".into()
            };
            Command::new(bin)
                .args(["-q", "batch", "-j", "1", "--shard", &shard, "--pipeline"])
                .arg(cfg)
                .arg("--manifest")
                .arg(manifest)
                .arg("-o")
                .arg(out)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ended = vec![None; count];
    while ended.iter().any(Option::is_none) {
        for (i, child) in children.iter_mut().enumerate() {
            if ended[i].is_none() {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "worker {i} failed: {status}");
                    ended[i] = Some(start.elapsed().as_secs_f64());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ended.into_iter().map(Option::unwrap).collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = clip_count();
    let count = worker_count();
    let rounds = rounds(1);
    let bin = framepipe_bin();
    let manifest = inputs(n);
    let cfg = pipeline(
        "bench-batch-workers.json",
        r#"{"scenes": {}, "encode": {"preset": "ultrafast", "crf": 30}, "device": "cpu"}"#,
    );
    let out = media_dir().join("batch-workers-out");
    let (mut claims, mut shards) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Interleaved, so drift in the machine's load hits both alike.
        let c = workers(&bin, &cfg, &manifest, &out, count, false);
        let s = workers(&bin, &cfg, &manifest, &out, count, true);
        eprintln!("  round {round}: claims {c:.1?} s, --shard I/{count} {s:.1?} s");
        claims.push(c);
        shards.push(s);
    }
    let slowest = |v: &[Vec<f64>]| {
        median(
            v.iter()
                .map(|w| w.iter().cloned().fold(0.0, f64::max))
                .collect(),
        )
    };
    let fastest = |v: &[Vec<f64>]| {
        median(
            v.iter()
                .map(|w| w.iter().cloned().fold(f64::INFINITY, f64::min))
                .collect(),
        )
    };
    let (c, s) = (slowest(&claims), slowest(&shards));
    println!("machine: {}", machine());
    println!(
        "{n} clips (1 in 8 is 8 s 320x240, the rest 0.5 s 160x120), {count} worker processes with -j 1 on one OUT, {rounds} round(s){}:",
        if n == 200 { "" } else { " (the issue asks 200: FRAMEPIPE_BENCH_CLIPS=200)" }
    );
    println!(
        "  claims (no shards): slowest worker {c:.2} s, first to end {:.2} s",
        fastest(&claims)
    );
    println!(
        "  --shard I/{count}:         slowest worker {s:.2} s, first to end {:.2} s",
        fastest(&shards)
    );
    println!("  claims end the batch {:.2}x sooner", s / c);
}
