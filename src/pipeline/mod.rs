//! Wiring of one input's stages: threads joined by bounded crossbeam channels.
//!
//! ```text
//! decode ──┬──► scenes (HSV content, or TransNetV2) ────────┐ cuts (chapters; live for per_scene
//!          │                                                │ and, with clips, for the encoder)
//!          ├──► normalize (canvas) ──┬──► encode + mux ◄────┤ (+ clip files)
//!          │                         ├──► clip ◄────────────┤
//!          │                         ├──► thumbs ◄──────────┘ (scene thumbnails, JPEG)
//!          │                         └──► vae ──► latent shards
//!          └──► audio packets ──► encode + mux
//! ```
//! Without scenes and encode, normalize can make its canvases on the model device
//! (`runtime.device_frames`); clip and vae then take them by handle.
//! A decoded frame is shared by `Arc`, never copied per consumer. End of stream is the sender
//! being dropped. Every stage returns a `Result`; the first real error raises the shared cancel
//! flag, the others stop at their next frame, and the root cause is the one reported. A panic in
//! a stage becomes [`Error::StagePanicked`] (its channel ends drop while unwinding, so nobody hangs).
pub mod annotate;
pub mod clip;
pub mod decode;
pub mod encode;
pub mod frame_batch;
pub mod normalize;
pub mod plan;
pub mod scenes;
pub mod stage;
pub mod thumbs;
pub mod vae;

use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::error::{Error, Result};
pub use plan::Plan;
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
    pub clip: Option<clip::ClipOutput>,
    pub latents: Option<vae::LatentsOutput>,
    pub thumbs: Option<thumbs::ThumbsOutput>,
    pub wall_seconds: f64,
}

/// Runs the stages of `plan` for one input and joins them.
pub fn run(plan: &Plan, progress: &indicatif::ProgressBar) -> Result<PipelineOutput> {
    let started = Instant::now();
    let cancel = Cancel::default();
    let queue = plan.config.runtime.queue_frames;
    let info = plan.info;

    let (scene_tx, scenes) = channel_for(plan.scenes, queue);
    let (norm_in_tx, normalize) = channel_for(plan.wants_canvas().then_some(()), queue);
    let (norm_out_tx, encode) = channel_for(plan.encode.as_ref(), queue);
    let (clip_tx, clip) = channel_for(plan.clip.as_ref(), queue);
    let (vae_tx, vae) = channel_for(plan.vae.as_ref(), queue);
    let (thumbs_tx, thumbs) = channel_for(plan.thumbs.as_ref(), queue);
    // Cuts as they are found, for per-scene CLIP sampling. Unbounded: a handful of integers,
    // and the scene stage must never wait on the clip stage.
    let (live_cuts_tx, live_cuts_rx) = match plan.clip.as_ref().filter(|c| c.live_cuts) {
        Some(_) => {
            let (tx, rx) = crossbeam_channel::unbounded();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    // Audio packets are small; the encode stage selects over them and frames, so this queue
    // never blocks decoding for long. Sized in packets (roughly 20 ms each).
    let wants_audio = plan.encode.as_ref().is_some_and(|e| e.audio);
    let (audio_tx, audio_rx) = channel_if(wants_audio, 256);
    let (cuts_tx, cuts_rx) = channel_if(plan.encode.is_some() && plan.scenes.is_some(), 1);
    // Cuts as they are found for the encoder, when it cuts clip files. Unbounded like the live
    // cuts: the scene stage must never wait on the encoder (which waits on it).
    let clip_files = plan
        .clips
        .as_ref()
        .and_then(|c| c.dir.clone().map(|d| (c.rules, d)));
    let (events_tx, events_rx) = match clip_files {
        Some(_) => {
            let (tx, rx) = crossbeam_channel::unbounded();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    // The same news for the thumbs stage (which never makes the scene stage wait either).
    let (thumb_events_tx, thumb_events_rx) = match (&thumbs, plan.scenes) {
        (Some(_), Some(_)) => {
            let (tx, rx) = crossbeam_channel::unbounded();
            (Some(tx), Some(rx))
        }
        _ => (None, None),
    };
    let motion = plan.clips.is_some();

    let decode_stage = decode::DecodeStage::open(
        plan.input,
        info,
        plan.config,
        plan.decode,
        cancel.clone(),
        progress.clone(),
    )?;
    let audio_source = decode_stage.audio_source();
    let audio_offset = decode_stage.audio_offset();
    let video_settings = decode_stage.video_settings(plan.config);
    let max_waiting = max_waiting_frames(video_settings.width, video_settings.height);
    let scenes = match scenes {
        Some((cfg, rx)) => Some((
            scenes::SceneStage::new(cfg, info, plan.device, cancel.clone())?,
            rx,
        )),
        None => None,
    };
    let canvas_maker = match plan.frames {
        plan::Frames::Device(torch) => Some((torch, plan.device)),
        plan::Frames::Host => None,
    };

    std::thread::scope(|scope| {
        let decode = spawn(scope, "decode", &cancel, move || {
            decode_stage.run(scene_tx, norm_in_tx, audio_tx)
        });
        let scenes = scenes.map(|(stage, rx)| {
            let cuts_tx = cuts_tx.clone();
            let live = live_cuts_tx.clone();
            let events: Vec<_> = events_tx.iter().chain(&thumb_events_tx).cloned().collect();
            spawn(scope, "scenes", &cancel, move || {
                stage.run(rx, cuts_tx, live, events, motion)
            })
        });
        drop(cuts_tx);
        drop(live_cuts_tx);
        drop(events_tx);
        drop(thumb_events_tx);
        let normalize = normalize.map(|((), rx)| {
            let stage = normalize::NormalizeStage::new(
                &plan.config.normalize,
                info,
                canvas_maker,
                cancel.clone(),
            );
            let tx: Vec<_> = norm_out_tx
                .into_iter()
                .chain(clip_tx)
                .chain(vae_tx)
                .chain(thumbs_tx)
                .collect();
            spawn(scope, "normalize", &cancel, move || stage.run(rx, tx))
        });
        let encode = encode.map(|(out, rx)| {
            let stage = encode::EncodeStage {
                path: out.path.clone(),
                config: out.config.clone(),
                video: video_settings,
                audio: audio_source.filter(|_| out.audio),
                audio_offset,
                fps: plan.config.normalize.fps,
                clips: clip_files.zip(events_rx).map(|((rules, dir), events)| {
                    encode::ClipCutting {
                        dir,
                        rules,
                        events,
                        max_waiting,
                    }
                }),
                cancel: cancel.clone(),
            };
            spawn(scope, "encode", &cancel, move || {
                stage.run(rx, audio_rx, cuts_rx)
            })
        });
        let clip = clip.map(|(clip, rx)| {
            let stage = clip.stage(plan.device, &info.path, cancel.clone());
            spawn(scope, "clip", &cancel, move || stage.run(rx, live_cuts_rx))
        });
        let vae = vae.map(|(vae, rx)| {
            let stage = vae.stage(plan.device, &info.path, cancel.clone());
            spawn(scope, "vae", &cancel, move || stage.run(rx))
        });

        let thumbs = thumbs.map(|(out, rx)| {
            let stage = thumbs::ThumbStage {
                out: out.clone(),
                fps: plan.config.normalize.fps,
                nominal_fps: plan::output_fps(plan.config, info),
                events: thumb_events_rx,
                max_waiting,
                cancel: cancel.clone(),
            };
            spawn(scope, "thumbs", &cancel, move || stage.run(rx))
        });

        let decode = join("decode", decode);
        let thumbs = thumbs.map(|h| join("thumbs", h));
        let vae = vae.map(|h| join("vae", h));
        let clip = clip.map(|h| join("clip", h));
        let scenes = scenes.map(|h| join("scenes", h));
        let normalize = normalize.map(|h| join("normalize", h));
        let encode = encode.map(|h| join("encode", h));

        let mut errors: Vec<Error> = Vec::new();
        let decode = keep_ok(decode, &mut errors);
        let scenes = scenes.and_then(|r| keep_ok(r, &mut errors));
        let normalize = normalize.and_then(|r| keep_ok(r, &mut errors));
        let encode = encode.and_then(|r| keep_ok(r, &mut errors));
        let clip = clip.and_then(|r| keep_ok(r, &mut errors));
        let vae = vae.and_then(|r| keep_ok(r, &mut errors));
        let thumbs = thumbs.and_then(|r| keep_ok(r, &mut errors));
        match (first_root_cause(errors), decode) {
            (None, Some(decode)) => Ok(PipelineOutput {
                decode,
                normalize,
                scenes,
                encode,
                clip,
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
    })
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
