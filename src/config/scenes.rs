//! The `scenes` section: scene detection (PySceneDetect's ContentDetector and its settings).
use serde::{Deserialize, Serialize};

use super::ConfigError;

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

impl ScenesConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.threshold.is_finite() && self.threshold > 0.0 && self.threshold <= 255.0) {
            return Err(ConfigError::OutOfRange {
                key: "scenes.threshold",
                actual: self.threshold.to_string(),
                expected: "must be in (0, 255] (PySceneDetect's default is 27)",
            });
        }
        if self.min_scene_frames == 0 {
            return Err(ConfigError::OutOfRange {
                key: "scenes.min_scene_frames",
                actual: "0".into(),
                expected: "must be at least 1",
            });
        }
        Ok(())
    }
}
