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
pub mod lsh;
pub mod parallel;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::clips::signature::{keys, similarity, PHash};
use crate::export::{ExportError, Skipped};
use clusters::Centroids;
use groups::{Group, Measures};
use index::{By, Entry, Index, Model, Pair, Settings};

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

pub fn dedup(request: &DedupRequest) -> Result<Summary, ExportError> {
    let start = Instant::now();
    for (flag, value) in [
        ("--threshold", request.threshold),
        ("--embedding-threshold", request.embedding_threshold),
    ] {
        if !(value > 0.0 && value <= 1.0) {
            return Err(ExportError::Usage(format!(
                "{flag} must be above 0 and at most 1, got {value}"
            )));
        }
    }
    let settings = Settings {
        by: request.by,
        threshold: request.threshold,
        embedding_threshold: request.embedding_threshold,
    };
    let (outputs, skipped) = crate::export::collect(request.dirs)?;
    let mut read = Batch {
        clips: Vec::new(),
        model: None,
        skipped,
        outputs: 0,
    };
    for output in &outputs {
        read.add(output, request.by)?;
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
    let mut index = Index::open(&index_dir, settings)?;
    if let Some((model, from)) = read.model.take() {
        match index.model() {
            Some(indexed) if *indexed != model => {
                return Err(ExportError::input(
                    &from,
                    format!(
                        "embeddings of model {} ({} values), the index {} holds model {} ({} values): start a new index (--index)",
                        model.model_hash,
                        model.dim,
                        index.dir().display(),
                        indexed.model_hash,
                        indexed.dim
                    ),
                ));
            }
            Some(_) => {}
            None => index.set_model(model),
        }
    }
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
    if let (true, Some(dim)) = (request.by.embedding(), index.model().map(|m| m.dim)) {
        batch_embeddings = batch
            .iter()
            .flat_map(|(_, row)| row.clone().unwrap_or_else(|| vec![0.0; dim]))
            .collect();
        let vectors: Vec<f32> = index
            .embeddings
            .iter()
            .chain(&batch_embeddings)
            .copied()
            .collect();
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
        if let Some(centroids) = &index.centroids {
            let probes = centroids.probes_all(&batch_embeddings);
            for ((entry, _), probes) in batch.iter_mut().zip(probes) {
                entry.probes = probes;
            }
            let probes: Vec<Vec<u32>> = index
                .entries
                .iter()
                .chain(batch.iter().map(|(e, _)| e))
                .map(|e| e.probes.clone())
                .collect();
            let found = clusters::candidate_pairs(
                &vectors,
                dim,
                &probes,
                new_from,
                request.embedding_threshold as f32,
            );
            candidates += found.len();
            merge_embedding_pairs(&mut pairs, found);
        }
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

fn round4(x: f64) -> f64 {
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

/// The clips of a batch's outputs, read.
struct Batch {
    /// Each kept clip, with its embedding when embeddings take part.
    clips: Vec<(Entry, Option<Vec<f32>>)>,
    /// The CLIP model of the embeddings, and the first output that had it.
    model: Option<(Model, PathBuf)>,
    skipped: Vec<Skipped>,
    outputs: usize,
}

impl Batch {
    /// Takes one finished output's kept clips, or skips the output (its clips lack what `by`
    /// compares), or refuses it (embeddings of another model than the batch's).
    fn add(&mut self, output: &crate::export::Output, by: By) -> Result<(), ExportError> {
        let kept: Vec<_> = output.clips.iter().filter(|c| c.record.kept()).collect();
        let mut skip = |reason: String| {
            tracing::warn!(output = %output.dir.display(), "skipped {}: {reason}", output.dir.display());
            self.skipped.push(Skipped {
                path: output.dir.clone(),
                reason,
            });
        };
        if by.hash() && kept.iter().any(|c| c.record.phash.is_empty()) {
            skip("its clips have no signature (made by a framepipe before clip signatures: run it again)".into());
            return Ok(());
        }
        let mut model = None;
        if by.embedding() {
            let report_file = crate::search::corpus::report_path(&output.dir);
            let report = crate::output::report::Report::read(&report_file)
                .map_err(|e| ExportError::input(&report_file, e.to_string()))?;
            let Some(clip) = report.clip else {
                skip(
                    "no CLIP embeddings (the pipeline had no clip stage; --by hash needs none)"
                        .into(),
                );
                return Ok(());
            };
            let this = Model {
                model_hash: clip.model_hash,
                dim: clip.dim,
            };
            if let Some((first, from)) = &self.model {
                if *first != this {
                    return Err(ExportError::input(
                        &output.dir,
                        format!(
                            "embeddings of model {} ({} values), {} has model {} ({} values): deduplicate each model's outputs apart",
                            this.model_hash,
                            this.dim,
                            from.display(),
                            first.model_hash,
                            first.dim
                        ),
                    ));
                }
            }
            for c in &kept {
                if let Some(e) = &c.record.embedding {
                    if e.len() != this.dim {
                        return Err(ExportError::input(
                            output.dir.join(crate::output::files::CLIPS_FILE),
                            format!(
                                "line {}: an embedding of {} values, the report says {}",
                                c.line,
                                e.len(),
                                this.dim
                            ),
                        ));
                    }
                }
            }
            model = Some(this);
        }
        if let (Some(m), None) = (model, &self.model) {
            self.model = Some((m, output.dir.clone()));
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
}

/// The batch's clips the index does not hold yet, and how many it does. A clip id indexed
/// from another output folder, or twice in the batch, is an error: ids name clips in
/// `duplicates.jsonl`, so they must be unique across everything deduplicated together.
type Clip = (Entry, Option<Vec<f32>>);

fn new_clips(index: &Index, batch: Vec<Clip>) -> Result<(Vec<Clip>, usize), ExportError> {
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

fn write_groups(path: &Path, groups: &[Group]) -> Result<(), ExportError> {
    index::write_atomically(path, groups)
}

/// An index's clips held for looking other clips up (`check`'s `duplicate_of`).
#[derive(Debug)]
pub struct Lookup {
    pub dir: PathBuf,
    pub entries: Vec<Entry>,
    keys: Vec<lsh::Keys>,
}

/// The closest indexed clip to a looked-up signature.
#[derive(Debug, Clone, PartialEq)]
pub struct Match<'a> {
    pub entry: &'a Entry,
    pub similarity: f64,
}

impl Lookup {
    pub fn load(dir: &Path) -> Result<Lookup, ExportError> {
        let entries = index::read_entries(dir)?;
        let keys = entries.iter().map(|e| keys(&e.phash)).collect();
        Ok(Lookup {
            dir: dir.to_path_buf(),
            entries,
            keys,
        })
    }

    /// For each signature, the most similar indexed clip among the candidates the index's
    /// buckets give (the same search `dedup` does), if any.
    pub fn closest(&self, signatures: &[Vec<PHash>]) -> Vec<Option<Match<'_>>> {
        let n = self.entries.len();
        let mut all = self.keys.clone();
        all.extend(signatures.iter().map(|s| keys(s)));
        let mut best: Vec<Option<Match>> = vec![None; signatures.len()];
        for (a, b) in lsh::candidate_pairs(&all, n) {
            // Pairs of two looked-up signatures are no business of the index.
            let (a, b) = (a as usize, b as usize);
            if a >= n {
                continue;
            }
            let q = b - n;
            let s = similarity(&self.entries[a].phash, &signatures[q]);
            if best[q].as_ref().is_none_or(|m| s > m.similarity) {
                best[q] = Some(Match {
                    entry: &self.entries[a],
                    similarity: round4(s),
                });
            }
        }
        best
    }
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
