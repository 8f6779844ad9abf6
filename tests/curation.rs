//! Curation scores that need more than one test's worth of footage: burned-in text read by
//! Tesseract from each clip's file (`clips.text`, `filters.max_text_area`), judged by the text
//! the test burned in with `ffmpeg drawtext`; and the settings refused before any decoding
//! (a missing Tesseract language, text without clip files, unknown filter keys).
mod common;

use std::path::Path;

use common::*;
use framepipe::output::clip_record::ClipRecord;
use tempfile::tempdir;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";

fn clips_of(out: &Path, stem: &str) -> Vec<ClipRecord> {
    let text = std::fs::read_to_string(out.join(stem).join("clips.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Four 3 s scenes at 640x360, 25 fps: a moving gradient without text, a fractal zoom with a
/// boxed subtitle at the bottom, a title card, and a cellular-automaton texture without text.
fn text_video(path: &Path) {
    let draw = |text: &str, size: u32, y: &str, boxed: bool| {
        format!(
            "drawtext=fontfile={FONT}:text='{text}':fontsize={size}:fontcolor=white:x=(w-text_w)/2:y={y}{}",
            if boxed {
                ":box=1:boxcolor=black@0.8:boxborderw=8"
            } else {
                ""
            }
        )
    };
    let filter = format!(
        "[0:v]trim=end_frame=75,setpts=PTS-STARTPTS[a];\
         [1:v]trim=end_frame=75,setpts=PTS-STARTPTS,{}[b];\
         [2:v]trim=end_frame=75,setpts=PTS-STARTPTS,{}[c];\
         [3:v]trim=end_frame=75,setpts=PTS-STARTPTS,format=yuv420p[d];\
         [a][b][c][d]concat=n=4:v=1:a=0,format=yuv420p[v]",
        draw("WELCOME TO THE SHOW", 28, "h-th-24", true),
        draw("THE LAST SUMMER", 56, "(h-th)/2", false),
    );
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "gradients=size=640x360:rate=25:speed=0.05",
        "-f",
        "lavfi",
        "-i",
        "mandelbrot=size=640x360:rate=25",
        "-f",
        "lavfi",
        "-i",
        "color=c=0x203060:size=640x360:rate=25",
        "-f",
        "lavfi",
        "-i",
        "cellauto=size=640x360:rate=25:rule=110",
        "-filter_complex",
        &filter,
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-crf",
        "18",
        path.to_str().unwrap(),
    ]);
}

fn text_pipeline(dir: &Path, clips: &str) -> std::path::PathBuf {
    pipeline(
        dir,
        "text.json",
        &format!(
            r#"{{"normalize": {{"resolution": "720p"}}, "scenes": {{"detector": "content"}}, "clips": {clips}, "encode": {{"preset": "veryfast"}}, "device": "cpu"}}"#
        ),
    )
}

fn words(s: &str) -> String {
    s.to_uppercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
        .collect()
}

/// Text clips are read (their words contain the burned string) and dropped by
/// `max_text_area`; text-free clips read no text and are kept.
#[test]
fn burned_in_text_is_read_and_filtered() {
    let d = tempdir().unwrap();
    let input = d.path().join("titles.mp4");
    text_video(&input);
    let out = d.path().join("out");
    let cfg = text_pipeline(
        d.path(),
        r#"{"min_seconds": 1.0, "trim_seconds": 0.2, "text": {"frames": 3}, "filters": {"max_text_area": 0.01}}"#,
    );
    let o = run_pipeline(&cfg, &out, &input);
    assert!(o.status.success(), "{}", stderr(&o));
    let clips = clips_of(&out, "titles");
    assert_eq!(clips.len(), 4, "{clips:?}");
    let burned = [
        None,
        Some("WELCOME TO THE SHOW"),
        Some("THE LAST SUMMER"),
        None,
    ];
    for (c, truth) in clips.iter().zip(burned) {
        let text = c
            .text
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no text read", c.id));
        match truth {
            Some(truth) => {
                assert!(
                    words(&text.text).contains(truth),
                    "{}: read {:?}, burned {truth:?}",
                    c.id,
                    text.text
                );
                assert!(text.area > 0.01 && text.words >= 3, "{}: {text:?}", c.id);
                assert_eq!(c.dropped.len(), 1, "{c:?}");
                assert!(c.dropped[0].starts_with("text_area "), "{c:?}");
                assert!(c.file.is_none(), "a dropped clip has no file");
            }
            None => {
                assert!(text.area <= 0.002, "{}: text-free, read {text:?}", c.id);
                assert!(c.dropped.is_empty(), "{c:?}");
                assert!(out.join("titles").join(c.file.as_ref().unwrap()).is_file());
            }
        }
    }
    let r = report(&out, "titles");
    assert_eq!(r["clips"]["filtered_by"]["text_area"], 2);
    assert_eq!(r["clips"]["count"], 2);
}

/// Settings that cannot work are refused before any decoding, naming the key or the file.
#[test]
fn text_settings_are_checked_before_decoding() {
    let d = tempdir().unwrap();
    let input = d.path().join("missing-on-purpose.mp4");
    let out = d.path().join("out");
    let cases = [
        (
            r#"{"scenes": {}, "clips": {"text": {"language": "xyz"}}, "encode": {}}"#,
            vec!["clips.text", "xyz.traineddata", "tesseract-ocr-xyz"],
        ),
        (
            r#"{"scenes": {}, "clips": {"text": {}}}"#,
            vec!["clips.text needs the encode section"],
        ),
        (
            r#"{"scenes": {}, "clips": {"filters": {"max_text_area": 0.1}}}"#,
            vec!["clips.filters.max_text_area needs the encode section"],
        ),
        (
            r#"{"scenes": {}, "clips": {"text": {"frames": 0}}, "encode": {}}"#,
            vec!["clips.text.frames = 0"],
        ),
        (
            r#"{"scenes": {}, "clips": {"filters": {"max_words": 3}}}"#,
            vec!["max_words"],
        ),
    ];
    for (json, expected) in cases {
        let cfg = pipeline(d.path(), "bad.json", json);
        let o = run_pipeline(&cfg, &out, &input);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{json}: {err}");
        for e in expected {
            assert!(err.contains(e), "{json}: {err}");
        }
        assert!(
            !err.contains("missing-on-purpose"),
            "refused before the input was opened: {err}"
        );
        assert!(!out.exists(), "nothing written");
    }
}
