//! Transcode throughput against the `ffmpeg` CLI doing the same job on the same machine:
//! `ffmpeg -i IN -vf scale=1280:720 -c:v libx264 -preset medium -crf 23 -c:a copy OUT` vs
//! `framepipe run` (720p fit, x264 medium crf 23, audio copy), with scenes off and on.
//! Targets: ratio (ffmpeg seconds / framepipe seconds) >= 1.0 scenes off, >= 0.95 scenes on.
//! Run: `cargo bench --bench transcode` (after `cargo build --release`). FRAMEPIPE_BENCH_ROUNDS
//! sets the rounds (default 3); medians are reported.
mod common;

use std::process::Command;

use common::*;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = rounds(3);
    let input = clip_1080p30_testsrc2(20);
    let frames = frame_count(&input);
    let bin = framepipe_bin();
    let out = media_dir().join("transcode-out");
    let scenes_off = pipeline(
        "bench-scenes-off.json",
        r#"{"encode": {"crf": 23, "preset": "medium", "profile": null, "audio": "copy"}, "device": "cpu"}"#,
    );
    let scenes_on = pipeline(
        "bench-scenes-on.json",
        r#"{"scenes": {}, "encode": {"crf": 23, "preset": "medium", "profile": null, "audio": "copy"}, "device": "cpu"}"#,
    );
    let ffmpeg_out = media_dir().join("ffmpeg-out.mp4");
    let run_fp = |cfg: std::path::PathBuf| {
        let (bin, input, out) = (bin.clone(), input.clone(), out.clone());
        Box::new(move || time_run(&bin, &cfg, &input, &out)) as Box<dyn FnMut() -> f64>
    };
    let (input2, ffmpeg_out2) = (input.clone(), ffmpeg_out.clone());
    let mut contenders: Vec<Contender> = vec![
        (
            "ffmpeg",
            Box::new(move || {
                time_command(
                    Command::new("ffmpeg")
                        .args(["-v", "error", "-y", "-i"])
                        .arg(&input2)
                        .args([
                            "-vf",
                            "scale=1280:720",
                            "-c:v",
                            "libx264",
                            "-preset",
                            "medium",
                            "-crf",
                            "23",
                            "-c:a",
                            "copy",
                        ])
                        .arg(&ffmpeg_out2),
                )
            }),
        ),
        ("framepipe scenes off", run_fp(scenes_off)),
        ("framepipe scenes on", run_fp(scenes_on)),
    ];
    eprintln!(
        "transcode bench on {} ({frames} frames 1080p30), {rounds} rounds, {}",
        input.display(),
        machine()
    );
    let m = interleaved_medians(rounds, &mut contenders);
    println!("machine: {}", machine());
    println!(
        "ffmpeg CLI transcode:     median {:.2} s = {:.1} frames/s",
        m[0],
        frames as f64 / m[0]
    );
    println!(
        "framepipe, scenes off:    median {:.2} s = {:.1} frames/s, ratio {:.3} (target >= 1.0)",
        m[1],
        frames as f64 / m[1],
        m[0] / m[1]
    );
    println!(
        "framepipe, scenes on:     median {:.2} s = {:.1} frames/s, ratio {:.3} (target >= 0.95)",
        m[2],
        frames as f64 / m[2],
        m[0] / m[2]
    );
}
