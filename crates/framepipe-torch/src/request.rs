//! What every model request shares: reading the model folder and device from the JSON, checking
//! a frame batch's size against its bytes, and keeping loaded models for the process (a pipeline
//! run loads each model once; calls on one model are serialized: one replica per device).
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;
use tch::Device;

/// `cpu` or `cuda:N` → a tch device.
pub fn parse_device(name: &str) -> Result<Device, String> {
    match name {
        "cpu" => Ok(Device::Cpu),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| format!("unknown device {other:?} (cpu or cuda:N)")),
    }
}

/// The precision models run in: fp16 on CUDA, fp32 on the CPU (no fast fp16 kernels there).
pub fn inference_kind(device: Device) -> tch::Kind {
    if device.is_cuda() {
        tch::Kind::Half
    } else {
        tch::Kind::Float
    }
}

/// The request's `model` folder (required) and `device` (default `cpu`).
pub fn model_and_device(request: &Value) -> Result<(PathBuf, Device), String> {
    let folder = PathBuf::from(
        request["model"]
            .as_str()
            .ok_or("\"model\" (a folder) is required")?,
    );
    let device = parse_device(request["device"].as_str().unwrap_or("cpu"))?;
    Ok((folder, device))
}

/// The batch size `n`, `height` and `width` of a frame request, checked against the RGB bytes.
pub fn frame_batch(request: &Value, rgb: &[u8]) -> Result<(i64, i64, i64), String> {
    let dims = |k: &str| {
        request[k]
            .as_i64()
            .filter(|v| *v > 0)
            .ok_or(format!("\"{k}\" must be a positive integer"))
    };
    let (n, h, w) = (dims("n")?, dims("height")?, dims("width")?);
    if rgb.len() as i64 != n * h * w * 3 {
        return Err(format!(
            "frame data is {} bytes, {n}x{h}x{w}x3 needs {}",
            rgb.len(),
            n * h * w * 3
        ));
    }
    Ok((n, h, w))
}

/// Models kept for the process, by (folder, device).
pub struct ModelCache<M>(OnceLock<Mutex<HashMap<(PathBuf, String), M>>>);

impl<M> Default for ModelCache<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> ModelCache<M> {
    pub const fn new() -> Self {
        ModelCache(OnceLock::new())
    }

    /// Runs `f` with the model of `folder` on `device`, made by `load` on first use.
    pub fn with<T>(
        &self,
        folder: &std::path::Path,
        device: Device,
        load: impl FnOnce() -> Result<M, String>,
        f: impl FnOnce(&M) -> Result<T, String>,
    ) -> Result<T, String> {
        let key = (folder.to_path_buf(), format!("{device:?}"));
        let mut models = self
            .0
            .get_or_init(Default::default)
            .lock()
            .map_err(|_| "model cache poisoned".to_string())?;
        if !models.contains_key(&key) {
            let model = load()?;
            models.insert(key.clone(), model);
        }
        f(&models[&key])
    }
}
