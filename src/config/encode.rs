//! The `encode` section: re-encoding of the normalized video (x264 settings, audio).
//!
//! Codec, preset and profile are names from fixed sets ([`Codec`], [`Preset`], [`Profile`]).
//! Each is read as a [`Choice`]: a name outside its set is kept as written and refused by
//! [`EncodeConfig::validate`], not by the parser, so the refusal reads as every other value
//! check does (`encode.preset = "warp": allowed: ...`, no JSON path in front) and comes in the
//! same order among them as it always has.
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// A type whose values are a fixed set of names.
pub trait Names: Copy + PartialEq + 'static {
    /// Every value, in the order the "allowed" messages list them.
    const ALL: &'static [Self];
    fn name(&self) -> &'static str;
}

macro_rules! names {
    ($(#[$doc:meta])* $ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $ty {
            $($variant),+
        }

        impl Names for $ty {
            const ALL: &'static [Self] = &[$($ty::$variant),+];
            fn name(&self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }
    };
}

names!(
    /// The video encoder (FFmpeg's name for it).
    Codec { Libx264 => "libx264" }
);

names!(
    /// x264's speed/size presets, fastest first.
    Preset {
        Ultrafast => "ultrafast",
        Superfast => "superfast",
        Veryfast => "veryfast",
        Faster => "faster",
        Fast => "fast",
        Medium => "medium",
        Slow => "slow",
        Slower => "slower",
        Veryslow => "veryslow",
        Placebo => "placebo",
    }
);

names!(
    /// The H.264 profiles x264 is allowed to be held to.
    Profile {
        Baseline => "baseline",
        Main => "main",
        High => "high",
    }
);

/// A name from `T`'s set as the file gave it: `Unknown` holds one outside the set until
/// `validate` refuses it (parsing takes any string here, as it did when these were strings).
/// Serialized as the name itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice<T> {
    Known(T),
    Unknown(String),
}

impl<T: Names> Choice<T> {
    /// The value, when it is one of the set (always, once the config is validated).
    pub fn known(&self) -> Option<T> {
        match self {
            Choice::Known(v) => Some(*v),
            Choice::Unknown(_) => None,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Choice::Known(v) => v.name(),
            Choice::Unknown(s) => s,
        }
    }

    /// Refuses an unknown name: `key = "x": allowed: <allowed>`.
    fn check(
        &self,
        key: &'static str,
        allowed: impl FnOnce() -> String,
    ) -> Result<(), ConfigError> {
        match self {
            Choice::Known(_) => Ok(()),
            Choice::Unknown(s) => Err(ConfigError::NotOneOf {
                key,
                actual: format!("{s:?}"),
                allowed: allowed(),
            }),
        }
    }
}

impl<T> From<T> for Choice<T> {
    fn from(v: T) -> Self {
        Choice::Known(v)
    }
}

impl<T: Names> Serialize for Choice<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de, T: Names> Deserialize<'de> for Choice<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A String first, so a non-string gets serde's message for a string, as before.
        let s = String::deserialize(d)?;
        Ok(match T::ALL.iter().find(|v| v.name() == s) {
            Some(v) => Choice::Known(*v),
            None => Choice::Unknown(s),
        })
    }
}

fn all_names<T: Names>() -> String {
    T::ALL
        .iter()
        .map(|v| v.name())
        .collect::<Vec<_>>()
        .join(", ")
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
    pub codec: Choice<Codec>,
    #[serde(default = "default_crf")]
    pub crf: f64,
    #[serde(default = "default_preset")]
    pub preset: Choice<Preset>,
    /// H.264 profile; `null` lets x264 choose.
    #[serde(default = "default_profile")]
    pub profile: Option<Choice<Profile>>,
    #[serde(default)]
    pub audio: AudioMode,
    /// x264 threads; 0 = x264's own choice (all cores).
    #[serde(default)]
    pub threads: u32,
}

fn default_codec() -> Choice<Codec> {
    Codec::Libx264.into()
}
fn default_crf() -> f64 {
    23.0
}
fn default_preset() -> Choice<Preset> {
    Preset::Medium.into()
}
fn default_profile() -> Option<Choice<Profile>> {
    Some(Profile::High.into())
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

impl EncodeConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.codec.check("encode.codec", || "\"libx264\"".into())?;
        if !(self.crf.is_finite() && (0.0..=51.0).contains(&self.crf)) {
            return Err(ConfigError::OutOfRange {
                key: "encode.crf",
                actual: self.crf.to_string(),
                expected: "must be in [0, 51]",
            });
        }
        self.preset.check("encode.preset", all_names::<Preset>)?;
        if let Some(profile) = &self.profile {
            profile.check("encode.profile", || {
                format!("{} or null", all_names::<Profile>())
            })?;
        }
        if self.threads > 128 {
            return Err(ConfigError::OutOfRange {
                key: "encode.threads",
                actual: self.threads.to_string(),
                expected: "must be in [0, 128]",
            });
        }
        Ok(())
    }
}
