//! Rules against facts: one [`Outcome`] per rule, with what was expected, what was found and,
//! for stretch rules, where in the file.
use serde::Serialize;

use super::facts::{moov_before_mdat, Facts};
use super::rules::{
    AudioRules, DuplicateOfRule, HeadsRule, LoudnessRule, Range, Rules, SilenceRule, TagsRule,
    TextRule, VaeAnomaliesRule,
};
use super::scan::Scan;

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub rule: String,
    pub passed: bool,
    pub expected: String,
    pub actual: String,
    /// Seconds (start, end) the failure is about, for stretch rules.
    pub at: Option<(f64, f64)>,
    /// The frames (decode order) the rule flagged, for frame rules (`vae_anomalies`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<Vec<u64>>,
}

/// The stretch's range for the `actual` text of a passing outcome; a failing one carries it in
/// `at` instead, which every output format prints once.
fn span_unless_located(passed: bool, (a, b): (f64, f64)) -> String {
    if passed {
        format!(" ({a:.2}-{b:.2} s)")
    } else {
        String::new()
    }
}

impl Outcome {
    fn new(
        rule: &str,
        passed: bool,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
        Outcome {
            rule: rule.into(),
            passed,
            expected: expected.into(),
            actual: actual.into(),
            at: None,
            frames: None,
        }
    }
}

/// The rules judged on the decode pass (they all fail when it cannot run).
pub const DECODED_RULES: &[&str] = &[
    "decodes_cleanly",
    "black",
    "frozen",
    "scenes",
    "silence",
    "loudness",
    "tags",
    "vae_anomalies",
    "burned_in_text",
    "heads",
    "duplicate_of",
];

/// The rules judged on the file's metadata, before any decoding.
const METADATA_RULES: &[&str] = &[
    "container",
    "video_codec",
    "profile",
    "pixel_format",
    "width",
    "height",
    "aspect_ratio",
    "fps",
    "duration",
    "bitrate",
    "keyframe_interval_max",
    "faststart",
    "rotation",
    "color_range",
    "color_primaries",
    "audio",
];

/// The names of the rules that are set, in a stable order (used to fail them all at once when
/// the file cannot be read).
pub fn rule_names(rules: &Rules) -> Vec<&'static str> {
    let value = serde_json::to_value(rules).expect("rules serialize");
    let mut names = Vec::new();
    for &name in METADATA_RULES.iter().chain(DECODED_RULES) {
        if !value[name].is_null() {
            names.push(name);
        }
    }
    names
}

fn one_of(rule: &str, allowed: &[String], actual: Option<&str>) -> Outcome {
    let actual_text = actual.unwrap_or("unknown");
    let passed = actual.is_some_and(|a| allowed.iter().any(|x| x.eq_ignore_ascii_case(a)));
    Outcome::new(
        rule,
        passed,
        format!("one of {}", allowed.join(", ")),
        actual_text,
    )
}

fn in_range(rule: &str, range: &Range, actual: f64) -> Outcome {
    Outcome::new(
        rule,
        range.contains(actual),
        range.to_string(),
        format!("{actual}"),
    )
}

/// Evaluates every rule that is set, in the rules file's order: the container and stream
/// facts, the audio stream's, then (when `scan` is present: some rule needs pixels or samples)
/// what decoding found. One function per group of rules below.
pub fn evaluate(
    path: &std::path::Path,
    rules: &Rules,
    facts: &Facts,
    scan: Option<&Scan>,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    stream_rules(path, rules, facts, &mut out);
    if let Some(audio) = &rules.audio {
        audio_rules(audio, facts, &mut out);
    }
    if let Some(scan) = scan {
        decode_rule(rules, facts, scan, &mut out);
        picture_rules(rules, scan, &mut out);
        if let Some(rule) = &rules.silence {
            silence_rule(rule, scan, &mut out);
        }
        if let Some(rule) = &rules.vae_anomalies {
            vae_anomalies_rule(rule, scan, &mut out);
        }
        if let Some(rule) = &rules.tags {
            tags_rule(rule, scan, &mut out);
        }
        if let Some(rule) = &rules.loudness {
            loudness_rules(rule, scan, &mut out);
        }
        if let Some(rule) = &rules.burned_in_text {
            text_rule(rule, scan, &mut out);
        }
        if let Some(rule) = &rules.heads {
            heads_rule(rule, scan, &mut out);
        }
        if let Some(rule) = &rules.duplicate_of {
            duplicate_of_rule(rule, scan, &mut out);
        }
    }
    out
}

/// The container and video stream as probed: names, size, rates, keyframes, box layout,
/// rotation, colour description.
fn stream_rules(path: &std::path::Path, rules: &Rules, facts: &Facts, out: &mut Vec<Outcome>) {
    name_rules(rules, facts, out);
    size_rules(rules, facts, out);
    rate_rules(rules, facts, out);
    if let Some(max) = rules.keyframe_interval_max {
        let gap = facts.keyframe_interval_max.unwrap_or(f64::INFINITY);
        out.push(Outcome::new(
            "keyframe_interval_max",
            gap <= max + 1e-6,
            format!("<= {max} s"),
            format!("{gap:.3} s"),
        ));
    }
    if let Some(want) = rules.faststart {
        out.push(faststart_rule(path, want));
    }
    if let Some(allowed) = &rules.rotation {
        let s = &facts.source;
        out.push(Outcome::new(
            "rotation",
            allowed.contains(&s.rotation),
            format!("one of {allowed:?}"),
            s.rotation.to_string(),
        ));
    }
    colour_rules(rules, facts, out);
}

/// `container`, `video_codec`, `profile`, `pixel_format`: names from a list.
fn name_rules(rules: &Rules, facts: &Facts, out: &mut Vec<Outcome>) {
    let s = &facts.source;
    if let Some(allowed) = &rules.container {
        // The demuxer has several names (`mov,mp4,m4a,...`): any of them matches.
        let names: Vec<&str> = s.container.split(',').collect();
        let passed = allowed
            .iter()
            .any(|a| names.iter().any(|n| n.eq_ignore_ascii_case(a)));
        out.push(Outcome::new(
            "container",
            passed,
            format!("one of {}", allowed.join(", ")),
            &s.container,
        ));
    }
    if let Some(allowed) = &rules.video_codec {
        out.push(one_of("video_codec", allowed, Some(&s.codec)));
    }
    if let Some(allowed) = &rules.profile {
        out.push(one_of("profile", allowed, facts.profile.as_deref()));
    }
    if let Some(allowed) = &rules.pixel_format {
        out.push(one_of("pixel_format", allowed, Some(&s.pixel_format)));
    }
}

/// `width`, `height`, `aspect_ratio`: the displayed size.
fn size_rules(rules: &Rules, facts: &Facts, out: &mut Vec<Outcome>) {
    let s = &facts.source;
    if let Some(r) = &rules.width {
        out.push(in_range("width", r, f64::from(s.display_width)));
    }
    if let Some(r) = &rules.height {
        out.push(in_range("height", r, f64::from(s.display_height)));
    }
    if let Some(a) = &rules.aspect_ratio {
        let actual = f64::from(s.display_width) / f64::from(s.display_height.max(1));
        out.push(Outcome::new(
            "aspect_ratio",
            (actual - a.value).abs() <= a.tolerance,
            format!("{} ± {}", a.value, a.tolerance),
            format!("{actual:.4}"),
        ));
    }
}

/// `fps`, `duration`, `bitrate`.
fn rate_rules(rules: &Rules, facts: &Facts, out: &mut Vec<Outcome>) {
    let s = &facts.source;
    if let Some(a) = &rules.fps {
        out.push(Outcome::new(
            "fps",
            (s.fps - a.value).abs() <= a.tolerance,
            format!("{} ± {}", a.value, a.tolerance),
            format!("{:.3}", s.fps),
        ));
    }
    if let Some(r) = &rules.duration {
        out.push(in_range(
            "duration",
            r,
            (s.duration * 1000.0).round() / 1000.0,
        ));
    }
    if let Some(r) = &rules.bitrate {
        let actual = facts.bitrate.unwrap_or(0.0).round();
        out.push(in_range("bitrate", r, actual));
    }
}

/// `faststart`: where the file's `moov` box lies against `mdat`.
fn faststart_rule(path: &std::path::Path, want: bool) -> Outcome {
    let actual = moov_before_mdat(path);
    let text = match actual {
        Some(true) => "moov before mdat",
        Some(false) => "moov after mdat",
        None => "not an MP4/MOV box layout",
    };
    Outcome::new(
        "faststart",
        actual == Some(want),
        if want {
            "moov before mdat"
        } else {
            "moov after mdat"
        },
        text,
    )
}

/// `color_range`, `color_primaries`: the colour description as tagged.
fn colour_rules(rules: &Rules, facts: &Facts, out: &mut Vec<Outcome>) {
    if let Some(allowed) = &rules.color_range {
        out.push(one_of("color_range", allowed, facts.color_range.as_deref()));
    }
    if let Some(allowed) = &rules.color_primaries {
        out.push(one_of(
            "color_primaries",
            allowed,
            facts.color_primaries.as_deref(),
        ));
    }
}

/// `audio`: the audio stream's presence, codec, channels and sample rate as probed.
fn audio_rules(audio: &AudioRules, facts: &Facts, out: &mut Vec<Outcome>) {
    let s = &facts.source;
    if let Some(want) = audio.present {
        out.push(Outcome::new(
            "audio.present",
            s.has_audio == want,
            if want {
                "an audio stream"
            } else {
                "no audio stream"
            },
            if s.has_audio {
                "audio present"
            } else {
                "no audio"
            },
        ));
    }
    if let Some(allowed) = &audio.codec {
        out.push(one_of("audio.codec", allowed, s.audio_codec.as_deref()));
    }
    if let Some(r) = &audio.channels {
        let ch = facts.audio_channels.map(f64::from);
        out.push(Outcome::new(
            "audio.channels",
            ch.is_some_and(|c| r.contains(c)),
            r.to_string(),
            ch.map_or("no audio".into(), |c| c.to_string()),
        ));
    }
    if let Some(allowed) = &audio.sample_rate {
        let rate = facts.audio_sample_rate;
        out.push(Outcome::new(
            "audio.sample_rate",
            rate.is_some_and(|r| allowed.contains(&r)),
            format!("one of {allowed:?}"),
            rate.map_or("no audio".into(), |r| r.to_string()),
        ));
    }
}

/// `decodes_cleanly`: what a full decode found against what the container promises.
fn decode_rule(rules: &Rules, facts: &Facts, scan: &Scan, out: &mut Vec<Outcome>) {
    let s = &facts.source;
    if rules.decodes_cleanly == Some(true) {
        let expected_frames = s.frames.saturating_sub(scan.edit_list_discarded);
        let count_ok = s.frames == 0 || expected_frames == scan.frames;
        let passed =
            scan.decode_errors == 0 && scan.damaged_frames == 0 && count_ok && scan.frames > 0;
        out.push(Outcome::new(
            "decodes_cleanly",
            passed,
            "no decode errors, no concealed frames, frame count as the container says",
            format!(
                "{} decode errors, {} concealed frames, {} frames decoded (container: {})",
                scan.decode_errors, scan.damaged_frames, scan.frames, expected_frames
            ),
        ));
    }
}

/// `black`, `frozen` (the longest stretch of each) and `scenes` (how many the detector found).
fn picture_rules(rules: &Rules, scan: &Scan, out: &mut Vec<Outcome>) {
    for (rule, max, runs) in [
        ("black", rules.black.map(|b| b.max_seconds), &scan.black),
        ("frozen", rules.frozen.map(|f| f.max_seconds), &scan.frozen),
    ] {
        let Some(max) = max else { continue };
        let longest = runs
            .iter()
            .copied()
            .max_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)));
        let length = longest.map_or(0.0, |(a, b)| b - a);
        let passed = length <= max + 1e-6;
        let mut o = Outcome::new(
            rule,
            passed,
            format!("no {rule} stretch longer than {max} s"),
            match longest {
                Some(span) => {
                    format!("longest {rule} stretch {length:.2} s")
                        + &span_unless_located(passed, span)
                }
                None => format!("no {rule} frames"),
            },
        );
        if !passed {
            o.at = longest;
        }
        out.push(o);
    }
    if let (Some(r), Some(n)) = (&rules.scenes, scan.scenes) {
        out.push(in_range("scenes", r, n as f64));
    }
}

fn no_audio() -> String {
    "no audio stream".to_string()
}

/// `silence`: the longest stretch below the level, when there is audio.
fn silence_rule(rule: &SilenceRule, scan: &Scan, out: &mut Vec<Outcome>) {
    let mut o = match &scan.audio {
        None => Outcome::new(
            "silence",
            false,
            format!("no silence longer than {} s", rule.max_seconds),
            no_audio(),
        ),
        Some(a) => {
            let longest = a
                .silence
                .iter()
                .copied()
                .max_by(|x, y| (x.1 - x.0).total_cmp(&(y.1 - y.0)));
            let length = longest.map_or(0.0, |(x, y)| y - x);
            let passed = length <= rule.max_seconds + 1e-6;
            let mut o = Outcome::new(
                "silence",
                passed,
                format!(
                    "no stretch below {} dBFS longer than {} s",
                    rule.db_max, rule.max_seconds
                ),
                match longest {
                    Some(span) => {
                        format!("longest silence {length:.2} s")
                            + &span_unless_located(passed, span)
                    }
                    None => "no silence".into(),
                },
            );
            o.at = longest;
            o
        }
    };
    if o.passed {
        o.at = None;
    }
    out.push(o);
}

/// `burned_in_text`: the sampled frame with the largest text area against `max_area`.
fn text_rule(rule: &TextRule, scan: &Scan, out: &mut Vec<Outcome>) {
    let Some(text) = &scan.text else { return };
    let expected = format!(
        "no burned-in text over {} of the picture (a frame every {} s)",
        rule.max_area, rule.every_seconds
    );
    let unread = match text.unread {
        0 => String::new(),
        n => format!(", {n} given up at the deadline"),
    };
    let o = match &text.worst {
        Some((time, read)) => {
            let passed = read.area <= rule.max_area;
            let mut o = Outcome::new(
                "burned_in_text",
                passed,
                expected,
                format!(
                    "largest text area {:.4} at {time:.2} s: {:?} ({} frames read{unread})",
                    read.area, read.text, text.frames
                ),
            );
            if !passed {
                o.at = Some((*time, time + rule.every_seconds));
            }
            o
        }
        None => Outcome::new(
            "burned_in_text",
            true,
            expected,
            format!("no text on {} frames read{unread}", text.frames),
        ),
    };
    out.push(o);
}

/// `duplicate_of`: the file's pieces against the index; a failure names the most similar
/// indexed clip (its output and time range) and where in the file the copy is.
fn duplicate_of_rule(rule: &DuplicateOfRule, scan: &Scan, out: &mut Vec<Outcome>) {
    let Some(found) = &scan.duplicates else {
        out.push(Outcome::new(
            "duplicate_of",
            false,
            "no copy of an indexed clip",
            "the file has no frames to compare",
        ));
        return;
    };
    let index = rule.index.display();
    let expected = format!(
        "similarity at most {} to each of the {} clips of {index}",
        rule.max_similarity, found.indexed
    );
    let Some(worst) = found
        .found
        .iter()
        .max_by(|a, b| a.similarity.total_cmp(&b.similarity))
    else {
        out.push(Outcome::new(
            "duplicate_of",
            true,
            expected,
            if found.closest > 0.0 {
                format!("closest {:.4} over {} pieces", found.closest, found.pieces)
            } else {
                format!("no indexed clip near any of its {} pieces", found.pieces)
            },
        ));
        return;
    };
    let mut o = Outcome::new(
        "duplicate_of",
        false,
        expected,
        format!(
            "{:.4} like clip {} of {} ({:.2}-{:.2} s){}",
            worst.similarity,
            worst.id,
            worst.output,
            worst.start,
            worst.end,
            match found.found.len() {
                1 => String::new(),
                n => format!("; {n} of {} pieces match indexed clips", found.pieces),
            }
        ),
    );
    o.at = Some(worst.at);
    out.push(o);
}

/// `heads`: one outcome per head (`heads.<name>`), its score of the sampled frames' mean
/// embedding against its bounds.
fn heads_rule(rule: &HeadsRule, scan: &Scan, out: &mut Vec<Outcome>) {
    let Some(found) = &scan.heads else {
        out.push(Outcome::new(
            "heads",
            false,
            "head scores",
            "no frame was sampled",
        ));
        return;
    };
    for (name, check) in &rule.scores {
        let score = found
            .scores
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| *s)
            .expect("every head of the rule is scored");
        out.push(Outcome::new(
            &format!("heads.{name}"),
            check.bounds().contains(score),
            check.bounds().to_string(),
            format!(
                "{score:.4} (mean embedding of {} frames, one every {})",
                found.frames, rule.every_n_frames
            ),
        ));
    }
}

/// `tags`: the sampled frames' peak CLIP scores against what must and must not be seen.
fn tags_rule(rule: &TagsRule, scan: &Scan, out: &mut Vec<Outcome>) {
    out.push(match &scan.tag_scores {
        None => Outcome::new("tags", false, "tag expectations", "no frame was sampled"),
        Some(scores) => {
            let score = |label: &str| {
                scores
                    .iter()
                    .find(|(l, _)| l == label)
                    .map_or(0.0, |(_, s)| *s)
            };
            let mut problems = Vec::new();
            for e in &rule.must {
                if score(&e.label) < e.score {
                    problems.push(format!(
                        "{:?} peaked at {:.3} < {}",
                        e.label,
                        score(&e.label),
                        e.score
                    ));
                }
            }
            for e in &rule.must_not {
                if score(&e.label) >= e.score {
                    problems.push(format!(
                        "{:?} reached {:.3} >= {}",
                        e.label,
                        score(&e.label),
                        e.score
                    ));
                }
            }
            let peaks: Vec<String> = scores.iter().map(|(l, s)| format!("{l}={s:.3}")).collect();
            Outcome::new(
                "tags",
                problems.is_empty(),
                format!(
                    "must: {}; must not: {}",
                    rule.must
                        .iter()
                        .map(|e| format!("{}>={}", e.label, e.score))
                        .collect::<Vec<_>>()
                        .join(", "),
                    rule.must_not
                        .iter()
                        .map(|e| format!("{}<{}", e.label, e.score))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                if problems.is_empty() {
                    format!("peak scores {}", peaks.join(", "))
                } else {
                    format!("{} (peak scores {})", problems.join("; "), peaks.join(", "))
                },
            )
        }
    });
}

/// `vae_anomalies`: how many frames the reconstruction flagged, each run with its PSNR drop.
fn vae_anomalies_rule(rule: &VaeAnomaliesRule, scan: &Scan, out: &mut Vec<Outcome>) {
    let expected = format!(
        "at most {} frame(s) reconstructed more than {} MADs below their scene's median PSNR",
        rule.max_frames, rule.sensitivity
    );
    let Some(v) = &scan.vae else {
        out.push(Outcome::new(
            "vae_anomalies",
            false,
            expected,
            "no frame was reconstructed",
        ));
        return;
    };
    let flagged = v.findings.flagged.len() as u64;
    let passed = flagged <= rule.max_frames;
    let actual = if flagged == 0 {
        format!(
            "no frame flagged ({} reconstructed at {}x{}, median PSNR {:.1} dB)",
            v.frames, v.size.0, v.size.1, v.median_psnr
        )
    } else {
        let runs: Vec<String> = v
            .findings
            .anomalies
            .iter()
            .map(|a| {
                format!(
                    "frames {}-{} ({:.2}-{:.2} s, {:.1} dB, {:.1} dB below the scene)",
                    a.start_frame, a.end_frame, a.start_time, a.end_time, a.min_psnr, a.drop_db
                )
            })
            .collect();
        format!("{flagged} frame(s) flagged: {}", runs.join("; "))
    };
    let mut o = Outcome::new("vae_anomalies", passed, expected, actual);
    o.frames = Some(v.findings.flagged.clone());
    if !passed {
        o.at = v
            .findings
            .anomalies
            .first()
            .map(|a| (a.start_time, a.end_time + v.frame_seconds));
    }
    out.push(o);
}

/// `loudness`: integrated loudness and true peak (EBU R128), when there is audio.
fn loudness_rules(rule: &LoudnessRule, scan: &Scan, out: &mut Vec<Outcome>) {
    let lufs = scan.audio.as_ref().and_then(|a| a.integrated_lufs);
    let peak = scan.audio.as_ref().and_then(|a| a.true_peak_dbtp);
    if let Some(range) = &rule.integrated_lufs {
        out.push(Outcome::new(
            "loudness.integrated_lufs",
            lufs.is_some_and(|v| range.contains(v)),
            format!("{range} LUFS"),
            lufs.map_or_else(no_audio, |v| format!("{v:.1} LUFS")),
        ));
    }
    if let Some(max) = rule.true_peak_dbtp_max {
        out.push(Outcome::new(
            "loudness.true_peak",
            peak.is_some_and(|v| v <= max),
            format!("<= {max} dBTP"),
            peak.map_or_else(no_audio, |v| format!("{v:.2} dBTP")),
        ));
    }
}
