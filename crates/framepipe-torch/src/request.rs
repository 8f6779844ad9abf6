//! What every model request shares: reading the model folder and device from the JSON, the
//! precision settings, and keeping loaded models for the process (a pipeline
//! run loads each model once; calls on one model are serialized: one replica per device).
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
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

/// The precision asked for with the `configure` op: 0 auto, 1 fp32, 2 fp16, 3 bf16.
static PRECISION: AtomicU8 = AtomicU8::new(0);

/// `{"op": "configure", "precision": "auto"|"fp32"|"fp16"|"bf16", "cudnn_benchmark": bool}`:
/// process-wide settings, sent before any model loads.
pub fn configure(request: &Value) -> Result<Value, String> {
    if let Some(p) = request["precision"].as_str() {
        let code = match p {
            "auto" => 0,
            "fp32" => 1,
            "fp16" => 2,
            "bf16" => 3,
            other => return Err(format!("precision {other:?}: auto, fp32, fp16 or bf16")),
        };
        PRECISION.store(code, Ordering::Relaxed);
    }
    if let Some(on) = request["cudnn_benchmark"].as_bool() {
        // cuDNN times the candidate kernels per convolution shape once and keeps the fastest:
        // pipeline shapes repeat for every batch, so the first batch pays for all the others.
        tch::Cuda::cudnn_set_benchmark(on);
    }
    Ok(serde_json::json!({
        "precision": match PRECISION.load(Ordering::Relaxed) { 1 => "fp32", 2 => "fp16", 3 => "bf16", _ => "auto" },
    }))
}

/// The precision models run in: as configured, else (`auto`) fp16 on CUDA and fp32 on the CPU
/// (exact parity with the references; `bf16` is several times faster on CPUs with AMX).
pub fn inference_kind(device: Device) -> tch::Kind {
    match PRECISION.load(Ordering::Relaxed) {
        1 => tch::Kind::Float,
        2 => tch::Kind::Half,
        3 => tch::Kind::BFloat16,
        _ if device.is_cuda() => tch::Kind::Half,
        _ => tch::Kind::Float,
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
        let key = (
            folder.to_path_buf(),
            format!("{device:?}/{:?}", inference_kind(device)),
        );
        // A panic inside a model call (tch's operators panic on libtorch errors such as out of
        // memory) poisons the lock but leaves the models as they were (their weights are only
        // read), so the next call uses them as usual.
        let mut models = self
            .0
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Each stage thread queues its work on a stream of its own (see crate::cuda).
        crate::cuda::use_thread_stream_or_default(device);
        if !models.contains_key(&key) {
            let model = load()?;
            // The weights were copied to the device on this thread's stream; a stage on another
            // thread (another stream) may use them next, so the copies finish first.
            crate::cuda::sync_thread_stream(device)?;
            models.insert(key.clone(), model);
        }
        f(&models[&key])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call that panics (as tch's operators do on libtorch errors) leaves the cached model
    /// usable: the next call gets it, not a "poisoned" error.
    #[test]
    fn a_panicking_call_does_not_lose_the_model() {
        let cache: ModelCache<u32> = ModelCache::new();
        let folder = std::path::Path::new("model");
        let panicked = std::panic::catch_unwind(|| {
            cache.with(
                folder,
                Device::Cpu,
                || Ok(7),
                |_| -> Result<(), String> { panic!("out of memory") },
            )
        });
        assert!(panicked.is_err());
        let loads = std::cell::Cell::new(0);
        let got = cache.with(
            folder,
            Device::Cpu,
            || {
                loads.set(loads.get() + 1);
                Ok(8)
            },
            |m| Ok(*m),
        );
        assert_eq!(got, Ok(7), "the model loaded before the panic");
        assert_eq!(loads.get(), 0);
    }
}
