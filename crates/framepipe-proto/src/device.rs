//! The compute device models run on and the precision they run in, as both sides name them.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A resolved compute device: `cpu` or `cuda:N` (on the wire and in reports, as that text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(u32),
}

impl Device {
    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// N of `cuda:N`; `None` for the CPU.
    pub fn cuda_index(self) -> Option<u32> {
        match self {
            Device::Cuda(n) => Some(n),
            Device::Cpu => None,
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    fn from_str(text: &str) -> Result<Device, String> {
        match text {
            "cpu" => Ok(Device::Cpu),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device {other:?} (cpu or cuda:N)")),
        }
    }
}

impl Serialize for Device {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Device, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The models' precision: `auto` is fp16 on CUDA and fp32 on the CPU (exact parity with the
/// references); `bf16` is several times faster on CPUs with AMX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Auto,
    Fp32,
    Fp16,
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 4] = [
        Precision::Auto,
        Precision::Fp32,
        Precision::Fp16,
        Precision::Bf16,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
        }
    }

    /// What `auto` means on `device`; other precisions are themselves.
    pub fn effective(self, device: Device) -> Precision {
        match self {
            Precision::Auto if device.is_cuda() => Precision::Fp16,
            Precision::Auto => Precision::Fp32,
            other => other,
        }
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(text: &str) -> Result<Precision, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| format!("precision {text:?}: auto, fp32, fp16 or bf16"))
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_read_and_write_as_their_names() {
        for (text, device) in [("cpu", Device::Cpu), ("cuda:3", Device::Cuda(3))] {
            assert_eq!(text.parse::<Device>(), Ok(device));
            assert_eq!(device.to_string(), text);
            assert_eq!(
                serde_json::to_string(&device).unwrap(),
                format!("\"{text}\"")
            );
        }
        assert!("cuda".parse::<Device>().is_err());
        assert!(serde_json::from_str::<Device>("\"gpu\"").is_err());
    }

    #[test]
    fn auto_precision_depends_on_the_device() {
        assert_eq!(Precision::Auto.effective(Device::Cuda(0)), Precision::Fp16);
        assert_eq!(Precision::Auto.effective(Device::Cpu), Precision::Fp32);
        assert_eq!(Precision::Bf16.effective(Device::Cuda(0)), Precision::Bf16);
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert!("fp8"
            .parse::<Precision>()
            .unwrap_err()
            .contains("auto, fp32"));
    }
}
