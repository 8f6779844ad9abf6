//! The `vae` section: VAE latents of sampled normalized frames, streamed to safetensors shards.
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The stored dtype of latents (the boundary's definition; pipelines default to f16).
pub use framepipe_proto::ops::LatentDtype;

fn default_latent_dtype() -> LatentDtype {
    LatentDtype::F16
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VaeConfig {
    /// diffusers AutoencoderKL/AutoencoderTiny folder or a TAESD encoder+decoder pair; relative
    /// paths resolve against the pipeline file's folder.
    pub model: std::path::PathBuf,
    /// Every n-th output frame (default: every frame).
    #[serde(default = "default_vae_every")]
    pub every_n_frames: u32,
    /// Stored precision of the latents.
    #[serde(default = "default_latent_dtype")]
    pub dtype: LatentDtype,
    /// Frames per `latents/NNNNNN.safetensors` shard (memory stays flat however long the video).
    #[serde(default = "default_frames_per_shard")]
    pub frames_per_shard: usize,
    /// Frames per model call: a number, or `"auto"` (start large and halve whenever the device
    /// runs out of memory, keeping the size that fits for the rest of the run).
    #[serde(default)]
    pub batch_size: BatchSize,
    /// Encode through overlapping tiles (diffusers' tiled encode; AutoencoderKL only): memory
    /// follows the model's tile size instead of the frame size, at a small cost in fidelity.
    #[serde(default)]
    pub tiling: bool,
    /// Store a posterior sample instead of its mean (AutoencoderKL only): frame `i` is sampled
    /// with seed `sample_seed + i`, so its latent does not depend on batching.
    #[serde(default)]
    pub sample_seed: Option<u64>,
    /// Decode the latents again and measure each frame's reconstruction (PSNR over the picture)
    /// to find glitches: `reconstruction.safetensors`, per-scene figures and `anomalies` in the
    /// report. Left out of the config (and its hash) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstruction: Option<ReconstructionConfig>,
}

/// `vae.reconstruction`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReconstructionConfig {
    /// Every n-th of the frames the vae stage encodes (1: each latent frame).
    #[serde(default = "default_vae_every")]
    pub every_n_frames: u32,
    /// How many MADs below its scene's median PSNR a frame must fall to be flagged.
    #[serde(default = "default_sensitivity")]
    pub sensitivity: f64,
}

fn default_sensitivity() -> f64 {
    crate::reconstruction::DEFAULT_SENSITIVITY
}

impl ReconstructionConfig {
    /// `key` names the section (`vae.reconstruction`) in errors.
    pub fn validate(
        &self,
        every_key: &'static str,
        sensitivity_key: &'static str,
    ) -> Result<(), ConfigError> {
        if self.every_n_frames == 0 {
            return Err(ConfigError::OutOfRange {
                key: every_key,
                actual: "0".into(),
                expected: "must be at least 1",
            });
        }
        if !(self.sensitivity.is_finite() && self.sensitivity > 0.0 && self.sensitivity <= 100.0) {
            return Err(ConfigError::OutOfRange {
                key: sensitivity_key,
                actual: self.sensitivity.to_string(),
                expected: "must be in (0, 100]",
            });
        }
        Ok(())
    }
}

/// `vae.batch_size`: a fixed number of frames per model call, or `"auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    Fixed(usize),
    Auto,
}

impl Default for BatchSize {
    fn default() -> Self {
        BatchSize::Fixed(4)
    }
}

impl BatchSize {
    /// Frames per model call to start with on `device` (`auto`: 4 on the CPU, where batches
    /// barely pay and cost memory; on CUDA the vae stage replaces the 16 here with a size
    /// measured against free device memory once it knows the frame size).
    pub fn initial(self, device: crate::device::Device) -> usize {
        match self {
            BatchSize::Fixed(n) => n,
            BatchSize::Auto if device.is_cuda() => 16,
            BatchSize::Auto => 4,
        }
    }
}

impl Serialize for BatchSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            BatchSize::Fixed(n) => s.serialize_u64(*n as u64),
            BatchSize::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for BatchSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(usize),
            Text(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a number of frames or \"auto\""))?
        {
            Raw::Number(n) => Ok(BatchSize::Fixed(n)),
            Raw::Text(t) if t == "auto" => Ok(BatchSize::Auto),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "{t:?}: expected a number of frames or \"auto\""
            ))),
        }
    }
}

fn default_vae_every() -> u32 {
    1
}
fn default_frames_per_shard() -> usize {
    256
}

impl VaeConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.every_n_frames == 0 {
            return Err(ConfigError::OutOfRange {
                key: "vae.every_n_frames",
                actual: "0".into(),
                expected: "must be at least 1",
            });
        }
        if !(1..=100_000).contains(&self.frames_per_shard) {
            return Err(ConfigError::OutOfRange {
                key: "vae.frames_per_shard",
                actual: self.frames_per_shard.to_string(),
                expected: "must be in [1, 100000]",
            });
        }
        if let BatchSize::Fixed(n) = self.batch_size {
            if !(1..=1024).contains(&n) {
                return Err(ConfigError::OutOfRange {
                    key: "vae.batch_size",
                    actual: n.to_string(),
                    expected: "must be in [1, 1024] or \"auto\"",
                });
            }
        }
        if let Some(r) = &self.reconstruction {
            r.validate(
                "vae.reconstruction.every_n_frames",
                "vae.reconstruction.sensitivity",
            )?;
        }
        // Checked last, as before: the cheap value checks name a typo before the filesystem.
        if !self.model.is_dir() {
            return Err(ConfigError::NoModel {
                key: "vae.model",
                path: self.model.display().to_string(),
                why: "no such folder",
            });
        }
        Ok(())
    }
}
