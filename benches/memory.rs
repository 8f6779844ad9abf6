//! Memory stays flat however long the input: peak RSS of `framepipe run` (default pipeline:
//! 720p, scenes, x264 medium, audio copy) on a 10-minute 1080p30 input against a 30-second one.
//! Target: ratio <= 1.2 (bounded queues, nothing accumulates per frame).
//! Run: `cargo bench --bench memory` after `cargo build --release` (generates the 10-minute
//! input once, into target/tmp/bench-media; the long run takes a few minutes on 2 cores).
mod common;

use std::process::Command;

use common::*;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let short = clip_1080p30(30, 5);
    let long = clip_1080p30(600, 30);
    let bin = framepipe_bin();
    let default = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/default.json");
    let measure = |input: &std::path::Path| {
        let out = media_dir().join("memory-out");
        let mut cmd = Command::new(&bin);
        cmd.args(["-q", "run", "--pipeline"])
            .arg(&default)
            .arg("-o")
            .arg(&out)
            .arg(input);
        peak_rss_mib(&cmd)
    };
    let (short_rss, short_s) = measure(&short);
    let (long_rss, long_s) = measure(&long);
    println!("machine: {}", machine());
    println!("30 s input:  peak RSS {short_rss:.1} MiB ({short_s:.1} s)");
    println!("10 min input: peak RSS {long_rss:.1} MiB ({long_s:.1} s)");
    println!("ratio: {:.3} (target <= 1.2)", long_rss / short_rss);
}
