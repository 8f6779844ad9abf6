//! VAE encoders on the CPU, ours against diffusers in the same run on the same machine and thread
//! count (random weights, fp32, batch 1, medians): the SD VAE encoder (128/256/512/512) at
//! 256x256 and the TAESD encoder at 1280x720. Target: frames/s >= 1.0x diffusers for both.
//! Run: `cargo bench -p framepipe-torch --bench vae` (needs diffusers in the venv).
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use framepipe_torch::models::vae::kl::{AutoencoderKl, KlConfig};
use framepipe_torch::models::vae::tiny::{TinyAutoencoder, TinyConfig};
use tch::{Device, Kind, Tensor};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rate(rounds: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    median(
        (0..rounds)
            .map(|_| {
                let start = Instant::now();
                f();
                1.0 / start.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let rounds = 3;
    tch::set_num_threads(threads as i32);
    let kl = AutoencoderKl::new(KlConfig::stable_diffusion(), Device::Cpu, Kind::Float)
        .expect("SD VAE builds");
    let x = Tensor::randn([1, 3, 256, 256], (Kind::Float, Device::Cpu));
    let kl_rate = tch::no_grad(|| rate(rounds, || drop(kl.encode(&x, None).expect("encode"))));
    let tiny = TinyAutoencoder::new(TinyConfig::default(), Device::Cpu, Kind::Float, true)
        .expect("TAESD builds");
    let x = Tensor::rand([1, 3, 720, 1280], (Kind::Float, Device::Cpu));
    let tiny_rate = tch::no_grad(|| rate(rounds, || drop(tiny.encode(&x).expect("encode"))));

    let venv = std::env::var("FRAMEPIPE_VENV").unwrap_or_else(|_| "/opt/framepipe/venv".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/vae_vs_diffusers.py");
    let out = Command::new(Path::new(&venv).join("bin/python3"))
        .arg(script)
        .args([threads.to_string(), rounds.to_string()])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let (kl_ref, tiny_ref) = (
        reference["kl_256"].as_f64().unwrap(),
        reference["tiny_720p"].as_f64().unwrap(),
    );
    println!(
        "VAE encoders, fp32, batch 1, {threads} CPU threads (diffusers with torch {}):",
        reference["torch"]
    );
    println!("  SD VAE encoder 256x256: framepipe {kl_rate:.2} frames/s, diffusers {kl_ref:.2}, ratio {:.3} (target >= 1.0)", kl_rate / kl_ref);
    println!("  TAESD encoder 1280x720: framepipe {tiny_rate:.2} frames/s, diffusers {tiny_ref:.2}, ratio {:.3} (target >= 1.0)", tiny_rate / tiny_ref);
}
