//! `clips.filters`: a clip's scores against the configured bounds, and every reason it fails
//! (all of them, not just the first), as `clips.jsonl`'s `dropped` strings and the report's
//! per-reason counts.
use std::collections::BTreeMap;
use std::fmt;

use crate::config::ClipsConfig;

/// One clip's scores, as the filters see them.
#[derive(Debug, Clone, Copy)]
pub struct ClipScores<'a> {
    pub motion: f64,
    pub blank: f64,
    pub frozen: f64,
    /// The text area read on the clip (`None`: no text was read).
    pub text_area: Option<f64>,
    /// Head scores by name (absent for a clip without an embedding).
    pub heads: &'a BTreeMap<String, f64>,
}

/// Why a clip is out.
#[derive(Debug, Clone, PartialEq)]
pub enum DropReason {
    Blank {
        value: f64,
        max: f64,
    },
    Frozen {
        value: f64,
        max: f64,
    },
    TextArea {
        value: f64,
        max: f64,
    },
    Motion {
        value: f64,
        min: f64,
    },
    /// A head's score outside its bounds, or missing (the clip has no embedding to score).
    Head {
        name: String,
        value: Option<f64>,
        bound: Bound,
    },
}

/// Which side of a head's range a score fell out of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Min(f64),
    Max(f64),
}

impl DropReason {
    /// The report's counting key: `blank`, `frozen`, `motion` or `heads.<name>`.
    pub fn key(&self) -> String {
        match self {
            DropReason::Blank { .. } => "blank".into(),
            DropReason::Frozen { .. } => "frozen".into(),
            DropReason::TextArea { .. } => "text_area".into(),
            DropReason::Motion { .. } => "motion".into(),
            DropReason::Head { name, .. } => format!("heads.{name}"),
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Blank { value, max } => write!(f, "blank {} > {}", short(*value), max),
            DropReason::Frozen { value, max } => write!(f, "frozen {} > {}", short(*value), max),
            DropReason::TextArea { value, max } => {
                write!(f, "text_area {} > {}", short(*value), max)
            }
            DropReason::Motion { value, min } => write!(f, "motion {} < {}", short(*value), min),
            DropReason::Head { name, value, bound } => {
                let value = value.map_or("none (no embedding)".to_string(), short);
                match bound {
                    Bound::Min(min) => write!(f, "{name} {value} < {min}"),
                    Bound::Max(max) => write!(f, "{name} {value} > {max}"),
                }
            }
        }
    }
}

/// `v` with four significant digits, without trailing zeros.
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return v.to_string();
    }
    let decimals = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Every bound of `config` that `scores` fail, in a fixed order (blank, frozen, text area,
/// motion, heads by name). A clip whose text was not read (no file) is not judged on it.
pub fn judge(config: &ClipsConfig, scores: &ClipScores) -> Vec<DropReason> {
    let f = &config.filters;
    let mut out = Vec::new();
    if let Some(max) = f.max_blank.filter(|&m| scores.blank > m) {
        out.push(DropReason::Blank {
            value: scores.blank,
            max,
        });
    }
    if let Some(max) = f.max_frozen.filter(|&m| scores.frozen > m) {
        out.push(DropReason::Frozen {
            value: scores.frozen,
            max,
        });
    }
    if let (Some(max), Some(value)) = (f.max_text_area, scores.text_area) {
        if value > max {
            out.push(DropReason::TextArea { value, max });
        }
    }
    if let Some(min) = config.min_motion().filter(|&m| scores.motion < m) {
        out.push(DropReason::Motion {
            value: scores.motion,
            min,
        });
    }
    for (name, bounds) in &f.heads {
        let value = scores.heads.get(name).copied();
        let bound = match (value, bounds.min, bounds.max) {
            (None, Some(min), _) => Some(Bound::Min(min)),
            (None, None, Some(max)) => Some(Bound::Max(max)),
            (Some(v), Some(min), _) if v < min => Some(Bound::Min(min)),
            (Some(v), _, Some(max)) if v > max => Some(Bound::Max(max)),
            _ => None,
        };
        if let Some(bound) = bound {
            out.push(DropReason::Head {
                name: name.clone(),
                value,
                bound,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HeadBounds, PipelineConfig};

    fn config(filters: &str) -> ClipsConfig {
        let cfg = PipelineConfig::parse(&format!(
            r#"{{"scenes": {{}}, "clip": {{"model": "m", "labels": ["a"]}}, "clips": {{"heads": {{"aesthetic": {{"weights": "w", "config": "c"}}}}, "filters": {filters}}}}}"#
        ))
        .unwrap();
        cfg.clips.unwrap()
    }

    #[test]
    fn every_failed_bound_is_a_reason() {
        let c = config(
            r#"{"max_blank": 0.5, "max_frozen": 0.8, "max_text_area": 0.02, "min_motion": 0.002, "heads": {"aesthetic": {"min": 4.5}}}"#,
        );
        let heads = BTreeMap::from([("aesthetic".to_string(), 3.91234)]);
        let scores = ClipScores {
            motion: 0.00123456,
            blank: 0.625,
            frozen: 0.9,
            text_area: Some(0.03125),
            heads: &heads,
        };
        let reasons: Vec<String> = judge(&c, &scores).iter().map(|r| r.to_string()).collect();
        assert_eq!(
            reasons,
            [
                "blank 0.625 > 0.5",
                "frozen 0.9 > 0.8",
                "text_area 0.03125 > 0.02",
                "motion 0.001235 < 0.002",
                "aesthetic 3.912 < 4.5"
            ]
        );
        let keys: Vec<String> = judge(&c, &scores).iter().map(DropReason::key).collect();
        assert_eq!(
            keys,
            ["blank", "frozen", "text_area", "motion", "heads.aesthetic"]
        );
        let fine = ClipScores {
            motion: 0.01,
            blank: 0.5,
            frozen: 0.8,
            text_area: None,
            heads: &BTreeMap::from([("aesthetic".to_string(), 4.5)]),
        };
        assert!(judge(&c, &fine).is_empty());
        let none = ClipScores {
            heads: &BTreeMap::new(),
            ..fine
        };
        assert_eq!(
            judge(&c, &none)[0].to_string(),
            "aesthetic none (no embedding) < 4.5"
        );
        assert_eq!(
            c.filters.heads["aesthetic"],
            HeadBounds {
                min: Some(4.5),
                max: None
            }
        );
    }

    #[test]
    fn bad_filters_name_the_key() {
        let error = |json: &str| {
            PipelineConfig::parse(json)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate().map_err(|e| e.to_string()))
                .unwrap_err()
        };
        for (json, expected) in [
            (
                r#"{"scenes": {}, "clips": {"filters": {"max_blank": 1.5}}}"#,
                "clips.filters.max_blank = 1.5: must be a fraction from 0 to 1, or null",
            ),
            (
                r#"{"scenes": {}, "clips": {"min_motion": 0.1, "filters": {"min_motion": 0.2}}}"#,
                "clips.filters.min_motion needs clips.min_motion left out (they are the same filter: set one)",
            ),
            (
                r#"{"scenes": {}, "clips": {"filters": {"heads": {"nsfw": {"max": 0.5}}}}}"#,
                "clips.filters.heads.nsfw: no head of that name in clips.heads (configured: none)",
            ),
            (
                r#"{"scenes": {}, "clips": {"heads": {"a": {"weights": "w", "config": "c"}}}}"#,
                "clips.heads needs the clip section (heads score each clip's CLIP embedding)",
            ),
            (
                r#"{"scenes": {}, "clips": {"heads": {"a": {"weights": "w", "config": "c"}}, "filters": {"heads": {"a": {"min": 5, "max": 4}}}}}"#,
                "clips.filters.heads.a: min 5 is above max 4",
            ),
        ] {
            assert_eq!(error(json), expected, "{json}");
        }
        let unknown = error(r#"{"scenes": {}, "clips": {"filters": {"max_blanks": 0.5}}}"#);
        assert!(unknown.contains("max_blanks"), "{unknown}");
    }
}
