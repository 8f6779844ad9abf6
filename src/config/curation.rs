//! The curation settings inside `clips`: `filters` (which scores drop a clip) and `heads`
//! (scoring models on each clip's CLIP embedding). A dropped clip keeps its record in
//! `clips.jsonl` with its reasons; it gets no file and is not exported.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `clips.filters`: each bound drops the clips whose score is past it; absent bounds drop
/// nothing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClipFilters {
    /// Most of a clip's frames that may be black or one flat colour (0..1).
    #[serde(default)]
    pub max_blank: Option<f64>,
    /// Most of a clip's frames that may repeat the frame before (0..1).
    #[serde(default)]
    pub max_frozen: Option<f64>,
    /// Most of the picture burned-in text may cover on any read frame (0..1; reads text with
    /// `clips.text`'s settings, its defaults when that is absent).
    #[serde(default)]
    pub max_text_area: Option<f64>,
    /// The least motion score a clip needs (the same as `clips.min_motion`; set one of them).
    #[serde(default)]
    pub min_motion: Option<f64>,
    /// Bounds on head scores, by head name (a head of `clips.heads`).
    #[serde(default)]
    pub heads: BTreeMap<String, HeadBounds>,
}

/// A head score's accepted range; either end may be open.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeadBounds {
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

/// `clips.text`: burned-in text read with Tesseract from a few frames of each clip's file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextScoring {
    /// Frames read per clip, spread evenly from its first to its last (3: first, middle, last;
    /// 1: the middle one).
    #[serde(default = "default_text_frames")]
    pub frames: u32,
    /// Tesseract language(s), e.g. `"eng"` or `"eng+deu"` (each needs its `.traineddata`).
    #[serde(default = "default_language")]
    pub language: String,
    /// Words Tesseract is less sure of (0-100) are not text.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f32,
}

fn default_text_frames() -> u32 {
    3
}
fn default_language() -> String {
    "eng".into()
}
fn default_min_confidence() -> f32 {
    75.0
}

impl Default for TextScoring {
    fn default() -> Self {
        TextScoring {
            frames: default_text_frames(),
            language: default_language(),
            min_confidence: default_min_confidence(),
        }
    }
}

impl TextScoring {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=10).contains(&self.frames) {
            return Err(ConfigError::OutOfRange {
                key: "clips.text.frames",
                actual: self.frames.to_string(),
                expected: "must be 1 to 10 frames per clip",
            });
        }
        let c = self.min_confidence;
        if !(c.is_finite() && (0.0..=100.0).contains(&c)) {
            return Err(ConfigError::OutOfRange {
                key: "clips.text.min_confidence",
                actual: c.to_string(),
                expected: "must be 0 to 100",
            });
        }
        Ok(())
    }
}

/// `clips.heads.<name>`: a scoring head's files (see `crate::heads`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeadFiles {
    /// The layers' tensors (safetensors).
    pub weights: PathBuf,
    /// Layer sizes, activation and input normalisation (JSON).
    pub config: PathBuf,
}

impl ClipFilters {
    /// `motion_elsewhere`: whether `clips.min_motion` is set too; `heads`: the configured heads.
    pub fn validate(
        &self,
        motion_elsewhere: bool,
        heads: &BTreeMap<String, HeadFiles>,
    ) -> Result<(), ConfigError> {
        let fraction = |key: &'static str, v: Option<f64>| match v {
            Some(v) if !(v.is_finite() && (0.0..=1.0).contains(&v)) => {
                Err(ConfigError::OutOfRange {
                    key,
                    actual: v.to_string(),
                    expected: "must be a fraction from 0 to 1, or null",
                })
            }
            _ => Ok(()),
        };
        fraction("clips.filters.max_blank", self.max_blank)?;
        fraction("clips.filters.max_frozen", self.max_frozen)?;
        fraction("clips.filters.max_text_area", self.max_text_area)?;
        if let Some(m) = self.min_motion {
            if !(m.is_finite() && m >= 0.0) {
                return Err(ConfigError::OutOfRange {
                    key: "clips.filters.min_motion",
                    actual: m.to_string(),
                    expected: "must be 0 or more, or null",
                });
            }
            if motion_elsewhere {
                return Err(ConfigError::Requires {
                    key: "clips.filters.min_motion",
                    needs: "clips.min_motion left out (they are the same filter: set one)",
                });
            }
        }
        for (name, bounds) in &self.heads {
            let key = format!("clips.filters.heads.{name}");
            if !heads.contains_key(name) {
                let known: Vec<&str> = heads.keys().map(String::as_str).collect();
                return Err(ConfigError::Named {
                    key,
                    why: format!(
                        "no head of that name in clips.heads (configured: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                });
            }
            let finite = |v: Option<f64>| v.is_none_or(f64::is_finite);
            let why = match (bounds.min, bounds.max) {
                (None, None) => Some("give min, max or both".to_string()),
                _ if !finite(bounds.min) || !finite(bounds.max) => {
                    Some("min and max must be numbers".to_string())
                }
                (Some(lo), Some(hi)) if lo > hi => Some(format!("min {lo} is above max {hi}")),
                _ => None,
            };
            if let Some(why) = why {
                return Err(ConfigError::Named { key, why });
            }
        }
        Ok(())
    }

    /// Whether any bound is set.
    pub fn any(&self) -> bool {
        self.max_blank.is_some()
            || self.max_frozen.is_some()
            || self.max_text_area.is_some()
            || self.min_motion.is_some()
            || !self.heads.is_empty()
    }
}

/// Head names are keys of clips.jsonl's `heads` object and of report counts.
pub fn validate_head_names(heads: &BTreeMap<String, HeadFiles>) -> Result<(), ConfigError> {
    for name in heads.keys() {
        let fine = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !fine {
            return Err(ConfigError::Named {
                key: format!("clips.heads.{name}"),
                why: "a head name is letters, digits, '_' and '-' only".into(),
            });
        }
    }
    Ok(())
}
