//! The SD VAE with its GroupNorm+SiLU computed by the split form (the CUDA default, see
//! `GroupNormPath`) still reproduces diffusers: this process forces the split form on the CPU
//! (its own test binary, so the other parity tests keep libtorch's kernel), in fp32 to the
//! parity tolerance and in bf16 (the reduced-precision statistics path that fp16 takes on
//! CUDA) to bf16's.
mod common;

use common::{fixture, max_abs_diff, reference};
use framepipe_torch::models::vae::{AutoencoderKl, GroupNormPath};
use tch::{Device, Kind};

fn force_split() {
    GroupNormPath::force(Some(GroupNormPath::Split));
    assert_eq!(
        GroupNormPath::choose(Device::Cpu, Kind::Float, true),
        GroupNormPath::Split
    );
}

#[test]
fn split_norm_kl_matches_diffusers_in_fp32() {
    force_split();
    let r = reference("vae-kl-tiny");
    let vae = AutoencoderKl::load(&fixture("vae-kl-tiny"), Device::Cpu, Kind::Float).unwrap();
    let latents = tch::no_grad(|| vae.encode(&r["input"], None)).unwrap();
    assert!(max_abs_diff("split fp32 encode", &latents, &r["latents_mean"]) <= 1e-4);
    let images = tch::no_grad(|| vae.decode(&r["latents_mean"])).unwrap();
    assert!(max_abs_diff("split fp32 decode", &images, &r["decoded"]) <= 1e-4);
}

#[test]
fn split_norm_kl_in_bf16_stays_within_bf16_error() {
    force_split();
    let r = reference("vae-kl-tiny");
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
