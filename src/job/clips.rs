//! A job's clip list: the clips of the final scene list (`crate::clips::assemble`), tagged from
//! the run's image embeddings, written to `clips.jsonl`.
use std::collections::BTreeMap;
use std::path::Path;

use crate::clips::assemble::{self, ClipSources, LatentShards, Tagger};
use crate::clips::plan::ClipRules;
use crate::config::{ClipsConfig, TaggingConfig};
use crate::error::{Error, Result};
use crate::heads::Head;
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
        // Read by the encode stage from each clip's frames as it cut the files.
        let texts = match (cfg.text_scoring(), &output.encode) {
            (Some(_), Some(encode)) => {
                Some(by_file(encode, &encode.clip_texts, "text", &partial.path)?)
            }
            _ => None,
        };
        // Asked for by the encode stage as it cut the files.
        let captions = match (&self.config.caption, &output.encode) {
            (Some(_), Some(encode)) => Some(by_file(
                encode,
                &encode.clip_captions,
                "caption",
                &partial.path,
            )?),
            _ => None,
        };
        let heads = |embedding: &[f32]| score_heads(self.heads, embedding, &partial.path);
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
            texts: texts.as_deref(),
            captions: captions.as_deref(),
            heads: (!self.heads.is_empty()).then_some(&heads as &dyn Fn(&[f32]) -> _),
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

/// Every head's score of a clip's embedding, by head name.
fn score_heads(heads: &[Head], embedding: &[f32], dir: &Path) -> Result<BTreeMap<String, f64>> {
    heads
        .iter()
        .map(|h| {
            h.score(embedding)
                .map(|s| (h.name().to_string(), s))
                .map_err(|e| Error::input(dir, format!("scoring a clip: {e}")))
        })
        .collect()
}

/// What the encode stage found for each cut file (`findings`: by first frame, ascending), in
/// the files' order; `what` names it in the error when a file has none.
fn by_file<T: Clone>(
    encode: &pipeline::encode::EncodeStats,
    findings: &[(u64, T)],
    what: &str,
    dir: &Path,
) -> Result<Vec<T>> {
    encode
        .clips
        .iter()
        .map(|file| {
            findings
                .binary_search_by_key(&file.start_frame, |(start, _)| *start)
                .map(|i| findings[i].1.clone())
                .map_err(|_| {
                    Error::input(
                        dir,
                        format!(
                            "no {what} was made for the clip file of output frames {}..{}",
                            file.start_frame, file.end_frame
                        ),
                    )
                })
        })
        .collect()
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
