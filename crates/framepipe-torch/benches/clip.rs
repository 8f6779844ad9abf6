//! CLIP ViT-B/32 image embedding on the CPU, ours against transformers in the same run on the
//! same machine and thread count: random weights, batch 16, fp32, medians over rounds.
//! Target: images/s >= 1.0x transformers. Run: `cargo bench -p framepipe-torch --bench clip`
//! (needs transformers in the venv, see scripts/requirements.txt).
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use framepipe_torch::models::clip::{ClipConfig, ClipModel};
use tch::{Device, Kind, Tensor};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (batch, rounds) = (16i64, 7usize);
    tch::set_num_threads(threads as i32);
    tch::manual_seed(0);
    let model = ClipModel::random(ClipConfig::vit_base_patch32(), Device::Cpu, Kind::Float)
        .expect("model builds");
    let pixels = Tensor::randn([batch, 3, 224, 224], (Kind::Float, Device::Cpu));
    let ours = tch::no_grad(|| {
        let _ = model.image_embeds(&pixels).expect("forward"); // warm-up
        median(
            (0..rounds)
                .map(|_| {
                    let start = Instant::now();
                    let _ = model.image_embeds(&pixels).expect("forward");
                    batch as f64 / start.elapsed().as_secs_f64()
                })
                .collect(),
        )
    });
    let venv = std::env::var("FRAMEPIPE_VENV").unwrap_or_else(|_| "/opt/framepipe/venv".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/clip_vs_transformers.py");
    let out = Command::new(Path::new(&venv).join("bin/python3"))
        .arg(script)
        .args([threads.to_string(), batch.to_string(), rounds.to_string()])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let theirs = reference["images_per_second"].as_f64().expect("a number");
    println!(
        "CLIP ViT-B/32 vision tower + projection, batch {batch}, fp32, {threads} CPU threads:"
    );
    println!("  framepipe (tch):        {ours:.2} images/s");
    println!(
        "  transformers (PyTorch): {theirs:.2} images/s ({})",
        reference["torch"]
    );
    println!("  ratio {:.3} (target >= 1.0)", ours / theirs);
}
