//! The vae stage: samples normalized frames (the whole canvas, as training data uses it),
//! converts them to RGB, encodes batches into latents through libtorch, and streams the latents
//! to `latents/NNNNNN.safetensors` shards of `frames_per_shard` frames, so memory stays flat
//! however long the video.
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use ffmpeg_next as ff;
use serde::Serialize;

use super::normalize::NormFrame;
use super::{BusyTimer, Cancel};
use crate::config::{LatentDtype, VaeConfig};
use crate::error::{Error, Result};
use crate::media::RgbFrames;
use crate::torch::Torch;

#[derive(Debug, Clone, Serialize)]
pub struct LatentsOutput {
    /// Shard files, relative to the output folder.
    pub files: Vec<String>,
    pub shape_per_frame: Vec<i64>,
    pub frames: u64,
    #[serde(skip)]
    pub seconds: f64,
}

pub struct VaeStage {
    pub config: VaeConfig,
    pub device: String,
    /// `OUT/<stem>.partial/latents`.
    pub dir: PathBuf,
    /// Written into each shard's metadata.
    pub metadata: std::collections::HashMap<String, String>,
    /// (latent channels, downsampling factor).
    pub latent_layout: (i64, i64),
    pub source_path: String,
    pub cancel: Cancel,
}

/// Latent rows waiting for their shard.
#[derive(Default)]
struct Shard {
    frames: Vec<i64>,
    values: Vec<f32>,
}

impl VaeStage {
    pub fn run(self, rx: Receiver<Arc<NormFrame>>) -> Result<LatentsOutput> {
        let torch = Torch::get()
            .map_err(|m| Error::input(&self.source_path, format!("VAE needs libtorch: {m}")))?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(&self.dir, "creating the latents folder", e))?;
        let mut timer = BusyTimer::default();
        let mut rgb: Option<RgbFrames> = None;
        let (mut batch, mut batch_frames, mut size) = (Vec::new(), Vec::new(), (0u32, 0u32));
        let mut shard = Shard::default();
        let mut out = LatentsOutput {
            files: Vec::new(),
            shape_per_frame: Vec::new(),
            frames: 0,
            seconds: 0.0,
        };
        for frame in rx {
            self.cancel.check("vae")?;
            if !frame
                .index
                .is_multiple_of(u64::from(self.config.every_n_frames))
            {
                continue;
            }
            timer.time(|| -> Result<()> {
                let converter = rgb.get_or_insert_with(|| {
                    RgbFrames::new(
                        frame.frame.width(),
                        frame.frame.height(),
                        ff::software::scaling::Flags::POINT,
                    )
                });
                size = converter
                    .append(&frame.frame, None, &mut batch)
                    .map_err(|e| {
                        Error::ffmpeg(&self.source_path, "converting a frame to RGB", e)
                    })?;
                batch_frames.push(frame.index as i64);
                Ok(())
            })?;
            if batch_frames.len() >= self.config.batch_size {
                timer.time(|| {
                    self.encode(
                        torch,
                        &mut batch,
                        &mut batch_frames,
                        size,
                        &mut shard,
                        &mut out,
                    )
                })?;
            }
        }
        timer.time(|| -> Result<()> {
            self.encode(
                torch,
                &mut batch,
                &mut batch_frames,
                size,
                &mut shard,
                &mut out,
            )?;
            self.write_shard(&mut shard, &mut out)
        })?;
        out.seconds = timer.seconds();
        Ok(out)
    }

    fn encode(
        &self,
        torch: &Torch,
        batch: &mut Vec<u8>,
        frames: &mut Vec<i64>,
        size: (u32, u32),
        shard: &mut Shard,
        out: &mut LatentsOutput,
    ) -> Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        let n = frames.len();
        let request = serde_json::json!({
            "model": self.config.model, "device": self.device, "n": n, "width": size.0, "height": size.1,
        });
        let (channels, down) = (
            self.latent_layout.0.max(1) as usize,
            self.latent_layout.1.max(1) as usize,
        );
        let mut values =
            vec![
                0f32;
                n * channels * (size.0 as usize).div_ceil(down) * (size.1 as usize).div_ceil(down)
            ];
        let reply = torch
            .vae_encode_frames(&request, batch, &mut values)
            .map_err(|m| Error::input(&self.source_path, format!("VAE: {m}")))?;
        let shape: Vec<i64> =
            serde_json::from_value(reply["shape_per_frame"].clone()).unwrap_or_default();
        let per_frame: usize = shape.iter().product::<i64>() as usize;
        out.shape_per_frame = shape;
        for (i, &f) in frames.iter().enumerate() {
            shard.frames.push(f);
            shard
                .values
                .extend_from_slice(&values[i * per_frame..(i + 1) * per_frame]);
            if shard.frames.len() == self.config.frames_per_shard {
                self.write_shard(shard, out)?;
            }
        }
        batch.clear();
        frames.clear();
        Ok(())
    }

    fn write_shard(&self, shard: &mut Shard, out: &mut LatentsOutput) -> Result<()> {
        use safetensors::tensor::{Dtype, TensorView};
        if shard.frames.is_empty() {
            return Ok(());
        }
        let name = format!("{:06}.safetensors", out.files.len());
        let path = self.dir.join(&name);
        let n = shard.frames.len();
        let mut shape = vec![n];
        shape.extend(out.shape_per_frame.iter().map(|&d| d as usize));
        let (dtype, bytes): (Dtype, Vec<u8>) = match self.config.dtype {
            LatentDtype::F32 => (
                Dtype::F32,
                shard.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            LatentDtype::F16 => (
                Dtype::F16,
                shard
                    .values
                    .iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
            ),
        };
        let index: Vec<u8> = shard.frames.iter().flat_map(|f| f.to_le_bytes()).collect();
        let write = || -> std::result::Result<(), Box<dyn std::error::Error>> {
            let views = vec![
                ("latents", TensorView::new(dtype, shape.clone(), &bytes)?),
                ("frame_index", TensorView::new(Dtype::I64, vec![n], &index)?),
            ];
            std::fs::write(
                &path,
                safetensors::serialize(views, Some(self.metadata.clone()))?,
            )?;
            Ok(())
        };
        write().map_err(|e| {
            Error::io(
                &path,
                "writing a latents shard",
                std::io::Error::other(e.to_string()),
            )
        })?;
        out.files.push(format!("latents/{name}"));
        out.frames += n as u64;
        shard.frames.clear();
        shard.values.clear();
        Ok(())
    }
}
