//! `framepipe check` speed: (1) metadata-only rules, wall time per file including process start,
//! on ../shared/media (target <= 50 ms); (2) full-decode rules (decodes cleanly, black, frozen,
//! silence, loudness) against decode-only `ffmpeg -v error -i IN -f null -` on a 1080p30 clip
//! with audio (target >= 0.9x its frames/s). Run: `cargo bench --bench check`.
mod common;
#[path = "../tests/common/shared.rs"]
mod shared;

use std::process::Command;

use common::*;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = rounds(5);
    let bin = framepipe_bin();
    let metadata = pipeline(
        "check-metadata.json",
        r#"{"rule_sets": [{"name": "meta", "rules": {"container": ["mp4"], "video_codec": ["h264"], "width": {"min": 100}, "fps": {"value": 25, "tolerance": 5}, "duration": {"max": 600}, "faststart": false, "rotation": [0]}}]}"#,
    );
    let media = shared::shared_path("media");
    println!("machine: {}", machine());
    if let Some(media) = media {
        let files: Vec<_> = std::fs::read_dir(&media)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
            .collect();
        let mut per_file = Vec::new();
        for _ in 0..rounds {
            for f in &files {
                let mut cmd = Command::new(&bin);
                cmd.args(["check", "--rules"]).arg(&metadata).arg(f);
                let start = std::time::Instant::now();
                let out = cmd.output().unwrap();
                per_file.push(start.elapsed().as_secs_f64());
                assert!(out.status.code().is_some());
            }
        }
        println!("metadata-only check: median {:.1} ms per file, process start included (target <= 50 ms)", median(per_file) * 1000.0);
    } else {
        println!("metadata-only check: skipped, the shared media folder is absent");
    }

    let input = clip_1080p30(20, 4);
    let frames = frame_count(&input) as f64;
    let decode_rules = pipeline(
        "check-decode.json",
        r#"{"rule_sets": [{"name": "decode", "rules": {"decodes_cleanly": true, "black": {"max_seconds": 1}, "frozen": {"max_seconds": 1}, "silence": {"max_seconds": 1}, "loudness": {"integrated_lufs": {"min": -40, "max": 0}}}}]}"#,
    );
    let (i1, i2, b) = (input.clone(), input.clone(), bin.clone());
    let mut contenders: Vec<Contender> = vec![
        (
            "ffmpeg decode-only",
            Box::new(move || {
                time_command(
                    Command::new("ffmpeg")
                        .args(["-v", "error", "-i"])
                        .arg(&i1)
                        .args(["-f", "null", "-"]),
                )
            }),
        ),
        (
            "framepipe check (decode rules)",
            Box::new(move || {
                let start = std::time::Instant::now();
                let out = Command::new(&b)
                    .args(["check", "--rules"])
                    .arg(&decode_rules)
                    .arg(&i2)
                    .output()
                    .unwrap();
                assert!(
                    out.status.code().is_some_and(|c| c <= 1),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                start.elapsed().as_secs_f64()
            }),
        ),
    ];
    let m = interleaved_medians(rounds.min(3), &mut contenders);
    println!(
        "ffmpeg decode-only:       median {:.2} s = {:.1} frames/s",
        m[0],
        frames / m[0]
    );
    println!(
        "framepipe check (decode): median {:.2} s = {:.1} frames/s, ratio {:.3} (target >= 0.9)",
        m[1],
        frames / m[1],
        m[0] / m[1]
    );
}
