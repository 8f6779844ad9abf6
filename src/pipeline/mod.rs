//! Wiring of one input's stages: threads joined by bounded crossbeam channels.
//!
//! ```text
//! decode ──┬──► scenes (HSV content, or TransNetV2) ────────┐ cuts (chapters; live for per_scene
//!          │                                                │ and, with clips, for the encoder)
//!          ├──► normalize (canvas) ──┬──► encode + mux ◄────┤ (+ clip files)
//!          │                         ├──► tagging ◄─────────┤
//!          │                         ├──► thumbs ◄──────────┘ (scene thumbnails, JPEG)
//!          │                         └──► vae ──► latent shards
//!          └──► audio packets ──► encode + mux
//! ```
//! Without scenes and encode, normalize can make its canvases on the model device
//! (`runtime.device_frames`); tagging and vae then take them by handle.
//! A decoded frame is shared by `Arc`, never copied per consumer. End of stream is the sender
//! being dropped. Every stage returns a `Result`; the first real error raises the shared cancel
//! flag, the others stop at their next frame, and the root cause is the one reported. A panic in
//! a stage becomes [`Error::StagePanicked`] (its channel ends drop while unwinding, so nobody hangs).
pub mod annotate;
pub mod decode;
pub mod encode;
pub mod frame_batch;
pub mod normalize;
pub mod plan;
pub mod scenes;
pub mod stage;
pub mod tagging;
pub mod thumbs;
pub mod vae;

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use ffmpeg_next as ff;

use crate::error::{Error, Result};
pub use plan::Plan;
use scenes::{SceneCut, SceneEvent};
use stage::Cancel;

/// Where and how the vae stage writes latents.
#[derive(Debug, Clone)]
pub struct LatentsTarget {
    /// `OUT/<stem>.partial/latents`.
    pub dir: std::path::PathBuf,
    /// Written into every shard.
    pub metadata: std::collections::HashMap<String, String>,
    /// The model's facts: its latent grid sizes the output buffers; an AutoencoderKL can
    /// encode in tiles, the `auto` batch size's last resort when one frame does not fit.
    pub model: framepipe_proto::ops::VaeFacts,
}

/// What one input's pipeline produced, for the report.
pub struct PipelineOutput {
    pub decode: decode::DecodeStats,
    pub normalize: Option<normalize::NormalizeStats>,
    pub scenes: Option<scenes::SceneCuts>,
    pub encode: Option<encode::EncodeStats>,
    pub tagging: Option<tagging::TaggingOutput>,
    pub latents: Option<vae::LatentsOutput>,
    pub thumbs: Option<thumbs::ThumbsOutput>,
    pub wall_seconds: f64,
}

/// Runs the stages of `plan` for one input and joins them.
pub fn run(plan: &Plan, progress: &indicatif::ProgressBar) -> Result<PipelineOutput> {
    let started = Instant::now();
    let cancel = Cancel::default();
    let ready = Ready::wire(plan, progress, &cancel)?;
    std::thread::scope(|scope| ready.spawn_and_join(scope, &cancel)).into_output(started)
}

type Tx<T> = Option<Sender<T>>;
type Rx<T> = Option<Receiver<T>>;
/// Both ends of a channel that exists only when the plan needs it.
type Ends<T> = (Tx<T>, Rx<T>);
/// The encode stage and what it reads: canvases, audio packets, the final cut list.
type EncodeEnds = (
    encode::EncodeStage,
    Receiver<Canvas>,
    Rx<ff::Packet>,
    Rx<Vec<SceneCut>>,
);

/// Every stage the plan has, built, with the channel ends it runs on.
struct Ready {
    decode: (decode::DecodeStage, Tx<Frame>, Tx<Frame>, Tx<ff::Packet>),
    scenes: Option<(scenes::SceneStage, Receiver<Frame>, SceneListeners)>,
    normalize: Option<(
        normalize::NormalizeStage,
        Receiver<Frame>,
        Vec<Sender<Canvas>>,
    )>,
    encode: Option<EncodeEnds>,
    tagging: Option<(tagging::TaggingStage, Receiver<Canvas>, Rx<u64>)>,
    vae: Option<(vae::VaeStage, Receiver<Canvas>)>,
    thumbs: Option<(thumbs::ThumbStage, Receiver<Canvas>)>,
}

type Frame = Arc<crate::media::decode::SourceFrame>;
type Canvas = Arc<normalize::NormFrame>;

/// Where the scenes stage sends its news, and whether it measures motion (for clips).
struct SceneListeners {
    chapters: Tx<Vec<SceneCut>>,
    live_cuts: Tx<u64>,
    events: Vec<Sender<SceneEvent>>,
    motion: bool,
}

impl Ready {
    /// Opens the input, makes the channels the plan needs (bounded by
    /// `runtime.queue_frames` for frames) and builds each stage on its ends.
    fn wire(plan: &Plan, progress: &indicatif::ProgressBar, cancel: &Cancel) -> Result<Ready> {
        let (queue, info) = (plan.config.runtime.queue_frames, plan.info);
        let (scene_tx, scenes) = channel_for(plan.scenes, queue);
        let (norm_in_tx, normalize) = channel_for(plan.wants_canvas().then_some(()), queue);
        let (norm_out_tx, encode) = channel_for(plan.encode.as_ref(), queue);
        let (clip_tx, clip) = channel_for(plan.tagging.as_ref(), queue);
        let (vae_tx, vae) = channel_for(plan.vae.as_ref(), queue);
        let (thumbs_tx, thumbs) = channel_for(plan.thumbs.as_ref(), queue);
        let news = SceneNews::new(plan);
        // Audio packets are small; the encode stage selects over them and frames, so this
        // queue never blocks decoding for long.
        let wants_audio = plan.encode.as_ref().is_some_and(|e| e.audio);
        let (audio_tx, audio_rx) = channel_if(wants_audio, AUDIO_PACKETS);
        let decode = decode::DecodeStage::open(
            plan.input,
            info,
            plan.config,
            plan.decode,
            cancel.clone(),
            progress.clone(),
        )?;
        let scenes = match scenes {
            Some((cfg, rx)) => {
                let stage = scenes::SceneStage::new(cfg, info, plan.device, cancel.clone())?;
                let listeners = SceneListeners {
                    chapters: news.chapters.0,
                    live_cuts: news.live_cuts.0,
                    events: news
                        .clip_events
                        .0
                        .into_iter()
                        .chain(news.thumb_events.0)
                        .collect(),
                    motion: plan.clips.is_some(),
                };
                Some((stage, rx, listeners))
            }
            None => None,
        };
        let encode = encode.map(|(out, rx)| {
            let stage = encode_stage(plan, &decode, out, news.clip_events.1, cancel);
            (stage, rx, audio_rx, news.chapters.1)
        });
        let thumbs = thumbs.map(|(out, rx)| {
            (
                thumbs_stage(plan, &decode, out, news.thumb_events.1, cancel),
                rx,
            )
        });
        let normalize = normalize.map(|((), rx)| {
            let tx = norm_out_tx
                .into_iter()
                .chain(clip_tx)
                .chain(vae_tx)
                .chain(thumbs_tx);
            (normalize_stage(plan, cancel), rx, tx.collect())
        });
        let tagging = clip.map(|(clip, rx)| {
            let stage = clip.stage(plan.device, &info.path, cancel.clone());
            (stage, rx, news.live_cuts.1)
        });
        let vae = vae.map(|(vae, rx)| (vae.stage(plan.device, &info.path, cancel.clone()), rx));
        Ok(Ready {
            decode: (decode, scene_tx, norm_in_tx, audio_tx),
            scenes,
            normalize,
            encode,
            tagging,
            vae,
            thumbs,
        })
    }

    /// Starts each stage on its own thread, then joins them all.
    fn spawn_and_join<'scope>(
        self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        cancel: &Cancel,
    ) -> Joined {
        let (stage, scene_tx, norm_in_tx, audio_tx) = self.decode;
        let decode = spawn(scope, "decode", cancel, move || {
            stage.run(scene_tx, norm_in_tx, audio_tx)
        });
        let scenes = self.scenes.map(|(stage, rx, to)| {
            spawn(scope, "scenes", cancel, move || {
                stage.run(rx, to.chapters, to.live_cuts, to.events, to.motion)
            })
        });
        let normalize = self
            .normalize
            .map(|(stage, rx, tx)| spawn(scope, "normalize", cancel, move || stage.run(rx, tx)));
        let encode = self.encode.map(|(stage, rx, audio, cuts)| {
            spawn(scope, "encode", cancel, move || stage.run(rx, audio, cuts))
        });
        let tagging = self
            .tagging
            .map(|(stage, rx, live)| spawn(scope, "clip", cancel, move || stage.run(rx, live)));
        let vae = self
            .vae
            .map(|(stage, rx)| spawn(scope, "vae", cancel, move || stage.run(rx)));
        let thumbs = self
            .thumbs
            .map(|(stage, rx)| spawn(scope, "thumbs", cancel, move || stage.run(rx)));
        Joined {
            decode: join("decode", decode),
            thumbs: thumbs.map(|h| join("thumbs", h)),
            vae: vae.map(|h| join("vae", h)),
            tagging: tagging.map(|h| join("clip", h)),
            scenes: scenes.map(|h| join("scenes", h)),
            normalize: normalize.map(|h| join("normalize", h)),
            encode: encode.map(|h| join("encode", h)),
        }
    }
}

/// The normalize stage, making its canvases on the model device when the plan says so.
fn normalize_stage(plan: &Plan, cancel: &Cancel) -> normalize::NormalizeStage {
    let canvas_maker = match plan.frames {
        plan::Frames::Device(torch) => Some((torch, plan.device)),
        plan::Frames::Host => None,
    };
    normalize::NormalizeStage::new(
        &plan.config.normalize,
        plan.info,
        canvas_maker,
        cancel.clone(),
    )
}

/// Audio packets the decoder may queue ahead of the encoder.
const AUDIO_PACKETS: usize = 256;

/// What the scenes stage tells the others while it runs, each channel only where the plan has
/// its listener. The chapter list goes once (capacity 1). The cut news is unbounded on
/// purpose: it is at most one message per decoded frame, and the scene stage must never wait
/// on a listener that waits on it (the encoder holds frames until clip boundaries are known).
struct SceneNews {
    /// The final cuts, for the encoder's chapters.
    chapters: Ends<Vec<SceneCut>>,
    /// Cut frames as they are found, for per-scene CLIP sampling.
    live_cuts: Ends<u64>,
    /// Cuts and how far they are known, for the encoder cutting clip files.
    clip_events: Ends<SceneEvent>,
    /// The same news for the thumbs stage.
    thumb_events: Ends<SceneEvent>,
}

impl SceneNews {
    fn new(plan: &Plan) -> SceneNews {
        let scenes = plan.scenes.is_some();
        let cuts_clip_files = plan.clips.as_ref().is_some_and(|c| c.dir.is_some());
        SceneNews {
            chapters: channel_if(plan.encode.is_some() && scenes, 1),
            live_cuts: unbounded_if(plan.tagging.as_ref().is_some_and(|c| c.live_cuts)),
            clip_events: unbounded_if(cuts_clip_files),
            thumb_events: unbounded_if(plan.thumbs.is_some() && scenes),
        }
    }
}

/// The encode stage of `out`; it cuts clip files as it goes when the plan makes them.
fn encode_stage(
    plan: &Plan,
    decode: &decode::DecodeStage,
    out: &plan::EncodePlan,
    events: Option<Receiver<SceneEvent>>,
    cancel: &Cancel,
) -> encode::EncodeStage {
    let video = decode.video_settings(plan.config);
    let max_waiting = max_waiting_frames(video.width, video.height);
    let clip_files = plan
        .clips
        .as_ref()
        .and_then(|c| c.dir.clone().map(|d| (c.rules, d)));
    encode::EncodeStage {
        path: out.path.clone(),
        config: out.config.clone(),
        video,
        audio: decode.audio_source().filter(|_| out.audio),
        audio_offset: decode.audio_offset(),
        fps: plan.config.normalize.fps,
        clips: clip_files
            .zip(events)
            .map(|((rules, dir), events)| encode::ClipCutting {
                dir,
                rules,
                events,
                max_waiting,
            }),
        cancel: cancel.clone(),
    }
}

/// The thumbs stage writing into `out`.
fn thumbs_stage(
    plan: &Plan,
    decode: &decode::DecodeStage,
    out: &std::path::Path,
    events: Option<Receiver<SceneEvent>>,
    cancel: &Cancel,
) -> thumbs::ThumbStage {
    let video = decode.video_settings(plan.config);
    thumbs::ThumbStage {
        out: out.to_path_buf(),
        fps: plan.config.normalize.fps,
        nominal_fps: plan::output_fps(plan.config, plan.info),
        events,
        max_waiting: max_waiting_frames(video.width, video.height),
        cancel: cancel.clone(),
    }
}

/// Each stage's result, joined.
struct Joined {
    decode: Result<decode::DecodeStats>,
    scenes: Option<Result<scenes::SceneCuts>>,
    normalize: Option<Result<normalize::NormalizeStats>>,
    encode: Option<Result<encode::EncodeStats>>,
    tagging: Option<Result<tagging::TaggingOutput>>,
    vae: Option<Result<vae::LatentsOutput>>,
    thumbs: Option<Result<thumbs::ThumbsOutput>>,
}

impl Joined {
    /// The outputs when every stage succeeded, else the root cause of the failure.
    fn into_output(self, started: Instant) -> Result<PipelineOutput> {
        let mut errors: Vec<Error> = Vec::new();
        let decode = keep_ok(self.decode, &mut errors);
        let scenes = self.scenes.and_then(|r| keep_ok(r, &mut errors));
        let normalize = self.normalize.and_then(|r| keep_ok(r, &mut errors));
        let encode = self.encode.and_then(|r| keep_ok(r, &mut errors));
        let tagging = self.tagging.and_then(|r| keep_ok(r, &mut errors));
        let vae = self.vae.and_then(|r| keep_ok(r, &mut errors));
        let thumbs = self.thumbs.and_then(|r| keep_ok(r, &mut errors));
        match (first_root_cause(errors), decode) {
            (None, Some(decode)) => Ok(PipelineOutput {
                decode,
                normalize,
                scenes,
                encode,
                tagging,
                latents: vae,
                thumbs,
                wall_seconds: started.elapsed().as_secs_f64(),
            }),
            (Some(root), _) => {
                tracing::debug!(error = %root, "pipeline failed");
                Err(root)
            }
            // A failed decode stage left its error in `errors`.
            (None, None) => Err(Error::Cancelled { stage: "decode" }),
        }
    }
}

/// How many normalized frames the encoder may hold while clip boundaries are being decided: a
/// budget of 512 MiB of yuv420p canvases (about 380 at 720p, 170 at 1080p), enough for
/// TransNetV2's delay (up to 125 frames with two windows per call) plus the trim.
fn max_waiting_frames(width: u32, height: u32) -> usize {
    let bytes = (width as usize * height as usize * 3 / 2).max(1);
    ((512usize << 20) / bytes).clamp(64, 1024)
}

/// A stage's plan with the receiving end of its input channel.
type StageInput<P, T> = Option<(P, Receiver<T>)>;

/// A bounded channel for a stage that exists: the sender for its upstream, and the stage's
/// plan with the receiver; nothing for a stage the plan does not have.
fn channel_for<P, T>(stage: Option<P>, capacity: usize) -> (Option<Sender<T>>, StageInput<P, T>) {
    match stage {
        Some(plan) => {
            let (tx, rx) = bounded(capacity);
            (Some(tx), Some((plan, rx)))
        }
        None => (None, None),
    }
}

fn unbounded_if<T>(enabled: bool) -> (Option<Sender<T>>, Option<Receiver<T>>) {
    if enabled {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    }
}

fn channel_if<T>(enabled: bool, capacity: usize) -> (Option<Sender<T>>, Option<Receiver<T>>) {
    if enabled {
        let (tx, rx) = bounded(capacity);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    }
}

type StageHandle<'scope, T> = std::thread::ScopedJoinHandle<'scope, Result<T>>;

/// Starts a stage on its own named thread; its failure raises the cancel flag for the others.
fn spawn<'scope, 'env, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    name: &'static str,
    cancel: &Cancel,
    body: impl FnOnce() -> Result<T> + Send + 'scope,
) -> StageHandle<'scope, T> {
    let cancel = cancel.clone();
    // The caller's span (the input being processed) follows the stage, so its log lines name
    // the input too.
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name(format!("fp-{name}"))
        .spawn_scoped(scope, move || {
            let _span = span.enter();
            // Raise the flag on error *and* on panic (the guard drops while unwinding).
            struct RaiseOnDrop(Option<Cancel>);
            impl Drop for RaiseOnDrop {
                fn drop(&mut self) {
                    if let Some(c) = self.0.take() {
                        c.raise();
                    }
                }
            }
            let mut guard = RaiseOnDrop(Some(cancel));
            let result = body();
            if result.is_ok() {
                guard.0 = None;
            }
            result
        })
        .expect("spawning a stage thread")
}

fn join<T>(stage: &'static str, handle: StageHandle<'_, T>) -> Result<T> {
    handle.join().unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Error::StagePanicked { stage, message })
    })
}

fn keep_ok<T>(result: Result<T>, errors: &mut Vec<Error>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

/// The error to report: the first that is not merely a consequence of another.
fn first_root_cause(errors: Vec<Error>) -> Option<Error> {
    let mut cancellation = None;
    for e in errors {
        if e.is_cancellation() {
            cancellation.get_or_insert(e);
        } else {
            return Some(e);
        }
    }
    cancellation
}

#[cfg(test)]
mod tests {
    use super::stage::send;
    use super::*;

    #[test]
    fn panicking_stage_is_an_error_and_cancels_others() {
        let cancel = Cancel::default();
        let (tx, rx) = bounded::<u32>(1);
        let (a, b) = std::thread::scope(|scope| {
            let c = cancel.clone();
            let panicky = spawn(scope, "panicky", &cancel, move || -> Result<()> {
                let _keep = rx;
                panic!("boom")
            });
            let producer = spawn(scope, "producer", &cancel, move || -> Result<()> {
                for i in 0.. {
                    c.check("producer")?;
                    send(&tx, i, "producer")?;
                }
                Ok(())
            });
            (join("panicky", panicky), join("producer", producer))
        });
        assert!(
            matches!(a, Err(Error::StagePanicked { stage: "panicky", ref message }) if message == "boom")
        );
        assert!(matches!(b, Err(Error::Cancelled { .. })));
        assert!(cancel.is_raised());
        let root = first_root_cause(vec![b.unwrap_err(), a.unwrap_err()]).unwrap();
        assert!(matches!(root, Error::StagePanicked { .. }));
    }
}
