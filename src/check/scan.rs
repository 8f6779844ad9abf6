//! The one decode pass that serves every pixel rule of a file: decode errors and concealed
//! frames, black stretches, frozen stretches, scene count. Frames are shrunk once to a small gray
//! picture (and to the scene detector's BGR size only when a scene rule asks).
use std::path::Path;

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

use super::rules::{BlackRule, Rules};
use crate::error::{Error, Result};
use crate::media::decode::VideoDecoder;
use crate::media::probe::SourceInfo;
use crate::media::small::SmallFrames;
use crate::media::Scaler;
use crate::scenes::{processing_size, ContentDetector, ContentDetectorConfig};

/// Gray analysis size: enough pixels for ratios and means, cheap to compare.
const GRAY_W: u32 = 160;
const GRAY_H: u32 = 90;

#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub frames: u64,
    pub decode_errors: u64,
    pub damaged_frames: u64,
    pub edit_list_discarded: u64,
    /// (start, end) seconds of each black stretch.
    pub black: Vec<(f64, f64)>,
    pub frozen: Vec<(f64, f64)>,
    pub scenes: Option<usize>,
    /// Present when an audio rule asked and the file has audio.
    pub audio: Option<super::audio::AudioScan>,
    /// Highest score each tag label reached over the sampled frames (tags rule only).
    pub tag_scores: Option<Vec<(String, f64)>>,
    /// The VAE's reconstruction of the sampled frames (vae_anomalies rule only, when any frame
    /// was sampled).
    pub vae: Option<VaeScan>,
}

/// What the vae_anomalies rule found.
#[derive(Debug, Clone)]
pub struct VaeScan {
    pub frames: usize,
    /// The size frames were reconstructed at.
    pub size: (u32, u32),
    pub median_psnr: f64,
    /// One frame's duration (the end of a range of flagged frames).
    pub frame_seconds: f64,
    pub findings: crate::reconstruction::Findings,
}

/// Frames for the vae_anomalies rule, scaled to the rule's size, encoded and decoded again in
/// batches through the libtorch library (one model call per batch returns their PSNRs).
struct VaeSampler {
    rule: super::rules::VaeAnomaliesRule,
    device: crate::device::Device,
    rgb: crate::media::RgbFrames,
    size: (u32, u32),
    batch: Vec<u8>,
    batch_frames: Vec<(u64, f64)>,
    samples: Vec<crate::reconstruction::FramePsnr>,
    latents: Vec<f32>,
}

impl VaeSampler {
    fn new(path: &Path, rule: &super::rules::VaeAnomaliesRule, info: &SourceInfo) -> Result<Self> {
        let device = crate::device::select(crate::device::DeviceRequest::Auto, true)
            .map_err(|m| Error::input(path, format!("vae_anomalies: {m}")))?
            .name;
        let grid = rule.downsampling.max(1);
        // The file's own size on the model's grid: the nearest multiple, at least one.
        let on_grid = |v: u32| (((v + grid / 2) / grid).max(1)) * grid;
        let size = match rule.size {
            Some([w, h]) => (w, h),
            None => (on_grid(info.width), on_grid(info.height)),
        };
        Ok(VaeSampler {
            rule: rule.clone(),
            device,
            rgb: crate::media::RgbFrames::new(size.0, size.1, scaling::Flags::BICUBIC),
            size,
            batch: Vec::new(),
            batch_frames: Vec::new(),
            samples: Vec::new(),
            latents: Vec::new(),
        })
    }

    /// Frames per model call: what the vae stage starts `"auto"` at.
    fn batch_size(&self) -> usize {
        crate::config::BatchSize::Auto.initial(self.device)
    }

    fn push(&mut self, path: &Path, index: u64, time: f64, frame: &ff::frame::Video) -> Result<()> {
        if !index.is_multiple_of(u64::from(self.rule.every_n_frames)) {
            return Ok(());
        }
        self.rgb
            .append(frame, None, &mut self.batch)
            .map_err(|e| Error::ffmpeg(path, "scaling a frame", e))?;
        self.batch_frames.push((index, time));
        if self.batch_frames.len() == self.batch_size() {
            self.flush(path)?;
        }
        Ok(())
    }

    fn flush(&mut self, path: &Path) -> Result<()> {
        let n = self.batch_frames.len();
        if n == 0 {
            return Ok(());
        }
        let torch = crate::torch::Torch::get()
            .map_err(|m| Error::input(path, format!("vae_anomalies: {m}")))?;
        let request = framepipe_proto::ops::VaeEncodeFrames {
            on: framepipe_proto::ops::ModelOn {
                model: self.rule.model.clone(),
                device: self.device,
            },
            frames: framepipe_proto::ops::Frames {
                n: n as u32,
                layout: crate::media::FrameLayout::rgb24(self.size.0, self.size.1),
                canvases: None,
            },
            tiling: false,
            sampling: None,
            reconstruct: Some(framepipe_proto::ops::Reconstruct {
                frames: (0..n as u32).collect(),
                picture: None,
            }),
        };
        // Room for the latents of any model of this grid (at most 64 channels); not kept.
        let grid = self.rule.downsampling.max(1) as usize;
        let cells = (self.size.0 as usize / grid) * (self.size.1 as usize / grid);
        self.latents.resize(n * 64 * cells, 0.0);
        let reply = torch
            .vae_encode_frames(&request, &self.batch, &mut self.latents)
            .map_err(|m| Error::input(path, format!("vae_anomalies: {m}")))?;
        let psnr = reply.psnr.unwrap_or_default();
        for (&(frame, time), psnr) in self.batch_frames.iter().zip(psnr) {
            self.samples
                .push(crate::reconstruction::FramePsnr { frame, time, psnr });
        }
        self.batch.clear();
        self.batch_frames.clear();
        Ok(())
    }

    fn finish(mut self, path: &Path, cuts: &[u64], fps: f64) -> Result<Option<VaeScan>> {
        self.flush(path)?;
        if self.samples.is_empty() {
            return Ok(None);
        }
        let mut starts = vec![0];
        starts.extend_from_slice(cuts);
        let findings = crate::reconstruction::find(&self.samples, &starts, self.rule.sensitivity);
        let mut psnr: Vec<f64> = self.samples.iter().map(|s| s.psnr).collect();
        psnr.sort_by(f64::total_cmp);
        Ok(Some(VaeScan {
            frames: self.samples.len(),
            size: self.size,
            median_psnr: psnr[psnr.len() / 2],
            frame_seconds: if fps > 0.0 { 1.0 / fps } else { 0.0 },
            findings,
        }))
    }
}

/// Frames for the tags rule, shrunk so their short side is 224 (CLIP's input size; the model's
/// own preprocessing then resizes exactly as transformers does) and embedded in batches.
struct TagSampler {
    rule: super::rules::TagsRule,
    labels: crate::tagging::LabelSet,
    device: crate::device::Device,
    rgb: crate::media::RgbFrames,
    size: (u32, u32),
    batch: Vec<u8>,
    batch_frames: usize,
    peaks: Vec<f64>,
    sampled: usize,
}

impl TagSampler {
    const BATCH: usize = 16;

    fn new(path: &Path, rule: &super::rules::TagsRule, info: &SourceInfo) -> Result<Self> {
        let device = crate::device::select(crate::device::DeviceRequest::Auto, true)
            .map_err(|m| Error::input(path, format!("tags: {m}")))?
            .name;
        let clip = crate::config::TaggingConfig {
            model: rule.model.clone(),
            labels: rule.labels.clone(),
            templates: rule.templates.clone(),
            sample: crate::config::TaggingSample {
                every_n_frames: Some(rule.every_n_frames),
                fps: None,
                per_scene: None,
            },
            top_k: rule.labels.len(),
            min_score: 0.0,
            batch_size: Self::BATCH,
        };
        let labels = crate::tagging::LabelSet::load(&clip, device)
            .map_err(|m| Error::input(path, format!("tags: {m}")))?;
        let short = info.width.min(info.height).max(1);
        let scale = (224.0 / f64::from(short)).min(1.0);
        let size = (
            ((f64::from(info.width) * scale).round() as u32).max(1),
            ((f64::from(info.height) * scale).round() as u32).max(1),
        );
        Ok(TagSampler {
            rule: rule.clone(),
            peaks: vec![0.0; labels.labels.len()],
            labels,
            device,
            rgb: crate::media::RgbFrames::new(size.0, size.1, scaling::Flags::AREA),
            size,
            batch: Vec::new(),
            batch_frames: 0,
            sampled: 0,
        })
    }

    fn push(&mut self, path: &Path, index: u64, frame: &ff::frame::Video) -> Result<()> {
        if !index.is_multiple_of(u64::from(self.rule.every_n_frames)) {
            return Ok(());
        }
        self.rgb
            .append(frame, None, &mut self.batch)
            .map_err(|e| Error::ffmpeg(path, "shrinking a frame", e))?;
        self.batch_frames += 1;
        if self.batch_frames == Self::BATCH {
            self.flush(path)?;
        }
        Ok(())
    }

    fn flush(&mut self, path: &Path) -> Result<()> {
        if self.batch_frames == 0 {
            return Ok(());
        }
        let torch =
            crate::torch::Torch::get().map_err(|m| Error::input(path, format!("tags: {m}")))?;
        let request = framepipe_proto::ops::ClipEmbedFrames {
            on: framepipe_proto::ops::ModelOn {
                model: self.rule.model.clone(),
                device: self.device,
            },
            frames: framepipe_proto::ops::Frames {
                n: self.batch_frames as u32,
                layout: crate::media::FrameLayout::rgb24(self.size.0, self.size.1),
                canvases: None,
            },
        };
        let mut out = vec![0f32; self.batch_frames * self.labels.dim.max(1)];
        torch
            .clip_embed_frames(&request, &self.batch, &mut out)
            .map_err(|m| Error::input(path, format!("tags: {m}")))?;
        for row in out.chunks(self.labels.dim.max(1)) {
            for tag in self.labels.tags(row, self.peaks.len(), 0.0) {
                let i = self
                    .labels
                    .labels
                    .iter()
                    .position(|l| *l == tag.label)
                    .expect("a known label");
                self.peaks[i] = self.peaks[i].max(tag.score);
            }
        }
        self.sampled += self.batch_frames;
        self.batch.clear();
        self.batch_frames = 0;
        Ok(())
    }

    fn finish(mut self, path: &Path) -> Result<Option<Vec<(String, f64)>>> {
        self.flush(path)?;
        Ok(
            (self.sampled > 0)
                .then(|| self.labels.labels.iter().cloned().zip(self.peaks).collect()),
        )
    }
}

/// A run of consecutive frames with some property, closed when a frame lacks it.
#[derive(Default)]
struct Runs {
    open: Option<f64>,
    runs: Vec<(f64, f64)>,
}

impl Runs {
    fn push(&mut self, inside: bool, time: f64) {
        match (inside, self.open) {
            (true, None) => self.open = Some(time),
            (false, Some(start)) => {
                self.runs.push((start, time));
                self.open = None;
            }
            _ => {}
        }
    }
    fn finish(mut self, end: f64) -> Vec<(f64, f64)> {
        if let Some(start) = self.open {
            self.runs.push((start, end));
        }
        self.runs
    }
}

pub fn scan(path: &Path, info: &SourceInfo, rules: &Rules) -> Result<Scan> {
    let mut input = ff::format::input(&path)
        .map_err(|e| Error::input(path, format!("cannot open as media: {e}")))?;
    let index = info.video_stream_index;
    let mut decoder = VideoDecoder::open(path, &input, index, 0, 0)?;
    // Two-tap bilinear: point-like samples are enough for ratios and means, and cheapest.
    let mut gray = Scaler::new(Pixel::GRAY8, GRAY_W, GRAY_H, scaling::Flags::FAST_BILINEAR);
    let mut gray_frame = ff::frame::Video::new(Pixel::GRAY8, GRAY_W, GRAY_H);
    let mut previous: Vec<u8> = Vec::new();
    let mut current: Vec<u8> = Vec::with_capacity((GRAY_W * GRAY_H) as usize);
    let mut black = Runs::default();
    let mut frozen = Runs::default();
    let (sw, sh) = processing_size(info.width, info.height);
    // Content scenes: the scenes rule counts them, vae_anomalies takes each one's baseline.
    let mut scenes = (rules.scenes.is_some() || rules.vae_anomalies.is_some()).then(|| {
        (
            SmallFrames::new(sw, sh),
            ContentDetector::new(ContentDetectorConfig::default())
                .expect("default settings are valid"),
            Vec::<u64>::new(),
        )
    });
    let mut reconstruction = match &rules.vae_anomalies {
        Some(rule) => Some(VaeSampler::new(path, rule, info)?),
        None => None,
    };
    let mut tagger = match &rules.tags {
        Some(rule) => Some(TagSampler::new(path, rule, info)?),
        None => None,
    };
    let black_rule = rules.black;
    // What counts as black (also to keep black stretches out of frozen ones).
    let black_test = black_rule.unwrap_or(BlackRule {
        max_seconds: 0.0,
        luma_max: 38,
        picture_ratio: 0.98,
    });
    let frozen_rule = rules.frozen;
    let mut frames = 0u64;
    let mut last_time = 0.0;
    let mut failure: Option<Error> = None;
    let mut discarded = 0u64;

    let mut sink = |frame: crate::media::decode::SourceFrame| -> Result<()> {
        frames += 1;
        last_time = frame.time;
        if black_rule.is_some() || frozen_rule.is_some() {
            gray.run(&frame.frame, &mut gray_frame)
                .map_err(|e| Error::ffmpeg(path, "shrinking a frame", e))?;
            current.clear();
            let stride = gray_frame.stride(0);
            for row in gray_frame.data(0).chunks(stride).take(GRAY_H as usize) {
                current.extend_from_slice(&row[..GRAY_W as usize]);
            }
            let dark = current
                .iter()
                .filter(|&&v| v <= black_test.luma_max)
                .count();
            let is_black = dark as f64 >= black_test.picture_ratio * current.len() as f64;
            if black_rule.is_some() {
                black.push(is_black, frame.time);
            }
            if let Some(rule) = frozen_rule {
                if previous.len() == current.len() {
                    let diff: u64 = current
                        .iter()
                        .zip(&previous)
                        .map(|(&a, &b)| u64::from(a.abs_diff(b)))
                        .sum();
                    let mean = diff as f64 / current.len() as f64;
                    // Black stretches are the black rule's business, not frozen pictures.
                    frozen.push(mean <= rule.max_difference && !is_black, frame.time);
                }
                std::mem::swap(&mut previous, &mut current);
            }
        }
        if let Some(tags) = tagger.as_mut() {
            tags.push(path, frame.index, &frame.frame)?;
        }
        if let Some(vae) = reconstruction.as_mut() {
            vae.push(path, frame.index, frame.time, &frame.frame)?;
        }
        if let Some((small, detector, cuts)) = scenes.as_mut() {
            let (bgr, stride) = small
                .convert(&frame.frame)
                .map_err(|e| Error::ffmpeg(path, "shrinking a frame", e))?;
            if let Some(cut) =
                detector.process_bgr(frame.index, bgr, sw as usize, sh as usize, stride)
            {
                cuts.push(cut);
            }
        }
        Ok(())
    };
    let audio_index = info
        .audio_stream_index
        .filter(|_| rules.silence.is_some() || rules.loudness.is_some());
    let mut audio = match audio_index {
        Some(i) => Some(super::audio::AudioAnalyzer::new(
            path,
            &input.stream(i).expect("probed audio stream"),
            rules.silence.map(|s| s.db_max),
            rules.loudness.is_some(),
        )?),
        None => None,
    };
    let mut packet = ff::Packet::empty();
    let mut read_errors = 0u64;
    loop {
        match packet.read(&mut input) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(_) => {
                read_errors += 1;
                if read_errors > 64 {
                    break;
                }
                continue;
            }
        }
        if Some(packet.stream()) == audio_index {
            if let Some(a) = audio.as_mut() {
                a.send_packet(&packet)?;
            }
            continue;
        }
        if packet.stream() != index {
            continue;
        }
        // SAFETY: reading a plain field of a packet we own.
        if unsafe { (*ff::packet::Ref::as_ptr(&packet)).flags } & ff::ffi::AV_PKT_FLAG_DISCARD != 0
        {
            discarded += 1;
        }
        if let Err(e) = decoder.send_packet(&packet, &mut sink) {
            failure = Some(e);
            break;
        }
    }
    if failure.is_none() {
        if let Err(e) = decoder.send_eof(&mut sink) {
            failure = Some(e);
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let end = if info.fps > 0.0 {
        last_time + 1.0 / info.fps
    } else {
        last_time
    };
    // The frozen run's first frame is the one before the first near-identical comparison.
    let frame_step = if info.fps > 0.0 { 1.0 / info.fps } else { 0.0 };
    Ok(Scan {
        frames,
        decode_errors: read_errors + decoder.errors,
        damaged_frames: decoder.damaged_frames,
        edit_list_discarded: discarded,
        black: black.finish(end),
        frozen: frozen
            .finish(end)
            .into_iter()
            .map(|(s, e)| ((s - frame_step).max(0.0), e))
            .collect(),
        scenes: rules
            .scenes
            .and(scenes.as_ref())
            .map(|(_, _, cuts)| cuts.len() + 1),
        audio: audio.map(|a| a.finish()).transpose()?,
        tag_scores: match tagger {
            Some(t) => t.finish(path)?,
            None => None,
        },
        vae: match reconstruction {
            Some(v) => {
                let cuts = scenes.as_ref().map_or(&[][..], |(_, _, c)| c.as_slice());
                v.finish(path, cuts, info.fps)?
            }
            None => None,
        },
    })
}
