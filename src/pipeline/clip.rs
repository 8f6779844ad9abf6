//! The clip stage: samples normalized frames, converts only the picture area (not the padding)
//! to RGB, batches them, and embeds each batch with the CLIP model through libtorch (the model
//! stays loaded on its device for the run; one call per batch, never per frame).
use std::sync::Arc;

use crossbeam_channel::Receiver;
use ffmpeg_next as ff;
use serde::Serialize;

use super::normalize::NormFrame;
use super::{BusyTimer, Cancel};
use crate::config::ClipConfig;
use crate::error::{Error, Result};
use crate::media::Scaler;
use crate::torch::Torch;

/// One embedded frame.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Output frame index.
    pub frame: u64,
    pub time: f64,
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct ClipOutput {
    pub samples: Vec<Sample>,
    pub dim: usize,
    pub seconds: f64,
}

pub struct ClipStage {
    pub config: ClipConfig,
    pub device: String,
    pub source_path: String,
    pub cancel: Cancel,
}

impl ClipStage {
    pub fn run(self, rx: Receiver<Arc<NormFrame>>) -> Result<ClipOutput> {
        let torch = Torch::get()
            .map_err(|m| Error::input(&self.source_path, format!("CLIP needs libtorch: {m}")))?;
        let mut timer = BusyTimer::default();
        let mut batch = Batch::default();
        let mut samples = Vec::new();
        let mut dim = 0;
        let mut rgb: Option<(Scaler, ff::frame::Video)> = None;
        let mut next_sample_time = 0.0;
        for frame in rx {
            self.cancel.check("clip")?;
            let take = match (self.config.sample.every_n_frames, self.config.sample.fps) {
                (Some(n), _) => frame.index.is_multiple_of(u64::from(n)),
                (None, Some(fps)) if frame.time + 1e-9 >= next_sample_time => {
                    next_sample_time = (frame.time * fps).floor() / fps + 1.0 / fps;
                    true
                }
                _ => false,
            };
            if !take {
                continue;
            }
            timer.time(|| -> Result<()> {
                let c = frame.content;
                let (scaler, out) = rgb.get_or_insert_with(|| {
                    let (w, h) = (frame.frame.width(), frame.frame.height());
                    (
                        Scaler::new(
                            ff::format::Pixel::RGB24,
                            w,
                            h,
                            ff::software::scaling::Flags::POINT,
                        ),
                        ff::frame::Video::new(ff::format::Pixel::RGB24, w, h),
                    )
                });
                scaler.run(&frame.frame, out).map_err(|e| {
                    Error::ffmpeg(&self.source_path, "converting a frame to RGB", e)
                })?;
                let stride = out.stride(0);
                let data = out.data(0);
                // Only the picture: black bars would pull every embedding towards "black".
                for y in c.y..c.y + c.height {
                    let row = y as usize * stride + c.x as usize * 3;
                    batch
                        .rgb
                        .extend_from_slice(&data[row..row + c.width as usize * 3]);
                }
                batch.size = (c.width, c.height);
                batch.frames.push((frame.index, frame.time));
                Ok(())
            })?;
            if batch.frames.len() >= self.config.batch_size {
                timer.time(|| self.flush(torch, &mut batch, &mut samples, &mut dim))?;
            }
        }
        timer.time(|| self.flush(torch, &mut batch, &mut samples, &mut dim))?;
        Ok(ClipOutput {
            samples,
            dim,
            seconds: timer.seconds(),
        })
    }

    fn flush(
        &self,
        torch: &Torch,
        batch: &mut Batch,
        samples: &mut Vec<Sample>,
        dim: &mut usize,
    ) -> Result<()> {
        if batch.frames.is_empty() {
            return Ok(());
        }
        let n = batch.frames.len();
        let request = serde_json::json!({
            "model": self.config.model,
            "device": self.device,
            "n": n,
            "width": batch.size.0,
            "height": batch.size.1,
        });
        // Room for the largest projection any CLIP has (1024); the reply says the real size.
        let mut out = vec![0f32; n * 1024];
        let reply = torch
            .clip_embed_frames(&request, &batch.rgb, &mut out)
            .map_err(|m| Error::input(&self.source_path, format!("CLIP: {m}")))?;
        let d = reply["dim"].as_u64().unwrap_or(0) as usize;
        *dim = d;
        for (i, &(frame, time)) in batch.frames.iter().enumerate() {
            samples.push(Sample {
                frame,
                time,
                embedding: out[i * d..(i + 1) * d].to_vec(),
            });
        }
        batch.frames.clear();
        batch.rgb.clear();
        Ok(())
    }
}

#[derive(Default)]
struct Batch {
    frames: Vec<(u64, f64)>,
    rgb: Vec<u8>,
    size: (u32, u32),
}
