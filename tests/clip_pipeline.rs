//! The clip stage of `framepipe run`: tags per scene and per sample, `embeddings.safetensors`
//! whose rows agree with `framepipe clip --image` on the same frames, and configuration errors
//! found before any decoding.
mod common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/framepipe-torch/tests/fixtures/clip-tiny")
}

fn tag_pipeline(dir: &Path, clip: &str) -> PathBuf {
    pipeline(
        dir,
        "tag.json",
        &format!(
            r#"{{"scenes": {{}}, "clip": {clip}, "encode": {{"preset": "ultrafast"}}, "device": "cpu"}}"#
        ),
    )
}

#[test]
fn run_tags_scenes_and_writes_embeddings_matching_the_clip_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("cuts.mp4");
    make_cut_clip(
        &input,
        "640x272",
        &[("testsrc2", 30), ("smptebars", 25)],
        false,
        &[],
    );
    let clip = format!(
        r#"{{"model": {:?}, "labels": ["a cat", "a street", "color bars"], "templates": ["a photo of {{}}.", "a video of {{}}"], "sample": {{"every_n_frames": 10}}, "top_k": 2, "batch_size": 4}}"#,
        fixture().display().to_string()
    );
    let cfg = tag_pipeline(d, &clip);
    let out = d.join("out");
    let o = framepipe()
        .args(["-q", "run", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&out, "cuts");
    let samples = r["samples"].as_array().unwrap();
    let frames: Vec<u64> = samples
        .iter()
        .map(|s| s["frame"].as_u64().unwrap())
        .collect();
    assert_eq!(frames, [0, 10, 20, 30, 40, 50]);
    for scene in r["scenes"].as_array().unwrap() {
        let tags = scene["tags"].as_array().unwrap();
        assert_eq!(tags.len(), 2, "top_k 2: {scene}");
        assert!(tags[0]["score"].as_f64() >= tags[1]["score"].as_f64());
    }
    assert_eq!(r["clip"]["samples"], 6);
    assert!(r["stats"]["stages"]["clip"]["seconds"].as_f64().is_some());

    // embeddings.safetensors: f16 rows in sample order, frame indices.
    let embeddings = out.join("cuts/embeddings.safetensors");
    let embeds = read_tensor(&embeddings, "image_embeds").unwrap();
    assert_eq!(embeds.dtype, safetensors::Dtype::F16);
    assert_eq!(embeds.shape, [6, 16]);
    assert_eq!(frame_index(&embeddings), [0, 10, 20, 30, 40, 50]);
    let rows: Vec<Vec<f32>> = embeds.values.chunks(16).map(|r| r.to_vec()).collect();

    // The same frames, decoded and scaled to the picture area by ffmpeg, through `framepipe clip`.
    let content = &r["output"]["content"];
    let (w, h) = (
        content["width"].as_u64().unwrap(),
        content["height"].as_u64().unwrap(),
    );
    for (row, frame) in [(0usize, 0u32), (3, 30)] {
        let png = d.join(format!("f{frame}.png"));
        ffmpeg(&[
            "-i",
            input.to_str().unwrap(),
            "-vf",
            &format!("select=eq(n\\,{frame}),scale={w}:{h}:flags=bicubic"),
            "-frames:v",
            "1",
            "-pix_fmt",
            "rgb24",
            png.to_str().unwrap(),
        ]);
        let c = framepipe()
            .arg("clip")
            .arg("--model")
            .arg(fixture())
            .args(["--device", "cpu", "--image"])
            .arg(&png)
            .output()
            .unwrap();
        assert!(c.status.success(), "{}", stderr(&c));
        let json: serde_json::Value = serde_json::from_slice(&c.stdout).unwrap();
        let e: Vec<f32> = json["images"][0]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let cos = cosine(&e, &rows[row]);
        eprintln!("frame {frame}: cosine(pipeline row, framepipe clip --image) = {cos:.5}");
        assert!(cos > 0.995, "frame {frame}: cosine {cos}");
    }
}

#[test]
fn clip_config_errors_come_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = format!("{:?}", fixture().display().to_string());
    for (clip, expected) in [
        (
            format!(r#"{{"model": {model}, "labels": []}}"#),
            "clip.labels",
        ),
        (
            format!(r#"{{"model": {model}, "labels": ["a"], "templates": ["no placeholder"]}}"#),
            "exactly one {}",
        ),
        (
            r#"{"model": "/nonexistent/clip", "labels": ["a"]}"#.to_string(),
            "not a CLIP model folder",
        ),
        (
            format!(
                r#"{{"model": {model}, "labels": ["a"], "sample": {{"every_n_frames": 5, "fps": 1}}}}"#
            ),
            "exactly one of every_n_frames, fps, per_scene",
        ),
    ] {
        let cfg = tag_pipeline(d, &clip);
        let o = framepipe()
            .args(["run", "--pipeline"])
            .arg(&cfg)
            .arg("-o")
            .arg(d.join("out"))
            .arg("never-opened.mp4")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{clip}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{clip}: {}", stderr(&o));
        assert!(
            !stderr(&o).contains("never-opened"),
            "before any input: {}",
            stderr(&o)
        );
    }
    // A folder with a config.json that is not a CLIP model: found when the model loads, still
    // before decoding.
    let fake = d.join("fake-model");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
    let cfg = tag_pipeline(
        d,
        &format!(
            r#"{{"model": {:?}, "labels": ["a"]}}"#,
            fake.display().to_string()
        ),
    );
    let o = framepipe()
        .args(["run", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(d.join("out"))
        .arg("never-opened.mp4")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("fake-model"), "{}", stderr(&o));
}

#[test]
fn per_scene_sampling_takes_k_frames_inside_every_scene() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("cuts.mp4");
    make_cut_clip(
        &input,
        "320x240",
        &[("testsrc2", 40), ("smptebars", 60), ("testsrc2", 20)],
        false,
        &[],
    );
    let clip = format!(
        r#"{{"model": {:?}, "labels": ["a cat", "a street"], "sample": {{"per_scene": 2}}, "batch_size": 3}}"#,
        fixture().display().to_string()
    );
    let cfg = tag_pipeline(d, &clip);
    let out = d.join("out");
    let o = framepipe()
        .args(["-q", "run", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&out, "cuts");
    let scenes = r["scenes"].as_array().unwrap();
    assert_eq!(scenes.len(), 3);
    let frames: Vec<u64> = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["frame"].as_u64().unwrap())
        .collect();
    for scene in scenes {
        let (a, b) = (
            scene["start_frame"].as_u64().unwrap(),
            scene["end_frame"].as_u64().unwrap(),
        );
        let inside: Vec<u64> = frames
            .iter()
            .copied()
            .filter(|f| (a..b).contains(f))
            .collect();
        assert_eq!(inside.len(), 2, "scene {a}..{b}: samples {frames:?}");
        // Spread over the scene, not bunched at its start.
        assert!(
            inside[1] - inside[0] >= (b - a) / 4,
            "scene {a}..{b}: {inside:?}"
        );
        assert_eq!(scene["tags"].as_array().unwrap().len(), 2);
    }
    let err = framepipe()
        .args(["run", "--pipeline"])
        .arg(pipeline(
            d,
            "noscenes.json",
            &format!(r#"{{"clip": {clip}}}"#),
        ))
        .arg("-o")
        .arg(d.join("o2"))
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(2));
    assert!(
        stderr(&err).contains("per_scene needs the scenes section"),
        "{}",
        stderr(&err)
    );
}

/// A source whose size changes mid-stream changes the picture area CLIP sees (pillarboxed 4:3,
/// then full 16:9): a batch never mixes the two layouts, and every frame's embedding is the one
/// it gets when its part runs alone.
#[test]
fn a_picture_size_change_mid_stream_splits_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let [a, b, mixed] = size_change_ts(d);
    // Batches of 8 samples every 5 frames: the first batch would span the change.
    let cfg = pipeline(
        d,
        "clip.json",
        &format!(
            r#"{{"clip": {{"model": {:?}, "labels": ["a", "b"], "sample": {{"every_n_frames": 5}}, "batch_size": 8}}, "device": "cpu"}}"#,
            fixture().display().to_string()
        ),
    );
    let rows = |input: &Path, stem: &str| {
        let out = d.join(format!("out-{stem}"));
        let o = run_pipeline(&cfg, &out, input);
        assert!(o.status.success(), "{}", stderr(&o));
        let embeddings = out.join(stem).join("embeddings.safetensors");
        let t = read_tensor(&embeddings, "image_embeds").unwrap();
        (frame_index(&embeddings), t.values)
    };
    let (index, mixed_rows) = rows(&mixed, "mixed");
    assert_eq!(index, [0, 5, 10, 15, 20, 25, 30, 35]);
    let (_, a_rows) = rows(&a, "a");
    let (_, b_rows) = rows(&b, "b");
    assert_eq!(mixed_rows, [a_rows, b_rows].concat());
}
