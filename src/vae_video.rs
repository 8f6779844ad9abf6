//! `framepipe vae encode VIDEO`: every frame of a video, at its own size (no normalization), into
//! one latents file (`latents` [N, C, h, w], `frame_index` [N]), encoded in batches through the
//! libtorch library exactly as the pipeline's vae stage does.
use std::path::Path;

use ffmpeg_next as ff;
use framepipe_proto::ops::{Frames, ModelOn, VaeEncodeFrames, VaeInfo};
use framepipe_proto::{Device, FrameLayout};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::media::decode::{SourceFrame, VideoDecoder};
use crate::media::{probe, RgbFrames};
use crate::torch::Torch;

const BATCH: usize = 4;

/// What `framepipe vae encode VIDEO` prints.
#[derive(Debug, Serialize)]
pub struct VideoLatents {
    pub out: String,
    pub frames: usize,
    pub shape_per_frame: Vec<i64>,
    pub dtype: &'static str,
    pub scaling_factor: f64,
    pub shift_factor: Option<f64>,
}

/// Encodes `video` with the VAE in `model` on `device` into `out`; `f16` picks the stored dtype.
pub fn encode_video(
    video: &Path,
    model: &Path,
    device: Device,
    out: &Path,
    f16: bool,
) -> Result<VideoLatents> {
    let torch =
        Torch::get().map_err(|m| Error::input(video, format!("VAE needs libtorch: {m}")))?;
    let on = ModelOn {
        model: model.to_path_buf(),
        device,
    };
    let facts = torch
        .call(&VaeInfo { on: on.clone() })
        .map_err(|e| Error::input(model, e.message))?;
    let (channels, down) = (
        facts.latent_channels.max(1) as usize,
        facts.downsampling.max(1) as usize,
    );
    let (mut input, info) = probe::open(video)?;
    if info.width % 8 != 0 || info.height % 8 != 0 {
        return Err(Error::input(
            video,
            format!("{}x{}: both sides must be multiples of 8 (the latent grid); `framepipe run` normalizes to 720p/1080p", info.width, info.height),
        ));
    }
    let mut decoder = VideoDecoder::open(video, &input, info.video_stream_index, 0, 0)?;
    let (w, h) = (info.width, info.height);
    let mut rgb = RgbFrames::new(w, h, ff::software::scaling::Flags::POINT);
    let per_frame = channels * (w as usize).div_ceil(down) * (h as usize).div_ceil(down);
    let mut batch: Vec<u8> = Vec::new();
    let mut batch_n = 0usize;
    let mut latents: Vec<f32> = Vec::new();
    let mut index: Vec<i64> = Vec::new();
    let mut shape_per_frame: Vec<i64> = Vec::new();
    let flush = |batch: &mut Vec<u8>,
                 n: &mut usize,
                 latents: &mut Vec<f32>,
                 shape: &mut Vec<i64>|
     -> Result<()> {
        if *n == 0 {
            return Ok(());
        }
        let mut values = vec![0f32; *n * per_frame];
        let request = VaeEncodeFrames {
            on: on.clone(),
            frames: Frames {
                n: *n as u32,
                layout: FrameLayout::rgb24(w, h),
                canvases: None,
            },
            tiling: false,
            sampling: None,
            reconstruct: None,
        };
        let reply = torch
            .vae_encode_frames(&request, batch, &mut values)
            .map_err(|e| Error::input(video, format!("VAE: {e}")))?;
        *shape = reply.shape_per_frame.to_vec();
        let used: usize = shape.iter().product::<i64>() as usize * *n;
        latents.extend_from_slice(&values[..used]);
        batch.clear();
        *n = 0;
        Ok(())
    };
    let mut sink = |frame: SourceFrame| -> Result<()> {
        rgb.append(&frame.frame, None, &mut batch)
            .map_err(|e| Error::ffmpeg(video, "converting a frame to RGB", e))?;
        index.push(frame.index as i64);
        batch_n += 1;
        if batch_n == BATCH {
            flush(&mut batch, &mut batch_n, &mut latents, &mut shape_per_frame)?;
        }
        Ok(())
    };
    decoder.decode_all(&mut input, &mut sink, &|| false)?;
    flush(&mut batch, &mut batch_n, &mut latents, &mut shape_per_frame)?;
    if index.is_empty() {
        return Err(Error::input(video, "no frame could be decoded"));
    }
    let fingerprint = crate::model_id::fingerprint(model)
        .map_err(|e| Error::io(model, "reading the model to fingerprint it", e))?;
    let metadata = [
        (crate::output::tensors::META_FPS, info.fps.to_string()),
        (crate::output::tensors::META_EVERY, "1".to_string()),
        (crate::output::tensors::META_FINGERPRINT, fingerprint),
        (
            crate::output::tensors::META_SOURCE,
            video.display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let dtype = if f16 {
        framepipe_proto::ops::LatentDtype::F16
    } else {
        framepipe_proto::ops::LatentDtype::F32
    };
    crate::latent_shard::write(out, &latents, &shape_per_frame, &index, dtype, metadata)
        .map_err(|e| Error::io(out, "writing latents", e))?;
    Ok(VideoLatents {
        out: out.display().to_string(),
        frames: index.len(),
        shape_per_frame,
        dtype: if f16 { "f16" } else { "f32" },
        scaling_factor: facts.scaling_factor,
        shift_factor: facts.shift_factor,
    })
}
