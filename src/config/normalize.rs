//! The `normalize` section: the output canvas (resolution, how the picture fits it) and the
//! output frame rate.
use serde::{Deserialize, Serialize};

use super::ConfigError;

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

impl NormalizeConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(fps) = self.fps {
            if !(fps.is_finite() && fps > 0.0 && fps <= 240.0) {
                return Err(ConfigError::OutOfRange {
                    key: "normalize.fps",
                    actual: fps.to_string(),
                    expected: "must be a number in (0, 240] or null",
                });
            }
        }
        Ok(())
    }
}
