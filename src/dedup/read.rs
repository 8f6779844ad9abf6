//! A batch's finished outputs read into index entries: each kept clip's signature (and, when
//! embeddings take part, its embedding and the CLIP model), outputs skipped with the reason
//! when their clips lack what is compared, and the clips the index already holds set apart.
use std::collections::HashMap;
use std::path::PathBuf;

use super::index::{By, Entry, Index, Model};
use crate::export::error::ExportError;
use crate::export::{Clip as ExportedClip, Output, Skipped};

/// The clips of a batch's outputs, read.
pub struct Batch {
    /// Each kept clip, with its embedding when embeddings take part.
    pub clips: Vec<(Entry, Option<Vec<f32>>)>,
    /// The CLIP model of the embeddings, and the first output that had it.
    pub model: Option<(Model, PathBuf)>,
    pub skipped: Vec<Skipped>,
    pub outputs: usize,
}

impl Batch {
    /// The kept clips of `outputs`, with the folders `collect` skipped.
    pub fn read(outputs: &[Output], skipped: Vec<Skipped>, by: By) -> Result<Batch, ExportError> {
        let mut batch = Batch {
            clips: Vec::new(),
            model: None,
            skipped,
            outputs: 0,
        };
        for output in outputs {
            batch.add(output, by)?;
        }
        Ok(batch)
    }

    /// Takes one finished output's kept clips, or skips the output (its clips lack what `by`
    /// compares), or refuses it (embeddings of another model than the batch's).
    fn add(&mut self, output: &Output, by: By) -> Result<(), ExportError> {
        let kept: Vec<&ExportedClip> = output.clips.iter().filter(|c| c.record.kept()).collect();
        if by.hash() && kept.iter().any(|c| c.record.phash.is_empty()) {
            self.skip(output, "its clips have no signature (made by a framepipe before clip signatures: run it again)");
            return Ok(());
        }
        if by.embedding() {
            match self.embedding_model(output, &kept)? {
                Ok(model) => {
                    if self.model.is_none() {
                        self.model = Some((model, output.dir.clone()));
                    }
                }
                Err(reason) => {
                    self.skip(output, reason);
                    return Ok(());
                }
            }
        }
        self.outputs += 1;
        let dir = std::fs::canonicalize(&output.dir).unwrap_or_else(|_| output.dir.clone());
        self.clips.extend(kept.into_iter().map(|c| {
            (
                Entry {
                    id: c.record.id.clone(),
                    output: dir.to_string_lossy().into_owned(),
                    start_time: c.record.start_time,
                    end_time: c.record.end_time,
                    motion: c.record.motion,
                    phash: c.record.phash.clone(),
                    probes: Vec::new(),
                },
                c.record.embedding.clone().filter(|_| by.embedding()),
            )
        }));
        Ok(())
    }

    fn skip(&mut self, output: &Output, reason: &str) {
        tracing::warn!(output = %output.dir.display(), "skipped {}: {reason}", output.dir.display());
        self.skipped.push(Skipped {
            path: output.dir.clone(),
            reason: reason.to_string(),
        });
    }

    /// The CLIP model of an output's embeddings (its report's); `Ok(Err(reason))` to skip an
    /// output without any; an error for another model than the batch's first or an embedding
    /// of another size than the report's.
    fn embedding_model(
        &self,
        output: &Output,
        kept: &[&ExportedClip],
    ) -> Result<Result<Model, &'static str>, ExportError> {
        let report_file = crate::search::corpus::report_path(&output.dir);
        let report = crate::output::report::Report::read(&report_file)
            .map_err(|e| ExportError::input(&report_file, e.to_string()))?;
        let Some(clip) = report.clip else {
            return Ok(Err(
                "no CLIP embeddings (the pipeline had no clip stage; --by hash needs none)",
            ));
        };
        let model = Model {
            model_hash: clip.model_hash,
            dim: clip.dim,
        };
        if let Some((first, from)) = &self.model {
            if *first != model {
                return Err(ExportError::input(
                    &output.dir,
                    format!(
                        "embeddings of model {} ({} values), {} has model {} ({} values): deduplicate each model's outputs apart",
                        model.model_hash,
                        model.dim,
                        from.display(),
                        first.model_hash,
                        first.dim
                    ),
                ));
            }
        }
        for c in kept {
            if let Some(e) = c.record.embedding.as_ref().filter(|e| e.len() != model.dim) {
                return Err(ExportError::input(
                    output.dir.join(crate::output::files::CLIPS_FILE),
                    format!(
                        "line {}: an embedding of {} values, the report says {}",
                        c.line,
                        e.len(),
                        model.dim
                    ),
                ));
            }
        }
        Ok(Ok(model))
    }
}

/// The batch's clips the index does not hold yet, and how many it does. A clip id indexed
/// from another output folder, or twice in the batch, is an error: ids name clips in
/// `duplicates.jsonl`, so they must be unique across everything deduplicated together.
pub type Clip = (Entry, Option<Vec<f32>>);

pub fn new_clips(index: &Index, batch: Vec<Clip>) -> Result<(Vec<Clip>, usize), ExportError> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut fresh = Vec::new();
    let mut already = 0;
    for clip in batch {
        let entry = &clip.0;
        if let Some(at) = index.position(&entry.id) {
            let indexed = &index.entries[at as usize];
            if indexed.output != entry.output {
                return Err(ExportError::input(
                    &entry.output,
                    format!(
                        "clip id {} is already indexed from {} (clip ids must be unique across everything deduplicated together: give the outputs distinct names)",
                        entry.id, indexed.output
                    ),
                ));
            }
            already += 1;
            continue;
        }
        if let Some(other) = seen.insert(entry.id.clone(), entry.output.clone()) {
            return Err(ExportError::input(
                &entry.output,
                format!(
                    "clip id {} is also in {other} (clip ids must be unique across everything deduplicated together: give the outputs distinct names)",
                    entry.id
                ),
            ));
        }
        fresh.push(clip);
    }
    Ok((fresh, already))
}
