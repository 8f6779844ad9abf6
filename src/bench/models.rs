//! `framepipe bench --models`: how fast a pipeline's model stages can go on this machine, apart
//! from decoding. Every model stage is measured three ways on synthetic frames made by the
//! normalize code (a patterned source of the input's size, or 1920x1080, on the pipeline's canvas):
//! - **model**: the model alone on random input of its own shape and precision on the device,
//!   as transformers' and diffusers' benchmarks time it (scripts/gpu/eager_reference.py);
//! - **device**: the stage's device work alone (colour conversion, preprocessing, the model, the
//!   copy back of each batch's results) on random frames already on the device, call after
//!   call, through the library's `bench_model` op: the ceiling the model sets;
//! - **stage**: the stage thread itself fed those frames as fast as it takes them (host
//!   conversion or plane packing, upload, batching, and for the VAE the shard writes included),
//!   by its own busy time: what it can sustain inside a real run.
//!
//! A stage rate far below the device rate means the host side, not the model, bounds it.
use std::path::Path;
use std::sync::Arc;

use ffmpeg_next as ff;
use serde::Serialize;

use crate::config::{PipelineConfig, TaggingSample};
use crate::error::{Error, Result};
use crate::job::VaeInfo;
use crate::media::normalize::{Geometry, Normalizer, Rect};
use crate::media::{FrameLayout, ModelFrames};
use crate::pipeline::normalize::NormFrame;
use crate::pipeline::plan::{color_on_device, TaggingPlan, VaePlan};
use crate::pipeline::stage::Cancel;
use crate::torch::Torch;
use framepipe_proto::ops::{BenchModel, ModelOn, ModelStage};

/// What errors name in place of an input file.
const LABEL: &str = "bench --models";
/// Most frames one stage measurement feeds, however fast the stage.
const MAX_STAGE_FRAMES: u64 = 4_096;

/// The source the synthetic frames stand for.
#[derive(Debug, Clone, Copy)]
pub struct SourceShape {
    pub width: u32,
    pub height: u32,
    pub sar: (i32, i32),
    pub rotation: u32,
}

impl Default for SourceShape {
    /// 1080p, the common case: on a 16:9 canvas it fills the frame without padding.
    fn default() -> Self {
        SourceShape {
            width: 1920,
            height: 1080,
            sar: (1, 1),
            rotation: 0,
        }
    }
}

/// One model stage's three rates (model, device work, whole stage).
#[derive(Debug, Clone, Serialize)]
pub struct ModelStageRate {
    pub stage: String,
    pub model: String,
    /// Frames per model call.
    pub batch_size: usize,
    /// The picture the model sees (`WxH`).
    pub picture: String,
    /// How frames reach the device: `rgb24` (swscale on the CPU) or `yuv420p` (converted there).
    pub frame_format: String,
    /// Frames/s of the model alone on input of its own shape and precision, already on the
    /// device (what the Python libraries' benchmarks time; median call).
    pub model_fps: f64,
    /// Frames/s of the stage's device work: from frames on the device (colour conversion,
    /// preprocessing, the model, the copy back; median call).
    pub device_fps: f64,
    pub device_calls: u64,
    pub median_call_seconds: f64,
    /// The CUDA allocator's peak over the timed calls; `null` on the CPU.
    pub peak_memory_mib: Option<f64>,
    /// Frames/s of the whole stage thread (its busy time).
    pub stage_fps: f64,
    pub stage_frames: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelsReport {
    pub device: crate::device::Device,
    pub precision: Option<crate::device::Precision>,
    /// `WxH` of the synthetic source.
    pub source: String,
    /// `WxH` of the normalized canvas.
    pub canvas: String,
    /// Seconds each device measurement ran for.
    pub seconds: f64,
    pub stages: Vec<ModelStageRate>,
}

/// A pipeline's model stages, measured as the module header says.
pub struct ModelsBench<'a> {
    pub config: &'a PipelineConfig,
    pub device: crate::device::Device,
    pub precision: Option<crate::device::Precision>,
    /// The VAE's facts (from `vae_info`), needed when the pipeline has a vae stage.
    pub vae: Option<&'a VaeInfo>,
    pub source: SourceShape,
    pub seconds: f64,
    /// A scratch folder for the vae stage's shards.
    pub scratch: &'a Path,
}

impl ModelsBench<'_> {
    pub fn run(&self) -> Result<ModelsReport> {
        if self.config.clip.is_none() && self.config.vae.is_none() {
            return Err(Error::input(
                LABEL,
                "the pipeline has no model stage (clip or vae) to measure",
            ));
        }
        let torch = Torch::get().map_err(|m| Error::input(LABEL, m))?;
        let (canvas, content) = self.canvas()?;
        let mut stages = Vec::new();
        if let Some(clip) = &self.config.clip {
            let mut config = clip.clone();
            // Every frame: the measurement is of the model, not of the sampling.
            config.sample = TaggingSample {
                every_n_frames: Some(1),
                fps: None,
                per_scene: None,
            };
            let plan = TaggingPlan {
                config,
                color_on_device: color_on_device(self.config, self.device),
                live_cuts: false,
            };
            let stage = plan.stage(self.device, LABEL, Cancel::default());
            let pixels = self.pixels(stage.color_on_device, &canvas, Some(content))?;
            let batch = stage.config.batch_size;
            let target = (ModelStage::Clip, stage.config.model.clone(), false);
            let mut rate = self.device_rate(torch, target, pixels, batch)?;
            let frames = self.stage_frames(rate.device_fps, batch);
            let out = feed(&canvas, content, frames, self.queue(), |rx| {
                stage.run(rx, None)
            })?;
            rate.stage_frames = out.samples.len() as u64;
            rate.stage_fps = out.samples.len() as f64 / out.seconds.max(1e-9);
            stages.push(rate);
        }
        if let Some(vae) = &self.config.vae {
            let info = self
                .vae
                .ok_or_else(|| Error::input(LABEL, "the vae stage needs the model's facts"))?;
            let mut config = vae.clone();
            config.every_n_frames = 1;
            let dir = self.scratch.join("latents");
            let plan = VaePlan {
                config,
                color_on_device: color_on_device(self.config, self.device),
                target: crate::pipeline::LatentsTarget {
                    dir: dir.clone(),
                    metadata: Default::default(),
                    model: *info,
                },
            };
            let stage = plan.stage(self.device, LABEL, Cancel::default());
            let pixels = self.pixels(stage.color_on_device, &canvas, None)?;
            let batch = stage
                .plan_batch_size(torch, pixels)
                .unwrap_or_else(|| stage.config.batch_size.initial(self.device));
            let target = (
                ModelStage::Vae,
                stage.config.model.clone(),
                stage.config.tiling,
            );
            let mut rate = self.device_rate(torch, target, pixels, batch)?;
            let frames = self.stage_frames(rate.device_fps, batch);
            let out = feed(&canvas, content, frames, self.queue(), |rx| stage.run(rx))?;
            let _ = std::fs::remove_dir_all(&dir);
            rate.stage_frames = out.frames;
            rate.stage_fps = out.frames as f64 / out.seconds.max(1e-9);
            stages.push(rate);
        }
        Ok(ModelsReport {
            device: self.device,
            precision: self.precision,
            source: format!("{}x{}", self.source.width, self.source.height),
            canvas: format!("{}x{}", canvas.width(), canvas.height()),
            seconds: self.seconds,
            stages,
        })
    }

    fn queue(&self) -> usize {
        self.config.runtime.queue_frames.max(1)
    }

    /// A normalized canvas of the synthetic source, and where its picture lies.
    fn canvas(&self) -> Result<(Arc<ff::frame::Video>, Rect)> {
        let s = self.source;
        let geometry = Geometry::plan(
            s.width,
            s.height,
            s.sar,
            s.rotation,
            self.config.normalize.resolution.size(),
            self.config.normalize.mode,
        );
        let mut normalizer = Normalizer::new(geometry, self.config.normalize.mode, s.sar);
        let canvas = normalizer
            .normalize(&patterned_frame(s.width, s.height))
            .map_err(|e| Error::ffmpeg(LABEL, "normalizing the synthetic frame", e))?;
        Ok((Arc::new(canvas), normalizer.geometry().placed))
    }

    /// How the stage lays out `canvas` (its `content` part for CLIP) for the device.
    fn pixels(
        &self,
        on_device: bool,
        canvas: &ff::frame::Video,
        content: Option<Rect>,
    ) -> Result<FrameLayout> {
        let mut bytes = Vec::new();
        ModelFrames::new(on_device, ff::software::scaling::Flags::POINT)
            .append(canvas, content, &mut bytes)
            .map_err(|e| Error::ffmpeg(LABEL, "laying out the synthetic frame", e))
    }

    /// The device rate from the library's `bench_model` op for the stage, model folder and
    /// tiling of `target`.
    fn device_rate(
        &self,
        torch: &Torch,
        (stage, model, tiling): (ModelStage, std::path::PathBuf, bool),
        pixels: FrameLayout,
        batch: usize,
    ) -> Result<ModelStageRate> {
        let mut request = BenchModel {
            stage,
            on: ModelOn {
                model,
                device: self.device,
            },
            n: batch as u32,
            layout: pixels,
            tiling,
            seconds: self.seconds,
            warmup: 2,
            model_only: false,
        };
        let call = |request: &BenchModel| {
            torch
                .call(request)
                .map_err(|e| Error::input(LABEL, format!("{}: {e}", stage.name())))
        };
        let reply = call(&request)?;
        request.model_only = true;
        let model_fps = call(&request)?.frames_per_second;
        let (w, h) = pixels.picture_size();
        Ok(ModelStageRate {
            stage: stage.name().into(),
            model: request.on.model.display().to_string(),
            batch_size: batch,
            picture: format!("{w}x{h}"),
            frame_format: pixels.format_name().into(),
            model_fps,
            device_fps: reply.frames_per_second,
            device_calls: reply.calls,
            median_call_seconds: reply.median_call_seconds,
            peak_memory_mib: reply
                .peak_memory_bytes
                .map(|b| b as f64 / (1u64 << 20) as f64),
            stage_fps: 0.0,
            stage_frames: 0,
        })
    }

    /// Frames for the stage measurement: about `seconds` at the device rate, in whole batches
    /// (at least one), at most [`MAX_STAGE_FRAMES`].
    fn stage_frames(&self, device_fps: f64, batch: usize) -> u64 {
        let batch = batch.max(1) as u64;
        let wanted = (device_fps * self.seconds).ceil() as u64;
        let most = (MAX_STAGE_FRAMES / batch).max(1);
        wanted.div_ceil(batch).clamp(1, most) * batch
    }
}

/// Runs `stage` on `frames` copies of `canvas` (shared, as the normalize stage shares frames),
/// sent from a thread of their own as fast as the stage takes them.
fn feed<T>(
    canvas: &Arc<ff::frame::Video>,
    content: Rect,
    frames: u64,
    queue: usize,
    stage: impl FnOnce(crossbeam_channel::Receiver<Arc<NormFrame>>) -> Result<T>,
) -> Result<T> {
    let (tx, rx) = crossbeam_channel::bounded(queue);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for i in 0..frames {
                let frame = NormFrame {
                    index: i,
                    pts: i as i64,
                    time: i as f64 / 30.0,
                    source_index: i,
                    frame: crate::pipeline::normalize::Canvas::Host(Arc::clone(canvas)),
                    content,
                };
                if tx.send(Arc::new(frame)).is_err() {
                    break;
                }
            }
        });
        stage(rx)
    })
}

/// A BT.709 limited-range yuv420p frame with gradients and a little texture, so no stage sees
/// a flat picture.
fn patterned_frame(width: u32, height: u32) -> ff::frame::Video {
    let mut frame = ff::frame::Video::new(ff::format::Pixel::YUV420P, width, height);
    frame.set_color_space(ff::color::Space::BT709);
    frame.set_color_range(ff::color::Range::MPEG);
    for plane in 0..3 {
        let (w, h) = if plane == 0 {
            (width as usize, height as usize)
        } else {
            (width.div_ceil(2) as usize, height.div_ceil(2) as usize)
        };
        let stride = frame.stride(plane);
        let data = frame.data_mut(plane);
        for y in 0..h {
            for x in 0..w {
                let texture = (x * 7 + y * 13 + plane * 5) % 23;
                let value = match plane {
                    0 => 16 + (x * 160 / w.max(1) + y * 40 / h.max(1) + texture) % 220,
                    1 => 64 + (y * 128 / h.max(1) + texture) % 128,
                    _ => 64 + (x * 128 / w.max(1) + texture) % 128,
                };
                data[y * stride + x] = value as u8;
            }
        }
    }
    frame
}

/// Aligned text for people.
pub fn text(r: &ModelsReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model stages on {}{}: synthetic {} source on the {} canvas, {} s per device measurement",
        r.device,
        r.precision
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default(),
        r.source,
        r.canvas,
        r.seconds
    );
    let _ = writeln!(
        out,
        "{:<6} {:>6} {:>18} {:>10} {:>10} {:>10} {:>10}  model",
        "stage", "batch", "frames", "model/s", "device/s", "stage/s", "peak MiB"
    );
    for s in &r.stages {
        let _ = writeln!(
            out,
            "{:<6} {:>6} {:>18} {:>10.1} {:>10.1} {:>10.1} {:>10}  {}",
            s.stage,
            s.batch_size,
            format!("{} {}", s.picture, s.frame_format),
            s.model_fps,
            s.device_fps,
            s.stage_fps,
            s.peak_memory_mib
                .map_or_else(|| "-".to_string(), |m| format!("{m:.0}")),
            s.model
        );
    }
    for line in [
        "model: the model alone on input of its own shape and precision, already on the device",
        "device: colour conversion, preprocessing, model and copy back, from frames on the device",
        "stage: the stage thread fed those frames (host RGB or planes, upload, batching, writes)",
    ] {
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_frames_are_whole_batches_within_bounds() {
        let cfg: PipelineConfig = serde_json::from_str("{}").unwrap();
        let bench = ModelsBench {
            config: &cfg,
            device: crate::device::Device::Cpu,
            precision: None,
            vae: None,
            source: SourceShape::default(),
            seconds: 2.0,
            scratch: Path::new("/nonexistent"),
        };
        assert_eq!(bench.stage_frames(100.0, 16), 208);
        assert_eq!(bench.stage_frames(0.01, 4), 4);
        assert_eq!(bench.stage_frames(1e9, 64), 4_096);
        assert_eq!(bench.stage_frames(1e9, 50_000), 50_000);
    }

    #[test]
    fn the_synthetic_frame_is_textured_limited_range_bt709() {
        crate::media::init();
        let f = patterned_frame(64, 36);
        assert_eq!(f.color_space(), ff::color::Space::BT709);
        let luma = f.data(0);
        let (lo, hi) = (0..36)
            .flat_map(|y| luma[y * f.stride(0)..y * f.stride(0) + 64].iter().copied())
            .fold((255u8, 0u8), |(lo, hi), v| (lo.min(v), hi.max(v)));
        assert!(lo >= 16 && hi <= 235 && hi - lo > 100, "{lo}..{hi}");
    }
}
