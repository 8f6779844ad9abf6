//! CLIP in tch against transformers' `CLIPModel`: a small random-weight model and its outputs
//! on fixed inputs, frozen by tests/fixtures/make_clip_fixture.py (transformers 5.17.0, eager
//! attention); weight-loading errors; and full-size OpenAI shapes run end to end with random
//! weights (no files).
#[path = "../../../tests/common/shared.rs"]
mod shared;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use framepipe_torch::models::clip::{
    ClipConfig, ClipError, ClipModel, ClipPreprocessor, ClipTokenizer,
};
use tch::{Device, Kind, Tensor};

/// Frozen reference: fp32 on CPU must agree to this absolute tolerance.
const TOLERANCE: f64 = 1e-4;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip-tiny")
}

fn reference() -> HashMap<String, Tensor> {
    Tensor::read_safetensors(fixture_dir().join("reference.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a - b).abs().max().double_value(&[])
}

/// The real frame the fixture's frame_* references were computed from: carphone_pristine.mp4
/// at 2.0 s from ../shared/media, decoded with the same ffmpeg command as
/// tests/fixtures/make_clip_fixture.py (into a temporary folder: nothing derived from
/// ../shared/media is committed). None, with a SKIP message, when the video is absent.
fn carphone_frame() -> Option<image::RgbImage> {
    let video = shared::shared_media("carphone_pristine.mp4")?;
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("carphone.png");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", "2.0", "-i"])
        .arg(&video)
        .args(["-frames:v", "1", "-pix_fmt", "rgb24"])
        .arg(&png)
        .status()
        .expect("the ffmpeg CLI (scripts/setup.sh installs it)");
    assert!(
        status.success(),
        "ffmpeg failed to decode {}",
        video.display()
    );
    Some(image::open(&png).unwrap().to_rgb8())
}

/// A copy of the fixture folder whose files the test may rewrite.
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture_dir().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

fn rewrite_weights(folder: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let path = folder.join("model.safetensors");
    let mut tensors = Tensor::read_safetensors(&path).unwrap();
    edit(&mut tensors);
    Tensor::write_safetensors(&tensors, &path).unwrap();
}

#[test]
fn fixture_model_matches_transformers() {
    let model = ClipModel::load(&fixture_dir(), Device::Cpu, Kind::Float).unwrap();
    let r = reference();
    let image = model.image_embeds(&r["pixel_values"]).unwrap();
    let text = model.text_embeds(&r["input_ids"]).unwrap();
    let logits = model.logits_per_image(&image, &text).unwrap();
    let d_image = max_abs_diff(&image, &r["image_embeds"]);
    let d_text = max_abs_diff(&text, &r["text_embeds"]);
    let d_logits = max_abs_diff(&logits, &r["logits_per_image"]);
    eprintln!("max abs diff vs transformers: image_embeds {d_image:.3e}, text_embeds {d_text:.3e}, logits_per_image {d_logits:.3e}");
    assert!(d_image < TOLERANCE, "image_embeds differ by {d_image}");
    assert!(d_text < TOLERANCE, "text_embeds differ by {d_text}");
    assert!(
        d_logits < TOLERANCE,
        "logits_per_image differ by {d_logits}"
    );
    assert!(
        (model.logit_scale() - 2.3).abs() < 1e-6,
        "logit_scale {}",
        model.logit_scale()
    );
}

#[test]
fn sharded_checkpoint_loads_the_same() {
    // model.safetensors.index.json + shards, as large checkpoints are published.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let tensors = Tensor::read_safetensors(fixture_dir().join("model.safetensors")).unwrap();
    let (vision, rest): (Vec<_>, Vec<_>) = tensors
        .into_iter()
        .partition(|(n, _)| n.starts_with("vision_model."));
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", &vision),
        ("model-00002-of-00002.safetensors", &rest),
    ] {
        Tensor::write_safetensors(part, dir.path().join(file)).unwrap();
        for (name, _) in part {
            map.insert(name.clone(), file.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let model = ClipModel::load(dir.path(), Device::Cpu, Kind::Float).unwrap();
    let r = reference();
    let image = model.image_embeds(&r["pixel_values"]).unwrap();
    let text = model.text_embeds(&r["input_ids"]).unwrap();
    assert!(max_abs_diff(&image, &r["image_embeds"]) < TOLERANCE);
    assert!(max_abs_diff(&text, &r["text_embeds"]) < TOLERANCE);
}

#[test]
fn half_precision_runs_through_the_kind_parameter() {
    // fp16 is meant for CUDA; on CPU it checks that every op follows the model's kind and that
    // outputs come back as normalized fp32, close to the fp32 reference.
    let model = ClipModel::load(&fixture_dir(), Device::Cpu, Kind::Half).unwrap();
    assert_eq!(model.kind(), Kind::Half);
    let r = reference();
    let image = model.image_embeds(&r["pixel_values"]).unwrap();
    let text = model.text_embeds(&r["input_ids"]).unwrap();
    assert_eq!((image.kind(), text.kind()), (Kind::Float, Kind::Float));
    let d_image = max_abs_diff(&image, &r["image_embeds"]);
    let d_text = max_abs_diff(&text, &r["text_embeds"]);
    eprintln!("fp16 on CPU: max abs diff image_embeds {d_image:.3e}, text_embeds {d_text:.3e}");
    assert!(
        d_image < 2e-2 && d_text < 2e-2,
        "fp16 differs by {d_image} / {d_text}"
    );
}

#[test]
fn fixture_folder_runs_text_and_a_frame_end_to_end() {
    // The fixture folder carries a cut-down CLIP tokenizer and a preprocessor config, so text
    // goes through our tokenizer and model exactly as through CLIPTokenizer + CLIPModel.
    let folder = fixture_dir();
    let model = ClipModel::load(&folder, Device::Cpu, Kind::Float).unwrap();
    let tokenizer = ClipTokenizer::from_folder(&folder, model.context_length() as usize).unwrap();
    let prompts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(folder.join("prompts.json")).unwrap())
            .unwrap();
    let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let ids = tokenizer.input_ids(&prompts, Device::Cpu).unwrap();
    let r = reference();
    assert!(
        ids.equal(&r["prompt_input_ids"]),
        "ids differ from CLIPTokenizer's"
    );
    let text = model.text_embeds(&ids).unwrap();
    let mut d = max_abs_diff(&text, &r["prompt_text_embeds"]);
    eprintln!("prompts through the fixture tokenizer: max abs diff {d:.3e}");
    if d >= TOLERANCE {
        // Seen once in CI (1.08e-4 where every other run gives 1.5e-7, never reproduced in 30
        // local runs): say so loudly and measure again, so a rare nondeterminism in the CPU
        // kernels shows in the log without hiding a real parity break (which fails twice).
        let again = max_abs_diff(&model.text_embeds(&ids).unwrap(), &r["prompt_text_embeds"]);
        eprintln!("NONDETERMINISTIC: first {d:.3e}, again {again:.3e}");
        d = again;
    }
    assert!(d < TOLERANCE, "prompt text_embeds differ by {d}");

    // And a real frame through the folder's preprocessor_config.json (64x64 input).
    let pre = ClipPreprocessor::from_folder(&folder, model.image_size()).unwrap();
    assert_eq!((pre.shortest_edge, pre.crop_size), (64, (64, 64)));
    let Some(img) = carphone_frame() else { return };
    let (w, h) = (img.width() as i64, img.height() as i64);
    let frame = Tensor::from_slice(img.as_raw())
        .view([1, h, w, 3])
        .permute([0, 3, 1, 2]);
    let image = model
        .image_embeds(&pre.preprocess(&frame).unwrap())
        .unwrap();
    let logits = model.logits_per_image(&image, &text).unwrap();
    let d_image = max_abs_diff(&image, &r["frame_image_embeds"]);
    let d_logits = max_abs_diff(&logits, &r["frame_logits_per_image"]);
    eprintln!(
        "real frame through the fixture folder: image_embeds {d_image:.3e}, logits {d_logits:.3e}"
    );
    assert!(
        d_image < TOLERANCE && d_logits < TOLERANCE,
        "{d_image} / {d_logits}"
    );
}

#[test]
fn legacy_eos_token_id_pools_at_the_largest_id() {
    // Configs written before transformers PR #24773 say eos_token_id 2 (openai/clip-vit-*):
    // transformers then pools at argmax(input_ids). The fixture ids hold ids above eos, so
    // the two rules pick different positions.
    let dir = fixture_copy();
    let path = dir.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["text_config"]["eos_token_id"] = 2.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    let model = ClipModel::load(dir.path(), Device::Cpu, Kind::Float).unwrap();
    let r = reference();
    let text = model.text_embeds(&r["input_ids"]).unwrap();
    let d = max_abs_diff(&text, &r["text_embeds_legacy_eos"]);
    eprintln!("legacy pooling: max abs diff {d:.3e}");
    assert!(d < TOLERANCE, "legacy text_embeds differ by {d}");
    assert!(
        max_abs_diff(&text, &r["text_embeds"]) > 1e-2,
        "the fixture does not tell the rules apart"
    );
}

#[test]
fn missing_tensor_is_named_with_its_shape() {
    let dir = fixture_copy();
    let name = "vision_model.encoder.layers.1.mlp.fc2.weight";
    rewrite_weights(dir.path(), |t| t.retain(|(n, _)| n != name));
    let err = ClipModel::load(dir.path(), Device::Cpu, Kind::Float)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(name) && err.contains("[40, 72]") && err.contains("missing"),
        "{err}"
    );
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

#[test]
fn wrong_shape_names_tensor_expected_and_found() {
    let dir = fixture_copy();
    let name = "text_projection.weight";
    rewrite_weights(dir.path(), |t| {
        for (n, v) in t.iter_mut() {
            if n == name {
                *v = v.narrow(1, 0, 31).contiguous();
            }
        }
    });
    let err = ClipModel::load(dir.path(), Device::Cpu, Kind::Float)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(name) && err.contains("[16, 31]") && err.contains("[16, 32]"),
        "{err}"
    );
}

#[test]
fn bad_folders_name_the_folder_and_the_cause() {
    let missing = Path::new("/nonexistent/clip-model");
    let err = ClipModel::load(missing, Device::Cpu, Kind::Float)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/clip-model") && err.contains("config.json"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let err = ClipModel::load(dir.path(), Device::Cpu, Kind::Float).unwrap_err();
    assert!(matches!(err, ClipError::Weights { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "siglip"}"#,
    )
    .unwrap();
    let err = ClipModel::load(dir.path(), Device::Cpu, Kind::Float)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("siglip") && err.contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn absent_cuda_is_an_error_not_a_panic() {
    if tch::Cuda::is_available() {
        eprintln!("SKIPPED: CUDA is present here");
        return;
    }
    let err = ClipModel::load(&fixture_dir(), Device::Cuda(0), Kind::Half).unwrap_err();
    assert!(err.to_string().contains("CUDA device 0 requested"), "{err}");
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let model = ClipModel::load(&fixture_dir(), Device::Cpu, Kind::Float).unwrap();
    let err = model
        .image_embeds(&Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu)))
        .unwrap_err();
    assert!(err.to_string().contains("[1, 3, 32, 32]"), "{err}");
    let err = model
        .text_embeds(&Tensor::zeros([1, 78], (Kind::Int64, Device::Cpu)))
        .unwrap_err();
    assert!(err.to_string().contains("77"), "{err}");
    let err = model
        .text_embeds(&Tensor::full([1, 5], 5000, (Kind::Int64, Device::Cpu)))
        .unwrap_err();
    assert!(err.to_string().contains("5000"), "{err}");
}

// Full-size shapes: one at a time (L/14 alone is 1.7 GB of fp32 weights).
static BIG: Mutex<()> = Mutex::new(());

/// Builds `cfg` with random weights, checks the parameter count transformers reports for the
/// same config (counted from `CLIPModel(config)` in transformers 5.17.0), and runs one image and
/// one text through.
fn run_full_size(cfg: ClipConfig, expected_params: i64, positions: i64) {
    let _one = BIG.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(0);
    let proj = cfg.projection_dim;
    let size = cfg.vision_config.image_size;
    let start = std::time::Instant::now();
    let model = ClipModel::random(cfg, Device::Cpu, Kind::Float).unwrap();
    let shapes = model.parameter_shapes();
    let params: i64 = shapes.values().map(|s| s.iter().product::<i64>()).sum();
    assert_eq!(
        params, expected_params,
        "parameter count differs from transformers'"
    );
    let hidden = model.config().vision_config.hidden_size;
    assert_eq!(
        shapes["vision_model.embeddings.position_embedding.weight"],
        [positions, hidden]
    );

    let pixels = Tensor::randn([1, 3, size, size], (Kind::Float, Device::Cpu));
    let image = model.image_embeds(&pixels).unwrap();
    // "a photo of a cat" as the real tokenizer writes it, padded with <|endoftext|>.
    let mut ids = vec![49406i64, 320, 1125, 539, 320, 2368, 49407];
    ids.resize(77, 49407);
    let text = model
        .text_embeds(&Tensor::from_slice(&ids).view([1, 77]))
        .unwrap();
    let logits = model.logits_per_image(&image, &text).unwrap();
    assert_eq!(image.size(), [1, proj]);
    assert_eq!(text.size(), [1, proj]);
    for t in [&image, &text] {
        let norm = t.square().sum(Kind::Float).sqrt().double_value(&[]);
        assert!((norm - 1.0).abs() < 1e-4, "embedding norm {norm}");
    }
    assert!(logits.isfinite().all().int64_value(&[]) == 1);
    eprintln!(
        "{size}px model, {params} parameters: built and ran in {:.1?}",
        start.elapsed()
    );
}

#[test]
fn vit_base_patch32_runs() {
    run_full_size(ClipConfig::vit_base_patch32(), 151_277_313, 50);
}

#[test]
fn vit_base_patch16_runs() {
    run_full_size(ClipConfig::vit_base_patch16(), 149_620_737, 197);
}

#[test]
fn vit_large_patch14_runs() {
    run_full_size(ClipConfig::vit_large_patch14(), 427_616_513, 257);
}

#[test]
fn vit_large_patch14_336_runs() {
    run_full_size(ClipConfig::vit_large_patch14_336(), 427_944_193, 577);
}
