//! `framepipe vae decode LATENTS -o OUT`: latents back to pictures. LATENTS is one safetensors
//! file (`vae encode`'s, or one shard) or a run's `latents/` folder, whose shards are read in
//! name order. Frames are decoded in batches by the libtorch library (the stored scaling and
//! shift undone there, as the model defines them) and written as an H.264 MP4 (`OUT.mp4`, at the
//! rate the latents' metadata records or `--fps`) or as `OUT/000000.png, ...`.
//!
//! Everything that can be refused is checked before the first frame is decoded: every file's
//! header, the model (it must have a decoder and make latents of this channel count), and the
//! model fingerprint the latents recorded. An MP4 is written under a temporary name and renamed
//! into place when complete, so a failure leaves no file that looks finished.
use std::path::{Path, PathBuf};

use ffmpeg_next as ff;
use framepipe_proto::ops::{ModelOn, VaeDecodeFrames, VaeFacts, VaeInfo};
use serde::Serialize;

use crate::config::EncodeConfig;
use crate::error::{Error, Result};
use crate::latent_shard::LatentShard;
use crate::media::encode::{Colour, Muxer, VideoSettings};
use crate::output::tensors::{META_EVERY, META_FINGERPRINT, META_FPS};
use crate::torch::Torch;

/// What to decode and where to.
pub struct DecodeRequest<'a> {
    pub latents: &'a Path,
    pub model: &'a Path,
    pub device: framepipe_proto::Device,
    pub out: &'a Path,
    /// Frames per second of the MP4, overriding the latents' own.
    pub fps: Option<f64>,
    pub encode: EncodeConfig,
}

/// What `framepipe vae decode` prints.
#[derive(Debug, Serialize)]
pub struct DecodedLatents {
    pub out: String,
    /// `mp4` or `png`.
    pub format: &'static str,
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    /// The MP4's frame rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    /// The files decoded, in order.
    pub sources: Vec<String>,
}

/// One latents file of LATENTS, mapped, its header checked.
struct LatentFile {
    path: PathBuf,
    shard: LatentShard,
    /// C, h, w, as the boundary takes them.
    shape: [i64; 3],
}

impl LatentFile {
    fn open(path: &Path) -> Result<LatentFile> {
        let shard = LatentShard::open(path).map_err(|m| Error::input(path, m))?;
        if shard.rows == 0 {
            return Err(Error::input(path, "`latents` holds no frame"));
        }
        let [c, h, w] = shard.row_shape.map(|d| d as i64);
        Ok(LatentFile {
            path: path.to_path_buf(),
            shard,
            shape: [c, h, w],
        })
    }
}

/// The files LATENTS names: itself, or a folder's `*.safetensors` in name order.
fn latent_files(latents: &Path) -> Result<Vec<PathBuf>> {
    if !latents.is_dir() {
        if !latents.exists() {
            return Err(Error::input(latents, "no such file or folder"));
        }
        return Ok(vec![latents.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(latents)
        .map_err(|e| Error::io(latents, "listing latent shards", e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::input(
            latents,
            "the folder holds no .safetensors latent shard",
        ));
    }
    Ok(files)
}

/// The latents must come from this model: a decoder, the same channel count, and (where the
/// latents recorded it) the same model fingerprint.
fn check_model(files: &[LatentFile], model: &Path, facts: &VaeFacts) -> Result<()> {
    if !facts.decoder {
        return Err(Error::input(
            model,
            "the model has no decoder (no *decoder*.safetensors): it cannot decode latents",
        ));
    }
    let fingerprint = crate::model_id::fingerprint(model)
        .map_err(|e| Error::io(model, "reading the model to fingerprint it", e))?;
    let first = &files[0];
    for file in files {
        if file.shape != first.shape {
            return Err(Error::input(
                &file.path,
                format!(
                    "latent rows of shape {:?}, but {} has {:?}: one video's latents share one shape",
                    file.shape,
                    first.path.display(),
                    first.shape
                ),
            ));
        }
        if file.shape[0] != facts.latent_channels {
            return Err(Error::input(
                &file.path,
                format!(
                    "latents have {} channels, the model in {} makes {}: they come from another model",
                    file.shape[0],
                    model.display(),
                    facts.latent_channels
                ),
            ));
        }
        if let Some(recorded) = file.shard.metadata.get(META_FINGERPRINT) {
            if *recorded != fingerprint {
                return Err(Error::input(
                    &file.path,
                    format!(
                        "the latents were made by model {recorded}, not by {} ({fingerprint}): decode them with the model that made them",
                        model.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The MP4's frame rate: `--fps`, else the rate the latents recorded (their video's rate over
/// the frames skipped between latents).
fn frame_rate(first: &LatentFile, fps: Option<f64>) -> Result<f64> {
    if let Some(fps) = fps {
        if fps.is_finite() && fps > 0.0 {
            return Ok(fps);
        }
        return Err(Error::Usage(format!(
            "--fps {fps}: must be a positive number"
        )));
    }
    let recorded = first
        .shard
        .metadata
        .get(META_FPS)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| {
            Error::input(
                &first.path,
                "the latents record no frame rate (metadata `fps`): give --fps",
            )
        })?;
    let every = first
        .shard
        .metadata
        .get(META_EVERY)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v >= 1.0)
        .unwrap_or(1.0);
    Ok(recorded / every)
}

/// Where decoded frames go.
enum Sink {
    Mp4 {
        /// Taken when finished.
        muxer: Option<Box<Muxer>>,
        temporary: PathBuf,
        scaler: crate::media::Scaler,
    },
    Png {
        dir: PathBuf,
    },
}

/// Decodes the latents of `request` and writes them (see the module comment).
pub fn decode(request: &DecodeRequest) -> Result<DecodedLatents> {
    // Everything refused before decoding is the command's to fix: exit 2, nothing written.
    let paths = latent_files(request.latents).map_err(Error::setup)?;
    let files = paths
        .iter()
        .map(|p| LatentFile::open(p))
        .collect::<Result<Vec<_>>>()
        .map_err(Error::setup)?;
    let (torch, on, facts) = decoder_for(request, &files)?;
    let mp4 = request
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mp4"));
    let fps = if mp4 {
        Some(frame_rate(&files[0], request.fps).map_err(Error::setup)?)
    } else {
        None
    };
    let [_, h, w] = files[0].shape;
    let down = facts.downsampling.max(1);
    let (width, height) = ((w * down) as u32, (h * down) as u32);
    let mut sink = match fps {
        Some(fps) => Sink::mp4(request, fps, width, height)?,
        None => Sink::png(request.out)?,
    };
    // Frames per model call: what the vae stage starts `"auto"` at.
    let batch = crate::config::BatchSize::Auto.initial(request.device);
    let result = decode_into(&files, torch, &on, batch, (width, height), &mut sink);
    let finished = result.and_then(|written| sink.finish(request.out).map(|()| written));
    if finished.is_err() {
        sink.discard();
    }
    let written = finished?;
    Ok(DecodedLatents {
        out: request.out.display().to_string(),
        format: if mp4 { "mp4" } else { "png" },
        frames: written,
        width,
        height,
        fps,
        sources: paths.iter().map(|p| p.display().to_string()).collect(),
    })
}

/// The model `request` names, on its device, once it is shown able to decode `files`.
fn decoder_for(
    request: &DecodeRequest,
    files: &[LatentFile],
) -> Result<(&'static Torch, ModelOn, VaeFacts)> {
    let torch = Torch::get()
        .map_err(|m| Error::input(request.model, format!("VAE needs libtorch: {m}")))?;
    let on = ModelOn {
        model: request.model.to_path_buf(),
        device: request.device,
    };
    let facts = torch
        .call(&VaeInfo { on: on.clone() })
        .map_err(|e| Error::input(request.model, e.message).setup())?;
    check_model(files, request.model, &facts).map_err(Error::setup)?;
    Ok((torch, on, facts))
}

/// Decodes every row of `files`, `batch` frames per model call, into `sink`; returns the
/// frames written.
fn decode_into(
    files: &[LatentFile],
    torch: &Torch,
    on: &ModelOn,
    batch: usize,
    (width, height): (u32, u32),
    sink: &mut Sink,
) -> Result<u64> {
    let frame_bytes = width as usize * height as usize * 3;
    let per_row = files[0].shape.iter().product::<i64>() as usize;
    let mut rgb = vec![0u8; batch * frame_bytes];
    let mut written = 0u64;
    for file in files {
        for start in (0..file.shard.rows).step_by(batch) {
            let end = (start + batch).min(file.shard.rows);
            let n = end - start;
            let values = file.shard.rows_f32(start..end);
            debug_assert_eq!(values.len(), n * per_row);
            let op = VaeDecodeFrames {
                on: on.clone(),
                n: n as u32,
                shape_per_frame: file.shape,
                tiling: false,
            };
            let out = &mut rgb[..n * frame_bytes];
            torch
                .vae_decode_frames(&op, &values, out)
                .map_err(|e| Error::input(&file.path, format!("VAE decode: {e}")))?;
            for frame in out.chunks_exact(frame_bytes) {
                sink.write(frame, width, height, written)?;
                written += 1;
            }
        }
    }
    Ok(written)
}

/// `OUT.mp4` is written as `.OUT.mp4.partial-<pid>.mp4` beside it (the muxer picks the format
/// from the extension).
fn temporary_name(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "decoded.mp4".into());
    out.with_file_name(format!(".{name}.partial-{}.mp4", std::process::id()))
}

impl Sink {
    /// An MP4 at `fps` (the encode settings checked first), written under a temporary name.
    fn mp4(request: &DecodeRequest, fps: f64, width: u32, height: u32) -> Result<Sink> {
        request
            .encode
            .validate()
            .map_err(|e| Error::Usage(e.to_string().replace("encode.", "--")))?;
        let temporary = temporary_name(request.out);
        let rate = crate::pipeline::decode::rational_from_fps(fps);
        let settings = VideoSettings {
            width,
            height,
            time_base: ff::Rational::new(rate.denominator(), rate.numerator()),
            frame_rate: rate,
            colour: Colour {
                space: ff::color::Space::BT709,
                primaries: ff::color::Primaries::BT709,
                transfer: ff::color::TransferCharacteristic::BT709,
            },
        };
        let muxer = Muxer::create(&temporary, &request.encode, &settings, None)?;
        Ok(Sink::Mp4 {
            muxer: Some(Box::new(muxer)),
            temporary,
            scaler: crate::media::Scaler::new(
                ff::format::Pixel::YUV420P,
                width,
                height,
                ff::software::scaling::Flags::BICUBIC,
            )
            .to_bt709(),
        })
    }

    /// PNGs in the folder `out` (created if missing).
    fn png(out: &Path) -> Result<Sink> {
        std::fs::create_dir_all(out)
            .map_err(|e| Error::io(out, "creating the output folder", e))?;
        Ok(Sink::Png {
            dir: out.to_path_buf(),
        })
    }

    fn write(&mut self, rgb: &[u8], width: u32, height: u32, index: u64) -> Result<()> {
        match self {
            Sink::Mp4 {
                muxer,
                temporary,
                scaler,
            } => {
                let mut frame = ff::frame::Video::new(ff::format::Pixel::RGB24, width, height);
                let stride = frame.stride(0);
                let row = width as usize * 3;
                for (y, line) in rgb.chunks_exact(row).enumerate() {
                    frame.data_mut(0)[y * stride..y * stride + row].copy_from_slice(line);
                }
                // A new frame each time: the encoder may still hold a reference to the last one.
                let mut yuv = ff::frame::Video::empty();
                scaler
                    .run(&frame, &mut yuv)
                    .map_err(|e| Error::ffmpeg(&*temporary, "converting a frame to yuv420p", e))?;
                yuv.set_color_space(ff::color::Space::BT709);
                yuv.set_color_range(ff::color::Range::MPEG);
                muxer
                    .as_mut()
                    .expect("open until finished")
                    .send_video_frame(
                        &yuv,
                        index as i64,
                        0.0,
                        crate::media::clip_mux::FrameRole::Free,
                    )
            }
            Sink::Png { dir } => {
                let path = dir.join(format!("{index:06}.png"));
                image::RgbImage::from_raw(width, height, rgb.to_vec())
                    .expect("a whole frame")
                    .save(&path)
                    .map_err(|e| Error::io(&path, "writing a PNG", std::io::Error::other(e)))
            }
        }
    }

    fn finish(&mut self, out: &Path) -> Result<()> {
        let Sink::Mp4 {
            muxer, temporary, ..
        } = self
        else {
            return Ok(());
        };
        if let Some(muxer) = muxer.take() {
            muxer.finish(&[])?;
        }
        std::fs::rename(&*temporary, out)
            .map_err(|e| Error::io(out, "renaming the finished MP4 into place", e))
    }

    fn discard(&self) {
        if let Sink::Mp4 { temporary, .. } = self {
            let _ = std::fs::remove_file(temporary);
        }
    }
}
