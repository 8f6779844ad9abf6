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
