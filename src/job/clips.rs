//! A job's clip list: the clips of the final scene list (`crate::clips::assemble`), tagged from
//! the run's image embeddings, written to `clips.jsonl`.
use crate::clips::assemble::{self, ClipSources, LatentShards, Tagger};
use crate::clips::plan::ClipRules;
use crate::config::{ClipsConfig, TaggingConfig};
use crate::error::Result;
use crate::media::probe::SourceInfo;
use crate::output::clip_record::ClipsReport;
use crate::output::report::Report;
use crate::output::scene::Tag;
use crate::pipeline::tagging::TaggingOutput;
use crate::pipeline::{self, PipelineOutput};
use crate::tagging::LabelSet;

use super::partial::PartialDir;
use super::Job;

impl Job<'_> {
    /// Assembles the clips (renaming or removing the files the encoder cut) and writes
    /// `clips.jsonl`; returns the report's summary.
    pub(super) fn write_clips(
        &self,
        cfg: &ClipsConfig,
        info: &SourceInfo,
        stem: &str,
        partial: &PartialDir,
        output: &PipelineOutput,
        report: &Report,
    ) -> Result<ClipsReport> {
        let fps = pipeline::plan::output_fps(self.config, info);
        let motion = output
            .scenes
            .as_ref()
            .and_then(|s| s.motion.clone())
            .unwrap_or_default();
        let tagger = match (&output.tagging, self.labels, &self.config.clip) {
            (Some(o), Some(l), Some(c)) => Some(clip_tagger(o, l, c)),
            _ => None,
        };
        let sources = ClipSources {
            output_id: stem,
            scenes: &report.scenes,
            rules: ClipRules::new(cfg, fps),
            config: cfg,
            fps,
            motion: &motion,
            written: output.encode.as_ref().map(|e| e.clips.as_slice()),
            tagger: tagger.as_ref().map(|t| t as Tagger),
            heads: None,
            latents: match (&output.latents, &self.config.vae) {
                (Some(l), Some(v)) => Some(LatentShards {
                    files: &l.files,
                    shard_frames: &l.shard_frames,
                    every_n_frames: v.every_n_frames,
                }),
                _ => None,
            },
        };
        let (records, summary) = assemble::assemble(&sources, &partial.path)?;
        assemble::write_jsonl(&partial.path, &records)?;
        Ok(summary)
    }
}

/// Tags a clip from the image embeddings sampled inside its frames: their normalized mean,
/// scored against the run's labels.
fn clip_tagger<'a>(
    output: &'a TaggingOutput,
    labels: &'a LabelSet,
    config: &'a TaggingConfig,
) -> impl Fn(std::ops::Range<u64>) -> (Option<Vec<Tag>>, Option<Vec<f32>>) + 'a {
    move |frames| {
        let rows = output
            .samples
            .iter()
            .filter(|s| frames.contains(&s.frame))
            .map(|s| s.embedding.as_slice());
        match crate::tagging::mean_embedding(rows) {
            Some(e) => (
                Some(labels.tags(&e, config.top_k, config.min_score)),
                Some(e),
            ),
            None => (None, None),
        }
    }
}
