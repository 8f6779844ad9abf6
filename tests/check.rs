//! `framepipe check`: generated files with one known defect each are caught by exactly the rule
//! meant for it; outputs (text, JSON, GitHub, JUnit parsed back by Python's XML parser) and exit
//! codes; bad rules files; the real videos pass a realistic rule set.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const RULES: &str = r#"{
  "rule_sets": [{
    "name": "delivery",
    "rules": {
      "video_codec": ["h264"],
      "fps": {"value": 25, "tolerance": 0.1},
      "duration": {"min": 2.5, "max": 3.5},
      "faststart": true,
      "audio": {"present": true, "codec": ["aac"]},
      "decodes_cleanly": true,
      "black": {"max_seconds": 0.5},
      "frozen": {"max_seconds": 0.5},
      "keyframe_interval_max": 2.0,
      "silence": {"max_seconds": 0.5}
    }
  }]
}"#;

/// A 3 s clip: `video` is a filter graph on [0:v] (testsrc2 25 fps), audio unless `silent`.
fn clip(dir: &Path, name: &str, video: &str, fps: u32, silent: bool, faststart: bool) -> PathBuf {
    clip_with_audio(dir, name, video, "anull", fps, silent, faststart)
}

fn clip_with_audio(
    dir: &Path,
    name: &str,
    video: &str,
    audio: &str,
    fps: u32,
    silent: bool,
    faststart: bool,
) -> PathBuf {
    let path = dir.join(name);
    let src = format!("testsrc2=size=320x240:rate={fps}:duration=3");
    let mut args = vec!["-f", "lavfi", "-i", &src];
    let sine = "sine=frequency=500:duration=3";
    if !silent {
        args.extend(["-f", "lavfi", "-i", sine]);
    }
    args.extend([
        "-vf",
        video,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
    ]);
    if !silent {
        args.extend(["-af", audio, "-c:a", "aac"]);
    }
    if faststart {
        args.extend(["-movflags", "+faststart"]);
    }
    let p = path.to_str().unwrap().to_string();
    args.push(&p);
    ffmpeg(&args);
    path
}

fn check(rules: &Path, extra: &[&str], inputs: &[&Path]) -> (i32, String, String) {
    let out = framepipe()
        .arg("check")
        .arg("--rules")
        .arg(rules)
        .args(extra)
        .args(inputs)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
    )
}

fn failed_rules(json: &serde_json::Value, file: &Path) -> Vec<String> {
    let f = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == file.display().to_string())
        .unwrap();
    f["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["passed"] == false)
        .map(|o| o["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn each_defect_is_caught_by_its_rule_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rules = pipeline(d, "rules.json", RULES);
    let good = clip(d, "good.mp4", "null", 25, false, true);
    // Black from 1.0 s to 2.0 s.
    let black = clip(
        d,
        "black.mp4",
        "drawbox=enable='between(t,1,2)':color=black:t=fill",
        25,
        false,
        true,
    );
    // Frozen from 1.0 s to 2.2 s: frame 25 repeated.
    let frozen = clip(d, "frozen.mp4", "select='lt(n,25)+gt(n,55)',setpts=N/25/TB,tpad=stop=0,loop=loop=30:size=1:start=25,setpts=N/25/TB,trim=duration=3", 25, false, true);
    let fps = clip(d, "fps30.mp4", "null", 30, false, true);
    let silent = clip(d, "silent.mp4", "null", 25, true, true);
    let slow_start = clip(d, "slowstart.mp4", "null", 25, false, false);
    let hush = clip_with_audio(
        d,
        "hush.mp4",
        "null",
        "volume=enable='between(t,1,2)':volume=0",
        25,
        false,
        true,
    );
    let (code, stdout, err) = check(
        &rules,
        &["--format", "json"],
        &[&good, &black, &frozen, &fps, &silent, &slow_start, &hush],
    );
    assert_eq!(code, 1, "{err}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(failed_rules(&json, &good), Vec::<String>::new());
    assert_eq!(failed_rules(&json, &black), ["black"]);
    assert_eq!(failed_rules(&json, &frozen), ["frozen"]);
    assert_eq!(failed_rules(&json, &fps), ["fps"]);
    // No audio stream at all: also silent for its whole length.
    assert_eq!(
        failed_rules(&json, &silent),
        ["audio.present", "audio.codec", "silence"]
    );
    assert_eq!(failed_rules(&json, &hush), ["silence"]);
    assert_eq!(failed_rules(&json, &slow_start), ["faststart"]);
    // Stretch failures say where.
    let f = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == black.display().to_string())
        .unwrap();
    let o = f["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["rule"] == "black")
        .unwrap();
    let (start, end) = (o["at"][0].as_f64().unwrap(), o["at"][1].as_f64().unwrap());
    assert!(
        (start - 1.0).abs() <= 0.05 && (end - 2.0).abs() <= 0.1,
        "black at {start}-{end}"
    );
    // The text output says each failing stretch's range once.
    let (_, text, _) = check(&rules, &[], &[&black, &frozen, &hush]);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    for line in lines {
        assert_eq!(line.matches(" at ").count(), 1, "{line}");
        assert!(!line.contains(" s ("), "the range is said twice: {line}");
    }
}

#[test]
fn unreadable_files_fail_their_rules_with_the_cause_and_others_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rules = pipeline(d, "rules.json", RULES);
    let good = clip(d, "good.mp4", "null", 25, false, true);
    let whole = clip(d, "whole.mp4", "null", 25, false, false);
    let bytes = std::fs::read(&whole).unwrap();
    let truncated = d.join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let empty = d.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let missing = d.join("missing.mp4");
    let (code, stdout, _) = check(&rules, &[], &[&good, &truncated, &empty, &missing]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(&format!(
            "FAIL {} [delivery] video_codec",
            truncated.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("not a readable media file"), "{stdout}");
    assert!(
        stdout.contains("empty file (0 bytes)") && stdout.contains("no such file"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&format!("FAIL {}", good.display())),
        "{stdout}"
    );
}

#[test]
fn junit_and_github_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rules = pipeline(d, "rules.json", RULES);
    let good = clip(d, "good.mp4", "null", 25, false, true);
    let fps = clip(d, "fps & <30>.mp4", "null", 30, false, true);
    let junit = d.join("report.xml");
    let (code, stdout, _) = check(
        &rules,
        &["--format", "github", "--junit", junit.to_str().unwrap()],
        &[&good, &fps],
    );
    assert_eq!(code, 1);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("::error file=") && stdout.contains("title=framepipe check%3A fps"),
        "{stdout}"
    );
    // Parse the JUnit file with an independent XML parser.
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = root.findall('./testsuite/testcase')
fails = [c for c in cases if c.find('failure') is not None]
print(root.tag, root.get('tests'), root.get('failures'), len(cases), len(fails), fails[0].get('name'), fails[0].get('file'))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&junit)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let fields: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(
        fields[..6],
        ["testsuites", "22", "1", "22", "1", "fps"],
        "{fields:?}"
    );
    assert!(fields[6..].join(" ").ends_with("fps & <30>.mp4"));
}

#[test]
fn bad_rules_files_exit_2_with_the_json_path() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        (
            r#"{"rule_sets": [{"name": "a", "rules": {"fsp": {"value": 25}}}]}"#,
            "rule_sets[0].rules.fsp: unknown field `fsp`",
        ),
        (
            r#"{"rule_sets": [{"name": "a", "rules": {"width": {"min": 9, "max": 1}}}]}"#,
            "rule_sets[0].rules.width: min 9 is greater than max 1",
        ),
        (
            r#"{"rule_sets": [{"name": "a", "rules": {"rotation": [45]}}]}"#,
            "rule_sets[0].rules.rotation: 45",
        ),
        (
            r#"{"rule_sets": [{"name": "a", "rules": {"duration": "long"}}]}"#,
            "rule_sets[0].rules.duration",
        ),
        (
            r#"{"rule_sets": [{"name": "a", "rules": {"tags": {"model": "no-model", "labels": ["a"], "must": [{"label": "a", "score": 0.5}]}}}]}"#,
            "rule_sets[0].rules.tags.model: ",
        ),
        (
            r#"{"rule_sets": [{"name": "a", "rules": {"heads": {"model": "no-model", "scores": {"a": {"weights": "w", "config": "c", "min": 1}}}}}]}"#,
            "rule_sets[0].rules.heads.model: ",
        ),
    ] {
        let rules = pipeline(dir.path(), "bad.json", text);
        let (code, _, err) = check(&rules, &[], &[Path::new("whatever.mp4")]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(
            err.contains("bad.json") && err.contains(expected),
            "{text}: {err}"
        );
        if expected.ends_with("model: ") {
            assert!(
                err.contains("no-model is not a CLIP model folder (no config.json)"),
                "{err}"
            );
        }
    }
}

#[test]
fn shared_media_passes_the_shipped_rule_set() {
    let Some(dir) = shared_media("bikes.mp4").map(|p| p.parent().unwrap().to_path_buf()) else {
        return;
    };
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/ci-check.json");
    let (code, stdout, err) = check(&rules, &[], &[&dir]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("4 file(s)"), "{stdout}");
}

/// The shipped rule set on generated media (in a user's clone too): a conforming upload and
/// framepipe's own output of it, which the `framepipe-output` rule set also checks.
#[test]
fn generated_media_and_its_output_pass_the_shipped_rule_set() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let upload = media.join("upload.mp4");
    make_cut_clip(
        &upload,
        "320x240",
        &[("testsrc2", 40), ("mandelbrot", 35)],
        true,
        &["-profile:v", "high", "-movflags", "+faststart"],
    );
    let out = media.join("out");
    let run = framepipe()
        .args(["-q", "run", "--device", "cpu", "-o"])
        .arg(&out)
        .arg(&upload)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/ci-check.json");
    let (code, stdout, err) = check(&rules, &[], &[&media]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    // The output matches both rule sets: its outcomes include the 1280x720 width check.
    let (_, json, _) = check(&rules, &["--format", "json"], &[&media]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let sets: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_set"].as_str().unwrap())
        .collect();
    assert!(
        sets.contains(&"framepipe-output") && sets.contains(&"web-mp4"),
        "{sets:?}"
    );
}

/// Integrated loudness and true peak as `ffmpeg -af ebur128=peak=true` prints them.
fn ffmpeg_ebur128(path: &Path) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-nostats", "-i"])
        .arg(path)
        .args(["-af", "ebur128=peak=true", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = &text[text.rfind("Summary:").expect("ebur128 summary")..];
    let value = |key: &str| -> f64 {
        let line = summary
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (value("I:"), value("Peak:"))
}

#[test]
fn loudness_agrees_with_ffmpeg_ebur128() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let loud = d.join("tones.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=10:duration=6",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=6:sample_rate=48000",
        "-f",
        "lavfi",
        "-i",
        "anoisesrc=color=pink:amplitude=0.3:duration=6:sample_rate=48000",
        "-filter_complex",
        "[1:a][2:a]amerge=inputs=2,volume=0.8[a]",
        "-map",
        "0:v",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "pcm_s16le",
        loud.to_str().unwrap(),
    ]);
    let (lufs, peak) = ffmpeg_ebur128(&loud);
    let rules = pipeline(
        d,
        "loud.json",
        r#"{"rule_sets": [{"name": "r128", "rules": {"loudness": {"integrated_lufs": {"min": -23.5, "max": -22.5}, "true_peak_dbtp_max": -1.0}}}]}"#,
    );
    let (_, stdout, err) = check(&rules, &["--format", "json"], &[&loud]);
    let json: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{err}"));
    let outcomes = json["files"][0]["outcomes"].as_array().unwrap();
    let ours = |rule: &str| -> f64 {
        let o = outcomes.iter().find(|o| o["rule"] == rule).unwrap();
        o["actual"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    eprintln!(
        "ffmpeg: I {lufs} LUFS, peak {peak} dBFS; framepipe: I {} LUFS, true peak {} dBTP",
        ours("loudness.integrated_lufs"),
        ours("loudness.true_peak")
    );
    assert!(
        (ours("loudness.integrated_lufs") - lufs).abs() <= 0.5,
        "integrated loudness differs by more than 0.5 LU"
    );
    assert!(
        (ours("loudness.true_peak") - peak).abs() <= 0.5,
        "true peak differs by more than 0.5 dB"
    );
}

fn tags_rules(dir: &Path, name: &str, expectations: &str) -> PathBuf {
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures/clip-tiny");
    pipeline(
        dir,
        name,
        &format!(
            r#"{{"rule_sets": [{{"name": "tags", "rules": {{"tags": {{"model": {:?}, "labels": ["a cat", "a street", "color bars"], "every_n_frames": 10, {expectations}}}}}}}]}}"#,
            model.display().to_string()
        ),
    )
}

fn tag_outcome(rules: &Path, input: &Path) -> (bool, String) {
    let (_, stdout, err) = check(rules, &["--format", "json"], &[input]);
    let json: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{err}"));
    let o = json["files"][0]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["rule"] == "tags")
        .unwrap()
        .clone();
    (
        o["passed"].as_bool().unwrap(),
        o["actual"].as_str().unwrap().to_string(),
    )
}

#[test]
fn tags_rule_holds_labels_to_their_scores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = clip(d, "clip.mp4", "null", 25, true, true);
    // First learn the peak score of "a street" (the tiny test model has random weights).
    let (passed, actual) = tag_outcome(
        &tags_rules(
            d,
            "probe.json",
            r#""must": [{"label": "a street", "score": 0.0}]"#,
        ),
        &input,
    );
    assert!(passed, "{actual}");
    let peak: f64 = actual
        .split("a street=")
        .nth(1)
        .unwrap()
        .split([',', ')'])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(peak > 0.0 && peak < 1.0, "{actual}");
    let above = format!("{:.3}", (peak + 0.01).min(1.0));
    let below = format!("{:.3}", (peak - 0.01).max(0.0));
    let case = |name: &str, e: String| tag_outcome(&tags_rules(d, name, &e), &input);
    assert!(
        !case(
            "a.json",
            format!(r#""must": [{{"label": "a street", "score": {above}}}]"#)
        )
        .0,
        "must above the peak fails"
    );
    assert!(
        case(
            "b.json",
            format!(r#""must": [{{"label": "a street", "score": {below}}}]"#)
        )
        .0,
        "must below the peak passes"
    );
    let (passed, actual) = case(
        "c.json",
        format!(r#""must_not": [{{"label": "a street", "score": {below}}}]"#),
    );
    assert!(
        !passed && actual.contains("\"a street\" reached"),
        "{actual}"
    );
    assert!(
        case(
            "d.json",
            format!(r#""must_not": [{{"label": "a street", "score": {above}}}]"#)
        )
        .0
    );
    // Expectations about labels that are not in the list are a rules error.
    let bad = tags_rules(
        d,
        "bad.json",
        r#""must": [{"label": "a dog", "score": 0.5}]"#,
    );
    let (code, _, err) = check(&bad, &[], &[&input]);
    assert_eq!(code, 2);
    assert!(
        err.contains("rule_sets[0].rules.tags.must[0].label"),
        "{err}"
    );
}

/// `burned_in_text`: a subtitle burned in from 2 s on fails the rule at its time with the words
/// read; the same picture without it passes; a missing language names the file.
#[test]
fn burned_in_text_rule_finds_subtitles() {
    let d = tempfile::tempdir().unwrap();
    let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";
    let make = |name: &str, subtitle: bool| {
        let path = d.path().join(name);
        let draw = if subtitle {
            format!(",drawtext=fontfile={font}:text='NO SUBTITLES PLEASE':fontsize=40:fontcolor=white:box=1:boxcolor=black@0.8:boxborderw=10:x=(w-text_w)/2:y=h-th-40:enable='gte(t,2)'")
        } else {
            String::new()
        };
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("gradients=size=1280x720:rate=25:speed=0.05:d=4:seed=5:nb_colors=2:c0=0x2ab87f:c1=0x3060a0{draw}"),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            path.to_str().unwrap(),
        ]);
        path
    };
    let subtitled = make("subtitled.mp4", true);
    let clean = make("clean.mp4", false);
    let rules = d.path().join("text.json");
    let rule_set = |rule: &str| {
        format!(r#"{{"rule_sets": [{{"name": "text", "rules": {{"burned_in_text": {rule}}}}}]}}"#)
    };
    std::fs::write(&rules, rule_set(r#"{"max_area": 0.005}"#)).unwrap();
    let (code, stdout, err) = check(&rules, &["--format", "json"], &[&subtitled, &clean]);
    assert_eq!(code, 1, "{stdout}{err}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(failed_rules(&json, &subtitled), ["burned_in_text"]);
    assert!(failed_rules(&json, &clean).is_empty(), "{stdout}");
    let outcome = &json["files"][0]["outcomes"][0];
    let actual = outcome["actual"].as_str().unwrap();
    assert!(actual.contains("NO SUBTITLES"), "{actual}");
    let at = outcome["at"][0].as_f64().unwrap();
    assert!((2.0..=3.0).contains(&at), "{outcome}");

    std::fs::write(
        &rules,
        rule_set(r#"{"max_area": 0.005, "language": "xyz"}"#),
    )
    .unwrap();
    let (code, stdout, err) = check(&rules, &[], &[&clean]);
    assert_ne!(code, 0);
    let all = format!("{stdout}{err}");
    assert!(all.contains("xyz.traineddata"), "{all}");
}

/// Rules that need no model run where libtorch's library is missing (a binary copied on its
/// own): only `tags`, `heads` and `vae_anomalies` load it.
#[test]
fn pixel_rules_run_without_the_torch_library() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lone = d.join("bin").join("framepipe");
    std::fs::create_dir(d.join("bin")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_framepipe"), &lone).unwrap();
    let input = clip(d, "clip.mp4", "null", 25, true, true);
    let rules = pipeline(
        d,
        "pixels.json",
        r#"{"rule_sets": [{"name": "pixels", "rules": {"decodes_cleanly": true, "black": {"max_seconds": 5}, "frozen": {"max_seconds": 5}, "scenes": {"min": 1}}}]}"#,
    );
    let out = std::process::Command::new(&lone)
        .args(["check", "--rules"])
        .arg(&rules)
        .arg(&input)
        .env_remove("FRAMEPIPE_TORCH_LIB")
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("libframepipe_torch"), "{all}");
}
