//! Compute device selection: `auto` (CUDA when present, else CPU), `cpu`, or `cuda:N`.
//!
//! Asking libtorch what exists means loading it ([`crate::torch`]), which only happens when an
//! answer is needed: a stage that runs on a device, or an explicit `cuda:N` to validate. A run
//! without a model stage records the request and that no device was used.
use framepipe_proto::ops::{Configure, Devices};
pub use framepipe_proto::{Device, Precision};
use serde::{Deserialize, Serialize};

use crate::torch::Torch;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    Auto,
    Cpu,
    Cuda(usize),
}

impl DeviceRequest {
    pub fn parse(text: &str) -> Result<DeviceRequest, String> {
        match text {
            "auto" => Ok(DeviceRequest::Auto),
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" => Ok(DeviceRequest::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(DeviceRequest::Cuda)
                .ok_or_else(|| "allowed: auto, cpu, cuda, cuda:N".to_string()),
        }
    }

    pub fn name(self) -> String {
        match self {
            DeviceRequest::Auto => "auto".into(),
            DeviceRequest::Cpu => "cpu".into(),
            DeviceRequest::Cuda(n) => format!("cuda:{n}"),
        }
    }
}

/// The device decision, as written in the JSON report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo {
    /// What was asked for (`auto`, `cpu`, `cuda:N`).
    pub requested: String,
    /// `cpu` or `cuda:N` for model stages.
    pub name: Device,
    /// CUDA devices libtorch sees; `null` when libtorch was not asked (not needed by this run).
    pub cuda_devices: Option<usize>,
    /// Whether any stage of this run computes on the device (false: decode/scale/encode only).
    pub used: bool,
    /// The models' precision (`fp32`, `fp16`, `bf16`) when a model runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
}

/// Resolves `request`. `needed` says whether a stage will compute on the device; without one,
/// `auto` and `cpu` are settled without loading libtorch. `cuda:N` is always checked: a request
/// for a device that does not exist is an error, never a silent fallback (only `auto` falls back).
pub fn select(request: DeviceRequest, needed: bool) -> Result<DeviceInfo, String> {
    let requested = request.name();
    if request == DeviceRequest::Cpu || (request == DeviceRequest::Auto && !needed) {
        return Ok(DeviceInfo {
            requested,
            name: Device::Cpu,
            cuda_devices: None,
            used: needed,
            precision: None,
        });
    }
    let count = cuda_device_count()?;
    let name = match request {
        DeviceRequest::Cuda(n) if n < count => Device::Cuda(n as u32),
        DeviceRequest::Cuda(n) if count == 0 => {
            return Err(format!(
                "cuda:{n} requested but libtorch sees no CUDA device on this machine"
            ))
        }
        DeviceRequest::Cuda(n) => {
            return Err(format!(
                "cuda:{n} requested but only {count} CUDA device(s) exist (cuda:0..cuda:{})",
                count - 1
            ))
        }
        _ if count > 0 => Device::Cuda(0),
        _ => Device::Cpu,
    };
    Ok(DeviceInfo {
        requested,
        name,
        cuda_devices: Some(count),
        used: needed,
        precision: None,
    })
}

/// How many CUDA devices libtorch sees (loads libtorch).
pub fn cuda_device_count() -> Result<usize, String> {
    Ok(Torch::get()?.call(&Devices {})?.cuda_devices as usize)
}

/// Settles the models' precision (and cuDNN autotuning on CUDA) in the libtorch library before
/// any model loads; records the precision in `device`. `auto` on the CPU loads nothing here.
pub fn configure_models(device: &mut DeviceInfo, precision: Precision) -> Result<(), String> {
    let cuda = device.name.is_cuda();
    device.precision = Some(precision.effective(device.name));
    if precision == Precision::Auto && !cuda {
        return Ok(());
    }
    Torch::get()?.call(&Configure {
        precision,
        cudnn_benchmark: cuda,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(DeviceRequest::parse("auto"), Ok(DeviceRequest::Auto));
        assert_eq!(DeviceRequest::parse("cpu"), Ok(DeviceRequest::Cpu));
        assert_eq!(DeviceRequest::parse("cuda:1"), Ok(DeviceRequest::Cuda(1)));
        assert!(DeviceRequest::parse("cuda:x").is_err());
        assert!(DeviceRequest::parse("gpu").is_err());
    }

    #[test]
    fn cpu_and_unneeded_auto_settle_without_libtorch() {
        let cpu = select(DeviceRequest::Cpu, true).unwrap();
        assert_eq!((cpu.name, cpu.cuda_devices), (Device::Cpu, None));
        let auto = select(DeviceRequest::Auto, false).unwrap();
        assert_eq!((auto.name, auto.used), (Device::Cpu, false));
    }
}
