//! scripts/gpu/eager_reference.py, the PyTorch eager baseline the device check times framepipe
//! against (the GPU machine has torch but neither transformers nor diffusers): its plain-torch
//! CLIP vision tower and AutoencoderKL encoder must give the committed transformers/diffusers
//! references, or the baseline it times is not the same model. Needs torch in the project venv
//! (scripts/setup.sh); without it the test says so and skips.
use std::path::{Path, PathBuf};
use std::process::Command;

fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var("FRAMEPIPE_VENV").unwrap_or_else(|_| "/opt/framepipe/venv".into());
    let python = Path::new(&venv).join("bin/python3");
    let ok = Command::new(&python)
        .args(["-c", "import torch"])
        .output()
        .map(|o| o.status.success());
    if ok.unwrap_or(false) {
        Some(python)
    } else {
        eprintln!("SKIP: no torch in {venv} (run scripts/setup.sh)");
        None
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpu/eager_reference.py")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/framepipe-torch/tests/fixtures")
}

#[test]
fn eager_reference_matches_transformers_and_diffusers() {
    let Some(python) = venv_python() else { return };
    let out = Command::new(&python)
        .arg(script())
        .arg("check")
        .arg(fixtures())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    assert!(text.contains("REFERENCE OK"), "{text}");
}

#[test]
fn eager_reference_bench_reports_a_rate_per_model() {
    let Some(python) = venv_python() else { return };
    for (model, folder, extra) in [
        ("clip", "clip-tiny", vec![]),
        ("vae", "vae-kl-tiny", vec!["--size", "64x48"]),
    ] {
        let out = Command::new(&python)
            .arg(script())
            .args(["bench", model])
            .arg(fixtures().join(folder))
            .args([
                "--device",
                "cpu",
                "--dtype",
                "fp32",
                "--batch",
                "2",
                "--seconds",
                "0",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["model"], model);
        assert_eq!(v["impl"], "eager");
        assert_eq!(v["batch"], 2);
        assert!(v["calls"].as_u64().unwrap() >= 3);
        assert!(v["frames_per_second"].as_f64().unwrap() > 0.0, "{v}");
    }
}
