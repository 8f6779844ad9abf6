//! Scene detection alone (no normalize, no encode), against decode-only `ffmpeg -i IN -f null -`
//! and PySceneDetect `detect-content` (scripts/scene_reference.py) on the same 1080p30 clip with
//! hard cuts every 4 s; the cuts must be the same. Targets: >= 0.9x ffmpeg decode-only frames/s
//! and >= 1.5x PySceneDetect's. Run: `cargo bench --bench scenes` after `cargo build --release`.
mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = rounds(3);
    let input = clip_1080p30(20, 4);
    let frames = frame_count(&input) as f64;
    let bin = framepipe_bin();
    let out = media_dir().join("scenes-out");
    let venv = std::env::var("FRAMEPIPE_VENV").unwrap_or_else(|_| "/opt/framepipe/venv".into());
    let python = Path::new(&venv).join("bin/python3");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/scene_reference.py");
    let cfg = pipeline(
        "bench-scenes-only.json",
        r#"{"scenes": {"min_scene_frames": 18}, "device": "cpu"}"#,
    );

    let (i1, i2, i3) = (input.clone(), input.clone(), input.clone());
    let (out1, cfg1, bin1) = (out.clone(), cfg.clone(), bin.clone());
    let (py, sc) = (python.clone(), script.clone());
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
            "framepipe scenes",
            Box::new(move || {
                time_command(
                    Command::new(&bin1)
                        .args(["-q", "run", "--pipeline"])
                        .arg(&cfg1)
                        .arg("-o")
                        .arg(&out1)
                        .arg(&i2),
                )
            }),
        ),
        (
            "PySceneDetect",
            Box::new(move || time_command(Command::new(&py).arg(&sc).arg(&i3))),
        ),
    ];
    eprintln!(
        "scene bench on {} ({frames} frames), {rounds} rounds",
        input.display()
    );
    let m = interleaved_medians(rounds, &mut contenders);

    // Same cuts?
    let reference = Command::new(&python)
        .arg(&script)
        .arg(&input)
        .output()
        .unwrap();
    let reference: serde_json::Value = serde_json::from_slice(&reference.stdout).unwrap();
    let stem = input.file_stem().unwrap().to_str().unwrap();
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join(stem).join(format!("{stem}.json"))).unwrap(),
    )
    .unwrap();
    let ours: Vec<u64> = report["scenes"].as_array().unwrap()[1..]
        .iter()
        .map(|s| s["start_frame"].as_u64().unwrap())
        .collect();
    let theirs: Vec<u64> = reference["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();

    println!("machine: {}", machine());
    println!(
        "ffmpeg decode-only:  median {:.2} s = {:.1} frames/s",
        m[0],
        frames / m[0]
    );
    println!(
        "framepipe scenes:    median {:.2} s = {:.1} frames/s",
        m[1],
        frames / m[1]
    );
    println!(
        "PySceneDetect:       median {:.2} s = {:.1} frames/s",
        m[2],
        frames / m[2]
    );
    println!(
        "framepipe / ffmpeg decode-only: {:.3} (target >= 0.9)",
        m[0] / m[1]
    );
    println!(
        "framepipe / PySceneDetect:      {:.3} (target >= 1.5)",
        m[2] / m[1]
    );
    println!(
        "cuts: framepipe {ours:?}, PySceneDetect {theirs:?}, same: {}",
        ours == theirs
    );
}
