//! `framepipe dedup`: near-duplicate clips across finished outputs, by their perceptual
//! signatures (`phash` in `clips.jsonl`, [`crate::clips::signature`]).
//!
//! ```text
//! finished outputs ──► kept clips' signatures ──► index (persisted, one part per batch)
//!                                                   │
//!        lsh: candidate pairs, new clips × all ◄────┘
//!          │ full signature similarity ≥ threshold
//!          ▼
//!        pairs (stored in the index) ──► groups: union of pairs, kept clip by rule
//!                                            ──► DIR/duplicates.jsonl
//! ```
//!
//! A batch is compared with everything indexed before it, and the groups are always those of
//! the whole index, so deduplicating A and then B writes what A and B at once write. Export
//! and dedup share [`ExportError`]: both read finished outputs, and their failures are the
//! same kinds (usage, an input, a write).
pub mod groups;
pub mod index;
pub mod lsh;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::clips::signature::{keys, similarity, PHash};
use crate::export::{ExportError, Skipped};
use groups::Group;
use index::{Entry, Index};

/// The file of groups a dedup writes.
pub const DUPLICATES_FILE: &str = "duplicates.jsonl";
/// The default `--threshold`: the least signature similarity of two clips that count as the
/// same footage. Re-encodes, rescales, letterboxing and brightness changes measure 0.90 and
/// up, 10% crops and speed changes 0.77 and up, a corner logo 0.73; distinct clips at most 0.61
/// (tests/dedup.rs's set).
pub const DEFAULT_THRESHOLD: f64 = 0.70;

pub struct DedupRequest<'a> {
    /// Output folders, or roots searched recursively for them.
    pub dirs: &'a [PathBuf],
    /// Where `duplicates.jsonl` goes.
    pub out: &'a Path,
    /// The index folder (default `out/index`).
    pub index: Option<&'a Path>,
    pub threshold: f64,
}

/// What a dedup did.
#[derive(Debug)]
pub struct Summary {
    pub outputs: usize,
    /// Clips of this batch newly indexed, and those the index already held.
    pub added: usize,
    pub already_indexed: usize,
    /// Clips in the index now.
    pub indexed: usize,
    pub groups: usize,
    /// Clips that are in a group and not kept.
    pub duplicates: usize,
    /// Candidate pairs compared in full, and those that matched (this batch).
    pub candidates: usize,
    pub matched: usize,
    pub skipped: Vec<Skipped>,
    pub index: PathBuf,
    pub seconds: f64,
}

pub fn dedup(request: &DedupRequest) -> Result<Summary, ExportError> {
    let start = Instant::now();
    if !(request.threshold > 0.0 && request.threshold <= 1.0) {
        return Err(ExportError::Usage(format!(
            "--threshold must be above 0 and at most 1, got {}",
            request.threshold
        )));
    }
    let (outputs, mut skipped) = crate::export::collect(request.dirs)?;
    let mut batch = Vec::new();
    let mut taken = 0;
    for output in &outputs {
        let kept: Vec<_> = output.clips.iter().filter(|c| c.record.kept()).collect();
        if kept.iter().any(|c| c.record.phash.is_empty()) {
            let reason = "its clips have no signature (made by a framepipe before clip signatures: run it again)".to_string();
            tracing::warn!(output = %output.dir.display(), "skipped {}: {reason}", output.dir.display());
            skipped.push(Skipped {
                path: output.dir.clone(),
                reason,
            });
            continue;
        }
        taken += 1;
        let dir = std::fs::canonicalize(&output.dir).unwrap_or_else(|_| output.dir.clone());
        batch.extend(kept.into_iter().map(|c| Entry {
            id: c.record.id.clone(),
            output: dir.to_string_lossy().into_owned(),
            start_time: c.record.start_time,
            end_time: c.record.end_time,
            motion: c.record.motion,
            phash: c.record.phash.clone(),
        }));
    }
    std::fs::create_dir_all(request.out).map_err(|e| {
        ExportError::Usage(format!(
            "{}: cannot create the folder: {e}",
            request.out.display()
        ))
    })?;
    let index_dir = request
        .index
        .map(Path::to_path_buf)
        .unwrap_or_else(|| request.out.join("index"));
    let mut index = Index::open(&index_dir, request.threshold)?;
    let (batch, already_indexed) = new_clips(&index, batch)?;
    let added = batch.len();

    let new_from = index.entries.len();
    let signatures: Vec<&[PHash]> = index
        .entries
        .iter()
        .chain(&batch)
        .map(|e| e.phash.as_slice())
        .collect();
    let keys: Vec<lsh::Keys> = signatures.iter().map(|s| keys(s)).collect();
    let candidates = lsh::candidate_pairs(&keys, new_from);
    let matched: Vec<(u32, u32, f64)> = candidates
        .iter()
        .filter_map(|&(a, b)| {
            let s = similarity(signatures[a as usize], signatures[b as usize]);
            (s >= request.threshold).then_some((a, b, (s * 1e4).round() / 1e4))
        })
        .collect();
    drop(signatures);
    index.append(batch, &matched)?;

    let groups = groups::groups(&index.entries, &index.pairs);
    write_groups(&request.out.join(DUPLICATES_FILE), &groups)?;
    Ok(Summary {
        outputs: taken,
        added,
        already_indexed,
        indexed: index.entries.len(),
        groups: groups.len(),
        duplicates: groups.iter().map(|g| g.members.len() - 1).sum(),
        candidates: candidates.len(),
        matched: matched.len(),
        skipped,
        index: index.dir().to_path_buf(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The batch's clips the index does not hold yet, and how many it does. A clip id indexed
/// from another output folder, or twice in the batch, is an error: ids name clips in
/// `duplicates.jsonl`, so they must be unique across everything deduplicated together.
fn new_clips(index: &Index, batch: Vec<Entry>) -> Result<(Vec<Entry>, usize), ExportError> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut fresh = Vec::new();
    let mut already = 0;
    for entry in batch {
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
        fresh.push(entry);
    }
    Ok((fresh, already))
}

fn write_groups(path: &Path, groups: &[Group]) -> Result<(), ExportError> {
    let lines: Vec<String> = groups
        .iter()
        .map(|g| serde_json::to_string(g).expect("a group serializes"))
        .collect();
    index::write_atomically(path, &lines)
}

/// The clip ids a `duplicates.jsonl` leaves out: every member of a group but the kept one.
pub fn left_out(path: &Path) -> Result<std::collections::HashSet<String>, ExportError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ExportError::input(path, e.to_string()))?;
    let mut out = std::collections::HashSet::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let group: Group = serde_json::from_str(line)
            .map_err(|e| ExportError::input(path, format!("line {}: {e}", i + 1)))?;
        if !group.members.iter().any(|m| m.id == group.kept) {
            return Err(ExportError::input(
                path,
                format!(
                    "line {}: the kept clip {} is not among the members",
                    i + 1,
                    group.kept
                ),
            ));
        }
        out.extend(
            group
                .members
                .into_iter()
                .map(|m| m.id)
                .filter(|id| *id != group.kept),
        );
    }
    Ok(out)
}
