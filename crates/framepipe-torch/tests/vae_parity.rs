//! The VAEs against diffusers: fixtures made by tests/fixtures/make_vae_fixture.py (torch 2.11.0,
//! diffusers 0.36.0, small random-weight models) must be reproduced within 1e-4 in fp32 on the
//! CPU; loading errors must name the tensor and both shapes; the full-size SD VAE shape must run
//! on a 720p frame.
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use common::{fixture, max_abs_diff, reference};
use framepipe_torch::models::vae::kl::{rename_legacy_attention, Tiling};
use framepipe_torch::models::vae::{AutoencoderKl, KlConfig, TinyAutoencoder, VaeError};
use framepipe_torch::runtime::weights;
use tch::{Device, Kind, Tensor};

const TOLERANCE: f64 = 1e-4;

fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    let d = max_abs_diff(what, got, want);
    assert!(d <= TOLERANCE, "{what}: max abs diff {d:e} > {TOLERANCE:e}");
}

fn kl() -> AutoencoderKl {
    AutoencoderKl::load(&fixture("vae-kl-tiny"), Device::Cpu, Kind::Float).unwrap()
}

#[test]
fn kl_encode_mean_matches_diffusers() {
    let r = reference("vae-kl-tiny");
    let latents = kl().encode(&r["input"], None).unwrap();
    assert_close("KL encode (mean, scaled)", &latents, &r["latents_mean"]);
}

#[test]
fn kl_encode_seeded_sample_matches_diffusers() {
    let r = reference("vae-kl-tiny");
    let vae = kl();
    let latents = vae.encode(&r["input"], Some(7)).unwrap();
    assert_close(
        "KL encode (sample, seed 7)",
        &latents,
        &r["latents_sample_seed7"],
    );
    // Same seed, same latents: the sample is reproducible.
    let again = vae.encode(&r["input"], Some(7)).unwrap();
    assert!(latents.equal(&again));
}

#[test]
fn kl_per_frame_seeds_sample_each_frame_as_if_alone() {
    // Row i must equal the frame encoded alone with seed s_i, which is diffusers'
    // `latent_dist.sample(torch.Generator().manual_seed(s_i))` (proven above for a whole batch):
    // a frame's sampled latent then does not depend on how the pipeline batched it.
    let r = reference("vae-kl-tiny");
    let vae = kl();
    let x = &r["input"];
    let n = x.size()[0];
    let seeds: Vec<u64> = (0..n as u64).map(|i| 7 + 3 * i).collect();
    let batch = vae.encode_sampled_per_frame(x, None, &seeds).unwrap();
    for (i, &seed) in seeds.iter().enumerate() {
        let alone = vae.encode(&x.narrow(0, i as i64, 1), Some(seed)).unwrap();
        assert_close(
            &format!("frame {i} sampled with seed {seed}"),
            &batch.narrow(0, i as i64, 1),
            &alone,
        );
    }
    if n > 1 {
        // Different seeds really draw different noise.
        let mean = vae.encode(x, None).unwrap();
        assert!(max_abs_diff("sample vs mean", &batch, &mean) > 1e-3);
    }
    assert!(vae.encode_sampled_per_frame(x, None, &[1]).is_err() || n == 1);
}

#[test]
fn kl_decode_matches_diffusers() {
    let r = reference("vae-kl-tiny");
    let images = kl().decode(&r["latents_mean"]).unwrap();
    assert_close("KL decode", &images, &r["decoded"]);
}

#[test]
fn kl_tiled_encode_and_decode_match_diffusers() {
    let r = reference("vae-kl-tiny");
    let tiling = Tiling {
        tile_sample_size: 32,
        tile_latent_size: 16,
        overlap: 0.25,
    };
    let vae = kl();
    let latents = vae.encode_tiled(&r["tiled_input"], tiling, None).unwrap();
    assert_close("KL tiled encode", &latents, &r["tiled_latents_mean"]);
    let images = vae.decode_tiled(&r["tiled_latents_mean"], tiling).unwrap();
    assert_close("KL tiled decode", &images, &r["tiled_decoded"]);
    // The tiles really are tiles: untiled results differ (GroupNorm statistics per tile).
    let whole = vae.encode(&r["tiled_input"], None).unwrap();
    assert!(max_abs_diff("KL tiled vs untiled encode", &latents, &whole) > 1e-3);
}

#[test]
fn kl_legacy_attention_names_load_to_the_same_model() {
    let r = reference("vae-kl-tiny");
    let legacy =
        AutoencoderKl::load(&fixture("vae-kl-tiny-legacy"), Device::Cpu, Kind::Float).unwrap();
    let latents = legacy.encode(&r["input"], None).unwrap();
    assert_close("KL encode, legacy names", &latents, &r["latents_mean"]);
    let images = legacy.decode(&r["latents_mean"]).unwrap();
    assert_close("KL decode, legacy names", &images, &r["decoded"]);
}

#[test]
fn legacy_ldm_conv_shaped_attention_weights_are_squeezed() {
    let mut t = HashMap::new();
    t.insert(
        "encoder.mid_block.attentions.0.query.weight".to_string(),
        Tensor::zeros([16, 16, 1, 1], (Kind::Float, Device::Cpu)),
    );
    t.insert(
        "encoder.mid_block.attentions.0.proj_attn.bias".to_string(),
        Tensor::zeros([16], (Kind::Float, Device::Cpu)),
    );
    assert_eq!(rename_legacy_attention(&mut t).unwrap(), 2);
    assert_eq!(
        t["encoder.mid_block.attentions.0.to_q.weight"].size(),
        [16, 16]
    );
    assert!(t.contains_key("encoder.mid_block.attentions.0.to_out.0.bias"));
}

fn kl_tensors() -> (KlConfig, HashMap<String, Tensor>) {
    let folder = fixture("vae-kl-tiny");
    let config = KlConfig::from_file(&folder.join("config.json")).unwrap();
    let files = weights::safetensors_files(&folder, "diffusion_pytorch_model").unwrap();
    (config, weights::read_tensors(&files).unwrap())
}

#[test]
fn kl_missing_tensor_names_tensor_and_shape() {
    let (config, mut tensors) = kl_tensors();
    tensors.remove("decoder.up_blocks.1.resnets.0.conv_shortcut.weight");
    let err = AutoencoderKl::from_tensors(
        config,
        tensors,
        Path::new("vae-kl-tiny"),
        Device::Cpu,
        Kind::Float,
    )
    .unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, VaeError::Weights(_)), "{msg}");
    assert!(
        msg.contains("decoder.up_blocks.1.resnets.0.conv_shortcut.weight"),
        "{msg}"
    );
    assert!(
        msg.contains("missing") && msg.contains("[8, 16, 1, 1]"),
        "{msg}"
    );
}

#[test]
fn kl_wrong_shape_names_tensor_and_both_shapes() {
    let (config, mut tensors) = kl_tensors();
    tensors.insert(
        "encoder.conv_in.weight".into(),
        Tensor::zeros([8, 4, 3, 3], (Kind::Float, Device::Cpu)),
    );
    let err = AutoencoderKl::from_tensors(
        config,
        tensors,
        Path::new("vae-kl-tiny"),
        Device::Cpu,
        Kind::Float,
    )
    .unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(msg.contains("encoder.conv_in.weight"), "{msg}");
    assert!(
        msg.contains("[8, 4, 3, 3]") && msg.contains("[8, 3, 3, 3]"),
        "{msg}"
    );
}

#[test]
fn kl_config_that_does_not_match_the_weights_is_refused() {
    let (mut config, tensors) = kl_tensors();
    // Without the mid-block attention the checkpoint has tensors the model does not use.
    config.mid_block_add_attention = false;
    let msg = AutoencoderKl::from_tensors(
        config,
        tensors,
        Path::new("vae-kl-tiny"),
        Device::Cpu,
        Kind::Float,
    )
    .unwrap_err()
    .to_string();
    eprintln!("{msg}");
    assert!(msg.contains("attentions.0"), "{msg}");

    let (mut config, _) = kl_tensors();
    config.norm_num_groups = 3;
    let msg = AutoencoderKl::new(config, Device::Cpu, Kind::Float)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("norm_num_groups 3"), "{msg}");
}

#[test]
fn kl_rejects_images_with_the_wrong_channel_count() {
    let x = Tensor::zeros([1, 4, 16, 16], (Kind::Float, Device::Cpu));
    let msg = kl().encode(&x, None).unwrap_err().to_string();
    assert!(
        msg.contains("[N, 3, H, W]") && msg.contains("[1, 4, 16, 16]"),
        "{msg}"
    );
}

#[test]
fn tiny_diffusers_layout_matches_diffusers() {
    let r = reference("vae-tiny-tiny");
    let vae = TinyAutoencoder::load_diffusers(&fixture("vae-tiny-tiny"), Device::Cpu, Kind::Float)
        .unwrap();
    assert_eq!(vae.latent_channels(), 4);
    let latents = vae.encode(&r["input"]).unwrap();
    assert_close("Tiny encode (diffusers layout)", &latents, &r["latents"]);
    let images = vae.decode(&r["latents"]).unwrap();
    assert_close("Tiny decode (diffusers layout)", &images, &r["decoded"]);
}

#[test]
fn tiny_native_layout_matches_diffusers() {
    let r = reference("vae-tiny-tiny");
    let dir = fixture("vae-tiny-tiny");
    let vae = TinyAutoencoder::load_native(
        &dir.join("taesd_encoder.safetensors"),
        &dir.join("taesd_decoder.safetensors"),
        Device::Cpu,
        Kind::Float,
    )
    .unwrap();
    assert!(!vae.config().midblock_pool);
    let latents = vae.encode(&r["input"]).unwrap();
    assert_close("Tiny encode (native layout)", &latents, &r["latents"]);
    let images = vae.decode(&r["latents"]).unwrap();
    assert_close("Tiny decode (native layout)", &images, &r["decoded"]);
}

#[test]
fn tiny_native_missing_tensor_names_it() {
    let dir = fixture("vae-tiny-tiny");
    let tmp = tempfile::tempdir().unwrap();
    let mut tensors: Vec<(String, Tensor)> =
        Tensor::read_safetensors(dir.join("taesd_decoder.safetensors")).unwrap();
    tensors.retain(|(name, _)| name != "19.bias");
    let decoder = tmp.path().join("decoder.safetensors");
    Tensor::write_safetensors(&tensors, &decoder).unwrap();
    let msg = TinyAutoencoder::load_native(
        &dir.join("taesd_encoder.safetensors"),
        &decoder,
        Device::Cpu,
        Kind::Float,
    )
    .unwrap_err()
    .to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("19.bias") && msg.contains("[3]") && msg.contains("decoder.safetensors"),
        "{msg}"
    );
}

/// Random weights scaled so activations neither vanish nor explode through 30-odd layers.
fn randomize(vs: &tch::nn::VarStore) {
    tch::manual_seed(0);
    tch::no_grad(|| {
        for (name, mut v) in vs.variables() {
            let size = v.size();
            let value = if size.len() == 1 {
                let base = if name.contains("norm") && name.ends_with("weight") {
                    1.0
                } else {
                    0.0
                };
                Tensor::randn(&size, (Kind::Float, Device::Cpu)) * 0.02 + base
            } else {
                let fan_in: i64 = size[1..].iter().product();
                Tensor::randn(&size, (Kind::Float, Device::Cpu)) / (fan_in as f64).sqrt()
            };
            v.copy_(&value);
        }
    });
}

#[test]
fn sd_vae_shape_encodes_a_720p_frame() {
    let config = KlConfig::stable_diffusion();
    let vae = AutoencoderKl::new(config, Device::Cpu, Kind::Float).unwrap();
    let params: i64 = vae
        .var_store()
        .variables()
        .values()
        .map(|v| v.numel() as i64)
        .sum();
    randomize(vae.var_store());
    let x = Tensor::rand([1, 3, 720, 1280], (Kind::Float, Device::Cpu)) * 2 - 1;
    let start = Instant::now();
    let latents = vae.encode(&x, None).unwrap();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "SD VAE shape ({params} parameters), random weights: one 1280x720 frame encoded in {secs:.1} s on {} threads",
        tch::get_num_threads()
    );
    assert_eq!(latents.size(), [1, 4, 90, 160]);
    assert!(
        latents.isfinite().all().int64_value(&[]) == 1,
        "non-finite latents"
    );
}

/// The compute kind is a load-time choice (fp16 on CUDA in the stage); bf16 is the reduced
/// precision the CPU runs well, so it stands in for it here: same model, looser tolerance.
#[test]
fn reduced_precision_models_stay_close_to_the_reference() {
    let r = reference("vae-kl-tiny");
    let vae = AutoencoderKl::load(&fixture("vae-kl-tiny"), Device::Cpu, Kind::BFloat16).unwrap();
    let latents = vae.encode(&r["input"], None).unwrap();
    assert_eq!(latents.kind(), Kind::BFloat16);
    assert!(max_abs_diff("KL encode bf16", &latents, &r["latents_mean"]) < 0.1);

    let r = reference("vae-tiny-tiny");
    let vae =
        TinyAutoencoder::load_diffusers(&fixture("vae-tiny-tiny"), Device::Cpu, Kind::BFloat16)
            .unwrap();
    let images = vae.decode(&r["latents"]).unwrap();
    assert_eq!(images.kind(), Kind::BFloat16);
    assert!(max_abs_diff("Tiny decode bf16", &images, &r["decoded"]) < 0.05);
}
