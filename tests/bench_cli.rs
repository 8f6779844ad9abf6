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

/// A CLIP-only CPU pipeline with the fixture model (`batch` frames per call, or the default).
fn clip_pipeline(dir: &Path, batch: Option<u32>) -> std::path::PathBuf {
    let batch = batch.map_or(String::new(), |b| format!(r#", "batch_size": {b}"#));
    pipeline(
        dir,
        "clip.json",
        &format!(
            r#"{{"clip": {{"model": {:?}, "labels": ["a"]{batch}}}, "device": "cpu"}}"#,
            fixture("clip-tiny")
        ),
    )
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn models_bench_measures_each_model_stage_on_the_canvas() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = pipeline(
        d,
        "p.json",
        &format!(
            r#"{{"clip": {{"model": {:?}, "labels": ["a", "b"], "batch_size": 4}},
                "vae": {{"model": {:?}, "batch_size": 2}}, "device": "cpu",
                "runtime": {{"color_conversion": "device"}}}}"#,
            fixture("clip-tiny"),
            fixture("vae-tiny-tiny")
        ),
    );
    // A 4:3 source: letterboxed on the 16:9 canvas, so CLIP sees only the picture.
    let input = d.join("in.mp4");
    make_cut_clip(&input, "320x240", &[("testsrc2", 2)], false, &[]);
    let tmp = d.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let o = framepipe()
        .env("TMPDIR", &tmp)
        .args(["bench", "--models", "--seconds", "0.2", "--format", "json"])
        .arg("--pipeline")
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("{v:#}");
    assert_eq!(v["source"], "320x240");
    assert_eq!(v["canvas"], "1280x720");
    let stages = v["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    let (clip, vae) = (&stages[0], &stages[1]);
    assert_eq!(clip["stage"], "clip");
    assert_eq!(
        clip["picture"], "960x720",
        "the picture area, not the padded canvas"
    );
    assert_eq!(vae["picture"], "1280x720", "the VAE takes the whole canvas");
    for (s, batch) in [(clip, 4), (vae, 2)] {
        assert_eq!(s["frame_format"], "yuv420p");
        assert_eq!(s["batch_size"], batch);
        assert!(s["device_calls"].as_u64().unwrap() >= 3);
        assert!(s["device_fps"].as_f64().unwrap() > 0.0);
        assert!(s["model_fps"].as_f64().unwrap() > 0.0);
        assert!(s["stage_fps"].as_f64().unwrap() > 0.0);
        let frames = s["stage_frames"].as_u64().unwrap();
        assert!(frames >= batch && frames % batch == 0, "{frames}");
        assert!(
            s["peak_memory_mib"].is_null(),
            "no device memory on the CPU"
        );
    }
    // Without an input: a 1080p source fills the canvas; the CPU default sends RGB.
    let cfg = clip_pipeline(d, Some(2));
    let o = framepipe()
        .args(["bench", "--models", "--seconds", "0", "--pipeline"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("synthetic 1920x1080 source"), "{text}");
    assert!(text.contains("1280x720 rgb24"), "{text}");
    assert!(!text.contains("vae"), "{text}");
    // The vae stage's scratch shards are gone afterwards.
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "scratch left in {tmp:?}"
    );
}

#[test]
fn models_bench_refuses_what_it_cannot_measure() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // No model stage.
    let cfg = pipeline(d, "plain.json", r#"{"scenes": {}, "encode": {}}"#);
    let o = framepipe()
        .args(["bench", "--models", "--pipeline"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no model stage"), "{}", stderr(&o));
    // Without --models an input is required; --seconds only goes with --models.
    let o = framepipe().args(["bench"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("INPUT"), "{}", stderr(&o));
    let o = framepipe()
        .args(["bench", "--seconds", "1", "x.mp4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--models"), "{}", stderr(&o));
    // Absurd durations and unreadable inputs name the cause.
    let clip = clip_pipeline(d, None);
    let o = framepipe()
        .args(["bench", "--models", "--seconds", "1e9", "--pipeline"])
        .arg(&clip)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--seconds"), "{}", stderr(&o));
    let not_video = d.join("notes.mp4");
    std::fs::write(&not_video, b"not a video").unwrap();
    let o = framepipe()
        .args(["bench", "--models", "--pipeline"])
        .arg(&clip)
        .arg(&not_video)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("notes.mp4"), "{}", stderr(&o));
}
