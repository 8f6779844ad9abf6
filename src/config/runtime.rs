//! The `runtime` section: queue and thread sizes, model precision, and where frames are
//! colour-converted and normalized for the model stages.
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The models' precision, as the libtorch boundary defines it.
pub use framepipe_proto::Precision;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Capacity of each frame queue between stages (bounds memory: frames in flight).
    #[serde(default = "default_queue_frames")]
    pub queue_frames: usize,
    /// Decoder threads; 0 = FFmpeg's choice.
    #[serde(default)]
    pub decode_threads: u32,
    /// Model precision: `auto` (fp16 on CUDA, fp32 on the CPU, except the TransNetV2 shot
    /// detector in bf16 on CPUs with AVX-512 BF16: the same cuts), `fp32`, `fp16` or `bf16`
    /// (several times faster on CPUs with AMX, at about 3 significant digits).
    #[serde(default)]
    pub precision: Precision,
    /// Where the model stages turn YUV into RGB: `auto` (on the device when it is CUDA: half
    /// the upload, no CPU time), `device` or `cpu` (swscale).
    #[serde(default)]
    pub color_conversion: ColorConversion,
    /// Where frames are normalized when the model stages are their only consumers (no
    /// `scenes`, no video output): `auto` (on the GPU when NVDEC decodes for a CUDA device, so
    /// decoded frames never leave GPU memory), `on` (on the model device, also the CPU) or
    /// `off` (always the CPU normalizer).
    #[serde(default)]
    pub device_frames: DeviceFrames,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceFrames {
    #[default]
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ColorConversion {
    #[default]
    Auto,
    Device,
    Cpu,
}

fn default_queue_frames() -> usize {
    8
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            queue_frames: default_queue_frames(),
            decode_threads: 0,
            precision: Precision::Auto,
            color_conversion: ColorConversion::Auto,
            device_frames: DeviceFrames::Auto,
        }
    }
}

impl RuntimeConfig {
    /// `device_frames = "on"` against what keeps frames in host memory (the whole pipeline's
    /// [`super::PipelineConfig::frames_host_consumer`]). A check of its own: the pipeline makes
    /// it before any section's, as it always has, so a config's first error stays the same.
    pub fn validate_device_frames(
        &self,
        host_consumer: Option<&'static str>,
    ) -> Result<(), ConfigError> {
        match (self.device_frames, host_consumer) {
            (DeviceFrames::On, Some(why)) => Err(ConfigError::DeviceFramesOn { why }),
            _ => Ok(()),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=1024).contains(&self.queue_frames) {
            return Err(ConfigError::OutOfRange {
                key: "runtime.queue_frames",
                actual: self.queue_frames.to_string(),
                expected: "must be in [1, 1024]",
            });
        }
        if self.decode_threads > 128 {
            return Err(ConfigError::OutOfRange {
                key: "runtime.decode_threads",
                actual: self.decode_threads.to_string(),
                expected: "must be in [0, 128]",
            });
        }
        Ok(())
    }
}
