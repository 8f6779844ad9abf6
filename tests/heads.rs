//! Scoring heads (`framepipe::heads`) judged by PyTorch: `tests/fixtures/make_head_fixture.py`
//! builds the LAION aesthetic-predictor MLP and four smaller heads (ReLU + sigmoid output in F16,
//! GELU with a bias-less layer in BF16, tanh, sigmoid) with seeded random weights, and prints what
//! PyTorch fp32 scores for seeded random embeddings; every Rust score must agree within 1e-5
//! (the largest difference seen is about 1e-7: the reference's own fp32 rounding). Broken files
//! must be refused with messages that name the head, the file, the tensor and the shapes.
mod common;

use std::path::{Path, PathBuf};

use framepipe::heads::{Head, HeadError};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    heads: Vec<Reference>,
}

#[derive(Deserialize)]
struct Reference {
    name: String,
    weights: PathBuf,
    config: PathBuf,
    input_dim: usize,
    embeddings: Vec<Vec<f64>>,
    scores: Vec<f64>,
}

/// The fixture heads written into `dir`, with PyTorch's scores (seed 7, `count` embeddings).
fn fixture(dir: &Path, count: usize) -> Fixture {
    common::fixture_json(
        "make_head_fixture.py",
        &[
            dir.as_os_str(),
            "--seed".as_ref(),
            "7".as_ref(),
            "--count".as_ref(),
            count.to_string().as_ref(),
        ],
    )
}

#[test]
fn scores_match_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture(dir.path(), 32);
    let names: Vec<&str> = fixture.heads.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        ["aesthetic", "nsfw", "gelu", "tanh", "sigmoid", "clip16"]
    );
    let mut worst = 0.0f64;
    for reference in &fixture.heads {
        let head = Head::load(&reference.name, &reference.weights, &reference.config)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.name(), reference.name);
        assert_eq!(head.input_dim(), reference.input_dim);
        assert_eq!(reference.embeddings.len(), 32);
        let mut head_worst = 0.0f64;
        for (embedding, &want) in reference.embeddings.iter().zip(&reference.scores) {
            // The printed values are the fp32 embeddings PyTorch used, exactly.
            let embedding: Vec<f32> = embedding.iter().map(|&v| v as f32).collect();
            let got = head.score(&embedding).unwrap();
            let diff = (got - want).abs();
            let tolerance = 1e-5 * want.abs().max(1.0);
            assert!(
                diff <= tolerance,
                "head `{}`: {got} vs PyTorch {want} (|difference| {diff:e})",
                reference.name
            );
            head_worst = head_worst.max(diff);
        }
        eprintln!(
            "head `{}`: max |difference| from PyTorch {head_worst:e}",
            reference.name
        );
        worst = worst.max(head_worst);
    }
    eprintln!("all heads: max |difference| from PyTorch {worst:e}");
}

/// `source` with tensor `name` replaced by zeros of `shape` (or dropped, with `None`).
fn rewrite(source: &Path, dest: &Path, name: &str, shape: Option<Vec<usize>>) {
    let bytes = std::fs::read(source).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let zeros = vec![
        0u8;
        shape
            .as_ref()
            .map_or(0, |s| s.iter().product::<usize>() * 4)
    ];
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != name)
        .collect();
    if let Some(shape) = shape {
        tensors.push((
            name.to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &zeros).unwrap(),
        ));
    }
    std::fs::write(dest, safetensors::serialize(tensors, None).unwrap()).unwrap();
}

#[test]
fn broken_heads_are_refused_with_names_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture(dir.path(), 1);
    let aesthetic = &fixture.heads[0];
    assert_eq!(aesthetic.name, "aesthetic");

    // A wrongly shaped tensor.
    let bad = dir.path().join("bad-shape.safetensors");
    rewrite(
        &aesthetic.weights,
        &bad,
        "layers.2.weight",
        Some(vec![64, 1024]),
    );
    let e = Head::load("aesthetic", &bad, &aesthetic.config).unwrap_err();
    assert!(matches!(e, HeadError::Shape(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "head `aesthetic`: layers.2.weight in {} is [64, 1024], expected [128, 1024] (out \
             128 from the config's layers[1], in 1024 = layers.0's out)",
            bad.display()
        )
    );

    // A missing tensor.
    let missing = dir.path().join("missing.safetensors");
    rewrite(&aesthetic.weights, &missing, "layers.6.bias", None);
    let e = Head::load("aesthetic", &missing, &aesthetic.config)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "head `aesthetic`: {} has no tensor layers.6.bias (config {} names layer `layers.6`; \
             the file has: layers.0.bias, layers.0.weight, ",
            missing.display(),
            aesthetic.config.display()
        )),
        "{e}"
    );

    // A config with an unknown key (and one nested in a layer).
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&aesthetic.config).unwrap()).unwrap();
    let mut extra = config.clone();
    extra["normalise_input"] = true.into();
    let extra_path = dir.path().join("extra.json");
    std::fs::write(&extra_path, extra.to_string()).unwrap();
    let e = Head::load("aesthetic", &aesthetic.weights, &extra_path)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "head `aesthetic`: config {}: normalise_input: unknown field `normalise_input`",
            extra_path.display()
        )),
        "{e}"
    );
    let mut nested = config.clone();
    nested["layers"][3]["activation"] = "relu".into();
    std::fs::write(&extra_path, nested.to_string()).unwrap();
    let e = Head::load("aesthetic", &aesthetic.weights, &extra_path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layers[3].activation: unknown field `activation`"),
        "{e}"
    );

    // A config whose input_dim the weights do not fit.
    let mut narrow = config.clone();
    narrow["input_dim"] = 512.into();
    std::fs::write(&extra_path, narrow.to_string()).unwrap();
    let e = Head::load("aesthetic", &aesthetic.weights, &extra_path)
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(&format!(
            "layers.0.weight in {} is [1024, 768], expected [1024, 512] (out 1024 from the \
             config's layers[0], in 512 = input_dim)",
            aesthetic.weights.display()
        )),
        "{e}"
    );

    // A missing file.
    let nowhere = dir.path().join("nowhere.safetensors");
    let e = Head::load("aesthetic", &nowhere, &aesthetic.config)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "head `aesthetic`: cannot read {}: ",
            nowhere.display()
        )),
        "{e}"
    );

    // An embedding of the wrong length.
    let head = Head::load("aesthetic", &aesthetic.weights, &aesthetic.config).unwrap();
    let e = head.score(&[0.1; 512]).unwrap_err();
    assert!(matches!(e, HeadError::EmbeddingLength { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "head `aesthetic` ({}): the embedding has 512 values, the head takes 768 (input_dim)",
            aesthetic.weights.display()
        )
    );
}
