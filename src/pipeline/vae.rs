//! The vae stage: samples normalized frames (the whole canvas, as training data uses it),
//! converts them to RGB, encodes batches into latents through libtorch, and streams the latents
//! to `latents/NNNNNN.safetensors` shards of `frames_per_shard` frames, so memory stays flat
//! however long the video.
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use ffmpeg_next as ff;
use serde::Serialize;

use super::frame_batch::FrameBatch;
use super::normalize::NormFrame;
use super::stage::{BusyTimer, Cancel};
use crate::config::{BatchSize, VaeConfig};
use crate::error::{Error, Result};
use crate::media::{FrameLayout, ModelFrames};
use crate::torch::Torch;
use framepipe_proto::ops::{
    ModelOn, Reconstruct, Sampling, VaeEncodeFrames, VaeFacts, VaePlanBatch,
};
use framepipe_proto::TorchError;

#[derive(Debug, Clone, Serialize)]
pub struct LatentsOutput {
    /// Shard files, relative to the output folder.
    pub files: Vec<String>,
    pub shape_per_frame: Vec<i64>,
    pub frames: u64,
    /// Frames per model call at the end of the run (smaller than the start when `auto` met
    /// out-of-memory errors).
    pub batch_size: usize,
    /// Whether frames were encoded in tiles: `vae.tiling`, or `auto` finding that not even one
    /// whole frame fits (then the whole video is tiled).
    pub tiling: bool,
    #[serde(skip)]
    pub seconds: f64,
    /// The first and last output frame of each shard in `files` (clips name the shards that
    /// hold their frames).
    #[serde(skip)]
    pub shard_frames: Vec<(u64, u64)>,
    /// With `vae.reconstruction`: each reconstructed frame's PSNR, in frame order.
    #[serde(skip)]
    pub reconstruction: Vec<crate::reconstruction::FramePsnr>,
}

/// One model call's results: the latent shape per frame, the f32 latents, and the PSNRs of the
/// frames reconstructed.
type EncodedPart = ([i64; 3], Vec<f32>, Vec<f64>);

/// The frames of the batch being collected: output index, seconds, and whether it is
/// reconstructed.
#[derive(Default)]
struct BatchFrames {
    index: Vec<i64>,
    time: Vec<f64>,
    reconstruct: Vec<bool>,
    /// Where the picture is on these frames' canvases (a batch holds one geometry).
    content: Option<crate::media::normalize::Rect>,
}

impl BatchFrames {
    fn len(&self) -> usize {
        self.index.len()
    }

    fn clear(&mut self) {
        self.index.clear();
        self.time.clear();
        self.reconstruct.clear();
        self.content = None;
    }
}

pub struct VaeStage {
    pub config: VaeConfig,
    pub device: crate::device::Device,
    /// Send YUV planes for the device to convert instead of RGB made here.
    pub color_on_device: bool,
    /// `OUT/<stem>.partial/latents`.
    pub dir: PathBuf,
    /// Written into each shard's metadata.
    pub metadata: std::collections::HashMap<String, String>,
    /// The model's facts: its latent grid, and whether it encodes in tiles (AutoencoderKL).
    pub model: VaeFacts,
    pub source_path: String,
    pub cancel: Cancel,
}

/// Latent rows waiting for their shard.
#[derive(Default)]
struct Shard {
    frames: Vec<i64>,
    values: Vec<f32>,
}

impl LatentsOutput {
    fn empty(batch_size: usize, tiling: bool) -> LatentsOutput {
        LatentsOutput {
            files: Vec::new(),
            shape_per_frame: Vec::new(),
            frames: 0,
            batch_size,
            tiling,
            seconds: 0.0,
            shard_frames: Vec::new(),
            reconstruction: Vec::new(),
        }
    }
}

impl VaeStage {
    /// Whether the `n`-th encoded frame is decoded back to measure its reconstruction
    /// (`reconstruction.every_n_frames`).
    fn reconstructs(&self, n: u64) -> bool {
        self.config
            .reconstruction
            .is_some_and(|r| n.is_multiple_of(u64::from(r.every_n_frames)))
    }

    pub fn run(self, rx: Receiver<Arc<NormFrame>>) -> Result<LatentsOutput> {
        let torch = Torch::get()
            .map_err(|m| Error::input(&self.source_path, format!("VAE needs libtorch: {m}")))?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(&self.dir, "creating the latents folder", e))?;
        let mut timer = BusyTimer::default();
        let mut rgb = ModelFrames::new(self.color_on_device, ff::software::scaling::Flags::POINT);
        let (mut batch, mut batch_frames) = (FrameBatch::default(), BatchFrames::default());
        // Frames encoded so far, for `reconstruction.every_n_frames`.
        let mut encoded = 0u64;
        let mut pixels = FrameLayout::rgb24(0, 0);
        let mut batch_size = self.config.batch_size.initial(self.device);
        // `auto` on CUDA: sized from free device memory once the frame size is known.
        let mut planned = false;
        let mut shard = Shard::default();
        let mut out = LatentsOutput::empty(batch_size, self.config.tiling);
        for frame in rx {
            self.cancel.check("vae")?;
            if !frame
                .index
                .is_multiple_of(u64::from(self.config.every_n_frames))
            {
                continue;
            }
            // A full batch is encoded when the next frame comes (or at the end); so is one of
            // another geometry, whose frames are compared over their own picture.
            let full = batch_frames.len() >= batch_size;
            if full || batch_frames.content.is_some_and(|c| c != frame.content) {
                timer.time(|| {
                    self.encode(
                        torch,
                        &batch,
                        &batch_frames,
                        pixels,
                        &mut batch_size,
                        &mut shard,
                        &mut out,
                    )
                })?;
                batch.clear();
                batch_frames.clear();
            }
            timer.time(|| -> Result<()> {
                pixels = batch.add(&mut rgb, &frame.frame, None).map_err(|e| {
                    Error::ffmpeg(&self.source_path, "converting a frame to RGB", e)
                })?;
                batch_frames.index.push(frame.index as i64);
                batch_frames.time.push(frame.time);
                batch_frames.content = Some(frame.content);
                batch_frames.reconstruct.push(self.reconstructs(encoded));
                encoded += 1;
                if !planned {
                    planned = true;
                    if let Some(planned_size) = self.plan_batch_size(torch, pixels) {
                        batch_size = planned_size;
                    }
                }
                Ok(())
            })?;
        }
        timer.time(|| -> Result<()> {
            self.encode(
                torch,
                &batch,
                &batch_frames,
                pixels,
                &mut batch_size,
                &mut shard,
                &mut out,
            )?;
            self.write_shard(&mut shard, &mut out)
        })?;
        out.batch_size = batch_size;
        out.seconds = timer.seconds();
        Ok(out)
    }

    /// Encodes `frames` (RGB, `size` each) in calls of at most `batch_size` frames and queues
    /// their latents for the shards. Out of memory with `batch_size: "auto"` halves the size
    /// and retries the same frames; the smaller size then holds for the rest of the run. When
    /// not even one whole frame fits and no latents exist yet, an AutoencoderKL switches to
    /// tiles for the whole video (never mid-video: tiled latents differ slightly from whole-
    /// frame ones, and one video's latents must come from one method).
    #[allow(clippy::too_many_arguments)]
    fn encode(
        &self,
        torch: &Torch,
        rgb: &FrameBatch,
        frames: &BatchFrames,
        pixels: FrameLayout,
        batch_size: &mut usize,
        shard: &mut Shard,
        out: &mut LatentsOutput,
    ) -> Result<()> {
        let size = pixels.picture_size();
        let mut done = 0;
        while done < frames.len() {
            let n = (*batch_size).min(frames.len() - done);
            let part = done..done + n;
            match self.encode_call(torch, rgb, part.clone(), frames, pixels, out.tiling) {
                Ok((shape, values, psnr)) => {
                    let chunk = &frames.index[part.clone()];
                    self.queue(&shape, &values, chunk, shard, out)?;
                    let chosen = part.filter(|&i| frames.reconstruct[i]);
                    for (i, psnr) in chosen.zip(psnr) {
                        out.reconstruction.push(crate::reconstruction::FramePsnr {
                            frame: frames.index[i] as u64,
                            time: frames.time[i],
                            psnr,
                        });
                    }
                    done += n;
                }
                Err(error) if error.is_out_of_memory() => {
                    let auto = self.config.batch_size == BatchSize::Auto;
                    if auto
                        && n == 1
                        && self.model.class.is_kl()
                        && !out.tiling
                        && out.frames == 0
                        && shard.frames.is_empty()
                    {
                        out.tiling = true;
                        tracing::warn!(
                            input = %self.source_path,
                            device = %self.device,
                            "VAE out of memory at one {}x{} frame per call; encoding the whole video in tiles (as vae.tiling does)",
                            size.0,
                            size.1
                        );
                        continue;
                    }
                    if auto && n > 1 {
                        *batch_size = n / 2;
                        tracing::warn!(
                            input = %self.source_path,
                            device = %self.device,
                            "VAE out of memory at {n} frames of {}x{} per call; retrying with {}",
                            size.0,
                            size.1,
                            *batch_size
                        );
                        continue;
                    }
                    return Err(Error::input(
                        &self.source_path,
                        out_of_memory_advice(&error.message, n, size, self.device, out.tiling),
                    ));
                }
                Err(error) => return Err(Error::input(&self.source_path, format!("VAE: {error}"))),
            }
        }
        Ok(())
    }

    /// With `batch_size: "auto"` on a CUDA device, the batch that fits 80% of the memory free
    /// now, measured by the library for this model, frame size and tiling. `None` keeps the
    /// starting size (a fixed size, the CPU, or a failed measurement: then out-of-memory
    /// halving still finds a size).
    pub(crate) fn plan_batch_size(&self, torch: &Torch, pixels: FrameLayout) -> Option<usize> {
        if self.config.batch_size != BatchSize::Auto || !self.device.is_cuda() {
            return None;
        }
        let (width, height) = pixels.picture_size();
        let request = VaePlanBatch {
            on: self.model_on(),
            width,
            height,
            tiling: self.config.tiling,
        };
        match torch.call(&request) {
            Ok(plan) => {
                let size = Some(plan.batch_size).filter(|n| *n >= 1)? as usize;
                let mib = |bytes: u64| bytes as f64 / (1u64 << 20) as f64;
                tracing::info!(
                    input = %self.source_path,
                    device = %self.device,
                    "VAE batch size {size}: {:.0} MiB per {width}x{height} frame, {:.0} MiB fixed, {:.0} MiB usable",
                    mib(plan.per_frame_bytes),
                    mib(plan.fixed_bytes),
                    mib(plan.usable_bytes),
                );
                Some(size)
            }
            Err(message) => {
                tracing::warn!(
                    input = %self.source_path,
                    device = %self.device,
                    "could not size the VAE batch from free memory ({message}); starting at {} frames",
                    self.config.batch_size.initial(self.device)
                );
                None
            }
        }
    }

    fn model_on(&self) -> ModelOn {
        ModelOn {
            model: self.config.model.clone(),
            device: self.device,
        }
    }

    /// One model call: latents of the `part` of the batch as (shape per frame, f32 values, the
    /// PSNRs of its frames chosen for reconstruction).
    fn encode_call(
        &self,
        torch: &Torch,
        batch: &FrameBatch,
        part: std::ops::Range<usize>,
        all: &BatchFrames,
        pixels: FrameLayout,
        tiling: bool,
    ) -> std::result::Result<EncodedPart, TorchError> {
        let frames = &all.index[part.clone()];
        let n = frames.len();
        let size = pixels.picture_size();
        let reconstruct = self.config.reconstruction.map(|_| Reconstruct {
            frames: (0..n as u32)
                .filter(|&i| all.reconstruct[part.start + i as usize])
                .collect(),
            picture: all.content.map(crate::media::crop_of),
        });
        let (frames_in, bytes) = batch.part(part, pixels);
        let request = VaeEncodeFrames {
            on: self.model_on(),
            frames: frames_in,
            tiling,
            sampling: self.config.sample_seed.map(|seed| Sampling {
                seed,
                frame_index: frames.iter().map(|&f| f as u64).collect(),
            }),
            reconstruct,
        };
        let (channels, down) = (
            self.model.latent_channels.max(1) as usize,
            self.model.downsampling.max(1) as usize,
        );
        let mut values =
            vec![
                0f32;
                n * channels * (size.0 as usize).div_ceil(down) * (size.1 as usize).div_ceil(down)
            ];
        let reply = torch.vae_encode_frames(&request, bytes, &mut values)?;
        let per_frame = reply.shape_per_frame.iter().product::<i64>() as usize;
        values.truncate(n * per_frame);
        Ok((
            reply.shape_per_frame,
            values,
            reply.psnr.unwrap_or_default(),
        ))
    }

    /// Appends latent rows to the open shard, writing it out whenever it is full.
    fn queue(
        &self,
        shape: &[i64],
        values: &[f32],
        frames: &[i64],
        shard: &mut Shard,
        out: &mut LatentsOutput,
    ) -> Result<()> {
        let per_frame = shape.iter().product::<i64>() as usize;
        out.shape_per_frame = shape.to_vec();
        for (i, &f) in frames.iter().enumerate() {
            shard.frames.push(f);
            shard
                .values
                .extend_from_slice(&values[i * per_frame..(i + 1) * per_frame]);
            if shard.frames.len() == self.config.frames_per_shard {
                self.write_shard(shard, out)?;
            }
        }
        Ok(())
    }

    fn write_shard(&self, shard: &mut Shard, out: &mut LatentsOutput) -> Result<()> {
        if shard.frames.is_empty() {
            return Ok(());
        }
        let name = format!("{:06}.safetensors", out.files.len());
        let path = self.dir.join(&name);
        let n = shard.frames.len();
        let mut metadata = self.metadata.clone();
        metadata.insert(
            crate::output::tensors::META_TILING.into(),
            out.tiling.to_string(),
        );
        crate::latent_shard::write(
            &path,
            &shard.values,
            &out.shape_per_frame,
            &shard.frames,
            self.config.dtype,
            metadata,
        )
        .map_err(|e| Error::io(&path, "writing a latents shard", e))?;
        out.files.push(format!("latents/{name}"));
        out.shard_frames.push((
            shard.frames[0] as u64,
            shard.frames[shard.frames.len() - 1] as u64,
        ));
        out.frames += n as u64;
        shard.frames.clear();
        shard.values.clear();
        Ok(())
    }
}

/// The error for an allocation failure the stage cannot work around itself: what ran out, and
/// which settings make it fit.
fn out_of_memory_advice(
    message: &str,
    n: usize,
    size: (u32, u32),
    device: crate::device::Device,
    tiling: bool,
) -> String {
    let first_line = message.lines().next().unwrap_or(message);
    let mut advice = Vec::new();
    if n > 1 {
        advice.push(format!(
            "lower vae.batch_size (now {n}) or set it to \"auto\" to find a size that fits"
        ));
    }
    if !tiling {
        advice.push("set vae.tiling to true (AutoencoderKL models)".to_string());
    }
    advice.push("or use a smaller normalize.resolution".to_string());
    format!(
        "VAE ran out of memory on {device} encoding {n} frame(s) of {}x{}: {}; {first_line}",
        size.0,
        size.1,
        advice.join(", ")
    )
}
