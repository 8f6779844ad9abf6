//! One input's plan, settled from the session's config and device and the probed source before
//! any thread starts: which stages run (each `Option` is a stage, with everything it needs),
//! where the frames live (host memory, or canvases on the model device), and how the model
//! stages receive colour. [`super::run`] wires exactly the stages a plan has; the bench builds
//! its model stages from the same plan types.
use std::path::{Path, PathBuf};

use crate::config::{
    AudioMode, ColorConversion, DeviceFrames, EncodeConfig, HwAccelConfig, PipelineConfig,
    Sampling, ScenesConfig, TaggingConfig, VaeConfig,
};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::media::probe::SourceInfo;
use crate::torch::Torch;

use super::decode::DecodePlan;
use super::stage::Cancel;
use super::{tagging, vae, LatentsTarget};

/// Where the normalized canvases are made and kept.
#[derive(Clone, Copy)]
pub enum Frames {
    /// Made by swscale in host memory.
    Host,
    /// Made and kept on the model device (`runtime.device_frames`): the model stages are the
    /// only consumers and take them by handle.
    Device(&'static Torch),
}

/// The video output.
#[derive(Debug, Clone)]
pub struct EncodePlan {
    pub path: PathBuf,
    /// The encode section, with the input's thread count applied.
    pub config: EncodeConfig,
    /// Whether the source's audio goes into the output.
    pub audio: bool,
}

/// Clips (`clips`): cut by the encoder as it goes when the pipeline encodes, else only listed.
#[derive(Debug, Clone)]
pub struct ClipsPlan {
    pub rules: crate::clips::plan::ClipRules,
    /// `OUT/<stem>.partial/clips`, when the pipeline encodes.
    pub dir: Option<PathBuf>,
    /// Captions asked for as the clip files are cut (`caption`, with `dir`).
    pub captions: Option<super::clip_caption::CaptionTarget>,
}

/// The CLIP stage.
#[derive(Debug, Clone)]
pub struct TaggingPlan {
    pub config: TaggingConfig,
    /// Send YUV planes for the device to convert instead of RGB made by swscale.
    pub color_on_device: bool,
    /// `per_scene` sampling: the stage needs the scene cuts as they are found.
    pub live_cuts: bool,
}

/// The VAE stage.
#[derive(Debug, Clone)]
pub struct VaePlan {
    pub config: VaeConfig,
    pub color_on_device: bool,
    pub target: LatentsTarget,
}

/// Everything one input's pipeline run needs to know before it starts.
pub struct Plan<'a> {
    pub input: &'a Path,
    pub info: &'a SourceInfo,
    pub config: &'a PipelineConfig,
    pub device: Device,
    pub frames: Frames,
    pub decode: DecodePlan,
    pub scenes: Option<&'a ScenesConfig>,
    pub encode: Option<EncodePlan>,
    pub tagging: Option<TaggingPlan>,
    pub vae: Option<VaePlan>,
    pub clips: Option<ClipsPlan>,
    /// Scene thumbnails: `OUT/<stem>.partial`, where their folder goes.
    pub thumbs: Option<PathBuf>,
}

/// What a job asks of one input beyond the session's config.
pub struct Outputs {
    /// The video output, when the pipeline encodes.
    pub video: Option<PathBuf>,
    /// Where the vae stage writes, when the pipeline has one.
    pub latents: Option<LatentsTarget>,
    /// Where clip files go, when the pipeline has clips and encodes.
    pub clips_dir: Option<PathBuf>,
    /// The output folder, when scene thumbnails are written into it.
    pub thumbs_dir: Option<PathBuf>,
    /// The run's captioner and the output's caption cache (`caption`).
    pub captions: Option<super::clip_caption::CaptionTarget>,
    /// Threads for the decoder and the encoder when several inputs run at once (0: as the
    /// config says).
    pub threads_per_input: u32,
}

impl Frames {
    /// Device canvases when the plan keeps frames on the model device. The normalize stage
    /// then makes canvases through libtorch: loaded now, so a missing library is one clear
    /// error before any thread starts.
    fn choose(on_device: bool, info: &SourceInfo) -> Result<Frames> {
        if !on_device {
            return Ok(Frames::Host);
        }
        let torch = Torch::get().map_err(|m| {
            Error::input(
                &info.path,
                format!("runtime.device_frames needs libtorch: {m}"),
            )
        })?;
        Ok(Frames::Device(torch))
    }
}

impl<'a> Plan<'a> {
    pub fn new(
        input: &'a Path,
        info: &'a SourceInfo,
        config: &'a PipelineConfig,
        device: Device,
        outputs: Outputs,
    ) -> Result<Plan<'a>> {
        let threads = |configured: u32| match configured {
            0 => outputs.threads_per_input,
            n => n,
        };
        let encode = match (&config.encode, outputs.video) {
            (Some(cfg), Some(path)) => Some(EncodePlan {
                path,
                config: EncodeConfig {
                    threads: threads(cfg.threads),
                    ..cfg.clone()
                },
                audio: cfg.audio != AudioMode::None && info.has_audio,
            }),
            _ => None,
        };
        let color_on_device = color_on_device(config, device);
        let tagging = config.clip.as_ref().map(|cfg| TaggingPlan {
            config: cfg.clone(),
            color_on_device,
            live_cuts: matches!(cfg.sample.sampling(), Some(Sampling::PerScene(_))),
        });
        let vae = match (&config.vae, outputs.latents) {
            (Some(cfg), Some(target)) => Some(VaePlan {
                config: cfg.clone(),
                color_on_device,
                target,
            }),
            _ => None,
        };
        let clips = config.clips.as_ref().map(|cfg| ClipsPlan {
            rules: crate::clips::plan::ClipRules::new(cfg, output_fps(config, info)),
            dir: outputs.clips_dir.clone().filter(|_| encode.is_some()),
            captions: outputs
                .captions
                .clone()
                .filter(|_| encode.is_some() && outputs.clips_dir.is_some()),
        });
        let on_device = device_frames(config, device, encode.is_some(), vae.is_some());
        let frames = Frames::choose(on_device, info)?;
        let model_gpu = device.cuda_index();
        let canvases_anyway = encode.is_some() || tagging.is_some() || vae.is_some();
        Ok(Plan {
            input,
            info,
            config,
            device,
            frames,
            decode: DecodePlan {
                // NVDEC decodes on the model's GPU (the first one when the models run on the
                // CPU), and its pictures stay in GPU memory only for canvases made on that GPU.
                gpu: model_gpu.unwrap_or(0),
                keep_frames_on_gpu: on_device && model_gpu.is_some(),
                threads: threads(config.runtime.decode_threads),
            },
            scenes: config.scenes.as_ref(),
            encode,
            tagging,
            vae,
            clips,
            // From host canvases, and only when another stage has them made anyway: a
            // scenes-only run would pay the whole normalize stage for three frames a scene.
            // (Canvases on the device mean no scene detector runs.)
            thumbs: outputs
                .thumbs_dir
                .filter(|_| matches!(frames, Frames::Host))
                .filter(|_| canvases_anyway)
                .filter(|_| config.scenes.as_ref().is_some_and(|s| s.thumbnails)),
        })
    }

    /// Whether any stage takes normalized canvases.
    pub fn wants_canvas(&self) -> bool {
        self.encode.is_some()
            || self.tagging.is_some()
            || self.vae.is_some()
            || self.thumbs.is_some()
    }
}

impl TaggingPlan {
    pub fn stage(
        &self,
        device: Device,
        source_path: &str,
        cancel: Cancel,
    ) -> tagging::TaggingStage {
        tagging::TaggingStage {
            config: self.config.clone(),
            device,
            color_on_device: self.color_on_device,
            source_path: source_path.into(),
            cancel,
        }
    }
}

impl VaePlan {
    pub fn stage(&self, device: Device, source_path: &str, cancel: Cancel) -> vae::VaeStage {
        vae::VaeStage {
            config: self.config.clone(),
            device,
            color_on_device: self.color_on_device,
            dir: self.target.dir.clone(),
            metadata: self.target.metadata.clone(),
            model: self.target.model,
            source_path: source_path.into(),
            cancel,
        }
    }
}

/// The output's nominal frame rate: `normalize.fps`, else the source's.
pub fn output_fps(cfg: &PipelineConfig, info: &SourceInfo) -> f64 {
    cfg.normalize.fps.unwrap_or(info.fps)
}

/// Whether the model stages send YUV planes for the device to convert (`auto`: on CUDA).
pub fn color_on_device(cfg: &PipelineConfig, device: Device) -> bool {
    match cfg.runtime.color_conversion {
        ColorConversion::Auto => device.is_cuda(),
        ColorConversion::Device => true,
        ColorConversion::Cpu => false,
    }
}

/// Whether canvases are made and kept on the model device (`runtime.device_frames`): only when
/// the model stages are the frames' only consumers (no scenes, no video output) and they take
/// YUV planes; `auto` also needs NVDEC decoding for a CUDA device (then decoded frames never
/// leave GPU memory), `on` takes any decoder and device.
pub fn device_frames(
    cfg: &PipelineConfig,
    device: Device,
    encodes: bool,
    writes_latents: bool,
) -> bool {
    let only_models = cfg.frames_host_consumer(encodes, writes_latents).is_none();
    match cfg.runtime.device_frames {
        DeviceFrames::Off => false,
        DeviceFrames::On => only_models,
        DeviceFrames::Auto => {
            only_models && device.is_cuda() && cfg.decode.hwaccel == HwAccelConfig::Cuda
        }
    }
}
