//! `init_random`: writes random weights for the model that
//! `folder/config.json` describes (a transformers CLIP config, or a diffusers AutoencoderKL
//! config), named as the real checkpoints name them. Benchmarks of real shapes then need only a
//! small config file, not hundreds of MB of weights (the GPU machine has no network and a
//! 64 MiB carry limit).
use framepipe_proto::ops::{InitRandom, RandomWeights};
use framepipe_proto::TorchError;
use tch::{Device, Kind, Tensor};

use crate::models::clip::{ClipConfig, ClipModel};
use crate::models::vae::kl::{AutoencoderKl, KlConfig};

/// The keys of a `config.json` that tell a diffusers AutoencoderKL from a transformers CLIP.
#[derive(serde::Deserialize)]
struct ConfigKind {
    #[serde(rename = "_class_name")]
    class_name: Option<String>,
    vision_config: Option<serde::de::IgnoredAny>,
}

pub fn init_random(op: &InitRandom) -> Result<RandomWeights, TorchError> {
    let folder = &op.folder;
    let config_path = folder.join("config.json");
    let bad = |e: &dyn std::fmt::Display| {
        TorchError::bad_model(format!("{}: {e}", config_path.display()))
    };
    let text = std::fs::read_to_string(&config_path).map_err(|e| bad(&e))?;
    let config: ConfigKind = serde_json::from_str(&text).map_err(|e| bad(&e))?;
    tch::manual_seed(op.seed);
    let (vs, file) = if config.class_name.as_deref() == Some("AutoencoderKL") {
        let cfg = KlConfig::from_file(&config_path)?;
        let model = AutoencoderKl::new(cfg, Device::Cpu, Kind::Float)?;
        // The model is built to receive checkpoint weights (every variable zero): give each a
        // random value of a trained model's scale, so the activations and latents are not all
        // zero (a zero model would pass any CUDA-vs-CPU comparison).
        let mut variables = model.var_store().variables();
        tch::no_grad(|| {
            for (name, t) in variables.iter_mut() {
                randomize(name, t);
            }
        });
        (variables, "diffusion_pytorch_model.safetensors")
    } else if config.vision_config.is_some() {
        let cfg = ClipConfig::from_folder(folder)?;
        let model = ClipModel::random(cfg, Device::Cpu, Kind::Float)?;
        (model.var_store().variables(), "model.safetensors")
    } else {
        return Err(TorchError::bad_model(format!(
            "{}: neither a CLIP config (vision_config) nor an AutoencoderKL config",
            config_path.display()
        )));
    };
    let mut named: Vec<(String, Tensor)> = vs.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let out = folder.join(file);
    Tensor::write_safetensors(&named, &out)
        .map_err(|e| TorchError::bad_input(format!("{}: {e}", out.display())))?;
    Ok(RandomWeights {
        out,
        tensors: named.len() as u64,
    })
}

/// Random values for one AutoencoderKL variable: convolution and linear weights ~ N(0, 1/fan_in)
/// (unit-variance activations, as PyTorch's default init aims for), norm scales 1 + N(0, 0.1^2),
/// norm shifts and biases N(0, 0.1^2).
fn randomize(name: &str, t: &mut Tensor) {
    let size = t.size();
    let values = if size.len() >= 2 {
        let fan_in: i64 = size[1..].iter().product();
        Tensor::randn(&size, (Kind::Float, Device::Cpu)) / (fan_in.max(1) as f64).sqrt()
    } else if name.contains("norm") && name.ends_with(".weight") {
        Tensor::randn(&size, (Kind::Float, Device::Cpu)) * 0.1 + 1.0
    } else {
        Tensor::randn(&size, (Kind::Float, Device::Cpu)) * 0.1
    };
    t.copy_(&values.to_kind(t.kind()));
}
