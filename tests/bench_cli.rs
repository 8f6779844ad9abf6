//! `framepipe bench`: per-stage frames/s of a real run, the slowest stage, the encode-only
//! baseline, nothing left behind, bad input reported.
mod common;

use std::path::Path;

use common::*;

#[test]
fn bench_reports_every_stage_and_the_bottleneck() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("clip.mp4");
    make_cut_clip(
        &input,
        "320x180",
        &[("testsrc2", 25), ("mandelbrot", 25)],
        false,
        &[],
    );
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures/clip-tiny");
    let cfg = pipeline(
        d,
        "p.json",
        &format!(
            r#"{{"scenes": {{}}, "clip": {{"model": {:?}, "labels": ["a", "b"], "sample": {{"every_n_frames": 5}}}}, "encode": {{"preset": "ultrafast"}}, "device": "cpu"}}"#,
            model.display().to_string()
        ),
    );
    let o = framepipe()
        .args([
            "bench",
            "--format",
            "json",
            "--encode-baseline",
            "--pipeline",
        ])
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("{v:#}");
    let stages = v["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    for stage in ["decode", "normalize", "scenes", "clip", "encode"] {
        assert!(names.contains(&stage), "{stage} in {names:?}");
    }
    let frames = |name: &str| {
        stages.iter().find(|s| s["stage"] == name).unwrap()["frames"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(frames("decode"), 50);
    assert_eq!(frames("encode"), 50);
    assert_eq!(frames("clip"), 10, "every 5th of 50 frames");
    let busiest = stages
        .iter()
        .max_by(|a, b| {
            a["busy_seconds"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["busy_seconds"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(v["slowest"], busiest["stage"]);
    assert!(stages.iter().all(|s| s["fps"].as_f64().unwrap() > 0.0));
    assert!(v["fps"].as_f64().unwrap() > 0.0);
    assert!(v["encode_alone_fps"].as_f64().unwrap() > 0.0);
    assert_eq!(v["device"], "cpu");
    assert!(v["gpu"].is_null(), "no GPU sampled on a CPU run");

    let text = framepipe()
        .args(["bench", "--pipeline"])
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("<- slowest"));

    let missing = framepipe()
        .args(["bench", "--pipeline"])
        .arg(&cfg)
        .arg(d.join("missing.mp4"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("missing.mp4"),
        "{}",
        stderr(&missing)
    );
}
