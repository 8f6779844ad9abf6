//! The `clip` request: embeds images and texts with a CLIP model folder and scores every image
//! against every text, as `framepipe clip` prints it (transformers' `image_embeds`, `text_embeds`
//! and `softmax(logit_scale.exp() * cos)` over the texts).
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::clip::preprocess::ClipPreprocessor;
use crate::clip::tokenizer::ClipTokenizer;
use crate::clip::ClipModel;
use crate::frames::FrameLayout;
pub use crate::request::parse_device;
use crate::request::{inference_kind, model_and_device, ModelCache};

/// An image file as a [1, 3, H, W] uint8 tensor.
fn load_image(path: &Path) -> Result<Tensor, String> {
    let img = image::open(path)
        .map_err(|e| format!("{}: cannot read image: {e}", path.display()))?
        .to_rgb8();
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    Ok(Tensor::from_slice(img.as_raw())
        .view([h, w, 3])
        .permute([2, 0, 1])
        .unsqueeze(0)
        .contiguous())
}

fn rows(t: &Tensor) -> Result<Vec<Vec<f64>>, String> {
    let t = t.to_kind(Kind::Double).to_device(Device::Cpu);
    Vec::<Vec<f64>>::try_from(&t).map_err(|e| e.to_string())
}

/// Handles `{"op": "clip", "model": DIR, "device": "cpu"|"cuda:N", "images": [..], "texts": [..]}`.
pub fn run(request: &Value) -> Result<Value, String> {
    let (folder, device) = model_and_device(request)?;
    let images: Vec<PathBuf> = request["images"].as_array().map_or(Vec::new(), |a| {
        a.iter()
            .filter_map(|v| v.as_str())
            .map(PathBuf::from)
            .collect()
    });
    let texts: Vec<String> = request["texts"].as_array().map_or(Vec::new(), |a| {
        a.iter()
            .filter_map(|v| v.as_str())
            .map(String::from)
            .collect()
    });
    if images.is_empty() && texts.is_empty() {
        return Err("clip: give at least one image or text".into());
    }
    let model =
        ClipModel::load(&folder, device, inference_kind(device)).map_err(|e| e.to_string())?;
    let image_embeds = if images.is_empty() {
        None
    } else {
        let pre = ClipPreprocessor::from_folder(&folder, model.image_size())
            .map_err(|e| e.to_string())?;
        let mut batch = Vec::with_capacity(images.len());
        for path in &images {
            // Sizes differ between files: preprocess one by one, then run one batch.
            let frame = load_image(path)?.to_device(device);
            batch.push(pre.preprocess(&frame).map_err(|e| e.to_string())?);
        }
        let pixels = Tensor::cat(&batch, 0);
        Some(model.image_embeds(&pixels).map_err(|e| e.to_string())?)
    };
    let text_embeds = if texts.is_empty() {
        None
    } else {
        let tokenizer = ClipTokenizer::from_folder(&folder, model.context_length() as usize)
            .map_err(|e| e.to_string())?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let ids = tokenizer
            .input_ids(&refs, device)
            .map_err(|e| e.to_string())?;
        Some(model.text_embeds(&ids).map_err(|e| e.to_string())?)
    };
    let probs = match (&image_embeds, &text_embeds) {
        (Some(i), Some(t)) => {
            let logits = i.matmul(&t.tr()) * model.logit_scale_exp();
            rows(&logits.softmax(-1, Kind::Float))?
        }
        _ => Vec::new(),
    };
    let image_rows = image_embeds
        .as_ref()
        .map(rows)
        .transpose()?
        .unwrap_or_default();
    let text_rows = text_embeds
        .as_ref()
        .map(rows)
        .transpose()?
        .unwrap_or_default();
    Ok(json!({
        "model": folder.display().to_string(),
        "device": request["device"].as_str().unwrap_or("cpu"),
        "images": images.iter().zip(image_rows).map(|(p, e)| json!({"path": p.display().to_string(), "embedding": e})).collect::<Vec<_>>(),
        "texts": texts.iter().zip(text_rows).map(|(t, e)| json!({"text": t, "embedding": e})).collect::<Vec<_>>(),
        "probs": probs,
    }))
}

/// Runs `f` with the model of `folder` on `device`, loaded once for the process.
fn with_model<T>(
    folder: &Path,
    device: Device,
    f: impl FnOnce(&ClipModel) -> Result<T, String>,
) -> Result<T, String> {
    static MODELS: ModelCache<ClipModel> = ModelCache::new();
    MODELS.with(
        folder,
        device,
        || ClipModel::load(folder, device, inference_kind(device)).map_err(|e| e.to_string()),
        f,
    )
}

/// `{"op": "clip_texts", "model", "device", "texts": [..]}` → the model's facts and one
/// normalized embedding per text (tagging computes its label embeddings once per run with it).
pub fn texts(request: &Value) -> Result<Value, String> {
    let (folder, device) = model_and_device(request)?;
    let texts: Vec<&str> = request["texts"].as_array().map_or(Vec::new(), |a| {
        a.iter().filter_map(|v| v.as_str()).collect()
    });
    with_model(&folder, device, |model| {
        let embeds = if texts.is_empty() {
            Vec::new()
        } else {
            let tokenizer = ClipTokenizer::from_folder(&folder, model.context_length() as usize)
                .map_err(|e| e.to_string())?;
            let ids = tokenizer
                .input_ids(&texts, device)
                .map_err(|e| e.to_string())?;
            rows(&model.text_embeds(&ids).map_err(|e| e.to_string())?)?
        };
        Ok(json!({
            "dim": model.config().projection_dim,
            "logit_scale_exp": model.logit_scale_exp(),
            "image_size": model.image_size(),
            "embeddings": embeds,
        }))
    })
}

/// Embeds a batch of RGB frames (`n` x `height` x `width` x 3 bytes) into `out` (`n` x dim f32,
/// normalized). Preprocessing runs on the model's device, on the whole batch at once.
pub fn embed_frames(request: &Value, rgb: &[u8], out: &mut [f32]) -> Result<Value, String> {
    let (folder, device) = model_and_device(request)?;
    let layout = FrameLayout::from_request(request)?;
    with_model(&folder, device, |model| {
        let embeds = crate::canvas::with_frames(request, &layout, rgb, device, |raw| {
            embed_uploaded(&folder, model, &layout, raw)
        })?;
        crate::frames::copy_into(&embeds, out)?;
        Ok(json!({ "n": layout.n, "dim": embeds.size()[1] }))
    })
}

/// The clip stage's work on frames already on the device: colour conversion, preprocessing,
/// the image tower, and the one copy back of the batch's embeddings (f32 on the CPU).
fn embed_uploaded(
    folder: &Path,
    model: &ClipModel,
    layout: &FrameLayout,
    raw: &Tensor,
) -> Result<Tensor, String> {
    let pre =
        ClipPreprocessor::from_folder(folder, model.image_size()).map_err(|e| e.to_string())?;
    let frames = layout.to_rgb(raw)?;
    let pixels = pre.preprocess(&frames).map_err(|e| e.to_string())?;
    crate::frames::to_host_f32(&model.image_embeds(&pixels).map_err(|e| e.to_string())?)
}

/// `bench_model` for the clip stage: [`embed_uploaded`] on random frames already on the device,
/// call after call, or with `model_only` the image tower alone on random `pixel_values` (what
/// transformers' benchmarks time). See [`crate::bench_op`].
pub fn bench(request: &Value) -> Result<Value, String> {
    let (folder, device) = model_and_device(request)?;
    let layout = FrameLayout::from_request(request)?;
    with_model(&folder, device, |model| {
        if crate::bench_op::model_only(request) {
            let side = model.image_size();
            let pixels = Tensor::f_randn([layout.n, 3, side, side], (Kind::Float, device))
                .map_err(|e| e.to_string())?;
            return crate::bench_op::time_calls(request, device, layout.n, || {
                let embeds = model.image_embeds(&pixels).map_err(|e| e.to_string())?;
                crate::frames::to_host_f32(&embeds).map(drop)
            });
        }
        let raw = crate::bench_op::random_frames(&layout, device)?;
        crate::bench_op::time_calls(request, device, layout.n, || {
            embed_uploaded(&folder, model, &layout, &raw).map(drop)
        })
    })
}
