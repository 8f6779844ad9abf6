//! The rules file of `framepipe check`: named rule sets, each applying to the files its glob
//! matches, each rule an expectation about one property of a media file.
//!
//! Strict on purpose (`deny_unknown_fields`): a misspelt rule must not silently pass. Errors name
//! the JSON path of the problem (`rule_sets[1].rules.fps.tolerance`); a value serde accepts but
//! no file could meet is a [`RuleError`].
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Why a rule's value is refused: one variant per kind of check, each naming the JSON path of
/// the value (`key`), the value and what is expected. The texts are the ones `check` has always
/// printed (tests and users match on them), so a variant's `Display` must not change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// A number outside what the rule accepts; `expected` says what that is.
    #[error("{key}: {expected}, got {actual}")]
    OutOfRange {
        key: String,
        actual: f64,
        expected: &'static str,
    },
    /// A value outside its fixed set; `actual` is as the message shows it (strings quoted).
    #[error("{key}: {actual} is not {allowed}")]
    NotOneOf {
        key: String,
        actual: String,
        allowed: &'static str,
    },
    /// Nothing to check given where something must be; `what` says what to give.
    #[error("{key}: {what}")]
    Empty { key: String, what: &'static str },
    /// A frame step of 0.
    #[error("{key}: must be at least 1")]
    Zero { key: String },
    /// An exact value that is infinite or NaN.
    #[error("{key}: must be a finite number")]
    NotFinite { key: String },
    /// Bounds the wrong way round: no value lies between them.
    #[error("{key}: min {min} is greater than max {max}: no value can pass")]
    EmptyRange { key: String, min: f64, max: f64 },
    /// `audio.present = false` together with expectations about that audio.
    #[error("{key}: present is false but codec/channels/sample_rate are set: no file can pass")]
    AbsentAudioConstrained { key: String },
    /// A prompt template without exactly one `{}` placeholder.
    #[error("{key}: {template:?} must contain exactly one {{}}")]
    Template { key: String, template: String },
    /// A frame size with a side of 0 or beyond 8192.
    #[error("{key}: [{width}, {height}] must be two sides in [1, 8192]")]
    Size {
        key: String,
        width: u32,
        height: u32,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    pub rule_sets: Vec<RuleSet>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub name: String,
    /// Glob over the file's path as given (or found under a given folder); default: every file.
    #[serde(default)]
    pub files: Option<String>,
    pub rules: Rules,
}

/// A number that must lie in `[min, max]` (either bound optional), or equal `exact`.
/// Written as a number or `{"min": .., "max": ..}`; any other key is refused by name.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Range {
    Exact(f64),
    Bounds { min: Option<f64>, max: Option<f64> },
}

impl<'de> Deserialize<'de> for Range {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Range, D::Error> {
        struct RangeVisitor;
        impl<'de> serde::de::Visitor<'de> for RangeVisitor {
            type Value = Range;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or {\"min\": .., \"max\": ..}")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Range, E> {
                Ok(Range::Exact(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Range, E> {
                Ok(Range::Exact(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Range, E> {
                Ok(Range::Exact(v as f64))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Range, A::Error> {
                let (mut min, mut max) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "min" => &mut min,
                        "max" => &mut max,
                        other => {
                            return Err(serde::de::Error::unknown_field(other, &["min", "max"]))
                        }
                    };
                    if slot.is_some() {
                        return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
                    }
                    *slot = Some(map.next_value::<Option<f64>>()?);
                }
                Ok(Range::Bounds {
                    min: min.flatten(),
                    max: max.flatten(),
                })
            }
        }
        d.deserialize_any(RangeVisitor)
    }
}

impl Range {
    pub fn contains(&self, v: f64) -> bool {
        match *self {
            Range::Exact(x) => (v - x).abs() < 1e-9,
            Range::Bounds { min, max } => min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m),
        }
    }

    fn validate(&self, key: &str) -> std::result::Result<(), RuleError> {
        match *self {
            Range::Exact(x) if !x.is_finite() => Err(RuleError::NotFinite {
                key: key.to_string(),
            }),
            Range::Bounds {
                min: None,
                max: None,
            } => Err(RuleError::Empty {
                key: key.to_string(),
                what: "give min, max or both",
            }),
            Range::Bounds {
                min: Some(min),
                max: Some(max),
            } if min > max => Err(RuleError::EmptyRange {
                key: key.to_string(),
                min,
                max,
            }),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Range::Exact(x) => write!(f, "{x}"),
            Range::Bounds {
                min: Some(a),
                max: Some(b),
            } => write!(f, "{a}..{b}"),
            Range::Bounds {
                min: Some(a),
                max: None,
            } => write!(f, ">= {a}"),
            Range::Bounds {
                min: None,
                max: Some(b),
            } => write!(f, "<= {b}"),
            Range::Bounds {
                min: None,
                max: None,
            } => write!(f, "any"),
        }
    }
}

/// A value with a tolerance (`fps`, `aspect_ratio`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Approx {
    pub value: f64,
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

fn default_tolerance() -> f64 {
    0.01
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Allowed container names (any of the demuxer's names, e.g. `mp4`, `matroska`).
    pub container: Option<Vec<String>>,
    pub video_codec: Option<Vec<String>>,
    /// Allowed codec profiles as FFmpeg names them (`High`, `Main`, ...).
    pub profile: Option<Vec<String>>,
    pub pixel_format: Option<Vec<String>>,
    /// Displayed size (rotation and sample aspect ratio applied).
    pub width: Option<Range>,
    pub height: Option<Range>,
    pub aspect_ratio: Option<Approx>,
    pub fps: Option<Approx>,
    /// Seconds.
    pub duration: Option<Range>,
    /// Overall bits per second.
    pub bitrate: Option<Range>,
    /// Longest distance between keyframes, in seconds.
    pub keyframe_interval_max: Option<f64>,
    /// MP4 `moov` box before `mdat` (web playback starts before the download ends).
    pub faststart: Option<bool>,
    /// Allowed clockwise display rotations.
    pub rotation: Option<Vec<u32>>,
    /// `tv` (limited) or `pc` (full).
    pub color_range: Option<Vec<String>>,
    pub color_primaries: Option<Vec<String>>,
    pub audio: Option<AudioRules>,
    /// Every packet decodes, no frame is concealed, the frame count matches the container.
    pub decodes_cleanly: Option<bool>,
    pub black: Option<BlackRule>,
    pub frozen: Option<FrozenRule>,
    /// Number of scenes (content detector, default settings).
    pub scenes: Option<Range>,
    pub silence: Option<SilenceRule>,
    pub loudness: Option<LoudnessRule>,
    /// Zero-shot CLIP expectations on sampled frames.
    pub tags: Option<TagsRule>,
    /// Visual glitches: frames a VAE reconstructs far worse than the rest of their scene.
    pub vae_anomalies: Option<VaeAnomaliesRule>,
    /// Burned-in text (subtitles, titles, watermarks) on sampled frames, read with Tesseract.
    pub burned_in_text: Option<TextRule>,
    /// Scoring heads (aesthetics, NSFW, ...) on the file's mean CLIP embedding, each held to
    /// its bounds.
    pub heads: Option<HeadsRule>,
    /// Not a copy of footage already in a dedup index: no shot of the file is more similar to
    /// an indexed clip than `max_similarity`.
    pub duplicate_of: Option<DuplicateOfRule>,
}

/// The file's shots (content detector; longer ones cut into pieces of at most `max_seconds`,
/// as `run` cuts clips), each signed as `run` signs clips ([`crate::clips::signature`]) and
/// looked up in a `framepipe dedup` index.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicateOfRule {
    /// The index folder (relative to the rules file).
    pub index: std::path::PathBuf,
    /// The highest signature similarity to an indexed clip that passes (0..1).
    #[serde(default = "default_max_similarity")]
    pub max_similarity: f64,
    /// Pieces a long shot is cut into, in seconds (the pipeline's `clips.max_seconds`).
    #[serde(default = "default_duplicate_piece")]
    pub max_seconds: f64,
    /// The index, read when the rules load.
    #[serde(skip)]
    pub lookup: Option<std::sync::Arc<crate::dedup::Lookup>>,
}

fn default_max_similarity() -> f64 {
    crate::dedup::DEFAULT_THRESHOLD
}

fn default_duplicate_piece() -> f64 {
    60.0
}

impl DuplicateOfRule {
    fn validate(&self, at: &str) -> std::result::Result<(), RuleError> {
        if !(self.max_similarity > 0.0 && self.max_similarity <= 1.0) {
            return Err(RuleError::OutOfRange {
                key: format!("{at}.max_similarity"),
                actual: self.max_similarity,
                expected: "must be above 0 and at most 1",
            });
        }
        if !(self.max_seconds > 0.0 && self.max_seconds.is_finite()) {
            return Err(RuleError::OutOfRange {
                key: format!("{at}.max_seconds"),
                actual: self.max_seconds,
                expected: "must be a positive number of seconds",
            });
        }
        Ok(())
    }
}

/// Scoring heads (see `crate::heads`, the models `clips.heads` takes) on the mean CLIP
/// embedding of the sampled frames, the same signature a clip is scored on in `run`. Each
/// head's score must lie within its bounds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeadsRule {
    /// A Hugging Face CLIP folder; relative paths resolve against the rules file's folder.
    pub model: std::path::PathBuf,
    #[serde(default = "default_tag_every")]
    pub every_n_frames: u32,
    /// The heads by name (the name the outcome reports), each with its files and bounds.
    pub scores: std::collections::BTreeMap<String, HeadCheck>,
}

/// One head of the `heads` rule: its files (as `clips.heads` takes them; relative paths resolve
/// against the rules file's folder) and the accepted range of its score (either end open).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeadCheck {
    pub weights: std::path::PathBuf,
    pub config: std::path::PathBuf,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// The head itself, read when the rules are loaded.
    #[serde(skip)]
    pub head: Option<crate::heads::Head>,
}

impl HeadCheck {
    /// The accepted range of the head's score.
    pub fn bounds(&self) -> Range {
        Range::Bounds {
            min: self.min,
            max: self.max,
        }
    }
}

impl HeadsRule {
    fn validate(&self, at: &str) -> std::result::Result<(), RuleError> {
        if self.every_n_frames == 0 {
            return Err(RuleError::Zero {
                key: format!("{at}.every_n_frames"),
            });
        }
        if self.scores.is_empty() {
            return Err(RuleError::Empty {
                key: format!("{at}.scores"),
                what: "give at least one head with its files and bounds",
            });
        }
        for (name, head) in &self.scores {
            head.bounds().validate(&format!("{at}.scores.{name}"))?;
        }
        Ok(())
    }
}

/// No sampled frame shows burned-in text covering more than `max_area` of the picture (word
/// boxes Tesseract reads with at least `min_confidence`; the reader `clips.text` uses).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TextRule {
    pub max_area: f64,
    /// One frame read every this many seconds (from the first).
    #[serde(default = "default_text_every")]
    pub every_seconds: f64,
    /// Tesseract language(s), e.g. `"eng"` or `"eng+deu"`.
    #[serde(default = "default_text_language")]
    pub language: String,
    #[serde(default = "default_text_confidence")]
    pub min_confidence: f32,
}

fn default_text_every() -> f64 {
    1.0
}
fn default_text_language() -> String {
    "eng".into()
}
fn default_text_confidence() -> f32 {
    crate::ocr::TextSettings::default().min_confidence
}

impl TextRule {
    fn validate(&self, at: &str) -> std::result::Result<(), RuleError> {
        unit_interval(format!("{at}.max_area"), self.max_area)?;
        if !(self.every_seconds.is_finite() && self.every_seconds > 0.0) {
            return Err(RuleError::OutOfRange {
                key: format!("{at}.every_seconds"),
                actual: self.every_seconds,
                expected: "must be a positive number of seconds",
            });
        }
        let c = f64::from(self.min_confidence);
        if !(c.is_finite() && (0.0..=100.0).contains(&c)) {
            return Err(RuleError::OutOfRange {
                key: format!("{at}.min_confidence"),
                actual: c,
                expected: "must be 0 to 100",
            });
        }
        Ok(())
    }
}

/// Frames whose VAE round trip (encode, decode, PSNR against the frame) falls more than
/// `sensitivity` MADs below their scene's median (content detector scenes; see
/// `crate::reconstruction`): noise bursts, garbage blocks and frames that still decode without
/// an error. Fails when more than `max_frames` frames are flagged.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VaeAnomaliesRule {
    /// A VAE folder with a decoder (e.g. taef2); relative paths resolve against the rules file.
    pub model: std::path::PathBuf,
    #[serde(default)]
    pub max_frames: u64,
    /// Frames are scaled to this size first; `null`: the file's own size, rounded to the
    /// model's multiple. Smaller is faster (the model's cost follows the pixels).
    #[serde(default = "default_anomaly_size")]
    pub size: Option<[u32; 2]>,
    #[serde(default = "default_every")]
    pub every_n_frames: u32,
    #[serde(default = "default_anomaly_sensitivity")]
    pub sensitivity: f64,
    /// The model's latent grid (pixels per latent), read when the rules are loaded.
    #[serde(skip)]
    pub downsampling: u32,
}

fn default_anomaly_size() -> Option<[u32; 2]> {
    Some([512, 288])
}
fn default_every() -> u32 {
    1
}
fn default_anomaly_sensitivity() -> f64 {
    crate::reconstruction::DEFAULT_SENSITIVITY
}

/// CLIP tags of sampled frames: each `must` label reaches its score on some sample, no
/// `must_not` label reaches its score on any. Scores are the softmax over `labels`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TagsRule {
    /// A Hugging Face CLIP folder; relative paths resolve against the rules file's folder.
    pub model: std::path::PathBuf,
    pub labels: Vec<String>,
    #[serde(default = "default_tag_templates")]
    pub templates: Vec<String>,
    #[serde(default = "default_tag_every")]
    pub every_n_frames: u32,
    #[serde(default)]
    pub must: Vec<TagExpectation>,
    #[serde(default)]
    pub must_not: Vec<TagExpectation>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TagExpectation {
    pub label: String,
    pub score: f64,
}

fn default_tag_templates() -> Vec<String> {
    vec!["a photo of {}.".into()]
}
fn default_tag_every() -> u32 {
    15
}

/// No silent stretch longer than `max_seconds`: 20 ms windows whose sample peak stays below
/// `db_max` dBFS (FFmpeg silencedetect's default level is -60 dB).
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRule {
    pub max_seconds: f64,
    #[serde(default = "default_silence_db")]
    pub db_max: f64,
}

fn default_silence_db() -> f64 {
    -60.0
}

/// EBU R128: integrated loudness (LUFS) in a range and/or a true-peak ceiling (dBTP).
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoudnessRule {
    pub integrated_lufs: Option<Range>,
    pub true_peak_dbtp_max: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AudioRules {
    pub present: Option<bool>,
    pub codec: Option<Vec<String>>,
    pub channels: Option<Range>,
    pub sample_rate: Option<Vec<u32>>,
}

/// No black stretch longer than `max_seconds`. A frame is black when at least `picture_ratio`
/// of its pixels have luma at most `luma_max` (8-bit, limited range; FFmpeg blackdetect's
/// defaults are 0.98 and 16 + 0.1 * 219 ≈ 38).
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BlackRule {
    pub max_seconds: f64,
    #[serde(default = "default_luma_max")]
    pub luma_max: u8,
    #[serde(default = "default_picture_ratio")]
    pub picture_ratio: f64,
}

fn default_luma_max() -> u8 {
    crate::clips::looks::BLACK_LUMA_MAX
}
fn default_picture_ratio() -> f64 {
    crate::clips::looks::BLACK_PICTURE_RATIO
}

/// No frozen stretch longer than `max_seconds`: consecutive frames whose mean absolute luma
/// difference (0-255) stays at or below `max_difference`. Black frames (as the black rule, or
/// its defaults, defines them) do not count: a black stretch is the black rule's finding.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FrozenRule {
    pub max_seconds: f64,
    #[serde(default = "default_max_difference")]
    pub max_difference: f64,
}

fn default_max_difference() -> f64 {
    crate::clips::looks::FROZEN_MAX_DIFFERENCE
}

impl Rules {
    /// True when some rule needs decoded pictures or samples (one decode serves all of them).
    pub fn needs_decode(&self) -> bool {
        self.decodes_cleanly == Some(true)
            || self.black.is_some()
            || self.frozen.is_some()
            || self.scenes.is_some()
            || self.silence.is_some()
            || self.loudness.is_some()
            || self.tags.is_some()
            || self.vae_anomalies.is_some()
            || self.burned_in_text.is_some()
            || self.heads.is_some()
            || self.duplicate_of.is_some()
    }

    /// Checks the values serde cannot: ranges that admit something, positive rates, known
    /// names. Returns the first problem in the order of the steps below, which decides the
    /// message when several rules are wrong.
    fn validate(&self, at: &str) -> std::result::Result<(), RuleError> {
        self.validate_numbers(at)?;
        self.validate_names(at)?;
        if let Some(a) = &self.audio {
            a.validate(&format!("{at}.audio"))?;
        }
        if let Some(b) = &self.black {
            b.validate(&format!("{at}.black"))?;
        }
        if let Some(r) = &self.silence {
            r.validate(&format!("{at}.silence"))?;
        }
        if let Some(l) = &self.loudness {
            l.validate(&format!("{at}.loudness"))?;
        }
        if let Some(t) = &self.tags {
            t.validate(&format!("{at}.tags"))?;
        }
        if let Some(v) = &self.vae_anomalies {
            v.validate(&format!("{at}.vae_anomalies"))?;
        }
        if let Some(f) = &self.frozen {
            f.validate(&format!("{at}.frozen"))?;
        }
        if let Some(t) = &self.burned_in_text {
            t.validate(&format!("{at}.burned_in_text"))?;
        }
        if let Some(h) = &self.heads {
            h.validate(&format!("{at}.heads"))?;
        }
        if let Some(d) = &self.duplicate_of {
            d.validate(&format!("{at}.duplicate_of"))?;
        }
        Ok(())
    }

    /// The ranges, `aspect_ratio`, `fps` and `keyframe_interval_max`.
    fn validate_numbers(&self, at: &str) -> std::result::Result<(), RuleError> {
        for (name, range) in [
            ("width", &self.width),
            ("height", &self.height),
            ("duration", &self.duration),
            ("bitrate", &self.bitrate),
            ("scenes", &self.scenes),
        ] {
            if let Some(r) = range {
                r.validate(&format!("{at}.{name}"))?;
            }
        }
        for (name, approx) in [("aspect_ratio", &self.aspect_ratio), ("fps", &self.fps)] {
            if let Some(a) = approx {
                a.validate(&format!("{at}.{name}"))?;
            }
        }
        if let Some(k) = self.keyframe_interval_max {
            if !(k.is_finite() && k > 0.0) {
                return Err(RuleError::OutOfRange {
                    key: format!("{at}.keyframe_interval_max"),
                    actual: k,
                    expected: "must be a positive number of seconds",
                });
            }
        }
        Ok(())
    }

    /// `rotation` and `color_range`: values from a fixed set.
    fn validate_names(&self, at: &str) -> std::result::Result<(), RuleError> {
        if let Some(r) = &self.rotation {
            if let Some(bad) = r.iter().find(|d| !matches!(d, 0 | 90 | 180 | 270)) {
                return Err(RuleError::NotOneOf {
                    key: format!("{at}.rotation"),
                    actual: bad.to_string(),
                    allowed: "one of 0, 90, 180, 270",
                });
            }
        }
        if let Some(r) = &self.color_range {
            if let Some(bad) = r.iter().find(|v| !matches!(v.as_str(), "tv" | "pc")) {
                return Err(RuleError::NotOneOf {
                    key: format!("{at}.color_range"),
                    actual: format!("{bad:?}"),
                    allowed: "\"tv\" or \"pc\"",
                });
            }
        }
        Ok(())
    }
}

/// `key`'s value `v` is a finite number of at least 0 (seconds, differences, tolerances).
fn non_negative(key: String, v: f64) -> std::result::Result<(), RuleError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(RuleError::OutOfRange {
            key,
            actual: v,
            expected: "must be >= 0",
        })
    }
}

/// `key`'s value `v` is a score, in [0, 1].
fn unit_interval(key: String, v: f64) -> std::result::Result<(), RuleError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(RuleError::OutOfRange {
            key,
            actual: v,
            expected: "must be in [0, 1]",
        })
    }
}

impl Approx {
    fn validate(&self, at: &str) -> std::result::Result<(), RuleError> {
        if !(self.value.is_finite() && self.value > 0.0) {
            return Err(RuleError::OutOfRange {
                key: format!("{at}.value"),
                actual: self.value,
                expected: "must be a positive number",
            });
        }
        non_negative(format!("{at}.tolerance"), self.tolerance)
    }
}

impl AudioRules {
    fn validate(&self, at: &str) -> std::result::Result<(), RuleError> {
        if let Some(c) = &self.channels {
            c.validate(&format!("{at}.channels"))?;
        }
        if self.present == Some(false)
            && (self.codec.is_some() || self.channels.is_some() || self.sample_rate.is_some())
        {
            return Err(RuleError::AbsentAudioConstrained {
                key: at.to_string(),
            });
        }
        Ok(())
    }
}

impl BlackRule {
    fn validate(&self, at: &str) -> std::result::Result<(), RuleError> {
        non_negative(format!("{at}.max_seconds"), self.max_seconds)?;
        unit_interval(format!("{at}.picture_ratio"), self.picture_ratio)
    }
}

impl SilenceRule {
    fn validate(&self, at: &str) -> std::result::Result<(), RuleError> {
        non_negative(format!("{at}.max_seconds"), self.max_seconds)?;
        if !(self.db_max.is_finite() && self.db_max <= 0.0) {
            return Err(RuleError::OutOfRange {
                key: format!("{at}.db_max"),
                actual: self.db_max,
                expected: "must be a level in dBFS (<= 0)",
            });
        }
        Ok(())
    }
}

impl LoudnessRule {
    fn validate(&self, at: &str) -> std::result::Result<(), RuleError> {
        if let Some(r) = &self.integrated_lufs {
            r.validate(&format!("{at}.integrated_lufs"))?;
        }
        if self.integrated_lufs.is_none() && self.true_peak_dbtp_max.is_none() {
            return Err(RuleError::Empty {
                key: at.to_string(),
                what: "give integrated_lufs, true_peak_dbtp_max or both",
            });
        }
        Ok(())
    }
}

impl TagsRule {
    fn validate(&self, at: &str) -> std::result::Result<(), RuleError> {
        if self.labels.is_empty() {
            return Err(RuleError::Empty {
                key: format!("{at}.labels"),
                what: "give at least one label",
            });
        }
        if self.every_n_frames == 0 {
            return Err(RuleError::Zero {
                key: format!("{at}.every_n_frames"),
            });
        }
        if let Some(bad) = self.templates.iter().find(|x| x.matches("{}").count() != 1) {
            return Err(RuleError::Template {
                key: format!("{at}.templates"),
                template: bad.clone(),
            });
        }
        if self.must.is_empty() && self.must_not.is_empty() {
            return Err(RuleError::Empty {
                key: at.to_string(),
                what: "give must and/or must_not expectations",
            });
        }
        for (key, list) in [("must", &self.must), ("must_not", &self.must_not)] {
            for (i, e) in list.iter().enumerate() {
                if !self.labels.contains(&e.label) {
                    return Err(RuleError::NotOneOf {
                        key: format!("{at}.{key}[{i}].label"),
                        actual: format!("{:?}", e.label),
                        allowed: "one of tags.labels",
                    });
                }
                unit_interval(format!("{at}.{key}[{i}].score"), e.score)?;
            }
        }
        Ok(())
    }
}

impl VaeAnomaliesRule {
    fn validate(&self, at: &str) -> std::result::Result<(), RuleError> {
        if self.every_n_frames == 0 {
            return Err(RuleError::Zero {
                key: format!("{at}.every_n_frames"),
            });
        }
        let s = self.sensitivity;
        if !(s.is_finite() && s > 0.0 && s <= 100.0) {
            return Err(RuleError::OutOfRange {
                key: format!("{at}.sensitivity"),
                actual: s,
                expected: "must be in (0, 100]",
            });
        }
        if let Some([width, height]) = self.size {
            if width == 0 || height == 0 || width > 8192 || height > 8192 {
                return Err(RuleError::Size {
                    key: format!("{at}.size"),
                    width,
                    height,
                });
            }
        }
        Ok(())
    }
}

impl FrozenRule {
    fn validate(&self, at: &str) -> std::result::Result<(), RuleError> {
        non_negative(format!("{at}.max_seconds"), self.max_seconds)?;
        non_negative(format!("{at}.max_difference"), self.max_difference)
    }
}

/// A rule's CLIP model folder, resolved against the rules file; refused (naming `key`) when it
/// has no `config.json`. The `tags` and `heads` rules both name one.
fn clip_folder(
    rules_file: &Path,
    folder: &Path,
    key: &str,
) -> std::result::Result<std::path::PathBuf, String> {
    let folder = crate::config::resolve_relative(rules_file, folder);
    if !folder.join("config.json").is_file() {
        return Err(format!(
            "{key}: {} is not a CLIP model folder (no config.json)",
            folder.display()
        ));
    }
    Ok(folder)
}

/// Resolves the rule's paths against the rules file and reads every head, refusing a head that
/// cannot score the CLIP model's embeddings (the model is asked its embedding size).
fn load_heads(
    rules_file: &Path,
    rule: &mut HeadsRule,
    at: &str,
) -> std::result::Result<(), String> {
    rule.model = clip_folder(rules_file, &rule.model, &format!("{at}.model"))?;
    let device = crate::device::select(crate::device::DeviceRequest::Auto, true)
        .map_err(|m| format!("{at}: {m}"))?
        .name;
    let dim = crate::tagging::embedding_dim(&rule.model, device)
        .map_err(|m| format!("{at}.model: {m}"))?;
    for (name, check) in rule.scores.iter_mut() {
        check.weights = crate::config::resolve_relative(rules_file, &check.weights);
        check.config = crate::config::resolve_relative(rules_file, &check.config);
        let key = format!("{at}.scores.{name}");
        let head = crate::heads::Head::load(name, &check.weights, &check.config)
            .map_err(|e| format!("{key}: {e}"))?;
        if head.input_dim() != dim {
            return Err(format!(
                "{key}: the head takes embeddings of {} values, but the CLIP model makes {dim} ({})",
                head.input_dim(),
                check.config.display()
            ));
        }
        check.head = Some(head);
    }
    Ok(())
}

/// Loads the rule's model (libtorch) and returns its latent grid, refusing a folder without a
/// decoder and a `size` off the grid.
fn vae_grid(rule: &VaeAnomaliesRule, at: &str) -> std::result::Result<u32, String> {
    if !rule.model.is_dir() {
        return Err(format!(
            "{at}.model: {}: no such folder",
            rule.model.display()
        ));
    }
    let device = crate::device::select(crate::device::DeviceRequest::Auto, true)
        .map_err(|m| format!("{at}: {m}"))?
        .name;
    let facts = crate::torch::Torch::get()
        .and_then(|t| {
            Ok(t.call(&framepipe_proto::ops::VaeInfo {
                on: framepipe_proto::ops::ModelOn {
                    model: rule.model.clone(),
                    device,
                },
            })?)
        })
        .map_err(|m| format!("{at}.model: {m}"))?;
    if !facts.decoder {
        return Err(format!(
            "{at}.model: {} has no decoder (no *decoder*.safetensors): reconstruction needs one",
            rule.model.display()
        ));
    }
    let grid = facts.downsampling.max(1) as u32;
    if let Some([w, h]) = rule.size {
        if w % grid != 0 || h % grid != 0 {
            return Err(format!(
                "{at}.size: [{w}, {h}] is not on the model's latent grid: both sides must be multiples of {grid}"
            ));
        }
    }
    Ok(grid)
}

impl RulesFile {
    /// Reads, parses and validates a rules file. Errors name the file and the JSON path.
    pub fn load(path: &Path) -> Result<RulesFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(path, format!("cannot read: {e}")))?;
        let mut rules = RulesFile::parse(&text).map_err(|m| Error::config(path, m))?;
        for (i, set) in rules.rule_sets.iter_mut().enumerate() {
            if let Some(tags) = set.rules.tags.as_mut() {
                let key = format!("rule_sets[{i}].rules.tags.model");
                tags.model =
                    clip_folder(path, &tags.model, &key).map_err(|m| Error::config(path, m))?;
            }
            if let Some(heads) = set.rules.heads.as_mut() {
                let at = format!("rule_sets[{i}].rules.heads");
                load_heads(path, heads, &at).map_err(|m| Error::config(path, m))?;
            }
            if let Some(rule) = set.rules.duplicate_of.as_mut() {
                rule.index = crate::config::resolve_relative(path, &rule.index);
                let lookup = crate::dedup::Lookup::load(&rule.index).map_err(|e| {
                    Error::config(
                        path,
                        format!("rule_sets[{i}].rules.duplicate_of.index: {e}"),
                    )
                })?;
                rule.lookup = Some(std::sync::Arc::new(lookup));
            }
            if let Some(vae) = set.rules.vae_anomalies.as_mut() {
                vae.model = crate::config::resolve_relative(path, &vae.model);
                let at = format!("rule_sets[{i}].rules.vae_anomalies");
                vae.downsampling = vae_grid(vae, &at).map_err(|m| Error::config(path, m))?;
            }
        }
        Ok(rules)
    }

    pub fn parse(text: &str) -> std::result::Result<RulesFile, String> {
        let rules: RulesFile = crate::strict_json::parse(text)?;
        if rules.rule_sets.is_empty() {
            return Err("rule_sets: empty; give at least one rule set".into());
        }
        for (i, set) in rules.rule_sets.iter().enumerate() {
            if let Some(glob) = &set.files {
                globset::Glob::new(glob).map_err(|e| format!("rule_sets[{i}].files: {e}"))?;
            }
            set.rules
                .validate(&format!("rule_sets[{i}].rules"))
                .map_err(|e| e.to_string())?;
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_json_path() {
        let err = RulesFile::parse(
            r#"{"rule_sets": [{"name": "a", "rules": {"fps": {"value": 30, "tol": 1}}}]}"#,
        )
        .unwrap_err();
        assert!(err.starts_with("rule_sets[0].rules.fps"), "{err}");
        assert!(err.contains("unknown field `tol`"), "{err}");
        let err = RulesFile::parse(
            r#"{"rule_sets": [{"name": "a", "rules": {"width": {"min": 10, "max": 5}}}]}"#,
        )
        .unwrap_err();
        assert!(
            err.contains("rule_sets[0].rules.width: min 10 is greater than max 5"),
            "{err}"
        );
        let err =
            RulesFile::parse(r#"{"rule_sets": [{"name": "a", "rules": {"duration": "long"}}]}"#)
                .unwrap_err();
        assert!(err.starts_with("rule_sets[0].rules.duration"), "{err}");
        let err = RulesFile::parse(r#"{"rule_sets": []}"#).unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let err = RulesFile::parse(r#"{"rule_sets": [{"name": "a", "files": "[", "rules": {}}]}"#)
            .unwrap_err();
        assert!(err.starts_with("rule_sets[0].files"), "{err}");
    }

    /// Every refusal of `validate`, with the text `check` prints for it.
    #[test]
    fn rule_error_texts() {
        let at = "rule_sets[0].rules";
        let vae = r#""vae_anomalies": {"model": "m""#;
        for (rules, expected) in [
            (r#""width": {"min": null}"#, "width: give min, max or both"),
            (
                r#""scenes": {"min": 3, "max": 2.5}"#,
                "scenes: min 3 is greater than max 2.5: no value can pass",
            ),
            (
                r#""fps": {"value": 0}"#,
                "fps.value: must be a positive number, got 0",
            ),
            (
                r#""aspect_ratio": {"value": 1.5, "tolerance": -0.1}"#,
                "aspect_ratio.tolerance: must be >= 0, got -0.1",
            ),
            (
                r#""keyframe_interval_max": -2"#,
                "keyframe_interval_max: must be a positive number of seconds, got -2",
            ),
            (
                r#""rotation": [0, 45]"#,
                "rotation: 45 is not one of 0, 90, 180, 270",
            ),
            (
                r#""color_range": ["tv", "full"]"#,
                r#"color_range: "full" is not "tv" or "pc""#,
            ),
            (
                r#""audio": {"channels": {}}"#,
                "audio.channels: give min, max or both",
            ),
            (
                r#""audio": {"present": false, "codec": ["aac"]}"#,
                "audio: present is false but codec/channels/sample_rate are set: no file can pass",
            ),
            (
                r#""black": {"max_seconds": -1}"#,
                "black.max_seconds: must be >= 0, got -1",
            ),
            (
                r#""black": {"max_seconds": 1, "picture_ratio": 1.5}"#,
                "black.picture_ratio: must be in [0, 1], got 1.5",
            ),
            (
                r#""silence": {"max_seconds": -0.5}"#,
                "silence.max_seconds: must be >= 0, got -0.5",
            ),
            (
                r#""silence": {"max_seconds": 1, "db_max": 3}"#,
                "silence.db_max: must be a level in dBFS (<= 0), got 3",
            ),
            (
                r#""loudness": {"integrated_lufs": {"min": -10, "max": -20}}"#,
                "loudness.integrated_lufs: min -10 is greater than max -20: no value can pass",
            ),
            (
                r#""loudness": {}"#,
                "loudness: give integrated_lufs, true_peak_dbtp_max or both",
            ),
            (
                r#""duplicate_of": {"index": "i", "max_similarity": 1.5}"#,
                "duplicate_of.max_similarity: must be above 0 and at most 1, got 1.5",
            ),
            (
                r#""duplicate_of": {"index": "i", "max_seconds": 0}"#,
                "duplicate_of.max_seconds: must be a positive number of seconds, got 0",
            ),
            (
                r#""heads": {"model": "m", "scores": {}}"#,
                "heads.scores: give at least one head with its files and bounds",
            ),
            (
                r#""heads": {"model": "m", "every_n_frames": 0, "scores": {"a": {"weights": "w", "config": "c", "min": 1}}}"#,
                "heads.every_n_frames: must be at least 1",
            ),
            (
                r#""heads": {"model": "m", "scores": {"aesthetic": {"weights": "w", "config": "c"}}}"#,
                "heads.scores.aesthetic: give min, max or both",
            ),
            (
                r#""heads": {"model": "m", "scores": {"aesthetic": {"weights": "w", "config": "c", "min": 6, "max": 5}}}"#,
                "heads.scores.aesthetic: min 6 is greater than max 5: no value can pass",
            ),
            (
                r#""tags": {"model": "m", "labels": []}"#,
                "tags.labels: give at least one label",
            ),
            (
                r#""tags": {"model": "m", "labels": ["a"], "every_n_frames": 0}"#,
                "tags.every_n_frames: must be at least 1",
            ),
            (
                r#""tags": {"model": "m", "labels": ["a"], "templates": ["{}{}"]}"#,
                r#"tags.templates: "{}{}" must contain exactly one {}"#,
            ),
            (
                r#""tags": {"model": "m", "labels": ["a"]}"#,
                "tags: give must and/or must_not expectations",
            ),
            (
                r#""tags": {"model": "m", "labels": ["a"], "must_not": [{"label": "b", "score": 0.5}]}"#,
                r#"tags.must_not[0].label: "b" is not one of tags.labels"#,
            ),
            (
                r#""tags": {"model": "m", "labels": ["a"], "must": [{"label": "a", "score": 2}]}"#,
                "tags.must[0].score: must be in [0, 1], got 2",
            ),
            (
                &format!(r#"{vae}, "every_n_frames": 0}}"#),
                "vae_anomalies.every_n_frames: must be at least 1",
            ),
            (
                &format!(r#"{vae}, "sensitivity": 0}}"#),
                "vae_anomalies.sensitivity: must be in (0, 100], got 0",
            ),
            (
                &format!(r#"{vae}, "size": [0, 288]}}"#),
                "vae_anomalies.size: [0, 288] must be two sides in [1, 8192]",
            ),
            (
                r#""frozen": {"max_seconds": -3}"#,
                "frozen.max_seconds: must be >= 0, got -3",
            ),
            (
                r#""frozen": {"max_seconds": 1, "max_difference": -0.25}"#,
                "frozen.max_difference: must be >= 0, got -0.25",
            ),
        ] {
            let text = format!(r#"{{"rule_sets": [{{"name": "a", "rules": {{{rules}}}}}]}}"#);
            let err = RulesFile::parse(&text).unwrap_err();
            assert_eq!(err, format!("{at}.{expected}"), "{rules}");
        }
        // Not reachable from JSON (no infinite numbers there).
        assert_eq!(
            Range::Exact(f64::NAN)
                .validate("x")
                .unwrap_err()
                .to_string(),
            "x: must be a finite number"
        );
    }

    #[test]
    fn ranges() {
        assert!(Range::Exact(3.0).contains(3.0));
        assert!(Range::Bounds {
            min: Some(1.0),
            max: None
        }
        .contains(5.0));
        assert!(!Range::Bounds {
            min: None,
            max: Some(1.0)
        }
        .contains(5.0));
    }
}
