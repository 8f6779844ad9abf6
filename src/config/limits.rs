//! The `limits` section: which inputs are accepted at all (smallest side, most pixels).
use serde::{Deserialize, Serialize};

use super::ConfigError;

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

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_side == 0 {
            return Err(ConfigError::OutOfRange {
                key: "limits.min_side",
                actual: "0".into(),
                expected: "must be at least 1",
            });
        }
        let min_side_squared = u64::from(self.min_side).pow(2);
        if self.max_pixels < min_side_squared {
            return Err(ConfigError::MaxPixelsBelowMinSide {
                max_pixels: self.max_pixels,
                min_side_squared,
            });
        }
        Ok(())
    }
}
