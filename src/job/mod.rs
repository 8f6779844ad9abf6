//! One input, start to finish: probe and check it, run its pipeline into `OUT/<stem>.partial/`,
//! write the report, and only then rename the folder to `OUT/<stem>/`. Any failure removes the
//! partial folder, so nothing that looks finished is ever left behind by a failed input.
//! [`Job::process_into`] reads as those steps; [`partial`] holds the folder, [`clips`] the
//! clip list, [`tensor_files`] the embeddings and transitions files.
pub mod clips;
mod partial;
mod tensor_files;

use std::path::{Path, PathBuf};

use crate::config::PipelineConfig;
use crate::device::DeviceInfo;
use crate::error::{Error, Result};
use crate::media::probe::{self, SourceInfo};
use crate::output::files::{
    partial_path, Marker, CLIPS_DIR, DONE_MARKER, EMBEDDINGS_FILE, RECONSTRUCTION_FILE, THUMBS_DIR,
    TRANSITIONS_FILE,
};
use crate::output::report::Report;
use crate::output::tensors;
use crate::pipeline::thumbs::ThumbsOutput;
use crate::pipeline::{self, LatentsTarget, PipelineOutput};
use partial::PartialDir;

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
    pub labels: Option<&'a crate::tagging::LabelSet>,
    /// How the run's VAE scales its latents, when the pipeline makes them.
    pub vae: Option<&'a VaeInfo>,
    /// The run's VAE folder fingerprint, recorded in the shards' metadata.
    pub vae_fingerprint: Option<&'a str>,
    /// `clips.heads`, loaded: they score each clip's embedding.
    pub heads: &'a [crate::heads::Head],
    /// The checked caption endpoint (`caption`).
    pub captioner: Option<&'a std::sync::Arc<crate::caption::Captioner>>,
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
        let info = self.probe(input)?;
        let stem = relative
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| output_stem(input));
        let final_dir = self.out_dir.join(relative);
        let partial = PartialDir::create(partial_path(&final_dir))?;
        let output = self.run_stages(input, &info, (&stem, &final_dir), &partial)?;
        let report = self.write_outputs(input, &info, &stem, &partial, &output)?;
        partial.commit(&final_dir)?;
        log_done(input, &final_dir, &report);
        Ok(JobResult {
            input: input.to_path_buf(),
            output_dir: final_dir,
            report,
        })
    }

    /// The input's facts, refused when they break the config's limits.
    fn probe(&self, input: &Path) -> Result<SourceInfo> {
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
        Ok(info)
    }

    /// The captioner with this output's cache (`caption`): the partial folder's
    /// `captions.jsonl`, holding what the previous finished output and any failed job of it
    /// were answered.
    fn caption_target(
        &self,
        partial: &PartialDir,
        final_dir: &Path,
    ) -> Result<Option<pipeline::clip_caption::CaptionTarget>> {
        let Some(captioner) = self.captioner else {
            return Ok(None);
        };
        let earlier = final_dir.join(crate::caption::cache::CAPTIONS_FILE);
        let cache =
            crate::caption::cache::CaptionCache::open(&partial.captions_file(), &[earlier])?;
        Ok(Some(pipeline::clip_caption::CaptionTarget {
            captioner: std::sync::Arc::clone(captioner),
            cache: std::sync::Arc::new(cache),
        }))
    }

    /// Plans the input's stages into `partial` and runs them; an input of which no frame
    /// decodes is an error.
    fn run_stages(
        &self,
        input: &Path,
        info: &SourceInfo,
        (stem, final_dir): (&str, &Path),
        partial: &PartialDir,
    ) -> Result<PipelineOutput> {
        let outputs = pipeline::plan::Outputs {
            video: self.video_path(partial, stem),
            latents: self.latents_target(input, info, partial),
            clips_dir: Some(partial.path.join(CLIPS_DIR)),
            thumbs_dir: Some(partial.path.clone()),
            captions: self.caption_target(partial, final_dir)?,
            threads_per_input: self.threads_per_input,
        };
        let progress = self.progress_bar(info, stem);
        let result = pipeline::Plan::new(input, info, self.config, self.device.name, outputs)
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
        Ok(output)
    }

    /// `<stem>.mp4` in the partial folder, when the pipeline encodes.
    fn video_path(&self, partial: &PartialDir, stem: &str) -> Option<PathBuf> {
        self.config
            .encode
            .as_ref()
            .map(|_| partial.path.join(format!("{stem}.mp4")))
    }

    /// Where the vae stage writes its shards and what their metadata says, when it runs.
    fn latents_target(
        &self,
        input: &Path,
        info: &SourceInfo,
        partial: &PartialDir,
    ) -> Option<LatentsTarget> {
        let (Some(cfg), Some(vae)) = (&self.config.vae, self.vae) else {
            return None;
        };
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
            (tensors::META_POSTERIOR, tensors::posterior(cfg)),
            (tensors::META_TILING, cfg.tiling.to_string()),
            (tensors::META_RESOLUTION, format!("{w}x{h}")),
            (tensors::META_SOURCE, input.display().to_string()),
            (
                tensors::META_FPS,
                pipeline::plan::output_fps(self.config, info).to_string(),
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
        Some(LatentsTarget {
            dir: partial.path.join(tensors::LATENTS_DIR),
            metadata,
            model: *vae,
        })
    }

    /// Everything beside the stages' own files, in this order: the report's content, the
    /// clip list, the tensor files, the thumbnails' place in the report, then the report and
    /// last the done marker.
    fn write_outputs(
        &self,
        input: &Path,
        info: &SourceInfo,
        stem: &str,
        partial: &PartialDir,
        output: &PipelineOutput,
    ) -> Result<Report> {
        let video = self.keep_or_remove_video(partial, stem)?;
        let facts = pipeline::annotate::RunFacts {
            config: self.config,
            device: self.device,
            labels: self.labels,
            vae: self.vae,
        };
        let mut report = pipeline::annotate::annotate(&facts, info, output, video);
        if let Some(cfg) = &self.config.clips {
            report.clips = Some(self.write_clips(cfg, info, stem, partial, output, &report)?);
        }
        self.write_tensor_files(partial, output, &report)?;
        measure_latents(&mut report, &partial.path);
        if let Some(thumbs) = &output.thumbs {
            attach_thumbs(thumbs, &mut report, partial)?;
        }
        write_report(&partial.path, stem, &report)?;
        write_marker(&partial.path, input, &report)?;
        Ok(report)
    }

    /// The whole video's name in the output, or `None` after removing it: with
    /// `clips.whole_video: false` the one encode made the clips and the whole video goes.
    fn keep_or_remove_video(&self, partial: &PartialDir, stem: &str) -> Result<Option<String>> {
        let Some(path) = self.video_path(partial, stem) else {
            return Ok(None);
        };
        if self.config.clips.as_ref().is_none_or(|c| c.whole_video) {
            return Ok(Some(format!("{stem}.mp4")));
        }
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, "removing the whole video", e))?;
        Ok(None)
    }

    /// CLIP embeddings, TransNetV2 probabilities and reconstruction PSNRs, where the run made
    /// them.
    fn write_tensor_files(
        &self,
        partial: &PartialDir,
        output: &PipelineOutput,
        report: &Report,
    ) -> Result<()> {
        if let Some(clip) = &output.tagging {
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
            tensor_files::write_embeddings(&path, clip, metadata)
                .map_err(|e| Error::io(&path, "writing CLIP embeddings", e))?;
        }
        let probabilities = output
            .scenes
            .as_ref()
            .and_then(|s| s.probabilities.as_ref());
        if let Some(p) = probabilities {
            let path = partial.path.join(TRANSITIONS_FILE);
            let model = report
                .transitions
                .as_ref()
                .map(|t| t.model.clone())
                .unwrap_or_default();
            tensor_files::write_transitions(&path, p, model)
                .map_err(|e| Error::io(&path, "writing the transition probabilities", e))?;
        }
        let reconstruction = self
            .config
            .vae
            .as_ref()
            .is_some_and(|v| v.reconstruction.is_some());
        if let (Some(latents), true) = (&output.latents, reconstruction) {
            let path = partial.path.join(RECONSTRUCTION_FILE);
            crate::reconstruction::write(&path, &latents.reconstruction)
                .map_err(|e| Error::io(&path, "writing the reconstruction PSNRs", e))?;
        }
        Ok(())
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

/// The latents' size on disk, and against raw RGB and the encoded video.
fn measure_latents(report: &mut Report, dir: &Path) {
    let Some(l) = report.latents.as_mut() else {
        return;
    };
    let size = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
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

/// Gives each scene its thumbnails; when they do not match the scene list the folder goes and
/// the report says why.
fn attach_thumbs(thumbs: &ThumbsOutput, report: &mut Report, partial: &PartialDir) -> Result<()> {
    if let Err(why) = pipeline::thumbs::attach(thumbs, &mut report.scenes) {
        let dir = partial.path.join(THUMBS_DIR);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::io(&dir, "removing thumbnails that do not fit", e))?;
        report.warnings.push(why);
    }
    Ok(())
}

/// `<stem>.json`, pretty-printed.
fn write_report(dir: &Path, stem: &str, report: &Report) -> Result<()> {
    let json = serde_json::to_string_pretty(report).expect("report serializes");
    let json_path = dir.join(format!("{stem}.json"));
    std::fs::write(&json_path, json + "\n")
        .map_err(|e| Error::io(&json_path, "writing the report", e))
}

/// The done marker, written last: a folder holding it is a finished output.
fn write_marker(dir: &Path, input: &Path, report: &Report) -> Result<()> {
    let marker = dir.join(DONE_MARKER);
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
    .map_err(|e| Error::io(&marker, "writing the completion marker", e))
}

fn log_done(input: &Path, final_dir: &Path, report: &Report) {
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
}
