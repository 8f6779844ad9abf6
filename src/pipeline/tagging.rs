//! The clip stage: samples normalized frames, converts only the picture area (not the padding)
//! to RGB, batches them, and embeds each batch with the CLIP model through libtorch (the model
//! stays loaded on its device for the run; one call per batch, never per frame).
use crate::config::Sampling;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use ffmpeg_next as ff;
use serde::Serialize;

use super::frame_batch::FrameBatch;
use super::normalize::{Canvas, NormFrame};
use super::scenes::SceneEvent;
use super::stage::{BusyTimer, Cancel};
use crate::config::TaggingConfig;
use crate::error::{Error, Result};
use crate::media::{FrameLayout, ModelFrames};
use crate::torch::Torch;
use framepipe_proto::ops::{ClipEmbedFrames, ModelOn};

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
pub struct TaggingOutput {
    pub samples: Vec<Sample>,
    pub dim: usize,
    pub seconds: f64,
}

pub struct TaggingStage {
    pub config: TaggingConfig,
    pub device: crate::device::Device,
    /// Send YUV planes for the device to convert instead of RGB made here.
    pub color_on_device: bool,
    pub source_path: String,
    pub cancel: Cancel,
}

/// A frame kept as a candidate for per-scene sampling: its picture area in RGB.
struct Candidate {
    source: u64,
    frame: u64,
    time: f64,
    rgb: Vec<u8>,
    pixels: FrameLayout,
}

/// `per_scene: K`: K evenly spaced frames of every scene. Scenes are known only as the scene
/// stage finds their cuts, so frames are kept as candidates until their scene closes; memory stays
/// bounded by halving the candidates (and doubling the keep stride) when a scene runs long.
struct PerScene {
    k: usize,
    cap: usize,
    stride: u64,
    counter: u64,
    candidates: Vec<Candidate>,
    cuts: std::collections::VecDeque<u64>,
    newest_source: Option<u64>,
}

impl PerScene {
    fn new(k: usize) -> Self {
        PerScene {
            k,
            cap: (8 * k).max(16),
            stride: 1,
            counter: 0,
            candidates: Vec::new(),
            cuts: Default::default(),
            newest_source: None,
        }
    }

    /// Whether the next frame of the open scene is kept as a candidate.
    fn wants_next(&mut self) -> bool {
        let keep = self.counter.is_multiple_of(self.stride);
        self.counter += 1;
        keep
    }

    fn add(&mut self, c: Candidate) {
        self.newest_source = Some(c.source);
        self.candidates.push(c);
        let open = self.cuts.back().copied().unwrap_or(0);
        let in_open = self.candidates.iter().filter(|c| c.source >= open).count();
        if in_open > self.cap {
            // Halve the open scene's candidates: every other one goes.
            let mut i = 0;
            self.candidates.retain(|c| {
                let keep = c.source < open || i % 2 == 0;
                if c.source >= open {
                    i += 1;
                }
                keep
            });
            self.stride *= 2;
        }
    }

    /// The scenes that are complete (a cut at or before the newest frame, or `all` at the end),
    /// reduced to their K evenly spaced frames, in order.
    fn close_ready(&mut self, all: bool) -> Vec<Candidate> {
        let mut chosen = Vec::new();
        loop {
            let boundary = match self.cuts.front() {
                Some(&cut) if all || self.newest_source.is_some_and(|n| n >= cut) => cut,
                _ if all => u64::MAX,
                _ => break,
            };
            let split = self.candidates.partition_point(|c| c.source < boundary);
            let scene: Vec<Candidate> = self.candidates.drain(..split).collect();
            chosen.extend(evenly_spaced(scene, self.k));
            if boundary == u64::MAX {
                break;
            }
            self.cuts.pop_front();
            self.stride = 1;
            self.counter = 0;
        }
        chosen
    }
}

/// `k` of `items`, evenly spaced (the middle of k equal parts).
fn evenly_spaced<T>(items: Vec<T>, k: usize) -> Vec<T> {
    let n = items.len();
    if n <= k {
        return items;
    }
    let picks: Vec<usize> = (0..k)
        .map(|i| ((i as f64 + 0.5) * n as f64 / k as f64) as usize)
        .collect();
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| picks.contains(i))
        .map(|(_, x)| x)
        .collect()
}

/// Whether `frame` is sampled: per scene (the scene's picks are decided as it closes), every
/// n-th frame, or at a rate.
fn sampled(
    frame: &NormFrame,
    per_scene: Option<&mut PerScene>,
    sampling: Option<Sampling>,
    next_sample_time: &mut f64,
) -> bool {
    match (per_scene, sampling) {
        (Some(ps), _) => ps.wants_next(),
        (None, Some(Sampling::EveryNFrames(n))) => frame.index.is_multiple_of(u64::from(n)),
        (None, Some(Sampling::Fps(fps))) if frame.time + 1e-9 >= *next_sample_time => {
            *next_sample_time = (frame.time * fps).floor() / fps + 1.0 / fps;
            true
        }
        _ => false,
    }
}

impl TaggingStage {
    /// `cuts`: the scene stage's news as it finds cuts; required by `per_scene` sampling,
    /// unused otherwise.
    pub fn run(
        self,
        rx: Receiver<Arc<NormFrame>>,
        cuts: Option<Receiver<SceneEvent>>,
    ) -> Result<TaggingOutput> {
        let torch = Torch::get()
            .map_err(|m| Error::input(&self.source_path, format!("CLIP needs libtorch: {m}")))?;
        let mut timer = BusyTimer::default();
        let mut batch = Batch::default();
        let mut samples = Vec::new();
        let mut dim = 0;
        let mut rgb = ModelFrames::new(self.color_on_device, ff::software::scaling::Flags::POINT);
        let mut next_sample_time = 0.0;
        let sampling = self.config.sample.sampling();
        let mut per_scene = match sampling {
            Some(Sampling::PerScene(k)) => Some(PerScene::new(k as usize)),
            _ => None,
        };
        let mut frames = Some(rx);
        let mut cuts = cuts;
        while frames.is_some() || cuts.is_some() {
            self.cancel.check("clip")?;
            let never_f = crossbeam_channel::never();
            let never_c = crossbeam_channel::never();
            let frame_rx = frames.as_ref().unwrap_or(&never_f);
            let cut_rx = cuts.as_ref().unwrap_or(&never_c);
            let frame = crossbeam_channel::select! {
                recv(frame_rx) -> msg => match msg {
                    Ok(f) => Some(f),
                    Err(_) => { frames = None; None }
                },
                recv(cut_rx) -> msg => {
                    match (msg, per_scene.as_mut()) {
                        (Ok(SceneEvent::Cut(c)), Some(ps)) => ps.cuts.push_back(c.source_index),
                        (Ok(_), _) => {}
                        (Err(_), _) => cuts = None,
                    }
                    None
                },
            };
            if let Some(frame) = frame {
                let take = sampled(&frame, per_scene.as_mut(), sampling, &mut next_sample_time);
                if take {
                    match per_scene.as_mut() {
                        Some(ps) => ps.add(timer.time(|| self.picture(&mut rgb, &frame))?),
                        // Straight into the batch: no buffer of its own (at 720p a megabyte or
                        // two less to copy per frame).
                        None => timer.time(|| {
                            self.add_to_batch(
                                torch,
                                &mut batch,
                                &mut samples,
                                &mut dim,
                                (frame.index, frame.time),
                                |batch| self.convert_picture(&mut rgb, &frame, batch),
                            )
                        })?,
                    }
                }
            }
            if let Some(ps) = per_scene.as_mut() {
                let done = frames.is_none() && cuts.is_none();
                for c in ps.close_ready(done) {
                    timer.time(|| self.add_closed(torch, &mut batch, &mut samples, &mut dim, c))?;
                }
            }
            if batch.frames.len() >= self.config.batch_size {
                timer.time(|| self.flush(torch, &mut batch, &mut samples, &mut dim))?;
            }
        }
        timer.time(|| self.flush(torch, &mut batch, &mut samples, &mut dim))?;
        Ok(TaggingOutput {
            samples,
            dim,
            seconds: timer.seconds(),
        })
    }

    /// Adds the picture a per-scene sample kept to the batch.
    fn add_closed(
        &self,
        torch: &Torch,
        batch: &mut Batch,
        samples: &mut Vec<Sample>,
        dim: &mut usize,
        closed: Candidate,
    ) -> Result<()> {
        self.add_to_batch(
            torch,
            batch,
            samples,
            dim,
            (closed.frame, closed.time),
            |batch| {
                batch.bytes.extend_from_slice(&closed.rgb);
                Ok(closed.pixels)
            },
        )
    }

    /// Adds one frame (`at`: its output index and time) to the batch. A full batch is flushed
    /// first; `write` then appends the frame's bytes and says how they are laid out, and when
    /// that differs from the batch's (a new picture size mid-stream) the batch so far is
    /// flushed on its own, so a call never mixes layouts.
    fn add_to_batch(
        &self,
        torch: &Torch,
        batch: &mut Batch,
        samples: &mut Vec<Sample>,
        dim: &mut usize,
        at: (u64, f64),
        write: impl FnOnce(&mut FrameBatch) -> Result<FrameLayout>,
    ) -> Result<()> {
        if batch.frames.len() >= self.config.batch_size {
            self.flush(torch, batch, samples, dim)?;
        }
        let start = batch.rgb.mark();
        let pixels = write(&mut batch.rgb)?;
        if batch.pixels.is_some_and(|p| p != pixels) {
            let this_frame = batch.rgb.split_off(start);
            self.flush(torch, batch, samples, dim)?;
            batch.rgb = this_frame;
        }
        batch.pixels = Some(pixels);
        batch.frames.push(at);
        Ok(())
    }

    /// Adds the frame's picture area (black bars excluded: they would pull every embedding
    /// towards "black") to `batch`, as packed RGB, YUV planes or a device canvas; returns
    /// their layout.
    fn convert_picture(
        &self,
        rgb: &mut ModelFrames,
        frame: &NormFrame,
        batch: &mut FrameBatch,
    ) -> Result<FrameLayout> {
        batch
            .add(rgb, &frame.frame, Some(frame.content))
            .map_err(|e| Error::ffmpeg(&self.source_path, "converting a frame to RGB", e))
    }

    /// The frame's picture area, kept as a per-scene candidate (host frames only: per-scene
    /// sampling needs the scene stage, which keeps frames in host memory).
    fn picture(&self, rgb: &mut ModelFrames, frame: &NormFrame) -> Result<Candidate> {
        if matches!(frame.frame, Canvas::Device(_)) {
            return Err(Error::input(
                &self.source_path,
                "per-scene CLIP sampling needs frames in host memory (runtime.device_frames)",
            ));
        }
        let mut batch = FrameBatch::default();
        let pixels = self.convert_picture(rgb, frame, &mut batch)?;
        Ok(Candidate {
            source: frame.source_index,
            frame: frame.index,
            time: frame.time,
            rgb: batch.bytes,
            pixels,
        })
    }

    fn flush(
        &self,
        torch: &Torch,
        batch: &mut Batch,
        samples: &mut Vec<Sample>,
        dim: &mut usize,
    ) -> Result<()> {
        // Frames come with their layout: a batch without one has no frames.
        let (Some(layout), false) = (batch.pixels, batch.frames.is_empty()) else {
            return Ok(());
        };
        let n = batch.frames.len();
        let (frames, bytes) = batch.rgb.part(0..n, layout);
        let request = ClipEmbedFrames {
            on: ModelOn {
                model: self.config.model.clone(),
                device: self.device,
            },
            frames,
        };
        // Room for the largest projection any CLIP has (1024); the reply says the real size.
        let mut out = vec![0f32; n * 1024];
        let reply = torch
            .clip_embed_frames(&request, bytes, &mut out)
            .map_err(|e| Error::input(&self.source_path, format!("CLIP: {e}")))?;
        let d = reply.dim as usize;
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
    rgb: FrameBatch,
    pixels: Option<FrameLayout>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(source: u64) -> Candidate {
        Candidate {
            source,
            frame: source,
            time: 0.0,
            rgb: Vec::new(),
            pixels: FrameLayout::rgb24(1, 1),
        }
    }

    #[test]
    fn evenly_spaced_takes_the_middles() {
        assert_eq!(evenly_spaced((0..10).collect(), 2), [2, 7]);
        assert_eq!(evenly_spaced((0..3).collect(), 5), [0, 1, 2]);
        assert_eq!(evenly_spaced((0..9).collect(), 3), [1, 4, 7]);
    }

    #[test]
    fn per_scene_closes_scenes_at_cuts_even_when_cuts_come_late() {
        let mut ps = PerScene::new(1);
        for s in 0..30 {
            if ps.wants_next() {
                ps.add(cand(s));
            }
        }
        // The cut at 10 arrives after frames of the next scene: still split there.
        ps.cuts.push_back(10);
        let first: Vec<u64> = ps.close_ready(false).iter().map(|c| c.source).collect();
        // The middle of the scene's (decimated) candidates 0, 2, .., 8.
        assert_eq!(first, [4]);
        let rest: Vec<u64> = ps.close_ready(true).iter().map(|c| c.source).collect();
        assert_eq!(rest.len(), 1);
        assert!((10..30).contains(&rest[0]), "{rest:?}");
    }

    #[test]
    fn long_scenes_keep_bounded_candidates() {
        let mut ps = PerScene::new(2);
        for s in 0..100_000 {
            if ps.wants_next() {
                ps.add(cand(s));
            }
            assert!(ps.candidates.len() <= ps.cap + 1);
        }
        let chosen: Vec<u64> = ps.close_ready(true).iter().map(|c| c.source).collect();
        assert_eq!(chosen.len(), 2);
        assert!(chosen[0] < 50_000 && chosen[1] > 50_000, "{chosen:?}");
    }
}
