//! A job's clip list: the clips of the final scene list (`crate::clips::assemble`), tagged from
//! the run's image embeddings, written to `clips.jsonl`.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::clips::assemble::{self, ClipSources, LatentShards, Tagger};
use crate::clips::plan::ClipRules;
use crate::config::{ClipsConfig, TaggingConfig, TextScoring};
use crate::error::{Error, Result};
use crate::heads::Head;
use crate::media::clip_mux::WrittenClip;
use crate::media::frames_at;
use crate::media::probe::SourceInfo;
use crate::ocr;
use crate::output::clip_record::{ClipsReport, TextScore};
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
        // Every cut file is read before the list is assembled, on all cores (the pipeline's
        // threads are done by now).
        let texts = match (cfg.text_scoring(), &output.encode) {
            (Some(settings), Some(encode)) => Some(read_texts(&settings, &encode.clips)?),
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

/// Tesseract's settings for `clips.text`.
pub fn ocr_settings(text: &TextScoring) -> ocr::TextSettings {
    ocr::TextSettings {
        language: text.language.clone(),
        min_confidence: text.min_confidence,
        ..ocr::TextSettings::default()
    }
}

/// The text of every cut clip file, in `written`'s order, read by one Tesseract engine per
/// core.
fn read_texts(settings: &TextScoring, written: &[WrittenClip]) -> Result<Vec<TextScore>> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(written.len())
        .max(1);
    let read = || -> Result<Vec<(usize, TextScore)>> {
        let mut reader = ClipText::new(settings.clone());
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(w) = written.get(i) else {
                return Ok(out);
            };
            out.push((i, reader.read(&w.path, w.end_frame - w.start_frame)?));
        }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(read)).collect();
        let mut all = Vec::with_capacity(written.len());
        for h in handles {
            let done = h.join().map_err(|_| Error::StagePanicked {
                stage: "clip text",
                message: "a text reader panicked".into(),
            })??;
            all.extend(done);
        }
        all.sort_by_key(|&(i, _)| i);
        Ok(all.into_iter().map(|(_, text)| text).collect())
    })
}

/// Reads clips' burned-in text with one Tesseract engine, made for the first clip read.
struct ClipText {
    settings: TextScoring,
    reader: Option<ocr::TextReader>,
}

impl ClipText {
    fn new(settings: TextScoring) -> Self {
        ClipText {
            settings,
            reader: None,
        }
    }

    /// The text of clip file `path` (of `frames` frames) on its `clips.text.frames` frames: the
    /// largest area and word count of one frame, and each frame's distinct text in order.
    fn read(&mut self, path: &Path, frames: u64) -> Result<TextScore> {
        let fail = |e: ocr::OcrError| Error::input(path, format!("reading burned-in text: {e}"));
        let wanted = frames_at::spread(frames, self.settings.frames);
        let pictures = frames_at::rgb_frames_at(path, &wanted)?;
        let reader = match &mut self.reader {
            Some(r) => r,
            None => self
                .reader
                .insert(ocr::TextReader::new(&ocr_settings(&self.settings)).map_err(fail)?),
        };
        let mut score = TextScore {
            area: 0.0,
            words: 0,
            text: String::new(),
            unread: 0,
        };
        let mut texts: Vec<String> = Vec::new();
        for p in &pictures {
            let read = reader
                .read(&p.rgb, p.width, p.height, p.width as usize * 3)
                .map_err(fail)?;
            score.unread += u32::from(read.gave_up);
            score.area = score.area.max(read.area);
            score.words = score.words.max(read.words);
            if !read.text.is_empty() && !texts.contains(&read.text) {
                texts.push(read.text);
            }
        }
        score.text = texts
            .join(" / ")
            .chars()
            .take(ocr::MAX_TEXT_CHARS)
            .collect();
        Ok(score)
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
