//! `framepipe batch --devices`: one model replica per device, every device checked before any
//! input is decoded.
mod common;

use std::path::Path;

use common::*;

fn cuda_devices() -> u64 {
    let o = framepipe().arg("devices").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["cuda_devices"].as_u64().unwrap_or(0)
}

#[test]
fn devices_spread_inputs_and_missing_gpus_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = d.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    for i in 0..4 {
        make_cut_clip(
            &inputs.join(format!("c{i}.mp4")),
            "160x90",
            &[("testsrc2", 10)],
            false,
            &[],
        );
    }
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures/clip-tiny");
    let cfg = pipeline(
        d,
        "p.json",
        &format!(
            r#"{{"clip": {{"model": {:?}, "labels": ["a", "b"], "sample": {{"every_n_frames": 5}}}}}}"#,
            model.display().to_string()
        ),
    );

    // Two replicas (CPU here; GPUs on a machine with them).
    let out = d.join("out");
    let o = framepipe()
        .args([
            "-q",
            "batch",
            "--devices",
            "cpu,cpu",
            "-j",
            "1",
            "--pipeline",
        ])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .arg(&inputs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for i in 0..4 {
        let r = report(&out, &format!("c{i}"));
        assert_eq!(r["stats"]["device"]["name"], "cpu");
        assert_eq!(r["clip"]["samples"], 2);
    }

    // A device list naming GPUs this machine does not have: refused before decoding.
    if cuda_devices() < 2 {
        let o = framepipe()
            .args(["batch", "--devices", "0,1", "--pipeline"])
            .arg(&cfg)
            .arg("-o")
            .arg(d.join("out2"))
            .arg(&inputs)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("cuda:"), "{}", stderr(&o));
        assert!(!d.join("out2/c0").exists());
    }
}
