//! Curation scores that need more than one test's worth of footage: burned-in text read by
//! Tesseract from each clip's frames as the encoder cuts it (`clips.text`,
//! `filters.max_text_area`), judged by the text the test burned in with `ffmpeg drawtext`; and the settings refused before any decoding
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
        "gradients=size=640x360:rate=25:speed=0.05:seed=5:nb_colors=2:c0=0x2ab87f:c1=0x3060a0",
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

fn clip_fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/framepipe-torch/tests/fixtures/clip-tiny")
}

/// The fixture script's heads (`tests/fixtures/make_head_fixture.py`) written into `dir`.
fn write_heads(dir: &Path) {
    let _: serde_json::Value = fixture_json(
        "make_head_fixture.py",
        &[dir.as_os_str(), "--count".as_ref(), "1".as_ref()],
    );
}

/// PyTorch's scores of `embeddings` by the fixture head `name` written in `dir`.
fn reference_scores(dir: &Path, name: &str, embeddings: &[Vec<f32>]) -> Vec<f64> {
    let file = dir.join("embeddings.json");
    std::fs::write(&file, serde_json::to_string(embeddings).unwrap()).unwrap();
    #[derive(serde::Deserialize)]
    struct Scores {
        scores: Vec<f64>,
    }
    let s: Scores = fixture_json(
        "make_head_fixture.py",
        &[
            dir.as_os_str(),
            "--score".as_ref(),
            name.as_ref(),
            "--embeddings".as_ref(),
            file.as_os_str(),
        ],
    );
    s.scores
}

fn heads_pipeline(dir: &Path, heads: &Path, head: &str, filters: &str) -> std::path::PathBuf {
    let clip = format!(
        r#"{{"model": {:?}, "labels": ["a cat", "a street", "color bars"], "sample": {{"every_n_frames": 5}}}}"#,
        clip_fixture().display().to_string()
    );
    let head_files = format!(
        r#"{{"{head}": {{"weights": {:?}, "config": {:?}}}}}"#,
        heads
            .join(format!("{head}.safetensors"))
            .display()
            .to_string(),
        heads.join(format!("{head}.json")).display().to_string()
    );
    pipeline(
        dir,
        "heads.json",
        &format!(
            r#"{{"scenes": {{"detector": "content"}}, "clip": {clip}, "clips": {{"min_seconds": 0.5, "trim_seconds": 0.0, "max_seconds": 1.0, "heads": {head_files}, "filters": {filters}}}, "encode": {{"preset": "ultrafast"}}, "device": "cpu"}}"#
        ),
    )
}

/// A head scores every clip's embedding as PyTorch does (within 1e-5), and a bound on it drops
/// exactly the clips PyTorch's scores put past it.
#[test]
fn heads_score_clips_like_pytorch_and_filter_them() {
    let d = tempdir().unwrap();
    let heads = d.path().join("heads");
    write_heads(&heads);
    let input = d.path().join("scenes.mp4");
    make_cut_clip(
        &input,
        "320x240",
        &[
            ("testsrc2", 50),
            ("smptebars", 50),
            ("mandelbrot", 50),
            ("rgbtestsrc", 50),
        ],
        false,
        &[],
    );
    let out = d.path().join("all");
    let o = run_pipeline(
        &heads_pipeline(d.path(), &heads, "clip16", "{}"),
        &out,
        &input,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let clips = clips_of(&out, "scenes");
    assert!(clips.len() >= 6, "{clips:?}");
    let embeddings: Vec<Vec<f32>> = clips.iter().map(|c| c.embedding.clone().unwrap()).collect();
    let reference = reference_scores(&heads, "clip16", &embeddings);
    for (c, r) in clips.iter().zip(&reference) {
        let ours = c.heads["clip16"];
        assert!(
            (ours - r).abs() <= 1e-5,
            "{}: ours {ours}, PyTorch {r}",
            c.id
        );
        assert!(c.dropped.is_empty());
    }

    // A bound between PyTorch's scores drops exactly the clips below it.
    let mut sorted = reference.clone();
    sorted.sort_by(f64::total_cmp);
    let min = (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0;
    let out = d.path().join("filtered");
    let filters = format!(r#"{{"heads": {{"clip16": {{"min": {min}}}}}}}"#);
    let o = run_pipeline(
        &heads_pipeline(d.path(), &heads, "clip16", &filters),
        &out,
        &input,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let filtered = clips_of(&out, "scenes");
    assert_eq!(filtered.len(), clips.len());
    for (c, r) in filtered.iter().zip(&reference) {
        assert_eq!(
            c.dropped.is_empty(),
            *r >= min,
            "{c:?} (PyTorch {r}, min {min})"
        );
        if !c.dropped.is_empty() {
            assert!(
                c.dropped[0].starts_with("clip16 ") && c.dropped[0].ends_with(&format!("< {min}"))
            );
            assert!(c.file.is_none());
        }
    }
    let r = report(&out, "scenes");
    assert_eq!(r["clips"]["filtered_by"]["heads.clip16"], sorted.len() / 2);
}

/// Heads that cannot score the run's embeddings are refused before decoding, naming the head,
/// the tensor or the sizes.
#[test]
fn bad_heads_are_refused_before_decoding() {
    let d = tempdir().unwrap();
    let heads = d.path().join("heads");
    write_heads(&heads);
    let input = d.path().join("missing-on-purpose.mp4");
    let out = d.path().join("out");
    // A head for 512-value embeddings on a 16-value CLIP model.
    let o = run_pipeline(
        &heads_pipeline(d.path(), &heads, "nsfw", "{}"),
        &out,
        &input,
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("clips.heads.nsfw") && err.contains("512") && err.contains("16"),
        "{err}"
    );
    // A config whose first layer disagrees with the tensor in the file.
    let config = heads.join("clip16.json");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replacen("\"out\": 8", "\"out\": 7", 1);
    std::fs::write(&config, text).unwrap();
    let o = run_pipeline(
        &heads_pipeline(d.path(), &heads, "clip16", "{}"),
        &out,
        &input,
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for part in [
        "clips.heads.clip16",
        "layers.0.weight",
        "[8, 16]",
        "[7, 16]",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    assert!(!err.contains("missing-on-purpose") && !out.exists());
}

/// Rules with a `heads` rule over the fixture head `head` written in `heads`; `bounds` is the
/// head's `min`/`max` part.
fn heads_rules(dir: &Path, heads: &Path, head: &str, bounds: &str) -> std::path::PathBuf {
    pipeline(
        dir,
        "heads-rules.json",
        &format!(
            r#"{{"rule_sets": [{{"name": "heads", "rules": {{"heads": {{"model": {:?}, "every_n_frames": 10, "scores": {{"{head}": {{"weights": {:?}, "config": {:?}, {bounds}}}}}}}}}}}]}}"#,
            clip_fixture().display().to_string(),
            heads
                .join(format!("{head}.safetensors"))
                .display()
                .to_string(),
            heads.join(format!("{head}.json")).display().to_string(),
        ),
    )
}

/// `check`'s outcome for the head, with the exit code.
fn head_outcome(rules: &Path, input: &Path, head: &str) -> (i32, bool, String) {
    let out = framepipe()
        .args(["check", "--format", "json", "--rules"])
        .arg(rules)
        .arg(input)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{}", stderr(&out)));
    let o = json["files"][0]["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["rule"] == format!("heads.{head}"))
        .unwrap_or_else(|| panic!("no heads.{head} outcome: {json}"))
        .clone();
    (
        out.status.code().unwrap(),
        o["passed"].as_bool().unwrap(),
        o["actual"].as_str().unwrap().to_string(),
    )
}

/// `check`'s `heads` rule scores a file like PyTorch scores the mean CLIP embedding of the same
/// sampled frames (extracted by the `ffmpeg` CLI and embedded by `framepipe clip`, whose CLIP
/// parity with transformers is tested elsewhere), and holds the score to its bounds.
#[test]
fn check_heads_rule_scores_files_like_pytorch() {
    let d = tempdir().unwrap();
    let heads = d.path().join("heads");
    write_heads(&heads);
    // Short side under 224: the rule embeds the decoded frames unshrunk, as the PNGs are.
    let input = d.path().join("in.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=192x108:rate=25:duration=2",
        "-pix_fmt",
        "yuv444p",
        "-c:v",
        "libx264",
        "-qp",
        "0",
        input.to_str().unwrap(),
    ]);
    let (code, passed, actual) = head_outcome(
        &heads_rules(d.path(), &heads, "clip16", r#""min": -1e9"#),
        &input,
        "clip16",
    );
    assert!(code == 0 && passed, "{code} {actual}");
    assert!(actual.contains("5 frames, one every 10"), "{actual}");
    let ours: f64 = actual.split_whitespace().next().unwrap().parse().unwrap();

    let frames = d.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    ffmpeg(&[
        "-i",
        input.to_str().unwrap(),
        "-vf",
        r"select=not(mod(n\,10))",
        "-vsync",
        "0",
        frames.join("f%02d.png").to_str().unwrap(),
    ]);
    let mut pngs: Vec<_> = std::fs::read_dir(&frames)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pngs.sort();
    assert_eq!(pngs.len(), 5);
    let mut cmd = framepipe();
    cmd.args(["clip", "--device", "cpu", "--model"])
        .arg(clip_fixture());
    for p in &pngs {
        cmd.arg("--image").arg(p);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    #[derive(serde::Deserialize)]
    struct Image {
        embedding: Vec<f32>,
    }
    #[derive(serde::Deserialize)]
    struct Embedded {
        images: Vec<Image>,
    }
    let embedded: Embedded = serde_json::from_slice(&out.stdout).unwrap();
    let mut mean = vec![0f32; embedded.images[0].embedding.len()];
    for image in &embedded.images {
        mean.iter_mut()
            .zip(&image.embedding)
            .for_each(|(a, b)| *a += b);
    }
    let reference = reference_scores(&heads, "clip16", &[mean])[0];
    eprintln!("heads rule: framepipe {ours}, PyTorch on the ffmpeg frames {reference}");
    assert!(
        (ours - reference).abs() <= 1e-4, // the outcome prints 4 decimals
        "framepipe {ours} vs PyTorch {reference}"
    );

    let rules = |bounds: &str| heads_rules(d.path(), &heads, "clip16", bounds);
    let (code, passed, actual) = head_outcome(
        &rules(&format!(r#""min": {}"#, ours + 0.01)),
        &input,
        "clip16",
    );
    assert!(code == 1 && !passed, "{code} {actual}");
    let (code, passed, _) = head_outcome(
        &rules(&format!(r#""max": {}"#, ours - 0.01)),
        &input,
        "clip16",
    );
    assert!(code == 1 && !passed);
    let (code, passed, _) = head_outcome(
        &rules(&format!(
            r#""min": {}, "max": {}"#,
            ours - 0.01,
            ours + 0.01
        )),
        &input,
        "clip16",
    );
    assert!(code == 0 && passed);

    // With a tags rule on the same model and step, one sampler serves both: the same score.
    let both = pipeline(
        d.path(),
        "both.json",
        &std::fs::read_to_string(rules(r#""min": -1e9"#)).unwrap().replace(
            r#""heads": {"#,
            &format!(
                r#""tags": {{"model": {:?}, "labels": ["a cat", "a street"], "every_n_frames": 10, "must": [{{"label": "a cat", "score": 0.0}}]}}, "heads": {{"#,
                clip_fixture().display().to_string()
            ),
        ),
    );
    let (code, passed, actual) = head_outcome(&both, &input, "clip16");
    assert!(code == 0 && passed, "{actual}");
    assert!(
        actual.starts_with(&format!("{ours:.4} ")),
        "{actual} vs {ours}"
    );
}

/// A head that cannot score the rule's CLIP embeddings is refused when the rules load, naming
/// the rule's key and both sizes (exit 2, nothing decoded).
#[test]
fn check_heads_rule_refuses_a_head_of_another_size() {
    let d = tempdir().unwrap();
    let heads = d.path().join("heads");
    write_heads(&heads);
    let input = d.path().join("in.mp4");
    tiny_clip(&input);
    let out = framepipe()
        .args(["check", "--rules"])
        .arg(heads_rules(d.path(), &heads, "nsfw", r#""min": 0.5"#))
        .arg(&input)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("rule_sets[0].rules.heads.scores.nsfw")
            && err.contains("512")
            && err.contains("16"),
        "{err}"
    );
}
