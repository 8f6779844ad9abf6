//! `{"op": "init_random", "folder", "seed"}`: writes random weights for the model that
//! `folder/config.json` describes (a transformers CLIP config, or a diffusers AutoencoderKL
//! config), named as the real checkpoints name them. Benchmarks of real shapes then need only a
//! small config file, not hundreds of MB of weights (the GPU machine has no network and a
//! 64 MiB carry limit).
use std::path::PathBuf;

use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::clip::{ClipConfig, ClipModel};
use crate::vae::kl::{AutoencoderKl, KlConfig};

pub fn init_random(request: &Value) -> Result<Value, String> {
    let folder = PathBuf::from(request["folder"].as_str().ok_or("\"folder\" is required")?);
    let seed = request["seed"].as_i64().unwrap_or(0);
    let config_path = folder.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
    let config: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", config_path.display()))?;
    tch::manual_seed(seed);
    let (vs, file) = if config["_class_name"] == "AutoencoderKL" {
        let cfg = KlConfig::from_file(&config_path).map_err(|e| e.to_string())?;
        let model = AutoencoderKl::new(cfg, Device::Cpu, Kind::Float).map_err(|e| e.to_string())?;
        (
            model.var_store().variables(),
            "diffusion_pytorch_model.safetensors",
        )
    } else if config["vision_config"].is_object() {
        let cfg = ClipConfig::from_folder(&folder).map_err(|e| e.to_string())?;
        let model = ClipModel::random(cfg, Device::Cpu, Kind::Float).map_err(|e| e.to_string())?;
        (model.var_store().variables(), "model.safetensors")
    } else {
        return Err(format!(
            "{}: neither a CLIP config (vision_config) nor an AutoencoderKL config",
            config_path.display()
        ));
    };
    let mut named: Vec<(String, Tensor)> = vs.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let out = folder.join(file);
    Tensor::write_safetensors(&named, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(json!({ "out": out.display().to_string(), "tensors": named.len() }))
}
