//! Wiring of one input's stages: threads joined by bounded crossbeam channels.
//!
//! ```text
//! decode ──┬──► scenes (HSV content, or TransNetV2) ────────┐ scene news (SceneEvent: each cut
//!          │                                                │ as found, how far cuts are known)
//!          ├──► normalize (canvas) ──┬──► encode + mux ◄────┤ (chapters; clip files)
//!          │                         ├──► tagging ◄─────────┤ (per_scene sampling)
//!          │                         ├──► thumbs ◄──────────┘ (scene thumbnails, JPEG)
//!          │                         └──► vae ──► latent shards
//!          └──► audio packets ──► encode + mux
//! ```
//! Each stage is built from the plan the same way ([`build::FromPlan`]); a stage the plan does
//! not have gets no channel. Every channel is bounded (frames: `runtime.queue_frames`; audio:
//! [`AUDIO_PACKETS`]; scene news: [`SceneNews`]). Without scenes and encode, normalize can make its canvases on the model device
//! (`runtime.device_frames`); tagging and vae then take them by handle.
//! A decoded frame is shared by `Arc`, never copied per consumer. End of stream is the sender
//! being dropped. Every stage returns a `Result`; the first real error raises the shared cancel
//! flag, the others stop at their next frame, and the root cause is the one reported. A panic in
//! a stage becomes [`Error::StagePanicked`] (its channel ends drop while unwinding, so nobody hangs).
pub mod annotate;
pub mod build;
pub mod clip_caption;
pub mod clip_frames;
pub mod clip_text;
pub mod clip_work;
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
use build::FromPlan;
use decode::DecodeStage;
use encode::EncodeStage;
use normalize::NormalizeStage;
pub use plan::Plan;
use scenes::{SceneEvent, SceneStage};
use stage::Cancel;
use tagging::TaggingStage;
use thumbs::ThumbStage;
use vae::VaeStage;

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

/// The encode stage and what it reads: canvases, audio packets, the scene stage's news.
type EncodeEnds = (
    EncodeStage,
    Receiver<Canvas>,
    Rx<ff::Packet>,
    Rx<SceneEvent>,
);

/// Every stage the plan has, built, with the channel ends it runs on.
struct Ready {
    decode: (DecodeStage, Tx<Frame>, Tx<Frame>, Tx<ff::Packet>),
    scenes: Option<(SceneStage, Receiver<Frame>, Vec<Sender<SceneEvent>>)>,
    normalize: Option<(NormalizeStage, Receiver<Frame>, Vec<Sender<Canvas>>)>,
    encode: Option<EncodeEnds>,
    tagging: Option<(TaggingStage, Receiver<Canvas>, Rx<SceneEvent>)>,
    vae: Option<(VaeStage, Receiver<Canvas>)>,
    thumbs: Option<(ThumbStage, Receiver<Canvas>, Rx<SceneEvent>)>,
}

type Frame = Arc<crate::media::decode::SourceFrame>;
type Canvas = Arc<normalize::NormFrame>;

impl Ready {
    /// Opens the input, builds each stage the plan has ([`FromPlan`]) and gives it its channel
    /// ends: frames and canvases bounded by `runtime.queue_frames`, audio packets by
    /// [`AUDIO_PACKETS`], the scene stage's news by [`SceneNews`].
    fn wire(plan: &Plan, progress: &indicatif::ProgressBar, cancel: &Cancel) -> Result<Ready> {
        let queue = plan.config.runtime.queue_frames;
        let source = DecodeStage::open(
            plan.input,
            plan.info,
            plan.config,
            plan.decode,
            cancel.clone(),
            progress.clone(),
        )?;
        let (scene_tx, scenes) = channel_for(SceneStage::from_plan(plan, &source, cancel)?, queue);
        let (norm_in_tx, normalize) =
            channel_for(NormalizeStage::from_plan(plan, &source, cancel)?, queue);
        let (encode_tx, encode) =
            channel_for(EncodeStage::from_plan(plan, &source, cancel)?, queue);
        let (tagging_tx, tagging) =
            channel_for(TaggingStage::from_plan(plan, &source, cancel)?, queue);
        let (vae_tx, vae) = channel_for(VaeStage::from_plan(plan, &source, cancel)?, queue);
        let (thumbs_tx, thumbs) = channel_for(ThumbStage::from_plan(plan, &source, cancel)?, queue);
        // Audio packets are small; the encode stage selects over them and frames, so this
        // queue never blocks decoding for long.
        let copies_audio = plan.encode.as_ref().filter(|e| e.audio);
        let (audio_tx, audio_rx) = channel_for(copies_audio, AUDIO_PACKETS);
        let mut news = SceneNews::new(scenes.is_some(), queue);
        let live_cuts = plan.tagging.as_ref().is_some_and(|t| t.live_cuts);
        let encode = encode.map(|(stage, rx)| {
            let audio = audio_rx.map(|(_, rx)| rx);
            (stage, rx, audio, news.subscribe())
        });
        let tagging = tagging.map(|(stage, rx)| {
            let cuts = live_cuts.then(|| news.subscribe()).flatten();
            (stage, rx, cuts)
        });
        let thumbs = thumbs.map(|(stage, rx)| (stage, rx, news.subscribe()));
        let canvas_out = encode_tx.into_iter().chain(tagging_tx).chain(vae_tx);
        Ok(Ready {
            decode: (source, scene_tx, norm_in_tx, audio_tx),
            scenes: scenes.map(|(stage, rx)| (stage, rx, news.listeners)),
            normalize: normalize
                .map(|(stage, rx)| (stage, rx, canvas_out.chain(thumbs_tx).collect())),
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
        let scenes = self.scenes.map(|(stage, rx, listeners)| {
            spawn(scope, "scenes", cancel, move || stage.run(rx, listeners))
        });
        let normalize = self
            .normalize
            .map(|(stage, rx, tx)| spawn(scope, "normalize", cancel, move || stage.run(rx, tx)));
        let encode = self.encode.map(|(stage, rx, audio, news)| {
            spawn(scope, "encode", cancel, move || stage.run(rx, audio, news))
        });
        let tagging = self
            .tagging
            .map(|(stage, rx, cuts)| spawn(scope, "clip", cancel, move || stage.run(rx, cuts)));
        let vae = self
            .vae
            .map(|(stage, rx)| spawn(scope, "vae", cancel, move || stage.run(rx)));
        let thumbs = self
            .thumbs
            .map(|(stage, rx, news)| spawn(scope, "thumbs", cancel, move || stage.run(rx, news)));
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

/// Audio packets the decoder may queue ahead of the encoder.
const AUDIO_PACKETS: usize = 256;

/// Scene events queued per listener, per frame of `runtime.queue_frames`: a frame brings at
/// most two (a cut, and how far cuts are known), and a TransNetV2 call a few more at once.
const SCENE_NEWS_PER_QUEUED_FRAME: usize = 8;

/// The scene stage's listeners, one bounded channel each (`8 × runtime.queue_frames` events:
/// 64 by default). It cannot deadlock: every listener (encode, tagging, thumbs) selects over
/// its frames and its news whenever it waits, so a full channel only makes the scene stage
/// wait for work in progress to end. Without a scene stage nobody subscribes.
struct SceneNews {
    scenes: bool,
    capacity: usize,
    listeners: Vec<Sender<SceneEvent>>,
}

impl SceneNews {
    fn new(scenes: bool, queue_frames: usize) -> SceneNews {
        SceneNews {
            scenes,
            capacity: SCENE_NEWS_PER_QUEUED_FRAME * queue_frames.max(1),
            listeners: Vec::new(),
        }
    }

    /// A listener's end: every cut as it is found, how far cuts are known, and that all are.
    fn subscribe(&mut self) -> Rx<SceneEvent> {
        if !self.scenes {
            return None;
        }
        let (tx, rx) = bounded(self.capacity);
        self.listeners.push(tx);
        Some(rx)
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

/// A stage's plan with the receiving end of its input channel.
type StageInput<P, T> = Option<(P, Receiver<T>)>;

/// A bounded channel for a stage that exists: the sender for its upstream, and the stage
/// with the receiver; nothing for a stage the plan does not have.
fn channel_for<P, T>(stage: Option<P>, capacity: usize) -> (Option<Sender<T>>, StageInput<P, T>) {
    match stage {
        Some(plan) => {
            let (tx, rx) = bounded(capacity);
            (Some(tx), Some((plan, rx)))
        }
        None => (None, None),
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
