//! The CUDA-only requests: refused with a reason on the CPU; on a machine with a GPU (the device
//! check, or a developer's box) they must also answer sensibly.
use std::path::{Path, PathBuf};

use framepipe_torch::handle;
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn batch_planning_needs_a_cuda_device_and_a_latent_grid_size() {
    let model = fixture("vae-kl-tiny");
    let cpu = handle(&json!({"op": "vae_plan_batch", "model": model, "device": "cpu", "height": 64, "width": 64}))
        .unwrap_err();
    assert!(cpu.contains("CUDA"), "{cpu}");
    let odd = handle(&json!({"op": "vae_plan_batch", "model": model, "device": "cuda:0", "height": 63, "width": 64}))
        .unwrap_err();
    assert!(odd.contains("multiples of 8"), "{odd}");
}

#[test]
fn batch_planning_on_a_gpu_measures_a_per_frame_cost() {
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device: skipped");
        return;
    }
    let model = fixture("vae-kl-tiny");
    let plan = handle(&json!({"op": "vae_plan_batch", "model": model, "device": "cuda:0", "height": 256, "width": 256}))
        .unwrap();
    eprintln!("{plan}");
    let batch = plan["batch_size"].as_u64().unwrap();
    assert!((1..=64).contains(&batch), "{plan}");
    assert!(
        plan["per_frame_bytes"].as_u64().unwrap() > 256 * 256 * 3,
        "{plan}"
    );
    assert!(plan["usable_bytes"].as_u64().unwrap() > 0, "{plan}");
}
