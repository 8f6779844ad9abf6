//! `framepipe vae encode VIDEO`: every frame of a video, at its own size (no normalization), into
//! one latents file (`latents` [N, C, h, w], `frame_index` [N]), encoded in batches through the
//! libtorch library exactly as the pipeline's vae stage does.
use std::path::Path;

use ffmpeg_next as ff;
use framepipe_proto::ops::{Frames, ModelOn, VaeEncodeFrames, VaeFacts, VaeInfo};
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
    let (mut input, info) = open_video(video)?;
    let mut decoder = VideoDecoder::open(video, &input, info.video_stream_index, 0, 0)?;
    let mut batches = Batches::new(torch, on, video, &info, &facts);
    decoder.decode_all(&mut input, &mut |frame| batches.push(frame), &|| false)?;
    batches.flush()?;
    if batches.index.is_empty() {
        return Err(Error::input(video, "no frame could be decoded"));
    }
    let metadata = metadata(video, model, &info)?;
    let dtype = if f16 {
        framepipe_proto::ops::LatentDtype::F16
    } else {
        framepipe_proto::ops::LatentDtype::F32
    };
    let Batches {
        latents,
        index,
        shape_per_frame,
        ..
    } = batches;
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

/// The video, opened and probed; its sides must fit the latent grid.
fn open_video(video: &Path) -> Result<(ff::format::context::Input, probe::SourceInfo)> {
    let (input, info) = probe::open(video)?;
    if info.width % 8 != 0 || info.height % 8 != 0 {
        return Err(Error::input(
            video,
            format!("{}x{}: both sides must be multiples of 8 (the latent grid); `framepipe run` normalizes to 720p/1080p", info.width, info.height),
        ));
    }
    Ok((input, info))
}

/// The latents file's metadata: the video's rate (every frame kept), the model's fingerprint
/// and the source.
fn metadata(
    video: &Path,
    model: &Path,
    info: &probe::SourceInfo,
) -> Result<std::collections::HashMap<String, String>> {
    let fingerprint = crate::model_id::fingerprint(model)
        .map_err(|e| Error::io(model, "reading the model to fingerprint it", e))?;
    Ok([
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
    .collect())
}

/// The decoded frames as RGB, gathered into batches of [`BATCH`] and encoded as each fills.
struct Batches<'a> {
    torch: &'a Torch,
    on: ModelOn,
    video: &'a Path,
    width: u32,
    height: u32,
    rgb: RgbFrames,
    /// Latent values per frame at most (the model's channels over the downsampled grid).
    per_frame: usize,
    batch: Vec<u8>,
    n: usize,
    latents: Vec<f32>,
    index: Vec<i64>,
    shape_per_frame: Vec<i64>,
}

impl<'a> Batches<'a> {
    fn new(
        torch: &'a Torch,
        on: ModelOn,
        video: &'a Path,
        info: &probe::SourceInfo,
        facts: &VaeFacts,
    ) -> Batches<'a> {
        let (channels, down) = (
            facts.latent_channels.max(1) as usize,
            facts.downsampling.max(1) as usize,
        );
        let (w, h) = (info.width, info.height);
        Batches {
            torch,
            on,
            video,
            width: w,
            height: h,
            rgb: RgbFrames::new(w, h, ff::software::scaling::Flags::POINT),
            per_frame: channels * (w as usize).div_ceil(down) * (h as usize).div_ceil(down),
            batch: Vec::new(),
            n: 0,
            latents: Vec::new(),
            index: Vec::new(),
            shape_per_frame: Vec::new(),
        }
    }

    fn push(&mut self, frame: SourceFrame) -> Result<()> {
        self.rgb
            .append(&frame.frame, None, &mut self.batch)
            .map_err(|e| Error::ffmpeg(self.video, "converting a frame to RGB", e))?;
        self.index.push(frame.index as i64);
        self.n += 1;
        if self.n == BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Encodes the frames gathered so far, if any.
    fn flush(&mut self) -> Result<()> {
        if self.n == 0 {
            return Ok(());
        }
        let mut values = vec![0f32; self.n * self.per_frame];
        let request = VaeEncodeFrames {
            on: self.on.clone(),
            frames: Frames {
                n: self.n as u32,
                layout: FrameLayout::rgb24(self.width, self.height),
                canvases: None,
            },
            tiling: false,
            sampling: None,
            reconstruct: None,
        };
        let reply = self
            .torch
            .vae_encode_frames(&request, &self.batch, &mut values)
            .map_err(|e| Error::input(self.video, format!("VAE: {e}")))?;
        self.shape_per_frame = reply.shape_per_frame.to_vec();
        let used: usize = self.shape_per_frame.iter().product::<i64>() as usize * self.n;
        self.latents.extend_from_slice(&values[..used]);
        self.batch.clear();
        self.n = 0;
        Ok(())
    }
}
