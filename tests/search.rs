//! `framepipe search` and `framepipe describe` over outputs made by `framepipe run` with the
//! fixture CLIP model: a sampled frame finds itself, text rankings agree with scores computed
//! here from `framepipe clip` embeddings and the stored rows, describe reproduces the run's
//! tags, clips are cut, and bad corpora are reported.
mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/framepipe-torch/tests/fixtures/clip-tiny")
}

const LABELS: &str = r#"["a cat", "a street", "color bars", "a fractal"]"#;

/// Two processed videos (three and two scenes) under `d/out`.
fn corpus(d: &Path) -> PathBuf {
    let clip = format!(
        r#"{{"model": {:?}, "labels": {LABELS}, "templates": ["a photo of {{}}.", "a video of {{}}"], "sample": {{"every_n_frames": 5}}, "top_k": 4, "batch_size": 8}}"#,
        fixture().display().to_string()
    );
    let cfg = pipeline(
        d,
        "tag.json",
        &format!(
            r#"{{"scenes": {{}}, "clip": {clip}, "encode": {{"preset": "ultrafast"}}, "device": "cpu"}}"#
        ),
    );
    let a = d.join("alpha.mp4");
    make_cut_clip(
        &a,
        "640x360",
        &[("testsrc2", 30), ("smptebars", 25), ("mandelbrot", 30)],
        true,
        &[],
    );
    let b = d.join("beta.mp4");
    make_cut_clip(
        &b,
        "640x360",
        &[("rgbtestsrc", 25), ("testsrc", 30)],
        false,
        &[],
    );
    let out = d.join("out");
    let o = framepipe()
        .args(["-q", "run", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

fn search(args: &[&str]) -> (std::process::Output, Value) {
    let o = framepipe()
        .args([
            "-q", "search", "--device", "cpu", "--format", "json", "--model",
        ])
        .arg(fixture())
        .args(args)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, v)
}

fn hits(v: &Value, query: usize) -> Vec<Value> {
    v["results"][query]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Stored rows of an output: (frame, unit embedding) per sample.
fn stored_rows(out: &Path, stem: &str) -> Vec<(u64, Vec<f32>)> {
    let file = out.join(stem).join("embeddings.safetensors");
    let t = read_tensor(&file, "image_embeds").unwrap();
    let dim = t.shape[1];
    frame_index(&file)
        .into_iter()
        .zip(t.values.chunks(dim))
        .map(|(f, r)| (f as u64, r.to_vec()))
        .collect()
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn search_finds_frames_by_picture_and_ranks_texts_like_the_clip_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = corpus(d);
    let out_s = out.to_str().unwrap();

    // A sampled frame of the output video, as a PNG: its own row is the top hit.
    let r = report(&out, "alpha");
    // In the zooming fractal scene: neighbouring samples differ (a static scene would tie).
    let frame = r["samples"][13]["frame"].as_u64().unwrap();
    assert_eq!(frame, 65);
    let png = d.join("f.png");
    ffmpeg(&[
        "-i",
        out.join("alpha/alpha.mp4").to_str().unwrap(),
        "-vf",
        &format!("select=eq(n\\,{frame})"),
        "-frames:v",
        "1",
        png.to_str().unwrap(),
    ]);
    let (o, v) = search(&[
        out_s,
        "--image",
        png.to_str().unwrap(),
        "--frames",
        "--top",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let top = &hits(&v, 0)[0];
    eprintln!("image query: top hit {top}");
    assert_eq!(top["frame"], frame, "{v}");
    assert!(top["video"].as_str().unwrap().ends_with("alpha.mp4"));
    assert!(top["score"].as_f64().unwrap() >= 0.99, "{top}");
    assert_eq!(v["row_kind"], "frames");
    assert_eq!(v["outputs"], 2);

    // Text queries: the ranking of every frame equals cosine(text embedding from `framepipe
    // clip`, stored row) computed here.
    let texts = ["a red square", "a picture of a mountain"];
    let clip = framepipe()
        .args(["clip", "--device", "cpu", "--model"])
        .arg(fixture())
        .args(["--text", texts[0], "--text", texts[1]])
        .output()
        .unwrap();
    assert!(clip.status.success(), "{}", stderr(&clip));
    let clip: Value = serde_json::from_slice(&clip.stdout).unwrap();
    let mut rows: Vec<(String, u64, Vec<f32>)> = Vec::new();
    for stem in ["alpha", "beta"] {
        for (f, e) in stored_rows(&out, stem) {
            rows.push((stem.to_string(), f, e));
        }
    }
    let (o, v) = search(&[
        out_s, "--text", texts[0], "--text", texts[1], "--frames", "--top", "1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (q, text) in texts.iter().enumerate() {
        let t: Vec<f32> = serde_json::from_value(clip["texts"][q]["embedding"].clone()).unwrap();
        let t = unit(&t);
        let mut want: Vec<(f32, String, u64)> = rows
            .iter()
            .map(|(s, f, e)| (dot(&t, &unit(e)), s.clone(), *f))
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0));
        let got = hits(&v, q);
        assert_eq!(got.len(), rows.len(), "every frame ranked");
        for (g, w) in got.iter().zip(&want) {
            let score = g["score"].as_f64().unwrap() as f32;
            assert!((score - w.0).abs() < 2e-3, "{text}: {g} vs {w:?}");
        }
        // Same order wherever the reference scores are not within rounding of each other.
        for (i, g) in got.iter().enumerate() {
            let w = &want[i];
            let tie = want
                .iter()
                .any(|o| (o.1 != w.1 || o.2 != w.2) && (o.0 - w.0).abs() < 2e-3);
            if !tie {
                assert_eq!(g["frame"].as_u64().unwrap(), w.2, "{text} rank {i}");
                assert!(g["video"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("{}.mp4", w.1)));
            }
        }
    }

    // Scenes (the default): five scenes in all, each ranked once, best first.
    let (o, v) = search(&[out_s, "--text", texts[0], "--top", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let h = hits(&v, 0);
    assert_eq!(h.len(), 5, "{v}");
    assert!(h
        .windows(2)
        .all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()));
    assert!(h
        .iter()
        .all(|x| x["end_time"].as_f64() > x["start_time"].as_f64()));
    // --min-score keeps only what scores at least that.
    let floor = h[1]["score"].as_f64().unwrap();
    let (_, v) = search(&[
        out_s,
        "--text",
        texts[0],
        "--min-score",
        &format!("{floor}"),
    ]);
    assert_eq!(hits(&v, 0).len(), 2, "{v}");

    // --like: a moment of the source video finds the frame sampled there.
    let (o, v) = search(&[
        out_s,
        "--like",
        &format!("{}@2.6", d.join("alpha.mp4").display()),
        "--frames",
        "--top",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let top = &hits(&v, 0)[0];
    assert_eq!(
        top["frame"], 65,
        "frame 65 (a zooming fractal) is shown at 2.6 s at 25 fps: {top}"
    );
    assert!(top["score"].as_f64().unwrap() >= 0.98, "{top}");

    // --queries FILE: one pass, one result list per line.
    let qfile = d.join("queries.txt");
    std::fs::write(&qfile, "# my queries\na red square\n\ncolor bars\na cat\n").unwrap();
    let (o, v) = search(&[out_s, "--queries", qfile.to_str().unwrap(), "--top", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let queries: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["query"].as_str().unwrap())
        .collect();
    assert_eq!(queries, ["a red square", "color bars", "a cat"]);

    // --export-clips: each hit's scene cut from the output video, judged by ffprobe.
    let clips = d.join("clips");
    let (o, v) = search(&[
        out_s,
        "--text",
        texts[1],
        "--top",
        "2",
        "--export-clips",
        clips.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for hit in hits(&v, 0) {
        let clip = PathBuf::from(hit["clip"].as_str().expect("clip path"));
        let p = probe_output(&clip);
        let span = hit["end_time"].as_f64().unwrap() - hit["start_time"].as_f64().unwrap();
        let want_frames = (span * 25.0).round() as u64;
        eprintln!(
            "{}: {} frames, {:?}",
            clip.display(),
            p.frames,
            hit["clip_method"]
        );
        assert_eq!(p.frames, want_frames, "{hit}");
        assert_eq!(p.codec, "h264");
    }

    // Text output for people.
    let o = framepipe()
        .args(["search", "--device", "cpu", "--model"])
        .arg(fixture())
        .args([out_s, "--text", "a cat", "--top", "2"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("query: a cat") && text.contains("  1. "),
        "{text}"
    );
}

#[test]
fn describe_ranks_new_labels_and_reproduces_the_run_tags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = corpus(d);
    let labels: Vec<String> = serde_json::from_str(LABELS).unwrap();
    let o = framepipe()
        .args(["describe", "--device", "cpu", "--format", "json", "--model"])
        .arg(fixture())
        .arg(out.join("alpha"))
        .arg("--labels")
        .args(&labels)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = report(&out, "alpha");
    let run_scenes = r["scenes"].as_array().unwrap();
    let described = v["scenes"].as_array().unwrap();
    assert_eq!(described.len(), run_scenes.len());
    for (got, want) in described.iter().zip(run_scenes) {
        let g = got["tags"].as_array().unwrap();
        let w = want["tags"].as_array().unwrap();
        assert_eq!(g.len(), w.len());
        for (a, b) in g.iter().zip(w) {
            assert_eq!(a["label"], b["label"], "scene {}", want["index"]);
            let diff = (a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs();
            // Stored rows are fp16; the run scored fp32 embeddings.
            assert!(diff < 2e-3, "{a} vs {b}");
        }
    }

    // A missing output and a template without a slot for the label: usage errors, named.
    let o = framepipe()
        .args(["describe", "--device", "cpu", "--model"])
        .arg(fixture())
        .arg(d.join("nope"))
        .args(["--labels", "a cat"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no such output folder"),
        "{}",
        stderr(&o)
    );
    let o = framepipe()
        .args([
            "describe",
            "--device",
            "cpu",
            "--template",
            "a photo",
            "--model",
        ])
        .arg(fixture())
        .arg(out.join("alpha"))
        .args(["--labels", "a cat"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("each needs one {}"), "{}", stderr(&o));

    // Labels the run never saw, from a file, with other templates.
    let file = d.join("labels.txt");
    std::fs::write(&file, "a dog\n# comment\na beach\n\nsnow\n").unwrap();
    let o = framepipe()
        .args([
            "describe", "--device", "cpu", "--format", "json", "--top", "2", "--model",
        ])
        .arg(fixture())
        .arg(out.join("alpha/alpha.json"))
        .args(["--template", "{}", "--labels"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["labels"], serde_json::json!(["a dog", "a beach", "snow"]));
    for scene in v["scenes"].as_array().unwrap() {
        let tags = scene["tags"].as_array().unwrap();
        assert_eq!(tags.len(), 2);
        assert!(tags[0]["score"].as_f64() >= tags[1]["score"].as_f64());
    }
}

#[test]
fn bad_corpora_are_reported_and_the_rest_still_searched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = corpus(d);
    let out_s = out.to_str().unwrap();

    // An empty folder: says so, exit 1.
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (o, _) = search(&[empty.to_str().unwrap(), "--text", "a cat"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("empty corpus"), "{}", stderr(&o));

    // A missing folder: usage error.
    let (o, _) = search(&[d.join("nope").to_str().unwrap(), "--text", "a cat"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no such folder"), "{}", stderr(&o));

    // A truncated embeddings file: that output is skipped with the reason, the other searched.
    let beta_embeds = out.join("beta/embeddings.safetensors");
    let bytes = std::fs::read(&beta_embeds).unwrap();
    std::fs::write(&beta_embeds, &bytes[..bytes.len() / 2]).unwrap();
    let (o, v) = search(&[out_s, "--text", "a cat"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(v["outputs"], 1);
    assert!(v["skipped"][0]["path"].as_str().unwrap().ends_with("beta"));
    assert!(
        v["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("corrupt"),
        "{v}"
    );
    std::fs::write(&beta_embeds, &bytes).unwrap();

    // A report of another schema: skipped as made by another version.
    let beta_report = out.join("beta/beta.json");
    let original = std::fs::read_to_string(&beta_report).unwrap();
    let mut r: Value = serde_json::from_str(&original).unwrap();
    r["schema_version"] = 99.into();
    std::fs::write(&beta_report, r.to_string()).unwrap();
    let (o, v) = search(&[out_s, "--text", "a cat"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        v["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("another version"),
        "{v}"
    );

    // Rows of another model: refused, naming both.
    r["schema_version"] = 1.into();
    r["clip"]["model_hash"] = "sha256:0000".into();
    std::fs::write(&beta_report, r.to_string()).unwrap();
    let (o, _) = search(&[out_s, "--text", "a cat"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("different CLIP models"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&beta_report, &original).unwrap();

    // A query model that did not make the rows (same shapes, other weights): refused.
    let other = d.join("other-model");
    std::fs::create_dir_all(&other).unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap().flatten() {
        std::fs::copy(entry.path(), other.join(entry.file_name())).unwrap();
    }
    let weights = other.join("model.safetensors");
    let mut w = std::fs::read(&weights).unwrap();
    let n = w.len();
    w[n - 1] ^= 0x40;
    w[n - 100] ^= 0x40;
    let header = u64::from_le_bytes(w[..8].try_into().unwrap()) as usize;
    w[8 + header + 10] ^= 0x40;
    std::fs::write(&weights, &w).unwrap();
    let o = framepipe()
        .args(["-q", "search", "--device", "cpu", "--model"])
        .arg(&other)
        .args([out_s, "--text", "a cat"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not the model that made the embeddings"),
        "{}",
        stderr(&o)
    );

    // Rows of another projection size: refused, naming both sizes.
    let alpha_report = out.join("alpha/alpha.json");
    let mut r: Value =
        serde_json::from_str(&std::fs::read_to_string(&alpha_report).unwrap()).unwrap();
    let rows = r["clip"]["samples"].as_u64().unwrap() as usize;
    let dim = 24usize;
    let values: Vec<u8> = (0..rows * dim)
        .flat_map(|i| half::f16::from_f32(((i % 7) as f32 - 3.0) / 10.0).to_le_bytes())
        .collect();
    let index: Vec<u8> = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["frame"].as_i64().unwrap().to_le_bytes())
        .collect();
    let views = vec![
        (
            "image_embeds",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![rows, dim], &values)
                .unwrap(),
        ),
        (
            "frame_index",
            safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![rows], &index)
                .unwrap(),
        ),
    ];
    std::fs::write(
        out.join("alpha/embeddings.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    r["clip"]["dim"] = dim.into();
    std::fs::write(&alpha_report, r.to_string()).unwrap();
    let (o, _) = search(&[out.join("alpha").to_str().unwrap(), "--text", "a cat"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("projection size is 16, the stored rows have 24"),
        "{}",
        stderr(&o)
    );
}
