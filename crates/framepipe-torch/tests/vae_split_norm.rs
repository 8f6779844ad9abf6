//! The SD VAE with its GroupNorm+SiLU computed by the split form (the CUDA default, see
//! `GroupNormPath`) still reproduces diffusers: this process forces the split form on the CPU
//! (its own test binary, so the other parity tests keep libtorch's kernel), in fp32 to the parity tolerance and in bf16 (the reduced-precision
//! statistics path that fp16 takes on CUDA) to bf16's.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use framepipe_torch::vae::{AutoencoderKl, GroupNormPath};
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference() -> HashMap<String, Tensor> {
    Tensor::read_safetensors(fixture("vae-kl-tiny").join("reference.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn force_split() {
    GroupNormPath::force(Some(GroupNormPath::Split));
    assert_eq!(GroupNormPath::for_device(Device::Cpu), GroupNormPath::Split);
}

fn max_abs_diff(what: &str, got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let d = (got.to_kind(Kind::Float) - want)
        .abs()
        .max()
        .double_value(&[]);
    let scale = want.abs().max().double_value(&[]);
    eprintln!("{what}: max abs diff {d:.3e} (reference max |x| {scale:.3})");
    d
}

#[test]
fn split_norm_kl_matches_diffusers_in_fp32() {
    force_split();
    let r = reference();
    let vae = AutoencoderKl::load(&fixture("vae-kl-tiny"), Device::Cpu, Kind::Float).unwrap();
    let latents = tch::no_grad(|| vae.encode(&r["input"], None)).unwrap();
    assert!(max_abs_diff("split fp32 encode", &latents, &r["latents_mean"]) <= 1e-4);
    let images = tch::no_grad(|| vae.decode(&r["latents_mean"])).unwrap();
    assert!(max_abs_diff("split fp32 decode", &images, &r["decoded"]) <= 1e-4);
}

#[test]
fn split_norm_kl_in_bf16_stays_within_bf16_error() {
    force_split();
    let r = reference();
    let vae = AutoencoderKl::load(&fixture("vae-kl-tiny"), Device::Cpu, Kind::BFloat16).unwrap();
    let latents = tch::no_grad(|| vae.encode(&r["input"].to_kind(Kind::BFloat16), None)).unwrap();
    let d = max_abs_diff("split bf16 encode", &latents, &r["latents_mean"]);
    let scale = r["latents_mean"].abs().max().double_value(&[]);
    // bf16 keeps 8 significant bits (relative step 2^-8 = 0.4%); a few layers of it.
    assert!(
        d <= 0.03 * scale.max(1.0),
        "max abs diff {d} for latents up to {scale}"
    );
}
