//! The `clip` section: zero-shot CLIP tagging (model, labels, prompt templates) and which frames
//! are sampled for it.
use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaggingConfig {
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
    pub sample: TaggingSample,
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

/// Which frames are embedded: every n-th output frame (default 15), `fps` per second, or
/// `per_scene` evenly spaced frames of every scene (needs the `scenes` section). Exactly one of
/// the three is given ([`TaggingSample::sampling`]).
///
/// Three options rather than one enum on purpose: refusing "none or several" while parsing
/// would change the message (serde_json appends `at line L column C` to it) and make it come
/// before checks that precede it today; `validate` refuses it instead.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaggingSample {
    #[serde(default)]
    pub every_n_frames: Option<u32>,
    #[serde(default)]
    pub fps: Option<f64>,
    #[serde(default)]
    pub per_scene: Option<u32>,
}

impl Default for TaggingSample {
    fn default() -> Self {
        TaggingSample {
            every_n_frames: Some(15),
            fps: None,
            per_scene: None,
        }
    }
}

/// [`TaggingSample`] as the one choice it must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    EveryNFrames(u32),
    Fps(f64),
    PerScene(u32),
}

impl TaggingSample {
    /// The one sampling given; `None` when none or several are.
    pub fn sampling(&self) -> Option<Sampling> {
        match (self.every_n_frames, self.fps, self.per_scene) {
            (Some(n), None, None) => Some(Sampling::EveryNFrames(n)),
            (None, Some(f), None) => Some(Sampling::Fps(f)),
            (None, None, Some(k)) => Some(Sampling::PerScene(k)),
            _ => None,
        }
    }
}

impl TaggingConfig {
    /// `has_scenes`: whether the pipeline has a scenes section (`per_scene` needs one).
    pub fn validate(&self, has_scenes: bool) -> Result<(), ConfigError> {
        self.check_prompts()?;
        self.sample.check(has_scenes)?;
        self.check_limits()?;
        // Checked last, as before: the cheap value checks name a typo before the filesystem.
        if !self.model.join("config.json").is_file() {
            return Err(ConfigError::NoModel {
                key: "clip.model",
                path: self.model.display().to_string(),
                why: "not a CLIP model folder (no config.json there)",
            });
        }
        Ok(())
    }

    /// Labels, then templates: some of each, none empty, one `{}` per template.
    fn check_prompts(&self) -> Result<(), ConfigError> {
        if self.labels.is_empty() || self.labels.iter().any(|l| l.trim().is_empty()) {
            return Err(ConfigError::Empty {
                key: "clip.labels",
                what: "give at least one label, none empty",
            });
        }
        if self.templates.is_empty() {
            return Err(ConfigError::Empty {
                key: "clip.templates",
                what: "give at least one template such as \"a photo of {}.\"",
            });
        }
        if let Some(t) = self.templates.iter().find(|t| t.matches("{}").count() != 1) {
            return Err(ConfigError::Template {
                key: "clip.templates",
                template: t.clone(),
            });
        }
        Ok(())
    }

    /// `top_k`, `min_score` and `batch_size`, in that order.
    fn check_limits(&self) -> Result<(), ConfigError> {
        if self.top_k == 0 {
            return Err(ConfigError::OutOfRange {
                key: "clip.top_k",
                actual: "0".into(),
                expected: "must be at least 1",
            });
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            return Err(ConfigError::OutOfRange {
                key: "clip.min_score",
                actual: self.min_score.to_string(),
                expected: "must be in [0, 1]",
            });
        }
        if !(1..=4096).contains(&self.batch_size) {
            return Err(ConfigError::OutOfRange {
                key: "clip.batch_size",
                actual: self.batch_size.to_string(),
                expected: "must be in [1, 4096]",
            });
        }
        Ok(())
    }
}

impl TaggingSample {
    /// Exactly one sampling, in range; `per_scene` only with scene detection.
    fn check(&self, has_scenes: bool) -> Result<(), ConfigError> {
        let Some(sampling) = self.sampling() else {
            return Err(ConfigError::Empty {
                key: "clip.sample",
                what: "give exactly one of every_n_frames, fps, per_scene",
            });
        };
        match sampling {
            Sampling::EveryNFrames(0) => Err(ConfigError::OutOfRange {
                key: "clip.sample.every_n_frames",
                actual: "0".into(),
                expected: "must be at least 1",
            }),
            Sampling::Fps(f) if !(f.is_finite() && f > 0.0) => Err(ConfigError::OutOfRange {
                key: "clip.sample.fps",
                actual: f.to_string(),
                expected: "must be a positive number",
            }),
            Sampling::PerScene(0) => Err(ConfigError::OutOfRange {
                key: "clip.sample.per_scene",
                actual: "0".into(),
                expected: "must be at least 1",
            }),
            Sampling::PerScene(_) if !has_scenes => Err(ConfigError::Requires {
                key: "clip.sample.per_scene",
                needs: "the scenes section (scene detection)",
            }),
            _ => Ok(()),
        }
    }
}
