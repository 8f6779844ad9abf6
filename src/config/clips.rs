//! The `clips` section: how scenes become training clips. The defaults are Cosmos-Curate's
//! (2 s minimum, 60 s maximum, long scenes split into consecutive windows, 0.5 s trimmed from
//! each end); `min_motion` drops clips whose motion score is below it.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::curation::{validate_head_names, ClipFilters, HeadFiles, TextScoring};
use super::ConfigError;

/// What happens to a scene longer than `max_seconds` (after its trims).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LongScenes {
    /// Consecutive windows of `max_seconds`; a remainder shorter than `min_seconds` is dropped.
    #[default]
    Split,
    /// Only the first window of `max_seconds`.
    Truncate,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClipsConfig {
    /// Clips shorter than this are dropped.
    #[serde(default = "default_min_seconds")]
    pub min_seconds: f64,
    /// No clip is longer than this.
    #[serde(default = "default_max_seconds")]
    pub max_seconds: f64,
    #[serde(default)]
    pub long_scenes: LongScenes,
    /// Left out at each end of a scene (after its transitions are left out).
    #[serde(default = "default_trim_seconds")]
    pub trim_seconds: f64,
    /// Clips whose motion score is below this are dropped; `null`: none are.
    #[serde(default)]
    pub min_motion: Option<f64>,
    /// With `encode`: also keep the whole normalized video (`<stem>.mp4`) beside the clips.
    #[serde(default = "default_whole_video")]
    pub whole_video: bool,
    /// Scores that drop a clip (its record stays, with the reasons).
    #[serde(default)]
    pub filters: ClipFilters,
    /// Burned-in text read from each clip's frames as its file is cut (needs `encode`); also on with defaults when
    /// `filters.max_text_area` is set.
    #[serde(default)]
    pub text: Option<TextScoring>,
    /// Scoring heads on each clip's CLIP embedding, by name (needs the `clip` section).
    #[serde(default)]
    pub heads: BTreeMap<String, HeadFiles>,
}

fn default_min_seconds() -> f64 {
    2.0
}
fn default_max_seconds() -> f64 {
    60.0
}
fn default_trim_seconds() -> f64 {
    0.5
}
fn default_whole_video() -> bool {
    true
}

impl Default for ClipsConfig {
    fn default() -> Self {
        ClipsConfig {
            min_seconds: default_min_seconds(),
            max_seconds: default_max_seconds(),
            long_scenes: LongScenes::Split,
            trim_seconds: default_trim_seconds(),
            min_motion: None,
            whole_video: default_whole_video(),
            filters: ClipFilters::default(),
            text: None,
            heads: BTreeMap::new(),
        }
    }
}

impl ClipsConfig {
    /// The least motion score a kept clip needs (`min_motion` or `filters.min_motion`).
    pub fn min_motion(&self) -> Option<f64> {
        self.filters.min_motion.or(self.min_motion)
    }

    /// How burned-in text is read, when it is: `text`, or its defaults for a text filter.
    pub fn text_scoring(&self) -> Option<TextScoring> {
        self.text
            .clone()
            .or_else(|| self.filters.max_text_area.map(|_| TextScoring::default()))
    }

    /// `has_scenes`: whether the pipeline detects scenes (clips are cut from them);
    /// `has_tagging`: whether it embeds frames with CLIP (heads score those embeddings);
    /// `has_encode`: whether clips get files (text is read from them).
    pub fn validate(
        &self,
        has_scenes: bool,
        has_tagging: bool,
        has_encode: bool,
    ) -> Result<(), ConfigError> {
        if !has_scenes {
            return Err(ConfigError::Requires {
                key: "clips",
                needs: "the scenes section (clips are cut from scenes)",
            });
        }
        let range = |key: &'static str, v: f64, ok: bool, expected: &'static str| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange {
                    key,
                    actual: v.to_string(),
                    expected,
                })
            }
        };
        range(
            "clips.min_seconds",
            self.min_seconds,
            self.min_seconds > 0.0,
            "must be a positive number of seconds",
        )?;
        range(
            "clips.max_seconds",
            self.max_seconds,
            self.max_seconds > 0.0,
            "must be a positive number of seconds",
        )?;
        range(
            "clips.max_seconds",
            self.max_seconds,
            self.max_seconds >= self.min_seconds,
            "must be at least clips.min_seconds",
        )?;
        range(
            "clips.trim_seconds",
            self.trim_seconds,
            self.trim_seconds >= 0.0,
            "must be 0 or more seconds",
        )?;
        if let Some(m) = self.min_motion {
            range(
                "clips.min_motion",
                m,
                m >= 0.0,
                "must be 0 or more, or null",
            )?;
        }
        validate_head_names(&self.heads)?;
        self.filters
            .validate(self.min_motion.is_some(), &self.heads)?;
        if let Some(text) = &self.text {
            text.validate()?;
        }
        if self.text_scoring().is_some() && !has_encode {
            return Err(ConfigError::Requires {
                key: if self.text.is_some() {
                    "clips.text"
                } else {
                    "clips.filters.max_text_area"
                },
                needs: "the encode section (text is read from the frames of each clip file as it is cut)",
            });
        }
        if !self.heads.is_empty() && !has_tagging {
            return Err(ConfigError::Requires {
                key: "clips.heads",
                needs: "the clip section (heads score each clip's CLIP embedding)",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::PipelineConfig;

    fn error(json: &str) -> String {
        PipelineConfig::parse(json)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_are_cosmos_curates() {
        let cfg = PipelineConfig::parse(r#"{"scenes": {}, "clips": {}}"#).unwrap();
        cfg.validate().unwrap();
        let clips = cfg.clips.unwrap();
        assert_eq!(
            (clips.min_seconds, clips.max_seconds, clips.trim_seconds),
            (2.0, 60.0, 0.5)
        );
        assert_eq!(clips.long_scenes, super::LongScenes::Split);
        assert!(clips.whole_video && clips.min_motion.is_none());
    }

    #[test]
    fn bad_values_name_the_key() {
        for (json, expected) in [
            (
                r#"{"clips": {}}"#,
                "clips needs the scenes section (clips are cut from scenes)",
            ),
            (
                r#"{"scenes": {}, "clips": {"min_seconds": 5, "max_seconds": 3}}"#,
                "clips.max_seconds = 3: must be at least clips.min_seconds",
            ),
            (
                r#"{"scenes": {}, "clips": {"trim_seconds": -0.5}}"#,
                "clips.trim_seconds = -0.5: must be 0 or more seconds",
            ),
            (
                r#"{"scenes": {}, "clips": {"min_seconds": 0}}"#,
                "clips.min_seconds = 0: must be a positive number of seconds",
            ),
            (
                r#"{"scenes": {}, "clips": {"min_motion": -1}}"#,
                "clips.min_motion = -1: must be 0 or more, or null",
            ),
        ] {
            assert_eq!(error(json), expected, "{json}");
        }
        let e = PipelineConfig::parse(r#"{"scenes": {}, "clips": {"long_scenes": "wrap"}}"#)
            .unwrap_err();
        assert!(
            e.contains("wrap") && e.contains("split") && e.contains("truncate"),
            "{e}"
        );
    }
}
