//! The device check's Python helpers (scripts/gpu), tested here because a device run is scarce:
//! - eager_reference.py, the PyTorch eager baseline the check times framepipe against (the GPU
//!   machine has torch but neither transformers nor diffusers): its plain-torch CLIP vision
//!   tower and AutoencoderKL encoder must give the committed transformers/diffusers references,
//!   or the baseline it times is not the same model;
//! - summarize.py, which must read what `framepipe bench --models`, `framepipe bench` and
//!   eager_reference.py print (a renamed field would otherwise show up only on the device).
//!
//! Needs torch in the project venv (scripts/setup.sh); without it the tests say so and skip.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{framepipe, make_cut_clip};

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

/// `eager_reference.py bench MODEL FIXTURE` on the CPU in fp32, batch `batch`, no timed seconds.
fn eager_bench(python: &Path, model: &str, folder: &str, batch: &str, extra: &[&str]) -> Output {
    Command::new(python)
        .arg(script())
        .args(["bench", model])
        .arg(fixtures().join(folder))
        .args([
            "--device",
            "cpu",
            "--dtype",
            "fp32",
            "--seconds",
            "0",
            "--batch",
            batch,
        ])
        .args(extra)
        .output()
        .unwrap()
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
        let out = eager_bench(&python, model, folder, "2", &extra);
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

#[test]
fn summarize_reads_what_the_check_steps_print() {
    let Some(python) = venv_python() else { return };
    let out = tempfile::tempdir().unwrap();
    let o = out.path();
    let fixture = |name: &str| fixtures().join(name).display().to_string();
    let cfg = o.join("models.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"clip": {{"model": {:?}, "labels": ["a"], "batch_size": 4}},
                "vae": {{"model": {:?}, "batch_size": 2}}, "device": "cpu"}}"#,
            fixture("clip-tiny"),
            fixture("vae-tiny-tiny")
        ),
    )
    .unwrap();
    let models = framepipe()
        .args(["bench", "--models", "--format", "json", "--seconds", "0"])
        .arg("--pipeline")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(models.status.success());
    std::fs::write(o.join("models-b32-sdvae.out"), &models.stdout).unwrap();
    let eager = eager_bench(&python, "clip", "clip-tiny", "4", &[]);
    assert!(eager.status.success());
    std::fs::write(o.join("eager-b32.out"), &eager.stdout).unwrap();
    let input = o.join("in.mp4");
    make_cut_clip(&input, "320x180", &[("testsrc2", 10)], false, &[]);
    let bench = framepipe()
        .args([
            "bench",
            "--format",
            "json",
            "--encode-baseline",
            "--device",
            "cpu",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert!(bench.status.success());
    std::fs::write(o.join("bench-b32-sdvae.out"), &bench.stdout).unwrap();

    // The text steps: libtest's summary and the parity script's verdict.
    std::fs::write(
        o.join("cuda-tests.out"),
        "running 2 tests\ntest a ... ok\ntest b ... FAILED\n\ntest result: FAILED. 1 passed; 1 failed\n",
    )
    .unwrap();
    std::fs::write(
        o.join("parity-compare.out"),
        "clip embeddings cuda vs cpu: min cosine 0.99990\nPARITY OK\n",
    )
    .unwrap();
    let summary = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpu/summarize.py"))
        .arg(o)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&summary.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&summary.stderr));
    assert!(summary.status.success());
    let line = |start: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{text}"))
            .to_string()
    };
    // Every measured number came through: none of them shows as "-".
    assert!(line("CLIP ViT-B/32, batch 4").contains("fp32"));
    assert!(!line("framepipe model").contains(" - "), "{text}");
    assert!(
        !line("PyTorch eager").starts_with("PyTorch eager -"),
        "{text}"
    );
    assert!(line("PyTorch eager").contains("x)"), "a ratio: {text}");
    assert!(line("SD VAE encoder 720p, batch 2").ends_with(':'));
    let e2e = line("B/32 + SD VAE + x264, 1080p");
    assert!(
        e2e.contains("frames/s end to end") && e2e.contains("x264 alone"),
        "{e2e}"
    );
    let tests = line("cuda test set:");
    assert!(
        tests.contains("test b ... FAILED") && tests.contains("1 failed"),
        "{tests}"
    );
    assert_eq!(line("CUDA vs CPU parity:"), "CUDA vs CPU parity: PARITY OK");
    assert!(line("clip embeddings cuda vs cpu").contains("0.99990"));
    // Steps that did not run show as "-", not as an error.
    assert!(line("B/32 + taef2 + x264").ends_with(": -"));
}
