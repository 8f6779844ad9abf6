//! `framepipe search` and `framepipe describe`: CLIP's other half over processed outputs.
//! Search ranks scenes (or sampled frames) of a whole collection by cosine similarity with a
//! text, an image or a moment of a video; describe ranks any labels for each scene of one
//! output. Both read the stored embeddings only: no video is decoded again.
//!
//! The corpus ([`corpus`]) becomes one fp16 matrix on the device; every batch of queries is one
//! matrix product there (framepipe-torch's `search_op`, exact top-k).
pub mod captions;
pub mod corpus;
pub mod describe;
pub mod present;
pub mod query;
pub mod rank;

use framepipe_proto::ops::{ClipTexts, SearchFree, SearchLoad};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::torch::Torch;
use captions::{CaptionIndex, Rank};
use corpus::{Corpus, Rows};
use query::{Query, QueryModel};

/// Why a search could not run: the exit code tells a usage problem from an empty result.
#[derive(Debug)]
pub enum SearchError {
    /// Bad arguments, or a model/corpus that cannot be compared (exit 2).
    Usage(String),
    /// The search ran into a failure of its inputs (exit 1).
    Failed(String),
}

impl std::fmt::Display for SearchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SearchError::Usage(m) | SearchError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SearchError {}

/// The entries of a list file (queries, labels): one per line, blank lines and `#` comments
/// skipped.
pub fn read_lines(path: &Path) -> Result<Vec<String>, SearchError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SearchError::Usage(format!("{}: {e}", path.display())))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

/// What to search for and how to report it.
pub struct SearchRequest<'a> {
    pub dirs: &'a [PathBuf],
    pub model: &'a Path,
    pub device: crate::device::Device,
    pub texts: Vec<String>,
    pub images: &'a [PathBuf],
    pub moments: &'a [String],
    pub top: usize,
    pub min_score: Option<f32>,
    pub rows: Rows,
    pub export_clips: Option<&'a Path>,
    /// Which score orders the hits (`clip`, `captions`, `hybrid`).
    pub rank: Rank,
}

/// One ranked scene or frame.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub rank: usize,
    /// CLIP's cosine of the query and the row.
    pub score: f32,
    /// BM25 of the (text) query against the scene's clip captions; absent when the scene has
    /// no caption sharing a word with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption_score: Option<f32>,
    /// The reciprocal-rank-fused score the hit is ranked by (`--rank hybrid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fused: Option<f64>,
    /// The scene's clip captions, joined with " / " (outputs with captions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captions: Option<String>,
    /// The input video the output was made from.
    pub video: String,
    /// The output folder.
    pub output: String,
    /// The normalized video the times refer to, when the pipeline wrote one.
    pub output_video: Option<String>,
    pub scene: usize,
    pub start_time: f64,
    pub end_time: f64,
    /// The sampled frame and its time (frame rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    /// The exported clip (with `--export-clips`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_method: Option<crate::media::cut::CutMethod>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub query: String,
    pub hits: Vec<Hit>,
}

/// The whole answer: results per query and what the corpus held.
#[derive(Debug, Serialize)]
pub struct SearchReport {
    pub model: String,
    pub model_hash: String,
    pub rows: usize,
    pub row_kind: &'static str,
    pub outputs: usize,
    pub skipped: Vec<corpus::Skipped>,
    pub coarse: String,
    pub results: Vec<QueryResult>,
}

/// A search matrix held by the libtorch side, released on drop.
pub struct SearchIndex<'a> {
    torch: &'a Torch,
    handle: u64,
    /// The precision candidates are picked in (`f16`, `bf16` or `f32`).
    pub coarse: String,
}

impl<'a> SearchIndex<'a> {
    pub fn load(
        torch: &'a Torch,
        device: crate::device::Device,
        rows: usize,
        dim: usize,
        values: &[u16],
    ) -> Result<Self, String> {
        let op = SearchLoad {
            device,
            rows: rows as u64,
            dim: dim as u64,
        };
        let reply = torch.search_load(&op, values)?;
        Ok(SearchIndex {
            torch,
            handle: reply.handle,
            coarse: reply.coarse,
        })
    }

    /// Top `k` (row, cosine) per query, best first.
    pub fn query(&self, queries: &[Vec<f32>], k: usize) -> Result<Vec<Vec<(usize, f32)>>, String> {
        let flat: Vec<f32> = queries.iter().flatten().copied().collect();
        Ok(self
            .torch
            .search_query(self.handle, &flat, queries.len(), k)?)
    }
}

impl Drop for SearchIndex<'_> {
    fn drop(&mut self) {
        let _ = self.torch.call(&SearchFree {
            handle: self.handle,
        });
    }
}

/// Checks that `model` made the corpus's rows: same projection size, same fingerprint.
pub fn check_model(
    model: &Path,
    dim: usize,
    corpus_model: &(String, String),
    corpus_dim: usize,
) -> Result<(), SearchError> {
    if dim != corpus_dim {
        return Err(SearchError::Usage(format!(
            "{}: its projection size is {dim}, the stored rows have {corpus_dim} (they were made by {})",
            model.display(),
            corpus_model.0
        )));
    }
    let hash = crate::model_id::fingerprint(model)
        .map_err(|e| SearchError::Usage(format!("{}: {e}", model.display())))?;
    if hash != corpus_model.1 {
        return Err(SearchError::Usage(format!(
            "{} ({hash}) is not the model that made the embeddings: {} ({}); query with that one",
            model.display(),
            corpus_model.0,
            corpus_model.1
        )));
    }
    Ok(())
}

/// Runs a search end to end.
pub fn search(req: &SearchRequest) -> Result<SearchReport, SearchError> {
    let torch = Torch::get().map_err(SearchError::Usage)?;
    let corpus = Corpus::load(req.dirs, req.rows).map_err(SearchError::Usage)?;
    let corpus_model = corpus_model(req, &corpus)?;
    let queries = embed_queries(req, torch, &corpus_model, corpus.dim)?;
    let index = SearchIndex::load(
        torch,
        req.device,
        corpus.units.len(),
        corpus.dim,
        &corpus.rows,
    )
    .map_err(SearchError::Failed)?;
    let captions = caption_index(req, &corpus)?;
    let embeddings: Vec<Vec<f32>> = queries.iter().map(|q| q.embedding.clone()).collect();
    let depth = rank::clip_depth(req.rank, req.top, corpus.units.len());
    let ranked = index
        .query(&embeddings, depth)
        .map_err(SearchError::Failed)?;
    let results = results(req, &corpus, captions.as_ref(), &queries, ranked)?;
    Ok(SearchReport {
        model: corpus_model.0,
        model_hash: corpus_model.1,
        rows: corpus.units.len(),
        row_kind: match req.rows {
            Rows::Scenes => "scenes",
            Rows::Frames => "frames",
        },
        outputs: corpus.outputs.len(),
        skipped: corpus.skipped,
        coarse: index.coarse.clone(),
        results,
    })
}

/// The captions of the corpus's scenes, when any output has some; `--rank captions` and
/// `hybrid` need them, and rank scenes.
fn caption_index(
    req: &SearchRequest,
    corpus: &Corpus,
) -> Result<Option<CaptionIndex>, SearchError> {
    let index = CaptionIndex::build(corpus);
    if req.rank != Rank::Clip {
        if req.rows == Rows::Frames {
            return Err(SearchError::Usage(
                "--rank captions and hybrid rank scenes (captions belong to clips of scenes): leave out --frames".into(),
            ));
        }
        if index.is_none() {
            return Err(SearchError::Usage(
                "--rank captions and hybrid need captions: none of the outputs has any (run them with a caption section, or `framepipe caption`)".into(),
            ));
        }
    }
    Ok(index)
}

/// The model (name, fingerprint) that made the corpus's rows; an error when there are no rows
/// to search.
fn corpus_model(req: &SearchRequest, corpus: &Corpus) -> Result<(String, String), SearchError> {
    let Some(corpus_model) = corpus.model.clone() else {
        let dirs: Vec<String> = req.dirs.iter().map(|d| d.display().to_string()).collect();
        let why = if corpus.skipped.is_empty() {
            "no finished outputs with CLIP embeddings".to_string()
        } else {
            format!(
                "no usable outputs ({} skipped: {})",
                corpus.skipped.len(),
                corpus.skipped[0].reason
            )
        };
        return Err(SearchError::Failed(format!(
            "empty corpus under {}: {why}",
            dirs.join(", ")
        )));
    };
    if corpus.units.is_empty() {
        return Err(SearchError::Failed(
            "the outputs hold no embedding rows (no sampled frames)".into(),
        ));
    }
    Ok(corpus_model)
}

/// The request's texts, images and moments embedded with its model, once that model is shown
/// to be the one that made the corpus.
fn embed_queries(
    req: &SearchRequest,
    torch: &Torch,
    corpus_model: &(String, String),
    corpus_dim: usize,
) -> Result<Vec<Query>, SearchError> {
    let qm = QueryModel {
        torch,
        model: req.model,
        device: req.device,
    };
    let info = torch
        .call(&ClipTexts {
            on: qm.model_on(),
            texts: Vec::new(),
        })
        .map_err(|e| SearchError::Usage(format!("{}: {e}", req.model.display())))?;
    let dim = info.dim as usize;
    check_model(req.model, dim, corpus_model, corpus_dim)?;
    let usage = |e: crate::error::Error| SearchError::Usage(e.to_string());
    let mut queries: Vec<Query> = qm.texts(&req.texts).map_err(usage)?;
    queries.extend(qm.images(req.images).map_err(usage)?);
    queries.extend(qm.moments(req.moments).map_err(usage)?);
    Ok(queries)
}

/// Each query's ranked rows as hits (under `--rank clip`, those under `--min-score` dropped,
/// ranks renumbered), their clips cut out with `--export-clips`.
fn results(
    req: &SearchRequest,
    corpus: &Corpus,
    captions: Option<&CaptionIndex>,
    queries: &[Query],
    ranked: Vec<Vec<(usize, f32)>>,
) -> Result<Vec<QueryResult>, SearchError> {
    let ranking = rank::Ranking {
        corpus,
        captions,
        rank: req.rank,
        top: req.top,
    };
    let mut results = Vec::new();
    for (qi, (query, rows)) in queries.iter().zip(ranked).enumerate() {
        // Texts come first among the queries (`embed_queries`).
        let text = (qi < req.texts.len()).then_some(query.label.as_str());
        let mut hits = Vec::new();
        for row in ranking.rank(&query.embedding, text, rows) {
            let below = req.rank == Rank::Clip && req.min_score.is_some_and(|m| row.score < m);
            if !below {
                hits.push(hit(corpus, captions, &row, hits.len() + 1));
            }
        }
        if let Some(dir) = req.export_clips {
            export(dir, qi, &mut hits).map_err(SearchError::Failed)?;
        }
        results.push(QueryResult {
            query: query.label.clone(),
            hits,
        });
    }
    Ok(results)
}

fn hit(
    corpus: &Corpus,
    captions: Option<&CaptionIndex>,
    row: &rank::RankedRow,
    rank: usize,
) -> Hit {
    let unit = &corpus.units[row.row];
    let output = &corpus.outputs[unit.output];
    let scene = &output.scenes[unit.scene];
    Hit {
        rank,
        score: row.score,
        caption_score: row.caption_score,
        fused: row.fused,
        captions: captions
            .and_then(|c| c.text((unit.output, unit.scene)))
            .map(String::from),
        video: output.source.clone(),
        output: output.dir.display().to_string(),
        output_video: output.video.as_ref().map(|v| v.display().to_string()),
        scene: scene.index,
        start_time: scene.start_time,
        end_time: scene.end_time,
        frame: unit.frame.map(|f| f.0),
        time: unit.frame.map(|f| f.1),
        clip: None,
        clip_method: None,
    }
}

/// Cuts each hit's scene out of its output video into `dir` (`q<N>_<rank>_<output>_scene<S>.mp4`).
fn export(dir: &Path, query: usize, hits: &mut [Hit]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for hit in hits.iter_mut() {
        let Some(video) = &hit.output_video else {
            tracing::warn!(output = %hit.output, "no output video to cut a clip from");
            continue;
        };
        let stem = Path::new(&hit.output)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let path = dir.join(format!(
            "q{}_{:02}_{stem}_scene{}.mp4",
            query + 1,
            hit.rank,
            hit.scene
        ));
        let cut = crate::media::cut::export_segment(
            Path::new(video),
            hit.start_time,
            hit.end_time,
            &path,
        )
        .map_err(|e| e.to_string())?;
        hit.clip = Some(path.display().to_string());
        hit.clip_method = Some(cut.method);
    }
    Ok(())
}
