//! Wiring of one input's stages: threads joined by bounded crossbeam channels.
//!
//! ```text
//! decode ──┬──► scenes (small HSV frames) ──────────────────┐ cuts (chapters; live for per_scene)
//!          ├──► normalize (canvas) ──┬──► encode + mux ◄────┤
//!          │                         ├──► clip ◄────────────┘
//!          │                         └──► vae ──► latent shards
//!          └──► audio packets ──► encode + mux
//! ```
//! Without scenes and encode, normalize can make its canvases on the model device
//! (`runtime.device_frames`); clip and vae then take them by handle.
//! A decoded frame is shared by `Arc`, never copied per consumer. End of stream is the sender
//! being dropped. Every stage returns a `Result`; the first real error raises the shared cancel
//! flag, the others stop at their next frame, and the root cause is the one reported. A panic in
//! a stage becomes [`Error::StagePanicked`] (its channel ends drop while unwinding, so nobody hangs).
pub mod clip;
pub mod decode;
pub mod encode;
pub mod frame_batch;
pub mod normalize;
pub mod scenes;
pub mod vae;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::media::probe::SourceInfo;

/// Shared by all stages of one input: set by the first stage that fails.
#[derive(Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// `Err(Cancelled)` once another stage failed.
    pub fn check(&self, stage: &'static str) -> Result<()> {
        if self.is_raised() {
            Err(Error::Cancelled { stage })
        } else {
            Ok(())
        }
    }
}

/// Sends, turning a closed downstream (it stopped after an error) into a cancellation.
pub fn send<T>(tx: &Sender<T>, value: T, stage: &'static str) -> Result<()> {
    tx.send(value).map_err(|_| Error::Cancelled { stage })
}

/// Time a stage spent working (not waiting on its neighbours).
#[derive(Default, Debug, Clone, Copy)]
pub struct BusyTimer(Duration);

impl BusyTimer {
    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.0 += start.elapsed();
        out
    }
    pub fn seconds(&self) -> f64 {
        self.0.as_secs_f64()
    }
}

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
    pub wall_seconds: f64,
}

/// Runs all stages for one input and joins them.
pub fn run(
    input: &Path,
    info: &SourceInfo,
    cfg: &PipelineConfig,
    video_out: Option<&Path>,
    device_name: crate::device::Device,
    latents: Option<LatentsTarget>,
    progress: &indicatif::ProgressBar,
) -> Result<PipelineOutput> {
    let started = Instant::now();
    let cancel = Cancel::default();
    let queue = cfg.runtime.queue_frames;
    let encode_cfg = cfg.encode.as_ref().filter(|_| video_out.is_some());

    let (scene_tx, scene_rx) = channel_if(cfg.scenes.is_some(), queue);
    let wants_canvas =
        encode_cfg.is_some() || cfg.clip.is_some() || (cfg.vae.is_some() && latents.is_some());
    let (norm_in_tx, norm_in_rx) = channel_if(wants_canvas, queue);
    let (norm_out_tx, norm_out_rx) = channel_if(encode_cfg.is_some(), queue);
    let (clip_tx, clip_rx) = channel_if(cfg.clip.is_some(), queue);
    let (vae_tx, vae_rx) = channel_if(cfg.vae.is_some() && latents.is_some(), queue);
    // Cuts as they are found, for per-scene CLIP sampling. Unbounded: a handful of integers,
    // and the scene stage must never wait on the clip stage.
    let per_scene = cfg
        .clip
        .as_ref()
        .is_some_and(|c| c.sample.per_scene.is_some());
    let (live_cuts_tx, live_cuts_rx) = if per_scene {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let wants_audio =
        encode_cfg.is_some_and(|e| e.audio != crate::config::AudioMode::None) && info.has_audio;
    // Audio packets are small; the encode stage selects over them and frames, so this queue
    // never blocks decoding for long. Sized in packets (roughly 20 ms each).
    let (audio_tx, audio_rx) = channel_if(wants_audio, 256);
    let (cuts_tx, cuts_rx) = channel_if(encode_cfg.is_some() && cfg.scenes.is_some(), 1);

    let on_device = device_frames(cfg, device_name, encode_cfg.is_some(), latents.is_some());
    // The normalize stage makes canvases through libtorch: load it now, so a missing library
    // is one clear error before any thread starts.
    let canvas_maker = match on_device {
        true => Some((
            crate::torch::Torch::get().map_err(|m| {
                Error::input(
                    &info.path,
                    format!("runtime.device_frames needs libtorch: {m}"),
                )
            })?,
            device_name,
        )),
        false => None,
    };
    let model_gpu = device_name.cuda_index();
    let decode_stage = decode::DecodeStage::open(
        input,
        info,
        cfg,
        decode::Gpu {
            // NVDEC decodes on the model's GPU (the first one when the models run on the CPU).
            index: model_gpu.unwrap_or(0),
            // NVDEC's pictures stay in GPU memory only for canvases made on that GPU.
            keep_frames: on_device && model_gpu.is_some(),
        },
        cancel.clone(),
        progress.clone(),
    )?;
    let audio_source = decode_stage.audio_source();
    let audio_offset = decode_stage.audio_offset();
    let video_settings = decode_stage.video_settings(cfg);
    let scene_stage = match &cfg.scenes {
        Some(scenes_cfg) => Some(scenes::SceneStage::new(scenes_cfg, info, cancel.clone())?),
        None => None,
    };

    std::thread::scope(|scope| {
        let decode = spawn(scope, "decode", &cancel, move || {
            decode_stage.run(scene_tx, norm_in_tx, audio_tx)
        });
        let scenes = scene_rx.zip(scene_stage).map(|(rx, stage)| {
            let cuts_tx = cuts_tx.clone();
            let live = live_cuts_tx.clone();
            spawn(scope, "scenes", &cancel, move || {
                stage.run(rx, cuts_tx, live)
            })
        });
        drop(cuts_tx);
        drop(live_cuts_tx);
        let normalize = norm_in_rx.map(|rx| {
            let stage =
                normalize::NormalizeStage::new(&cfg.normalize, info, canvas_maker, cancel.clone());
            let tx: Vec<_> = norm_out_tx
                .into_iter()
                .chain(clip_tx)
                .chain(vae_tx)
                .collect();
            spawn(scope, "normalize", &cancel, move || stage.run(rx, tx))
        });
        let encode = norm_out_rx.map(|rx| {
            let stage = encode::EncodeStage {
                path: video_out
                    .expect("encode runs only with an output path")
                    .to_path_buf(),
                config: encode_cfg.expect("encode config").clone(),
                video: video_settings,
                audio: audio_source.filter(|_| wants_audio),
                audio_offset,
                fps: cfg.normalize.fps,
                cancel: cancel.clone(),
            };
            spawn(scope, "encode", &cancel, move || {
                stage.run(rx, audio_rx, cuts_rx)
            })
        });

        let color_on_device = color_on_device(cfg, device_name);
        let clip = clip_rx.map(|rx| {
            let stage = clip::ClipStage {
                color_on_device,
                config: cfg.clip.clone().expect("clip config"),
                device: device_name,
                source_path: info.path.clone(),
                cancel: cancel.clone(),
            };
            spawn(scope, "clip", &cancel, move || stage.run(rx, live_cuts_rx))
        });

        let vae = vae_rx.map(|rx| {
            let target = latents.clone().expect("latents output with the vae stage");
            let stage = vae::VaeStage {
                color_on_device,
                config: cfg.vae.clone().expect("vae config"),
                device: device_name,
                dir: target.dir,
                metadata: target.metadata,
                model: target.model,
                source_path: info.path.clone(),
                cancel: cancel.clone(),
            };
            spawn(scope, "vae", &cancel, move || stage.run(rx))
        });

        let decode = join("decode", decode);
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
        if let Some(root) = first_root_cause(errors) {
            tracing::debug!(error = %root, "pipeline failed");
            return Err(root);
        }
        Ok(PipelineOutput {
            decode: decode.expect("no error means decode succeeded"),
            normalize,
            scenes,
            encode,
            clip,
            latents: vae,
            wall_seconds: started.elapsed().as_secs_f64(),
        })
    })
}

/// Whether the model stages send YUV planes for the device to convert (`auto`: on CUDA).
pub fn color_on_device(cfg: &PipelineConfig, device_name: crate::device::Device) -> bool {
    match cfg.runtime.color_conversion {
        crate::config::ColorConversion::Auto => device_name.is_cuda(),
        crate::config::ColorConversion::Device => true,
        crate::config::ColorConversion::Cpu => false,
    }
}

/// Whether canvases are made and kept on the model device (`runtime.device_frames`): only when
/// the model stages are the frames' only consumers (no scenes, no video output) and they take
/// YUV planes; `auto` also needs NVDEC decoding for a CUDA device (then decoded frames never
/// leave GPU memory), `on` takes any decoder and device.
pub fn device_frames(
    cfg: &PipelineConfig,
    device_name: crate::device::Device,
    encodes: bool,
    writes_latents: bool,
) -> bool {
    use crate::config::{DeviceFrames, HwAccelConfig};
    let only_models = cfg.frames_host_consumer(encodes, writes_latents).is_none();
    match cfg.runtime.device_frames {
        DeviceFrames::Off => false,
        DeviceFrames::On => only_models,
        DeviceFrames::Auto => {
            only_models && device_name.is_cuda() && cfg.decode.hwaccel == HwAccelConfig::Cuda
        }
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
