//! Compute device selection through libtorch (`tch`): `auto` (CUDA when present, else CPU), `cpu`,
//! or `cuda:N`. The model stages run on the chosen device; the report records which one was used.
use serde::Serialize;

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
}

/// The device actually used, as written in the JSON report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `cpu` or `cuda:N`.
    pub name: String,
    /// CUDA devices libtorch sees on this machine.
    pub cuda_devices: usize,
    /// The libtorch build the binary runs against.
    pub torch_cuda_available: bool,
}

impl DeviceInfo {
    pub fn tch_device(&self) -> tch::Device {
        match self.name.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => tch::Device::Cuda(n),
            None => tch::Device::Cpu,
        }
    }
}

/// Resolves a request against what libtorch sees. `cuda:N` that does not exist is an error,
/// never a silent fallback; only `auto` falls back to the CPU.
pub fn select(request: DeviceRequest) -> Result<DeviceInfo, String> {
    let available = tch::Cuda::is_available();
    let count = if available {
        tch::Cuda::device_count().max(0) as usize
    } else {
        0
    };
    let name = match request {
        DeviceRequest::Cpu => "cpu".to_string(),
        DeviceRequest::Auto if count > 0 => "cuda:0".to_string(),
        DeviceRequest::Auto => "cpu".to_string(),
        DeviceRequest::Cuda(n) if n < count => format!("cuda:{n}"),
        DeviceRequest::Cuda(n) => {
            return Err(if count == 0 {
                format!("cuda:{n} requested but libtorch sees no CUDA device on this machine")
            } else {
                format!(
                    "cuda:{n} requested but only {count} CUDA device(s) exist (cuda:0..cuda:{})",
                    count - 1
                )
            })
        }
    };
    Ok(DeviceInfo {
        name,
        cuda_devices: count,
        torch_cuda_available: available,
    })
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
    fn cpu_and_auto_always_resolve() {
        assert_eq!(select(DeviceRequest::Cpu).unwrap().name, "cpu");
        let auto = select(DeviceRequest::Auto).unwrap();
        assert_eq!(auto.name == "cpu", auto.cuda_devices == 0);
    }

    #[test]
    fn missing_cuda_device_is_an_error() {
        let err = select(DeviceRequest::Cuda(99)).unwrap_err();
        assert!(err.contains("cuda:99"), "{err}");
    }
}
