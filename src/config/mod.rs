//! Pipeline configuration: the typed form of a `pipelines/*.json` file, and its validation.
//!
//! Parsing rejects unknown keys (naming the key and the allowed ones); [`PipelineConfig::validate`]
//! checks every value against what is allowed before any input is opened, so a bad config costs
//! nothing and names the key, the value and the accepted range ([`ConfigError`]).
//!
//! This module holds the whole pipeline (its sections, `device`, loading, the hash); each
//! section's types and checks live in the section's own module.
mod caption;
mod clips;
mod curation;
mod decode;
mod encode;
mod error;
mod limits;
mod normalize;
mod runtime;
mod scenes;
mod tagging;
mod vae;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use caption::{CaptionConfig, OnError};
pub use clips::{ClipsConfig, LongScenes};
pub use curation::{ClipFilters, HeadBounds, HeadFiles, TextScoring};
pub use decode::{DecodeConfig, HwAccelConfig};
pub use encode::{AudioMode, Choice, Codec, EncodeConfig, Names, Preset, Profile};
pub use error::ConfigError;
pub use limits::LimitsConfig;
pub use normalize::{FitMode, NormalizeConfig, Resolution};
pub use runtime::{ColorConversion, DeviceFrames, Precision, RuntimeConfig};
pub use scenes::{default_transnet_dir, SceneDetectorKind, ScenesConfig};
pub use tagging::{Sampling, TaggingConfig, TaggingSample};
pub use vae::{BatchSize, LatentDtype, ReconstructionConfig, VaeConfig};

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
    pub clip: Option<TaggingConfig>,
    /// VAE latents of sampled normalized frames, streamed to shards; absent = no latents.
    #[serde(default)]
    pub vae: Option<VaeConfig>,
    /// Scenes cut into training clips (`clips.jsonl`, and clip files with `encode`); absent = no
    /// clips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clips: Option<ClipsConfig>,
    /// Captions for each clip file from an OpenAI-compatible vision-language server; absent =
    /// no captions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<CaptionConfig>,
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

impl PipelineConfig {
    /// Reads, parses and validates a pipeline file. Errors name the file, the key and the value.
    pub fn load(path: &Path) -> Result<PipelineConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(path, format!("cannot read: {e}")))?;
        let mut config = PipelineConfig::parse(&text).map_err(|m| Error::config(path, m))?;
        if let Some(clip) = config.clip.as_mut() {
            clip.model = resolve_relative(path, &clip.model);
        }
        if let Some(model) = config.scenes.as_mut().and_then(|s| s.model.as_mut()) {
            *model = resolve_relative(path, model);
        }
        if let Some(vae) = config.vae.as_mut() {
            vae.model = resolve_relative(path, &vae.model);
        }
        config
            .validate()
            .map_err(|e| Error::config(path, e.to_string()))?;
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

    /// Checks every value; the message names the key, the value and what is allowed. The
    /// sections are checked in a fixed order (the first error found is the one reported).
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        self.runtime
            .validate_device_frames(self.frames_host_consumer(self.encode.is_some(), true))?;
        self.normalize.validate()?;
        if let Some(scenes) = &self.scenes {
            scenes.validate()?;
        }
        if let Some(clip) = &self.clip {
            clip.validate(self.scenes.is_some())?;
        }
        if let Some(vae) = &self.vae {
            vae.validate()?;
        }
        if let Some(encode) = &self.encode {
            encode.validate()?;
        }
        if let Some(clips) = &self.clips {
            clips.validate(
                self.scenes.is_some(),
                self.clip.is_some(),
                self.encode.is_some(),
            )?;
        }
        if let Some(caption) = &self.caption {
            caption.validate(self.clips.is_some(), self.encode.is_some())?;
        }
        self.limits.validate()?;
        self.runtime.validate()?;
        crate::device::DeviceRequest::parse(&self.device).map_err(|why| ConfigError::Device {
            value: self.device.clone(),
            why,
        })?;
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
            let err = cfg.validate().unwrap_err().to_string();
            assert!(
                err.starts_with("runtime.device_frames = \"on\"") && err.contains(why),
                "{json}: {err}"
            );
        }
    }

    /// `scenes.colour_cuts`: off unless asked for, absent from the serialized config when off
    /// (config hashes of earlier pipelines hold), TransNetV2 only, and a boolean.
    #[test]
    fn colour_cuts_is_off_by_default_and_transnetv2_only() {
        let cfg = PipelineConfig::parse(r#"{"scenes": {"detector": "transnetv2"}}"#).unwrap();
        let scenes = cfg.scenes.unwrap();
        assert!(!scenes.colour_cuts);
        assert!(!serde_json::to_string(&scenes)
            .unwrap()
            .contains("colour_cuts"));
        let on =
            PipelineConfig::parse(r#"{"scenes": {"detector": "transnetv2", "colour_cuts": true}}"#)
                .unwrap()
                .scenes
                .unwrap();
        assert!(on.colour_cuts);
        assert!(serde_json::to_string(&on)
            .unwrap()
            .contains(r#""colour_cuts":true"#));
        let err = PipelineConfig::parse(r#"{"scenes": {"colour_cuts": true}}"#)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "scenes.colour_cuts needs \"detector\": \"transnetv2\" (it adds to TransNetV2's cuts)"
        );
        let err = PipelineConfig::parse(r#"{"scenes": {"colour_cuts": "yes"}}"#).unwrap_err();
        assert!(err.contains("colour_cuts"), "{err}");
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
            let err = PipelineConfig::parse(text)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(expected), "{text}: {err}");
        }
    }

    /// Every check's message, byte for byte as the single `validate` function printed them
    /// before the checks moved into the sections (users and tests match on these texts).
    #[test]
    fn messages_are_unchanged() {
        let clip = |extra: &str| {
            format!(r#"{{"clip": {{"model": "/nonexistent", "labels": ["a"]{extra}}}}}"#)
        };
        let vae = |extra: &str| format!(r#"{{"vae": {{"model": "/nonexistent"{extra}}}}}"#);
        let device_message = crate::device::DeviceRequest::parse("tpu").unwrap_err();
        let cases: Vec<(String, String)> = vec![
            (
                r#"{"scenes": {}, "runtime": {"device_frames": "on"}}"#.into(),
                "runtime.device_frames = \"on\": frames stay on the model device only when the model stages are their only consumers, and this pipeline has the scenes section (use \"auto\" or \"off\")".into(),
            ),
            (r#"{"normalize": {"fps": -3}}"#.into(), "normalize.fps = -3: must be a number in (0, 240] or null".into()),
            (r#"{"normalize": {"fps": 240.5}}"#.into(), "normalize.fps = 240.5: must be a number in (0, 240] or null".into()),
            (r#"{"scenes": {"threshold": 300}}"#.into(), "scenes.threshold = 300: must be in (0, 255] (PySceneDetect's default is 27)".into()),
            (r#"{"scenes": {"min_scene_frames": 0}}"#.into(), "scenes.min_scene_frames = 0: must be at least 1".into()),
            (r#"{"clip": {"model": "m", "labels": []}}"#.into(), "clip.labels: give at least one label, none empty".into()),
            (r#"{"clip": {"model": "m", "labels": ["a", " "]}}"#.into(), "clip.labels: give at least one label, none empty".into()),
            (clip(r#", "templates": []"#), "clip.templates: give at least one template such as \"a photo of {}.\"".into()),
            (clip(r#", "templates": ["{}{}"]"#), "clip.templates: \"{}{}\" must contain exactly one {} for the label".into()),
            (clip(r#", "sample": {"every_n_frames": 0}"#), "clip.sample.every_n_frames = 0: must be at least 1".into()),
            (clip(r#", "sample": {"fps": -1.5}"#), "clip.sample.fps = -1.5: must be a positive number".into()),
            (clip(r#", "sample": {"per_scene": 0}"#), "clip.sample.per_scene = 0: must be at least 1".into()),
            (clip(r#", "sample": {"per_scene": 2}"#), "clip.sample.per_scene needs the scenes section (scene detection)".into()),
            (clip(r#", "top_k": 0"#), "clip.top_k = 0: must be at least 1".into()),
            (clip(r#", "min_score": 1.5"#), "clip.min_score = 1.5: must be in [0, 1]".into()),
            (clip(r#", "batch_size": 4097"#), "clip.batch_size = 4097: must be in [1, 4096]".into()),
            (clip(""), "clip.model = \"/nonexistent\": not a CLIP model folder (no config.json there)".into()),
            (vae(r#", "every_n_frames": 0"#), "vae.every_n_frames = 0: must be at least 1".into()),
            (vae(r#", "frames_per_shard": 0"#), "vae.frames_per_shard = 0: must be in [1, 100000]".into()),
            (vae(r#", "batch_size": 2000"#), "vae.batch_size = 2000: must be in [1, 1024] or \"auto\"".into()),
            (vae(""), "vae.model = \"/nonexistent\": no such folder".into()),
            (r#"{"encode": {"codec": "libx265"}}"#.into(), "encode.codec = \"libx265\": allowed: \"libx264\"".into()),
            (r#"{"encode": {"crf": 51.5}}"#.into(), "encode.crf = 51.5: must be in [0, 51]".into()),
            (r#"{"encode": {"preset": "warp"}}"#.into(), "encode.preset = \"warp\": allowed: ultrafast, superfast, veryfast, faster, fast, medium, slow, slower, veryslow, placebo".into()),
            (r#"{"encode": {"profile": "high10"}}"#.into(), "encode.profile = \"high10\": allowed: baseline, main, high or null".into()),
            (r#"{"encode": {"threads": 129}}"#.into(), "encode.threads = 129: must be in [0, 128]".into()),
            (r#"{"limits": {"min_side": 0}}"#.into(), "limits.min_side = 0: must be at least 1".into()),
            (r#"{"limits": {"max_pixels": 10}}"#.into(), "limits.max_pixels = 10: must be at least limits.min_side squared (256)".into()),
            (r#"{"runtime": {"queue_frames": 0}}"#.into(), "runtime.queue_frames = 0: must be in [1, 1024]".into()),
            (r#"{"runtime": {"decode_threads": 129}}"#.into(), "runtime.decode_threads = 129: must be in [0, 128]".into()),
            (r#"{"device": "tpu"}"#.into(), format!("device = \"tpu\": {device_message}")),
        ];
        for (text, expected) in cases {
            let err = PipelineConfig::parse(&text)
                .unwrap()
                .validate()
                .unwrap_err();
            assert_eq!(err.to_string(), expected, "{text}");
        }
    }

    /// `clip.sample` with none or several of its keys: refused by `validate`, not the parser.
    #[test]
    fn sampling_needs_exactly_one_key() {
        for sample in [
            "{}",
            r#"{"every_n_frames": null}"#,
            r#"{"every_n_frames": 3, "fps": 2}"#,
            r#"{"fps": 1, "per_scene": 2}"#,
        ] {
            let text =
                format!(r#"{{"clip": {{"model": "m", "labels": ["a"], "sample": {sample}}}}}"#);
            let cfg = PipelineConfig::parse(&text).unwrap();
            assert_eq!(cfg.clip.as_ref().unwrap().sample.sampling(), None);
            assert_eq!(
                cfg.validate().unwrap_err().to_string(),
                "clip.sample: give exactly one of every_n_frames, fps, per_scene",
                "{sample}"
            );
        }
    }

    /// Reports carry the config as it always read: the encoder settings as their names (an
    /// unknown name as written, should one be serialized before `validate` refuses it).
    #[test]
    fn serialized_form_is_unchanged() {
        let cfg = PipelineConfig::parse(r#"{"encode": {}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&cfg.encode).unwrap(),
            r#"{"codec":"libx264","crf":23.0,"preset":"medium","profile":"high","audio":"copy","threads":0}"#
        );
        let odd =
            PipelineConfig::parse(r#"{"encode": {"preset": "warp", "profile": null}}"#).unwrap();
        let json = serde_json::to_value(&odd).unwrap();
        assert_eq!(json["encode"]["preset"], "warp");
        assert!(json["encode"]["profile"].is_null());
        assert_eq!(odd.encode.unwrap().codec.known(), Some(Codec::Libx264));
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
