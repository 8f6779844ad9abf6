//! The VAE's decode direction on the CPU, through the library's entry points exactly as the
//! binary calls them, against diffusers in the same run on the same machine, thread count and
//! weights (AutoencoderTiny, TAESD shape, random weights the Python side saves and this side
//! loads; fp32, 512x288, batches of 4, medians):
//! - decode: stored latents → 8-bit RGB frames (`framepipe vae decode`);
//! - roundtrip: 8-bit RGB frames → latents → decoded → PSNR per frame (the `vae_anomalies`
//!   check rule, `vae.reconstruction`).
//!
//! Target: frames/s >= 1.0x diffusers for both. With `../shared/models/taef2` present, the same
//! two figures for the real taef2 weights are printed too (no PyTorch reference ships taef2).
//! Run: `cargo bench -p framepipe-torch --bench vae_roundtrip` (needs diffusers in the venv).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use framepipe_proto::ops::{Frames, ModelOn, Reconstruct, VaeDecodeFrames, VaeEncodeFrames};
use framepipe_proto::{Device, FrameLayout};
use framepipe_torch::ops::vae;

const W: u32 = 512;
const H: u32 = 288;
const BATCH: u32 = 4;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Frames per second of `f`, which handles `BATCH` frames per call: median over `rounds`.
fn rate(rounds: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up (loads the model)
    median(
        (0..rounds)
            .map(|_| {
                let start = Instant::now();
                f();
                f64::from(BATCH) / start.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// (decode, encode, roundtrip) frames/s of the model in `folder` with `channels` latent channels.
fn ours(folder: &Path, channels: i64, rounds: usize) -> (f64, f64, f64) {
    let on = ModelOn {
        model: folder.to_path_buf(),
        device: Device::Cpu,
    };
    let (h, w) = (i64::from(H / 8), i64::from(W / 8));
    let latents: Vec<f32> = (0..i64::from(BATCH) * channels * h * w)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let mut rgb = vec![0u8; (BATCH * W * H * 3) as usize];
    let decode = VaeDecodeFrames {
        on: on.clone(),
        n: BATCH,
        shape_per_frame: [channels, h, w],
        tiling: false,
    };
    let decode_rate = rate(rounds, || {
        vae::decode_frames(&decode, &latents, &mut rgb).expect("decode");
    });
    let frames: Vec<u8> = (0..rgb.len())
        .map(|i| ((i * 2654435761) >> 13) as u8)
        .collect();
    let mut encode = VaeEncodeFrames {
        on,
        frames: Frames {
            n: BATCH,
            layout: FrameLayout::rgb24(W, H),
            canvases: None,
        },
        tiling: false,
        sampling: None,
        reconstruct: Some(Reconstruct {
            frames: (0..BATCH).collect(),
            picture: None,
        }),
    };
    let mut out = vec![0f32; latents.len().max((BATCH as usize) * 64 * (h * w) as usize)];
    let roundtrip_rate = rate(rounds, || {
        vae::encode_frames(&encode, &frames, &mut out).expect("roundtrip");
    });
    encode.reconstruct = None;
    let encode_rate = rate(rounds, || {
        vae::encode_frames(&encode, &frames, &mut out).expect("encode");
    });
    (decode_rate, encode_rate, roundtrip_rate)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let rounds = 5;
    tch::set_num_threads(threads as i32);
    let folder = tempfile::tempdir().expect("a temporary folder");
    let venv = std::env::var("FRAMEPIPE_VENV").unwrap_or_else(|_| "/opt/framepipe/venv".into());
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/vae_roundtrip_vs_diffusers.py");
    let out = Command::new(Path::new(&venv).join("bin/python3"))
        .arg(script)
        .arg(folder.path())
        .args([threads, rounds, BATCH as usize, W as usize, H as usize].map(|v| v.to_string()))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let (decode_ref, encode_ref, roundtrip_ref) = (
        reference["decode"].as_f64().unwrap(),
        reference["encode"].as_f64().unwrap(),
        reference["roundtrip"].as_f64().unwrap(),
    );
    let (decode, encode, roundtrip) = ours(folder.path(), 4, rounds);
    println!(
        "TAESD-shape AutoencoderTiny, fp32, {W}x{H}, batches of {BATCH}, {threads} CPU threads (diffusers with torch {}):",
        reference["torch"]
    );
    println!("  decode:    framepipe {decode:.2} frames/s, diffusers {decode_ref:.2}, ratio {:.3} (target >= 1.0)", decode / decode_ref);
    println!(
        "  encode:    framepipe {encode:.2} frames/s, diffusers {encode_ref:.2}, ratio {:.3}",
        encode / encode_ref
    );
    println!("  roundtrip: framepipe {roundtrip:.2} frames/s, diffusers {roundtrip_ref:.2}, ratio {:.3} (target >= 1.0)", roundtrip / roundtrip_ref);
    // The shared folder beside the clone, as the tests find it (`FRAMEPIPE_SHARED` overrides).
    let shared = match std::env::var_os("FRAMEPIPE_SHARED") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../..")
            .join("shared"),
    };
    let taef2 = shared.join("models").join("taef2");
    if taef2.is_dir() {
        let (d, e, r) = ours(&PathBuf::from(&taef2), 32, rounds);
        println!("  real taef2 (no PyTorch reference): decode {d:.2} frames/s, encode {e:.2}, roundtrip {r:.2}");
    } else {
        println!("  SKIP taef2: {} is absent", taef2.display());
    }
}
