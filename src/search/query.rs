//! Query embeddings for `search`: texts, image files and a moment of a video, each embedded
//! with the CLIP model that made the corpus (the same preprocessing and towers as tagging).
use std::path::{Path, PathBuf};

use ff::Rescale;
use ffmpeg_next as ff;
use framepipe_proto::ops::{ClipEmbedFrames, ClipRun, ClipTexts, Frames, ModelOn};
use framepipe_proto::FrameLayout;

use crate::error::{Error, Result};
use crate::media::decode::{SourceFrame, VideoDecoder};
use crate::media::{probe, RgbFrames};
use crate::torch::Torch;

/// One query: what the user asked, and its unit embedding.
#[derive(Debug, Clone)]
pub struct Query {
    pub label: String,
    pub embedding: Vec<f32>,
}

/// The model queries are embedded with.
pub struct QueryModel<'a> {
    pub torch: &'a Torch,
    pub model: &'a Path,
    pub device: crate::device::Device,
}

impl QueryModel<'_> {
    pub fn model_on(&self) -> ModelOn {
        ModelOn {
            model: self.model.to_path_buf(),
            device: self.device,
        }
    }

    /// Text queries (no prompt template: the text is the prompt).
    pub fn texts(&self, texts: &[String]) -> Result<Vec<Query>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let reply = self
            .torch
            .call(&ClipTexts {
                on: self.model_on(),
                texts: texts.to_vec(),
            })
            .map_err(|e| Error::input(self.model, e.message))?;
        Ok(texts
            .iter()
            .zip(reply.embeddings)
            .map(|(t, e)| Query {
                label: t.clone(),
                embedding: e,
            })
            .collect())
    }

    /// Image file queries, preprocessed as `framepipe clip --image` does.
    pub fn images(&self, images: &[PathBuf]) -> Result<Vec<Query>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        for image in images {
            if !image.is_file() {
                return Err(Error::input(image, "no such image file"));
            }
        }
        let reply = self
            .torch
            .call(&ClipRun {
                on: self.model_on(),
                images: images.to_vec(),
                texts: Vec::new(),
            })
            .map_err(|e| Error::input(&images[0], e.message))?;
        Ok(images
            .iter()
            .zip(reply.images)
            .map(|(p, r)| Query {
                label: p.display().to_string(),
                // The reply's f64 rows are f32 values (the model's output), exactly.
                embedding: r.embedding.iter().map(|&x| x as f32).collect(),
            })
            .collect())
    }

    /// `VIDEO@TIME` queries: the frame shown at TIME, at its own size.
    pub fn moments(&self, specs: &[String]) -> Result<Vec<Query>> {
        specs
            .iter()
            .map(|spec| {
                let (video, time) =
                    parse_moment(spec).map_err(|m| Error::input(Path::new(spec), m))?;
                let (rgb, w, h) = frame_at(&video, time)?;
                let mut out = vec![0f32; 4096];
                let request = ClipEmbedFrames {
                    on: self.model_on(),
                    frames: Frames {
                        n: 1,
                        layout: FrameLayout::rgb24(w, h),
                        canvases: None,
                    },
                };
                let reply = self
                    .torch
                    .clip_embed_frames(&request, &rgb, &mut out)
                    .map_err(|e| Error::input(&video, e.message))?;
                let dim = reply.dim as usize;
                out.truncate(dim);
                Ok(Query {
                    label: spec.clone(),
                    embedding: out,
                })
            })
            .collect()
    }
}

/// `VIDEO@SECONDS` or `VIDEO@[HH:]MM:SS[.mmm]` (the last `@` separates).
pub fn parse_moment(spec: &str) -> std::result::Result<(PathBuf, f64), String> {
    let (video, time) = spec
        .rsplit_once('@')
        .ok_or_else(|| format!("{spec:?}: expected VIDEO@TIME"))?;
    let mut seconds = 0.0;
    for part in time.split(':') {
        let v: f64 = part
            .parse()
            .map_err(|_| format!("{spec:?}: {time:?} is not a time (seconds or HH:MM:SS.mmm)"))?;
        seconds = seconds * 60.0 + v;
    }
    if !seconds.is_finite() || seconds < 0.0 || time.split(':').count() > 3 {
        return Err(format!("{spec:?}: {time:?} is not a time"));
    }
    Ok((PathBuf::from(video), seconds))
}

/// RGB24 bytes, width and height of the frame of `video` shown at `time` seconds (from the
/// stream's start): the last frame starting at or before it.
pub fn frame_at(video: &Path, time: f64) -> Result<(Vec<u8>, u32, u32)> {
    let (mut input, info) = probe::open(video)?;
    if time > info.duration + 1.0 / info.fps.max(1.0) {
        return Err(Error::input(
            video,
            format!("{time:.3} s is past the end ({:.3} s)", info.duration),
        ));
    }
    // SAFETY: reading a plain field of the open format context.
    let start_us = unsafe { (*input.as_ptr()).start_time };
    let start_us = if start_us == ff::ffi::AV_NOPTS_VALUE {
        0
    } else {
        start_us
    };
    let tb = input
        .stream(info.video_stream_index)
        .map(|s| s.time_base())
        .ok_or_else(|| Error::input(video, "no video stream"))?;
    let offset = start_us.rescale(ff::Rational::new(1, ff::ffi::AV_TIME_BASE), tb);
    // Jump to the keyframe before the moment instead of decoding from the start.
    let target = start_us + (time * f64::from(ff::ffi::AV_TIME_BASE)) as i64;
    let _ = input.seek(target, ..target);
    let mut decoder = VideoDecoder::open(video, &input, info.video_stream_index, 0, offset)?;
    let half_frame = 0.5 / info.fps.max(1.0);
    let mut best: Option<ff::frame::Video> = None;
    let done = std::cell::Cell::new(false);
    let mut sink = |f: SourceFrame| -> Result<()> {
        if done.get() {
            return Ok(());
        }
        if f.time <= time + half_frame || best.is_none() {
            best = Some(f.frame);
        } else {
            done.set(true);
        }
        Ok(())
    };
    decoder.decode_all(&mut input, &mut sink, &|| done.get())?;
    let frame = best.ok_or_else(|| Error::input(video, "no frame could be decoded"))?;
    let (w, h) = (frame.width(), frame.height());
    let mut rgb = Vec::new();
    RgbFrames::new(w, h, ff::software::scaling::Flags::BICUBIC)
        .append(&frame, None, &mut rgb)
        .map_err(|e| Error::ffmpeg(video, "converting a frame to RGB", e))?;
    Ok((rgb, w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_parse_seconds_and_clock_times() {
        assert_eq!(
            parse_moment("a@b.mp4@12.5").unwrap(),
            ("a@b.mp4".into(), 12.5)
        );
        assert_eq!(parse_moment("v.mp4@1:02.5").unwrap().1, 62.5);
        assert_eq!(parse_moment("v.mp4@1:00:00").unwrap().1, 3600.0);
        assert!(parse_moment("v.mp4").is_err());
        assert!(parse_moment("v.mp4@soon").is_err());
        assert!(parse_moment("v.mp4@-3").is_err());
    }
}
