//! The `decode` section: how video is decoded (on the CPU or through NVDEC). Nothing in it can
//! be out of range, so it has no checks of its own.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// `none` (CPU) or `cuda` (NVDEC through FFmpeg's CUDA hwaccel; falls back to the CPU with
    /// a warning when the machine or the stream's codec/profile does not allow it).
    #[serde(default)]
    pub hwaccel: HwAccelConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum HwAccelConfig {
    #[default]
    None,
    Cuda,
}
