//! The `clip` request: embeds images and texts with a CLIP model folder and scores every image
//! against every text, as `framepipe clip` prints it (transformers' `image_embeds`, `text_embeds`
//! and `softmax(logit_scale.exp() * cos)` over the texts).
use std::path::Path;

use framepipe_proto::ops::{
    BenchModel, BenchReply, ClipEmbedFrames, ClipRun, ClipRunReply, ClipTexts, ClipTextsReply,
    Embedded, ImageEmbedding, TextEmbedding,
};
use framepipe_proto::TorchError;
use tch::{Device, Kind, Tensor};

use crate::models::clip::preprocess::ClipPreprocessor;
use crate::models::clip::tokenizer::ClipTokenizer;
use crate::models::clip::{ClipError, ClipModel};
use crate::runtime::frames::{torch_error, Batch};
use crate::runtime::models::{inference_kind, tch_device, ModelCache};

/// Loading errors name a bad model folder; the rest are the input's or libtorch's.
impl From<ClipError> for TorchError {
    fn from(e: ClipError) -> TorchError {
        match e {
            ClipError::Config { .. } | ClipError::Weights { .. } | ClipError::Tokenizer { .. } => {
                TorchError::bad_model(e.to_string())
            }
            ClipError::Input(_) => TorchError::bad_input(e.to_string()),
            ClipError::Torch(_) => TorchError::from_libtorch(e.to_string()),
        }
    }
}

/// An image file as a [1, 3, H, W] uint8 tensor.
fn load_image(path: &Path) -> Result<Tensor, TorchError> {
    let img = image::open(path)
        .map_err(|e| TorchError::bad_input(format!("{}: cannot read image: {e}", path.display())))?
        .to_rgb8();
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    Ok(Tensor::from_slice(img.as_raw())
        .view([h, w, 3])
        .permute([2, 0, 1])
        .unsqueeze(0)
        .contiguous())
}

fn rows(t: &Tensor) -> Result<Vec<Vec<f64>>, TorchError> {
    let t = t.to_kind(Kind::Double).to_device(Device::Cpu);
    Vec::<Vec<f64>>::try_from(&t).map_err(torch_error)
}

fn rows_f32(t: &Tensor) -> Result<Vec<Vec<f32>>, TorchError> {
    let t = t.to_kind(Kind::Float).to_device(Device::Cpu);
    Vec::<Vec<f32>>::try_from(&t).map_err(torch_error)
}

/// `framepipe clip`: embeds image files and texts with a CLIP model folder and scores every
/// image against every text.
pub fn run(op: &ClipRun) -> Result<ClipRunReply, TorchError> {
    let (folder, device) = (op.on.model.as_path(), tch_device(op.on.device));
    if op.images.is_empty() && op.texts.is_empty() {
        return Err(TorchError::bad_input(
            "clip: give at least one image or text",
        ));
    }
    let model = ClipModel::load(folder, device, inference_kind(device))?;
    let image_embeds = if op.images.is_empty() {
        None
    } else {
        let pre = ClipPreprocessor::from_folder(folder, model.image_size())?;
        let mut batch = Vec::with_capacity(op.images.len());
        for path in &op.images {
            // Sizes differ between files: preprocess one by one, then run one batch.
            let frame = load_image(path)?.to_device(device);
            batch.push(pre.preprocess(&frame)?);
        }
        let pixels = Tensor::cat(&batch, 0);
        Some(model.image_embeds(&pixels)?)
    };
    let text_embeds = if op.texts.is_empty() {
        None
    } else {
        let tokenizer = ClipTokenizer::from_folder(folder, model.context_length() as usize)?;
        let refs: Vec<&str> = op.texts.iter().map(String::as_str).collect();
        let ids = tokenizer.input_ids(&refs, device)?;
        Some(model.text_embeds(&ids)?)
    };
    let probs = match (&image_embeds, &text_embeds) {
        (Some(i), Some(t)) => {
            let logits = i.matmul(&t.tr()) * model.logit_scale_exp();
            rows(&logits.softmax(-1, Kind::Float))?
        }
        _ => Vec::new(),
    };
    let embeddings = |e: &Option<Tensor>| -> Result<Vec<Vec<f64>>, TorchError> {
        e.as_ref()
            .map(rows)
            .transpose()
            .map(Option::unwrap_or_default)
    };
    Ok(ClipRunReply {
        model: folder.to_path_buf(),
        device: op.on.device,
        images: op
            .images
            .iter()
            .zip(embeddings(&image_embeds)?)
            .map(|(path, embedding)| ImageEmbedding {
                path: path.clone(),
                embedding,
            })
            .collect(),
        texts: op
            .texts
            .iter()
            .zip(embeddings(&text_embeds)?)
            .map(|(text, embedding)| TextEmbedding {
                text: text.clone(),
                embedding,
            })
            .collect(),
        probs,
    })
}

/// Runs `f` with the model of `folder` on `device`, loaded once for the process.
fn with_model<T>(
    folder: &Path,
    device: Device,
    f: impl FnOnce(&ClipModel) -> Result<T, TorchError>,
) -> Result<T, TorchError> {
    static MODELS: ModelCache<ClipModel> = ModelCache::new();
    MODELS.with(
        folder,
        device,
        || Ok(ClipModel::load(folder, device, inference_kind(device))?),
        f,
    )
}

/// The model's facts and one normalized embedding per text (tagging computes its label
/// embeddings once per run with it).
pub fn texts(op: &ClipTexts) -> Result<ClipTextsReply, TorchError> {
    let (folder, device) = (op.on.model.as_path(), tch_device(op.on.device));
    with_model(folder, device, |model| {
        let embeddings = if op.texts.is_empty() {
            Vec::new()
        } else {
            let tokenizer = ClipTokenizer::from_folder(folder, model.context_length() as usize)?;
            let refs: Vec<&str> = op.texts.iter().map(String::as_str).collect();
            let ids = tokenizer.input_ids(&refs, device)?;
            rows_f32(&model.text_embeds(&ids)?)?
        };
        Ok(ClipTextsReply {
            dim: model.config().projection_dim as u32,
            logit_scale_exp: model.logit_scale_exp(),
            image_size: model.image_size(),
            embeddings,
        })
    })
}

/// Embeds a batch of frames into `out` (`n` x dim f32, normalized). Preprocessing runs on the
/// model's device, on the whole batch at once.
pub fn embed_frames(
    op: &ClipEmbedFrames,
    rgb: &[u8],
    out: &mut [f32],
) -> Result<Embedded, TorchError> {
    let (folder, device) = (op.on.model.as_path(), tch_device(op.on.device));
    let batch = Batch::new(&op.frames)?;
    with_model(folder, device, |model| {
        let embeds = crate::runtime::canvas::with_frames(&op.frames, &batch, rgb, device, |raw| {
            embed_uploaded(folder, model, &batch, raw)
        })?;
        crate::runtime::frames::copy_into(&embeds, out)?;
        Ok(Embedded {
            n: op.frames.n,
            dim: embeds.size()[1] as u32,
        })
    })
}

/// The clip stage's work on frames already on the device: colour conversion, preprocessing,
/// the image tower, and the one copy back of the batch's embeddings (f32 on the CPU).
fn embed_uploaded(
    folder: &Path,
    model: &ClipModel,
    batch: &Batch,
    raw: &Tensor,
) -> Result<Tensor, TorchError> {
    let pre = ClipPreprocessor::from_folder(folder, model.image_size())?;
    let frames = batch.to_rgb(raw)?;
    let pixels = pre.preprocess(&frames)?;
    crate::runtime::frames::to_host_f32(&model.image_embeds(&pixels)?)
}

/// `bench_model` for the clip stage: [`embed_uploaded`] on random frames already on the device,
/// call after call, or with `model_only` the image tower alone on random `pixel_values` (what
/// transformers' benchmarks time). See [`crate::ops::bench`].
pub fn bench(op: &BenchModel) -> Result<BenchReply, TorchError> {
    let (folder, device) = (op.on.model.as_path(), tch_device(op.on.device));
    let batch = Batch::of(i64::from(op.n), op.layout)?;
    with_model(folder, device, |model| {
        if op.model_only {
            let side = model.image_size();
            let pixels = Tensor::f_randn([batch.n, 3, side, side], (Kind::Float, device))
                .map_err(torch_error)?;
            return crate::ops::bench::time_calls(op, device, batch.n, || {
                let embeds = model.image_embeds(&pixels)?;
                crate::runtime::frames::to_host_f32(&embeds).map(drop)
            });
        }
        let raw = crate::ops::bench::random_frames(&batch, device)?;
        crate::ops::bench::time_calls(op, device, batch.n, || {
            embed_uploaded(folder, model, &batch, &raw).map(drop)
        })
    })
}
