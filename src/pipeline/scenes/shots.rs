//! The `transnetv2` detector in the scenes stage: each decoded frame becomes a 48x27 RGB frame
//! the way the reference makes them (swscale bicubic, the frame's own YUV matrix, as `ffmpeg
//! -s 48x27 -pix_fmt rgb24` does), [`WindowStream`] cuts the stream into the reference's
//! windows, libtorch predicts them (`shots_predict`), and [`ShotBoundaries`] turns the
//! probabilities into cuts as they arrive.
//!
//! Windows are batched by the model's pace, not by a fixed size: after each frame the stage
//! takes every frame already queued, then predicts all ready windows (up to
//! [`max_windows`]) in one call. When the model keeps up, a frame's probability comes about 75
//! frames after it (one window at a time); when it falls behind, the calls grow and the
//! per-window cost drops. Cuts go out as soon as their run of transition frames ends, so
//! per-scene CLIP sampling keeps working.
//!
//! With `scenes.colour_cuts` the same 48x27 frames and probabilities also feed
//! [`ColourCuts`], a second stage that only adds cuts (where the colours change suddenly and
//! TransNetV2 saw nothing); it gives out every cut, TransNetV2's included, in frame order, a
//! little later than TransNetV2 alone would (about 45 frames after a cut's probability).
use std::sync::Arc;

use crossbeam_channel::Receiver;
use ffmpeg_next::software::scaling::Flags;
use framepipe_proto::ops::{
    ModelOn, ShotsInfo, ShotsPredict, SHOT_FRAME_BYTES, SHOT_FRAME_HEIGHT, SHOT_FRAME_WIDTH,
};
use framepipe_proto::Precision;

use super::{FoundCuts, Transition};
use crate::config::ScenesConfig;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::media::decode::SourceFrame;
use crate::media::probe::SourceInfo;
use crate::media::RgbFrames;
use crate::output::scene::AddedBy;
use crate::pipeline::stage::{BusyTimer, Cancel};
use crate::scenes::colour_cuts::{ColourCuts, Cut};
use crate::scenes::transnet::{ShotBoundaries, ShotBoundary, WindowStream, STEP};
use crate::torch::Torch;

/// Decoded frames as TransNetV2's 48x27 rgb24 input, made as the reference's `ffmpeg -s
/// 48x27 -pix_fmt rgb24` makes them: one swscale bicubic pass, YUV matrix and range from the
/// frame's tags.
pub struct ShotFrames(RgbFrames);

impl Default for ShotFrames {
    fn default() -> Self {
        ShotFrames(RgbFrames::new(
            SHOT_FRAME_WIDTH,
            SHOT_FRAME_HEIGHT,
            Flags::BICUBIC,
        ))
    }
}

impl ShotFrames {
    /// Appends `frame`'s 48x27 picture to `bytes`.
    pub fn append(
        &mut self,
        frame: &ffmpeg_next::frame::Video,
        bytes: &mut Vec<u8>,
    ) -> Result<(), ffmpeg_next::Error> {
        self.0.append(frame, None, bytes).map(|_| ())
    }
}

/// Every frame of `video` as [`ShotFrames`] makes it (tests compare them with the reference's
/// bytes).
pub fn shot_frames_of(video: &std::path::Path) -> Result<Vec<u8>> {
    let (mut input, info) = crate::media::probe::open(video)?;
    let mut decoder =
        crate::media::decode::VideoDecoder::open(video, &input, info.video_stream_index, 0, 0)?;
    let mut frames = ShotFrames::default();
    let mut bytes = Vec::new();
    decoder.decode_all(
        &mut input,
        &mut |f: SourceFrame| {
            frames
                .append(&f.frame, &mut bytes)
                .map_err(|e| Error::ffmpeg(video, "shrinking a frame to 48x27", e))
        },
        &|| false,
    )?;
    Ok(bytes)
}

/// The most windows one call predicts: on the CPU each window's activations are hundreds of MB
/// (the first stack's largest tensor alone is 100x128x27x48 floats, 66 MB), so calls stay
/// small; a GPU wants large batches. (Neither bound is tuned by measurement yet.)
pub fn max_windows(device: Device) -> usize {
    if device.is_cuda() {
        16
    } else {
        2
    }
}

/// Every frame's transition probabilities, for `transitions.safetensors`.
#[derive(Debug, Clone, Default)]
pub struct Probabilities {
    /// Source frame index (decode order) and time of each frame.
    pub frame_index: Vec<u64>,
    pub time: Vec<f64>,
    pub single: Vec<f32>,
    pub many_hot: Vec<f32>,
    /// What the model computed them in (`auto` settled by the library).
    pub precision: Precision,
}

pub struct ShotStage {
    torch: &'static Torch,
    precision: Precision,
    on: ModelOn,
    boundaries: ShotBoundaries,
    /// `scenes.colour_cuts`: the second stage, which gives out every cut (boxed: the stage
    /// is a variant of the scenes stage's detector enum, kept small).
    colour: Option<Box<ColourCuts>>,
    /// Cuts the second stage gave out, to send.
    ready: Vec<Cut>,
    max_windows: usize,
    source_path: String,
}

impl ShotStage {
    pub fn new(cfg: &ScenesConfig, info: &SourceInfo, device: Device) -> Result<Self> {
        let model = cfg
            .model_dir()
            .expect("a transnetv2 config has its model folder")
            .to_path_buf();
        let torch = Torch::get()
            .map_err(|m| Error::input(&info.path, format!("transnetv2 needs libtorch: {m}")))?;
        let on = ModelOn { model, device };
        // The session loaded the model already: this only asks what precision it runs in.
        let facts = torch
            .call(&ShotsInfo { on: on.clone() })
            .map_err(|e| Error::input(&info.path, format!("TransNetV2: {e}")))?;
        Ok(ShotStage {
            torch,
            precision: facts.precision,
            on,
            boundaries: ShotBoundaries::new(cfg.threshold as f32, cfg.min_scene_frames),
            colour: cfg
                .colour_cuts
                .then(|| Box::new(ColourCuts::new(cfg.threshold as f32, cfg.min_scene_frames))),
            ready: Vec::new(),
            max_windows: max_windows(device),
            source_path: info.path.clone(),
        })
    }

    /// Predicts every frame; returns how many there were and their probabilities.
    pub fn run(
        mut self,
        rx: Receiver<Arc<SourceFrame>>,
        found: &mut FoundCuts,
        timer: &mut BusyTimer,
        cancel: &Cancel,
    ) -> Result<(u64, Probabilities)> {
        let mut shrink = ShotFrames::default();
        let mut stream = WindowStream::new(SHOT_FRAME_BYTES);
        let mut p = Probabilities {
            precision: self.precision,
            ..Probabilities::default()
        };
        let mut frame = Vec::with_capacity(SHOT_FRAME_BYTES);
        let mut out = vec![0f32; 2 * STEP * self.max_windows];
        while let Ok(first) = rx.recv() {
            cancel.check("scenes")?;
            let mut next = Some(first);
            // Take what is already queued, so a lagging model gets bigger calls.
            while let Some(src) = next {
                timer
                    .time(|| shrink.append(&src.frame, &mut frame))
                    .map_err(|e| {
                        Error::ffmpeg(
                            &self.source_path,
                            format!("shrinking frame {} to 48x27 for TransNetV2", src.index),
                            e,
                        )
                    })?;
                stream.push(&frame);
                if let Some(colour) = &mut self.colour {
                    colour.push_frame(&frame);
                }
                found.frame_seen(&src, &frame).map_err(|e| {
                    Error::ffmpeg(
                        &self.source_path,
                        format!("shrinking frame {} for clip scores", src.index),
                        e,
                    )
                })?;
                frame.clear();
                p.frame_index.push(src.index);
                p.time.push(src.time);
                next = if stream.ready() < self.max_windows {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            timer.time(|| self.predict_ready(&mut stream, &mut out, &mut p, found))?;
        }
        cancel.check("scenes")?;
        stream.finish();
        timer.time(|| self.predict_ready(&mut stream, &mut out, &mut p, found))?;
        if let Some(colour) = &mut self.colour {
            colour.finish(&mut self.ready);
            self.send_ready(&p, found);
        }
        Ok((stream.frames(), p))
    }

    /// Predicts every ready window, records the probabilities and the cuts they make.
    fn predict_ready(
        &mut self,
        stream: &mut WindowStream,
        out: &mut [f32],
        p: &mut Probabilities,
        found: &mut FoundCuts,
    ) -> Result<()> {
        while let Some(run) = stream.next_run(self.max_windows) {
            let windows = run.windows;
            let request = ShotsPredict {
                on: self.on.clone(),
                frames: (run.bytes.len() / SHOT_FRAME_BYTES) as u64,
            };
            let predicted = STEP * windows;
            self.torch
                .shots_predict(&request, run.bytes, &mut out[..2 * predicted])
                .map_err(|e| Error::input(&self.source_path, format!("TransNetV2: {e}")))?;
            let real = stream.keep(windows);
            let (single, many_hot) = out[..2 * predicted].split_at(predicted);
            for (&s, &m) in single.iter().zip(many_hot).take(real) {
                p.single.push(s);
                p.many_hot.push(m);
                let boundary = self.boundaries.push(s);
                match &mut self.colour {
                    Some(colour) => colour.push_probability(s, boundary, &mut self.ready),
                    None => {
                        if let Some(b) = boundary {
                            send_cut(b, None, p, found);
                        }
                    }
                }
            }
            self.send_ready(p, found);
            let pending = self
                .colour
                .as_ref()
                .map_or(u64::MAX, |c| c.pending_from())
                .min(self.boundaries.pending_from()) as usize;
            let last = p.time.len() - 1;
            found.known_until(
                p.frame_index
                    .get(pending)
                    .map_or(p.frame_index[last] + 1, |&i| i),
                p.time[pending.min(last)],
            );
        }
        Ok(())
    }

    /// Sends the cuts the second stage gave out.
    fn send_ready(&mut self, p: &Probabilities, found: &mut FoundCuts) {
        for cut in self.ready.drain(..) {
            let by = cut.added.then_some(AddedBy::ColourCuts);
            send_cut(cut.boundary, by, p, found);
        }
    }
}

/// A boundary (on the stream's frame numbers) as a cut of source frames.
fn send_cut(b: ShotBoundary, added_by: Option<AddedBy>, p: &Probabilities, found: &mut FoundCuts) {
    let index = p.frame_index[b.start as usize];
    let transition = b.transition.map(|(start, _)| Transition {
        start_index: p.frame_index[start as usize],
        start_time: p.time[start as usize],
        added_by,
    });
    found.cut(index, p.time[b.start as usize], transition);
}
