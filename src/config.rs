//! Pipeline configuration: the typed form of a `pipelines/*.json` file, and its validation.
//!
//! Parsing rejects unknown keys (naming the key and the allowed ones); [`PipelineConfig::validate`]
//! checks every value against what is allowed before any input is opened, so a bad config costs
//! nothing and names the key, the value and the accepted range.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A whole pipeline. Absent optional sections mean the stage does not run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    #[serde(default)]
    pub normalize: NormalizeConfig,
    /// Scene detection; absent = no scene detection (the whole video is one scene).
    #[serde(default)]
    pub scenes: Option<ScenesConfig>,
    /// Zero-shot CLIP tagging of sampled frames and scenes; absent = no tagging.
    #[serde(default)]
    pub clip: Option<ClipConfig>,
    /// VAE latents of sampled normalized frames, streamed to shards; absent = no latents.
    #[serde(default)]
    pub vae: Option<VaeConfig>,
    /// Re-encoding of the normalized video; absent = no video is written (JSON only).
    #[serde(default)]
    pub encode: Option<EncodeConfig>,
    /// How video is decoded.
    #[serde(default)]
    pub decode: DecodeConfig,
    /// Which inputs are accepted at all.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Thread and queue sizes.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// `auto`, `cpu` or `cuda:N`; the command line's `--device` wins over it.
    #[serde(default = "default_device")]
    pub device: String,
}

fn default_device() -> String {
    "auto".into()
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Resolution {
    #[serde(rename = "720p")]
    P720,
    #[serde(rename = "1080p")]
    P1080,
}

impl Resolution {
    pub fn size(self) -> (u32, u32) {
        match self {
            Resolution::P720 => (1280, 720),
            Resolution::P1080 => (1920, 1080),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FitMode {
    /// Scale to fit inside, pad the rest with black (letterbox / pillarbox).
    #[default]
    Fit,
    /// Scale to cover, crop the overflow around the center.
    Fill,
    /// Scale each axis independently, ignoring the aspect ratio.
    Stretch,
}

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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    #[serde(default = "default_resolution")]
    pub resolution: Resolution,
    #[serde(default)]
    pub mode: FitMode,
    /// Constant output frame rate; `null` keeps the source timestamps (VFR stays VFR).
    #[serde(default)]
    pub fps: Option<f64>,
}

fn default_resolution() -> Resolution {
    Resolution::P720
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            resolution: Resolution::P720,
            mode: FitMode::Fit,
            fps: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SceneDetectorKind {
    /// HSV content delta between consecutive frames (PySceneDetect's ContentDetector).
    #[default]
    Content,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScenesConfig {
    #[serde(default)]
    pub detector: SceneDetectorKind,
    /// Score (0-255 scale, weighted mean of H/S/V deltas) at which a cut is declared.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// No scene shorter than this many frames (PySceneDetect's `min_scene_len`).
    #[serde(default = "default_min_scene_frames")]
    pub min_scene_frames: u32,
    /// Use only the luma (V) delta.
    #[serde(default)]
    pub luma_only: bool,
}

fn default_threshold() -> f64 {
    27.0
}
fn default_min_scene_frames() -> u32 {
    15
}

impl Default for ScenesConfig {
    fn default() -> Self {
        ScenesConfig {
            detector: SceneDetectorKind::Content,
            threshold: default_threshold(),
            min_scene_frames: default_min_scene_frames(),
            luma_only: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClipConfig {
    /// A Hugging Face CLIP folder (config.json, model.safetensors, tokenizer.json); relative
    /// paths resolve against the pipeline file's folder.
    pub model: std::path::PathBuf,
    /// The zero-shot labels.
    pub labels: Vec<String>,
    /// Prompt templates, each with one `{}` for the label; a label's text embedding is the
    /// normalized mean over its templates (as CLIP's zero-shot evaluation does).
    #[serde(default = "default_templates")]
    pub templates: Vec<String>,
    #[serde(default)]
    pub sample: ClipSample,
    /// Labels kept per sample and per scene.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Labels scoring below this are dropped.
    #[serde(default)]
    pub min_score: f64,
    /// Frames per model call.
    #[serde(default = "default_clip_batch")]
    pub batch_size: usize,
}

fn default_templates() -> Vec<String> {
    vec!["a photo of {}.".into()]
}
fn default_top_k() -> usize {
    3
}
fn default_clip_batch() -> usize {
    32
}

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

/// Which frames are embedded: every n-th output frame (default 15), `fps` per second, or
/// `per_scene` evenly spaced frames of every scene (needs the `scenes` section).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClipSample {
    #[serde(default)]
    pub every_n_frames: Option<u32>,
    #[serde(default)]
    pub fps: Option<f64>,
    #[serde(default)]
    pub per_scene: Option<u32>,
}

impl Default for ClipSample {
    fn default() -> Self {
        ClipSample {
            every_n_frames: Some(15),
            fps: None,
            per_scene: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AudioMode {
    /// Copy the audio stream when MP4 can hold its codec, else re-encode to AAC.
    #[default]
    Copy,
    /// Always re-encode to AAC.
    Aac,
    /// Drop audio.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EncodeConfig {
    #[serde(default = "default_codec")]
    pub codec: String,
    #[serde(default = "default_crf")]
    pub crf: f64,
    #[serde(default = "default_preset")]
    pub preset: String,
    /// H.264 profile; `null` lets x264 choose.
    #[serde(default = "default_profile")]
    pub profile: Option<String>,
    #[serde(default)]
    pub audio: AudioMode,
    /// x264 threads; 0 = x264's own choice (all cores).
    #[serde(default)]
    pub threads: u32,
}

fn default_codec() -> String {
    "libx264".into()
}
fn default_crf() -> f64 {
    23.0
}
fn default_preset() -> String {
    "medium".into()
}
fn default_profile() -> Option<String> {
    Some("high".into())
}

impl Default for EncodeConfig {
    fn default() -> Self {
        EncodeConfig {
            codec: default_codec(),
            crf: default_crf(),
            preset: default_preset(),
            profile: default_profile(),
            audio: AudioMode::Copy,
            threads: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Inputs with a side shorter than this are refused (a 1x1 video is not training data).
    #[serde(default = "default_min_side")]
    pub min_side: u32,
    /// Inputs with more pixels per frame than this are refused (default: 4096x4096).
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
}

fn default_min_side() -> u32 {
    16
}
fn default_max_pixels() -> u64 {
    4096 * 4096
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            min_side: default_min_side(),
            max_pixels: default_max_pixels(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Capacity of each frame queue between stages (bounds memory: frames in flight).
    #[serde(default = "default_queue_frames")]
    pub queue_frames: usize,
    /// Decoder threads; 0 = FFmpeg's choice.
    #[serde(default)]
    pub decode_threads: u32,
    /// Model precision: `auto` (fp16 on CUDA, fp32 on the CPU), `fp32`, `fp16` or `bf16`
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

/// The models' precision, as the libtorch boundary defines it.
pub use framepipe_proto::Precision;

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

const PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];
const PROFILES: &[&str] = &["baseline", "main", "high"];

impl PipelineConfig {
    /// Reads, parses and validates a pipeline file. Errors name the file, the key and the value.
    pub fn load(path: &Path) -> Result<PipelineConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(path, format!("cannot read: {e}")))?;
        let mut config = PipelineConfig::parse(&text).map_err(|m| Error::config(path, m))?;
        if let Some(clip) = config.clip.as_mut() {
            clip.model = resolve_relative(path, &clip.model);
        }
        if let Some(vae) = config.vae.as_mut() {
            vae.model = resolve_relative(path, &vae.model);
        }
        config.validate().map_err(|m| Error::config(path, m))?;
        Ok(config)
    }

    /// Parses JSON text (no validation); errors name the JSON path ([`crate::strict_json`]).
    pub fn parse(text: &str) -> std::result::Result<PipelineConfig, String> {
        crate::strict_json::parse(text)
    }

    /// What keeps frames in host memory although `runtime.device_frames` could keep them on the
    /// model device (it does only when the model stages are their only consumers): the scene
    /// detector, video output, swscale RGB for the models, or no model stage taking frames.
    /// `encodes` and `writes_latents` say whether this run writes video and latents (a config
    /// alone: whether it has the sections). `None`: nothing does.
    pub fn frames_host_consumer(
        &self,
        encodes: bool,
        writes_latents: bool,
    ) -> Option<&'static str> {
        if self.scenes.is_some() {
            Some("the scenes section")
        } else if encodes {
            Some("the encode section")
        } else if self.runtime.color_conversion == ColorConversion::Cpu {
            Some("runtime.color_conversion = \"cpu\"")
        } else if self.clip.is_none() && !(self.vae.is_some() && writes_latents) {
            Some("no model stage")
        } else {
            None
        }
    }

    /// Checks every value; the message names the key, the value and what is allowed.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.runtime.device_frames == DeviceFrames::On {
            if let Some(why) = self.frames_host_consumer(self.encode.is_some(), true) {
                return Err(format!(
                    "runtime.device_frames = \"on\": frames stay on the model device only when the model stages are their only consumers, and this pipeline has {why} (use \"auto\" or \"off\")"
                ));
            }
        }
        if let Some(fps) = self.normalize.fps {
            if !(fps.is_finite() && fps > 0.0 && fps <= 240.0) {
                return Err(format!(
                    "normalize.fps = {fps}: must be a number in (0, 240] or null"
                ));
            }
        }
        if let Some(scenes) = &self.scenes {
            if !(scenes.threshold.is_finite()
                && scenes.threshold > 0.0
                && scenes.threshold <= 255.0)
            {
                return Err(format!(
                    "scenes.threshold = {}: must be in (0, 255] (PySceneDetect's default is 27)",
                    scenes.threshold
                ));
            }
            if scenes.min_scene_frames == 0 {
                return Err("scenes.min_scene_frames = 0: must be at least 1".into());
            }
        }
        if let Some(clip) = &self.clip {
            if clip.labels.is_empty() || clip.labels.iter().any(|l| l.trim().is_empty()) {
                return Err("clip.labels: give at least one label, none empty".into());
            }
            if clip.templates.is_empty() {
                return Err(
                    "clip.templates: give at least one template such as \"a photo of {}.\"".into(),
                );
            }
            if let Some(t) = clip.templates.iter().find(|t| t.matches("{}").count() != 1) {
                return Err(format!(
                    "clip.templates: {t:?} must contain exactly one {{}} for the label"
                ));
            }
            let sample = &clip.sample;
            let given = [
                sample.every_n_frames.is_some(),
                sample.fps.is_some(),
                sample.per_scene.is_some(),
            ];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(
                    "clip.sample: give exactly one of every_n_frames, fps, per_scene".into(),
                );
            }
            if sample.every_n_frames == Some(0) {
                return Err("clip.sample.every_n_frames = 0: must be at least 1".into());
            }
            if let Some(f) = sample.fps.filter(|f| !(f.is_finite() && *f > 0.0)) {
                return Err(format!("clip.sample.fps = {f}: must be a positive number"));
            }
            if sample.per_scene == Some(0) {
                return Err("clip.sample.per_scene = 0: must be at least 1".into());
            }
            if sample.per_scene.is_some() && self.scenes.is_none() {
                return Err(
                    "clip.sample.per_scene needs the scenes section (scene detection)".into(),
                );
            }
            if clip.top_k == 0 {
                return Err("clip.top_k = 0: must be at least 1".into());
            }
            if !(0.0..=1.0).contains(&clip.min_score) {
                return Err(format!(
                    "clip.min_score = {}: must be in [0, 1]",
                    clip.min_score
                ));
            }
            if !(1..=4096).contains(&clip.batch_size) {
                return Err(format!(
                    "clip.batch_size = {}: must be in [1, 4096]",
                    clip.batch_size
                ));
            }
            if !clip.model.join("config.json").is_file() {
                return Err(format!(
                    "clip.model = {:?}: not a CLIP model folder (no config.json there)",
                    clip.model.display().to_string()
                ));
            }
        }
        if let Some(vae) = &self.vae {
            if vae.every_n_frames == 0 {
                return Err("vae.every_n_frames = 0: must be at least 1".into());
            }
            if !(1..=100_000).contains(&vae.frames_per_shard) {
                return Err(format!(
                    "vae.frames_per_shard = {}: must be in [1, 100000]",
                    vae.frames_per_shard
                ));
            }
            if let BatchSize::Fixed(n) = vae.batch_size {
                if !(1..=1024).contains(&n) {
                    return Err(format!(
                        "vae.batch_size = {n}: must be in [1, 1024] or \"auto\""
                    ));
                }
            }
            if !vae.model.is_dir() {
                return Err(format!(
                    "vae.model = {:?}: no such folder",
                    vae.model.display().to_string()
                ));
            }
        }
        if let Some(encode) = &self.encode {
            if encode.codec != "libx264" {
                return Err(format!(
                    "encode.codec = {:?}: allowed: \"libx264\"",
                    encode.codec
                ));
            }
            if !(encode.crf.is_finite() && (0.0..=51.0).contains(&encode.crf)) {
                return Err(format!("encode.crf = {}: must be in [0, 51]", encode.crf));
            }
            if !PRESETS.contains(&encode.preset.as_str()) {
                return Err(format!(
                    "encode.preset = {:?}: allowed: {}",
                    encode.preset,
                    PRESETS.join(", ")
                ));
            }
            if let Some(profile) = &encode.profile {
                if !PROFILES.contains(&profile.as_str()) {
                    return Err(format!(
                        "encode.profile = {profile:?}: allowed: {} or null",
                        PROFILES.join(", ")
                    ));
                }
            }
            if encode.threads > 128 {
                return Err(format!(
                    "encode.threads = {}: must be in [0, 128]",
                    encode.threads
                ));
            }
        }
        if self.limits.min_side == 0 {
            return Err("limits.min_side = 0: must be at least 1".into());
        }
        if self.limits.max_pixels < u64::from(self.limits.min_side).pow(2) {
            return Err(format!(
                "limits.max_pixels = {}: must be at least limits.min_side squared ({})",
                self.limits.max_pixels,
                u64::from(self.limits.min_side).pow(2)
            ));
        }
        if !(1..=1024).contains(&self.runtime.queue_frames) {
            return Err(format!(
                "runtime.queue_frames = {}: must be in [1, 1024]",
                self.runtime.queue_frames
            ));
        }
        if self.runtime.decode_threads > 128 {
            return Err(format!(
                "runtime.decode_threads = {}: must be in [0, 128]",
                self.runtime.decode_threads
            ));
        }
        crate::device::DeviceRequest::parse(&self.device)
            .map_err(|m| format!("device = {:?}: {m}", self.device))?;
        Ok(())
    }

    /// A stable hash of the effective config (its canonical JSON), recorded with every output so
    /// results made with different settings are never mistaken for each other.
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::to_vec(self).expect("config serializes");
        let digest = Sha256::digest(&canonical);
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// Resolves a path written in a config file against the folder that holds the file.
pub fn resolve_relative(config_path: &Path, value: &Path) -> PathBuf {
    if value.is_absolute() {
        value.to_path_buf()
    } else {
        config_path.parent().unwrap_or(Path::new(".")).join(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let cfg = PipelineConfig::parse("{}").unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.normalize.resolution.size(), (1280, 720));
        assert!(cfg.scenes.is_none() && cfg.encode.is_none());
    }

    /// `device_frames: "on"` names what keeps frames in host memory.
    #[test]
    fn device_frames_on_names_the_host_consumer() {
        for (json, why) in [
            (r#"{"scenes": {}}"#, "the scenes section"),
            (r#"{"encode": {}}"#, "the encode section"),
            (
                r#"{"runtime": {"color_conversion": "cpu"}}"#,
                "runtime.color_conversion = \"cpu\"",
            ),
            ("{}", "no model stage"),
        ] {
            let mut cfg = PipelineConfig::parse(json).unwrap();
            cfg.runtime.device_frames = DeviceFrames::On;
            let err = cfg.validate().unwrap_err();
            assert!(
                err.starts_with("runtime.device_frames = \"on\"") && err.contains(why),
                "{json}: {err}"
            );
        }
    }

    #[test]
    fn unknown_key_names_key_and_allowed() {
        let err = PipelineConfig::parse(r#"{"normalise": {}}"#).unwrap_err();
        assert!(err.contains("unknown field `normalise`"), "{err}");
        assert!(err.contains("`normalize`"), "{err}");
        let err = PipelineConfig::parse(r#"{"encode": {"crff": 20}}"#).unwrap_err();
        assert!(err.contains("`crff`") && err.contains("`crf`"), "{err}");
    }

    #[test]
    fn bad_resolution_names_allowed() {
        let err = PipelineConfig::parse(r#"{"normalize": {"resolution": "4k"}}"#).unwrap_err();
        assert!(
            err.contains("4k") && err.contains("720p") && err.contains("1080p"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_key_value_and_range() {
        let cases = [
            (r#"{"encode": {"crf": 70}}"#, "encode.crf = 70"),
            (
                r#"{"encode": {"preset": "warp"}}"#,
                "encode.preset = \"warp\"",
            ),
            (
                r#"{"encode": {"profile": "high10"}}"#,
                "encode.profile = \"high10\"",
            ),
            (r#"{"normalize": {"fps": -3}}"#, "normalize.fps = -3"),
            (r#"{"scenes": {"threshold": 0}}"#, "scenes.threshold = 0"),
            (
                r#"{"scenes": {"min_scene_frames": 0}}"#,
                "scenes.min_scene_frames = 0",
            ),
            (
                r#"{"runtime": {"queue_frames": 0}}"#,
                "runtime.queue_frames = 0",
            ),
            (r#"{"device": "tpu"}"#, "device = \"tpu\""),
        ];
        for (text, expected) in cases {
            let err = PipelineConfig::parse(text).unwrap().validate().unwrap_err();
            assert!(err.starts_with(expected), "{text}: {err}");
        }
    }

    #[test]
    fn hash_changes_with_settings() {
        let a = PipelineConfig::parse(r#"{"encode": {"crf": 23}}"#).unwrap();
        let b = PipelineConfig::parse(r#"{"encode": {"crf": 24}}"#).unwrap();
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), a.clone().hash());
    }

    #[test]
    fn relative_paths_resolve_against_config_folder() {
        let cfg = Path::new("/etc/pipelines/x.json");
        assert_eq!(
            resolve_relative(cfg, Path::new("m/clip")),
            PathBuf::from("/etc/pipelines/m/clip")
        );
        assert_eq!(
            resolve_relative(cfg, Path::new("/abs")),
            PathBuf::from("/abs")
        );
    }
}
