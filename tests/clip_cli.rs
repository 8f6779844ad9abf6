//! `framepipe clip`: the command users and tests script against. Its embeddings and
//! probabilities are checked against transformers' own numbers for the tiny fixture model
//! (crates/framepipe-torch/tests/fixtures/clip-tiny, made by tests/fixtures/make_clip_fixture.py).
mod common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/framepipe-torch/tests/fixtures/clip-tiny")
}

/// A [N, D] f32 tensor of the fixture's reference file, as rows.
fn reference_rows(name: &str) -> Vec<Vec<f32>> {
    let t = read_tensor(&fixture().join("reference.safetensors"), name).unwrap();
    assert_eq!(t.dtype, safetensors::Dtype::F32);
    t.values.chunks(t.shape[1]).map(|r| r.to_vec()).collect()
}

fn clip(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = framepipe()
        .arg("clip")
        .arg("--model")
        .arg(fixture())
        .args(["--device", "cpu"])
        .args(args)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap(), json, stderr(&out))
}

fn embedding(v: &serde_json::Value) -> Vec<f32> {
    v["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn text_embeddings_match_transformers() {
    let prompts: Vec<String> =
        serde_json::from_slice(&std::fs::read(fixture().join("prompts.json")).unwrap()).unwrap();
    let mut args = Vec::new();
    for p in &prompts {
        args.extend(["--text", p.as_str()]);
    }
    let (code, json, err) = clip(&args);
    assert_eq!(code, 0, "{err}");
    let expected = reference_rows("prompt_text_embeds");
    for (i, row) in expected.iter().enumerate() {
        assert_eq!(json["texts"][i]["text"], prompts[i]);
        let d = max_diff(&embedding(&json["texts"][i]), row);
        assert!(d < 1e-4, "prompt {i} {:?}: max abs diff {d}", prompts[i]);
    }
    assert_eq!(
        json["probs"],
        serde_json::json!([]),
        "no images, no probabilities"
    );
}

#[test]
fn image_embedding_and_probabilities_match_transformers() {
    let Some(video) = shared_media("carphone_pristine.mp4") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("carphone.png");
    // The frame the fixture script used, decoded the same way (nothing of ../shared is committed).
    ffmpeg(&[
        "-ss",
        "2.0",
        "-i",
        video.to_str().unwrap(),
        "-frames:v",
        "1",
        "-pix_fmt",
        "rgb24",
        png.to_str().unwrap(),
    ]);
    let prompts: Vec<String> =
        serde_json::from_slice(&std::fs::read(fixture().join("prompts.json")).unwrap()).unwrap();
    let mut args = vec!["--image", png.to_str().unwrap()];
    for p in &prompts {
        args.extend(["--text", p.as_str()]);
    }
    let (code, json, err) = clip(&args);
    assert_eq!(code, 0, "{err}");
    let image_ref = &reference_rows("frame_image_embeds")[0];
    let d = max_diff(&embedding(&json["images"][0]), image_ref);
    assert!(d < 1e-4, "image embedding max abs diff {d}");
    // probs = softmax over texts of exp(logit_scale) * cos, from transformers' embeddings.
    let weights = std::fs::read(fixture().join("model.safetensors")).unwrap();
    let weights = safetensors::SafeTensors::deserialize(&weights).unwrap();
    let raw = weights.tensor("logit_scale").unwrap().data().to_vec();
    let scale = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]).exp();
    let texts = reference_rows("prompt_text_embeds");
    let logits: Vec<f32> = texts
        .iter()
        .map(|t| scale * t.iter().zip(image_ref).map(|(a, b)| a * b).sum::<f32>())
        .collect();
    let max = logits.iter().cloned().fold(f32::MIN, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let total: f32 = exps.iter().sum();
    let probs: Vec<f32> = json["probs"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap() as f32)
        .collect();
    for (got, e) in probs.iter().zip(&exps) {
        assert!(
            (got - e / total).abs() < 1e-4,
            "probs {probs:?} vs expected {:?}",
            exps.iter().map(|e| e / total).collect::<Vec<_>>()
        );
    }
}

#[test]
fn errors_name_the_cause() {
    let out = framepipe()
        .args([
            "clip",
            "--model",
            "/nonexistent/clip",
            "--text",
            "x",
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/clip") && stderr(&out).contains("config.json"),
        "{}",
        stderr(&out)
    );
    let (code, _, err) = clip(&[]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = clip(&["--image", "/nonexistent.png"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent.png: cannot read image"), "{err}");
    let out = framepipe()
        .arg("clip")
        .arg("--model")
        .arg(fixture())
        .args(["--text", "x", "--device", "cuda:3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
