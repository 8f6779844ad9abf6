//! The rules file of `framepipe check`: named rule sets, each applying to the files its glob
//! matches, each rule an expectation about one property of a media file.
//!
//! Strict on purpose (`deny_unknown_fields`): a misspelt rule must not silently pass. Errors name
//! the JSON path of the problem (`rule_sets[1].rules.fps.tolerance`).
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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

    fn validate(&self, path: &str) -> std::result::Result<(), String> {
        match *self {
            Range::Exact(x) if !x.is_finite() => Err(format!("{path}: must be a finite number")),
            Range::Bounds {
                min: None,
                max: None,
            } => Err(format!("{path}: give min, max or both")),
            Range::Bounds {
                min: Some(a),
                max: Some(b),
            } if a > b => Err(format!(
                "{path}: min {a} is greater than max {b}: no value can pass"
            )),
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
    38
}
fn default_picture_ratio() -> f64 {
    0.98
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
    0.5
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
    }

    fn validate(&self, at: &str) -> std::result::Result<(), String> {
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
                if !(a.value.is_finite() && a.value > 0.0) {
                    return Err(format!(
                        "{at}.{name}.value: must be a positive number, got {}",
                        a.value
                    ));
                }
                if !(a.tolerance.is_finite() && a.tolerance >= 0.0) {
                    return Err(format!(
                        "{at}.{name}.tolerance: must be >= 0, got {}",
                        a.tolerance
                    ));
                }
            }
        }
        if let Some(k) = self.keyframe_interval_max {
            if !(k.is_finite() && k > 0.0) {
                return Err(format!(
                    "{at}.keyframe_interval_max: must be a positive number of seconds, got {k}"
                ));
            }
        }
        if let Some(r) = &self.rotation {
            if let Some(bad) = r.iter().find(|d| !matches!(d, 0 | 90 | 180 | 270)) {
                return Err(format!(
                    "{at}.rotation: {bad} is not one of 0, 90, 180, 270"
                ));
            }
        }
        if let Some(r) = &self.color_range {
            if let Some(bad) = r.iter().find(|v| !matches!(v.as_str(), "tv" | "pc")) {
                return Err(format!("{at}.color_range: {bad:?} is not \"tv\" or \"pc\""));
            }
        }
        if let Some(a) = &self.audio {
            if let Some(c) = &a.channels {
                c.validate(&format!("{at}.audio.channels"))?;
            }
            if a.present == Some(false)
                && (a.codec.is_some() || a.channels.is_some() || a.sample_rate.is_some())
            {
                return Err(format!("{at}.audio: present is false but codec/channels/sample_rate are set: no file can pass"));
            }
        }
        if let Some(b) = &self.black {
            if !(b.max_seconds.is_finite() && b.max_seconds >= 0.0) {
                return Err(format!(
                    "{at}.black.max_seconds: must be >= 0, got {}",
                    b.max_seconds
                ));
            }
            if !(0.0..=1.0).contains(&b.picture_ratio) {
                return Err(format!(
                    "{at}.black.picture_ratio: must be in [0, 1], got {}",
                    b.picture_ratio
                ));
            }
        }
        if let Some(r) = &self.silence {
            if !(r.max_seconds.is_finite() && r.max_seconds >= 0.0) {
                return Err(format!(
                    "{at}.silence.max_seconds: must be >= 0, got {}",
                    r.max_seconds
                ));
            }
            if !(r.db_max.is_finite() && r.db_max <= 0.0) {
                return Err(format!(
                    "{at}.silence.db_max: must be a level in dBFS (<= 0), got {}",
                    r.db_max
                ));
            }
        }
        if let Some(l) = &self.loudness {
            if let Some(r) = &l.integrated_lufs {
                r.validate(&format!("{at}.loudness.integrated_lufs"))?;
            }
            if l.integrated_lufs.is_none() && l.true_peak_dbtp_max.is_none() {
                return Err(format!(
                    "{at}.loudness: give integrated_lufs, true_peak_dbtp_max or both"
                ));
            }
        }
        if let Some(t) = &self.tags {
            if t.labels.is_empty() {
                return Err(format!("{at}.tags.labels: give at least one label"));
            }
            if t.every_n_frames == 0 {
                return Err(format!("{at}.tags.every_n_frames: must be at least 1"));
            }
            if let Some(bad) = t.templates.iter().find(|x| x.matches("{}").count() != 1) {
                return Err(format!(
                    "{at}.tags.templates: {bad:?} must contain exactly one {{}}"
                ));
            }
            if t.must.is_empty() && t.must_not.is_empty() {
                return Err(format!("{at}.tags: give must and/or must_not expectations"));
            }
            for (key, list) in [("must", &t.must), ("must_not", &t.must_not)] {
                for (i, e) in list.iter().enumerate() {
                    if !t.labels.contains(&e.label) {
                        return Err(format!(
                            "{at}.tags.{key}[{i}].label: {:?} is not one of tags.labels",
                            e.label
                        ));
                    }
                    if !(0.0..=1.0).contains(&e.score) {
                        return Err(format!(
                            "{at}.tags.{key}[{i}].score: must be in [0, 1], got {}",
                            e.score
                        ));
                    }
                }
            }
        }
        if let Some(v) = &self.vae_anomalies {
            if v.every_n_frames == 0 {
                return Err(format!(
                    "{at}.vae_anomalies.every_n_frames: must be at least 1"
                ));
            }
            if !(v.sensitivity.is_finite() && v.sensitivity > 0.0 && v.sensitivity <= 100.0) {
                return Err(format!(
                    "{at}.vae_anomalies.sensitivity: must be in (0, 100], got {}",
                    v.sensitivity
                ));
            }
            if let Some([w, h]) = v.size {
                if w == 0 || h == 0 || w > 8192 || h > 8192 {
                    return Err(format!(
                        "{at}.vae_anomalies.size: [{w}, {h}] must be two sides in [1, 8192]"
                    ));
                }
            }
        }
        if let Some(f) = &self.frozen {
            if !(f.max_seconds.is_finite() && f.max_seconds >= 0.0) {
                return Err(format!(
                    "{at}.frozen.max_seconds: must be >= 0, got {}",
                    f.max_seconds
                ));
            }
            if !(f.max_difference.is_finite() && f.max_difference >= 0.0) {
                return Err(format!(
                    "{at}.frozen.max_difference: must be >= 0, got {}",
                    f.max_difference
                ));
            }
        }
        Ok(())
    }
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
                tags.model = crate::config::resolve_relative(path, &tags.model);
                if !tags.model.join("config.json").is_file() {
                    return Err(Error::config(
                        path,
                        format!(
                            "rule_sets[{i}].rules.tags.model: {} is not a CLIP model folder (no config.json)",
                            tags.model.display()
                        ),
                    ));
                }
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
            set.rules.validate(&format!("rule_sets[{i}].rules"))?;
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
