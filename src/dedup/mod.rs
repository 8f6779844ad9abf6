//! `framepipe dedup`: near-duplicate clips across finished outputs, by their perceptual
//! signatures (`phash` in `clips.jsonl`, [`crate::clips::signature`]), their CLIP embeddings
//! (`embedding`), or either.
//!
//! ```text
//! finished outputs ──► kept clips' signatures, embeddings ──► index (persisted, a part a batch)
//!                                                               │
//!   hash:      lsh: candidate pairs, new clips × all ◄──────────┤
//!                │ full signature similarity ≥ --threshold      │
//!   embedding: clusters: compared inside probed clusters ◄──────┘
//!                │ cosine ≥ --embedding-threshold
//!                ▼
//!              pairs (stored in the index) ──► groups: union of pairs, kept clip by rule
//!                                                  ──► DIR/duplicates.jsonl
//! ```
//!
//! A batch is compared with everything indexed before it, and the groups are always those of
//! the whole index, so deduplicating A and then B writes what A and B at once write. Export
//! and dedup share [`ExportError`]: both read finished outputs, and their failures are the
//! same kinds (usage, an input, a write).
pub mod clusters;
pub mod groups;
pub mod index;
pub mod lookup;
pub mod lsh;
pub mod parallel;
pub mod read;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::clips::signature::{keys, similarity, PHash};
use crate::export::error::ExportError;
use crate::export::Skipped;
use clusters::Centroids;
use groups::{Group, Measures};
use index::{By, Index, Model, Pair, Settings};
pub use lookup::{Lookup, Match};
use read::{new_clips, Batch, Clip};

/// The file of groups a dedup writes.
pub const DUPLICATES_FILE: &str = "duplicates.jsonl";
/// The default `--threshold`: the least signature similarity of two clips that count as the
/// same footage. Re-encodes, rescales, letterboxing and brightness changes measure 0.90 and
/// up, 10% crops and speed changes 0.77 and up, a corner logo 0.73; distinct clips at most 0.61
/// (tests/dedup.rs's set).
pub const DEFAULT_THRESHOLD: f64 = 0.70;
/// The default `--embedding-threshold`: the least cosine of two clips' mean CLIP embeddings
/// that count as the same scene (Cosmos-Curate's default epsilon of 0.01 in cosine distance is
/// stricter; this also joins other takes of one scene).
pub const DEFAULT_EMBEDDING_THRESHOLD: f64 = 0.95;

pub struct DedupRequest<'a> {
    /// Output folders, or roots searched recursively for them.
    pub dirs: &'a [PathBuf],
    /// Where `duplicates.jsonl` goes.
    pub out: &'a Path,
    /// The index folder (default `out/index`).
    pub index: Option<&'a Path>,
    pub by: By,
    pub threshold: f64,
    pub embedding_threshold: f64,
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

impl DedupRequest<'_> {
    /// The index settings the flags make, refused when a threshold is out of range.
    fn settings(&self) -> Result<Settings, ExportError> {
        for (flag, value) in [
            ("--threshold", self.threshold),
            ("--embedding-threshold", self.embedding_threshold),
        ] {
            if !(value > 0.0 && value <= 1.0) {
                return Err(ExportError::Usage(format!(
                    "{flag} must be above 0 and at most 1, got {value}"
                )));
            }
        }
        Ok(Settings {
            by: self.by,
            threshold: self.threshold,
            embedding_threshold: self.embedding_threshold,
        })
    }
}

/// Reads the batch, adds it to the index with the pairs it makes with everything indexed,
/// and writes the groups of the whole index.
pub fn dedup(request: &DedupRequest) -> Result<Summary, ExportError> {
    let start = Instant::now();
    let settings = request.settings()?;
    let (outputs, skipped) = crate::export::collect(request.dirs)?;
    let mut read = Batch::read(&outputs, skipped, request.by)?;
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
    let mut index = Index::open(&index_dir, settings)?;
    adopt_model(&mut index, read.model.take())?;
    let (mut batch, already_indexed) = new_clips(&index, read.clips)?;
    let added = batch.len();
    let new_from = index.entries.len();

    let mut pairs: Vec<Pair> = Vec::new();
    let mut candidates = 0;
    if request.by.hash() {
        let signatures: Vec<&[PHash]> = index
            .entries
            .iter()
            .chain(batch.iter().map(|(e, _)| e))
            .map(|e| e.phash.as_slice())
            .collect();
        let (compared, found) = match_signatures(&signatures, new_from, request.threshold);
        candidates += compared;
        pairs.extend(found);
    }
    let mut batch_embeddings = Vec::new();
    if request.by.embedding() {
        let (rows, compared, found) =
            match_embeddings(&mut index, &mut batch, request.embedding_threshold as f32);
        batch_embeddings = rows;
        candidates += compared;
        merge_embedding_pairs(&mut pairs, found);
    }
    let matched = pairs.len();
    index.append(
        batch.into_iter().map(|(e, _)| e).collect(),
        batch_embeddings,
        &pairs,
    )?;

    let measures = Measures {
        by: request.by,
        embeddings: &index.embeddings,
        dim: index.model().map_or(0, |m| m.dim),
    };
    let groups = groups::groups(&index.entries, &index.pairs, &measures);
    write_groups(&request.out.join(DUPLICATES_FILE), &groups)?;
    Ok(Summary {
        outputs: read.outputs,
        added,
        already_indexed,
        indexed: index.entries.len(),
        groups: groups.len(),
        duplicates: groups.iter().map(|g| g.members.len() - 1).sum(),
        candidates,
        matched,
        skipped: read.skipped,
        index: index.dir().to_path_buf(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Gives the index the batch's CLIP model, or refuses a batch of another model than the
/// index's (naming the first output of the batch that has it).
fn adopt_model(index: &mut Index, model: Option<(Model, PathBuf)>) -> Result<(), ExportError> {
    let Some((model, from)) = model else {
        return Ok(());
    };
    match index.model() {
        Some(indexed) if *indexed != model => Err(ExportError::input(
            &from,
            format!(
                "embeddings of model {} ({} values), the index {} holds model {} ({} values): start a new index (--index)",
                model.model_hash,
                model.dim,
                index.dir().display(),
                indexed.model_hash,
                indexed.dim
            ),
        )),
        Some(_) => Ok(()),
        None => {
            index.set_model(model);
            Ok(())
        }
    }
}

/// The embedding pairs of the batch (`(a, b, cosine)`, at least `threshold`): its rows
/// (`[clips, dim]`, zero for a clip without one), filed under the index's centroids (trained
/// now when the index has none), searched inside the probed clusters. Returns the rows, the
/// pairs compared and those that matched.
fn match_embeddings(
    index: &mut Index,
    batch: &mut [Clip],
    threshold: f32,
) -> (Vec<f32>, usize, Vec<(u32, u32, f32)>) {
    let Some(dim) = index.model().map(|m| m.dim) else {
        return (Vec::new(), 0, Vec::new());
    };
    let new_from = index.entries.len();
    let rows: Vec<f32> = batch
        .iter()
        .flat_map(|(_, row)| row.clone().unwrap_or_else(|| vec![0.0; dim]))
        .collect();
    let vectors: Vec<f32> = index.embeddings.iter().chain(&rows).copied().collect();
    if index.centroids.is_none() {
        let with_embedding = vectors
            .chunks_exact(dim)
            .filter(|r| r.iter().any(|&v| v != 0.0))
            .count();
        if with_embedding > 0 {
            let k = clusters::cluster_count(with_embedding);
            index.set_centroids(Centroids::train(&vectors, dim, k));
        }
    }
    let Some(centroids) = &index.centroids else {
        return (rows, 0, Vec::new());
    };
    for ((entry, _), probes) in batch.iter_mut().zip(centroids.probes_all(&rows)) {
        entry.probes = probes;
    }
    let probes: Vec<Vec<u32>> = index
        .entries
        .iter()
        .chain(batch.iter().map(|(e, _)| e))
        .map(|e| e.probes.clone())
        .collect();
    let found = clusters::candidate_pairs(&vectors, dim, &probes, new_from, threshold);
    let compared = found.len();
    (rows, compared, found)
}

/// The pairs of `signatures` (`(a, b)`, at least one at or after `new_from`) whose
/// similarity is at least `threshold`, among the candidates the LSH gives; and how many
/// candidates were compared.
pub fn match_signatures(
    signatures: &[&[PHash]],
    new_from: usize,
    threshold: f64,
) -> (usize, Vec<Pair>) {
    let keys: Vec<lsh::Keys> = parallel::parallel_map(signatures, |s| keys(s));
    let candidates = lsh::candidate_pairs(&keys, new_from);
    let matched = parallel::parallel_filter_map(&candidates, |&(a, b)| {
        let s = similarity(signatures[a as usize], signatures[b as usize]);
        (s >= threshold).then_some(Pair {
            a,
            b,
            similarity: Some(round4(s)),
            cosine: None,
        })
    });
    (candidates.len(), matched)
}

pub(crate) fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Adds the embedding matches to the signature matches (both sorted by `(a, b)`): a pair found
/// both ways is one pair with both measures.
fn merge_embedding_pairs(pairs: &mut Vec<Pair>, found: Vec<(u32, u32, f32)>) {
    let mut by_pair: std::collections::BTreeMap<(u32, u32), Pair> =
        pairs.drain(..).map(|p| ((p.a, p.b), p)).collect();
    for (a, b, cosine) in found {
        by_pair
            .entry((a, b))
            .or_insert(Pair {
                a,
                b,
                similarity: None,
                cosine: None,
            })
            .cosine = Some(round4(f64::from(cosine)));
    }
    pairs.extend(by_pair.into_values());
}

fn write_groups(path: &Path, groups: &[Group]) -> Result<(), ExportError> {
    index::write_atomically(path, groups)
}
