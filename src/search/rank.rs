//! One query's ranked rows under `search --rank`: CLIP's list as the device computed it, the
//! captions' BM25 list ([`super::captions`]), or the two fused; each row with both scores
//! (CLIP's cosine computed here for rows the device's top list did not hold).
use std::collections::HashMap;

use half::f16;

use super::captions::{fuse, CaptionIndex, Rank, SceneKey};
use super::corpus::Corpus;

/// A ranked row and its scores.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedRow {
    pub row: usize,
    /// CLIP's cosine of the query and the row.
    pub score: f32,
    /// BM25 of the query against the row's scene captions (text queries over captioned scenes).
    pub caption_score: Option<f32>,
    /// The fused score (`--rank hybrid`).
    pub fused: Option<f64>,
}

/// How deep CLIP's list goes when it is fused with the captions' (RRF needs more than the
/// hits shown: a scene at CLIP rank 50 and caption rank 1 should come up).
pub fn clip_depth(rank: Rank, top: usize, rows: usize) -> usize {
    match rank {
        Rank::Clip => top.max(1),
        Rank::Captions | Rank::Hybrid => (top * 10).max(100),
    }
    .min(rows.max(1))
}

/// What ranking one query needs.
pub struct Ranking<'a> {
    pub corpus: &'a Corpus,
    pub captions: Option<&'a CaptionIndex>,
    pub rank: Rank,
    pub top: usize,
}

impl Ranking<'_> {
    /// The query's rows, best first, at most `top`: `clip` is the device's list (row, cosine);
    /// `text` the query's text (none for image and moment queries, which rank by CLIP only).
    pub fn rank(
        &self,
        embedding: &[f32],
        text: Option<&str>,
        clip: Vec<(usize, f32)>,
    ) -> Vec<RankedRow> {
        let bm25: HashMap<SceneKey, f32> = match (self.captions, text) {
            (Some(index), Some(text)) => index.scores(text),
            _ => HashMap::new(),
        };
        let caption_of = |row: usize| {
            let u = &self.corpus.units[row];
            bm25.get(&(u.output, u.scene)).copied()
        };
        let cosines: HashMap<usize, f32> = clip.iter().copied().collect();
        let cosine = |row: usize| match cosines.get(&row) {
            Some(&c) => c,
            None => host_cosine(self.corpus, row, embedding),
        };
        let row_of = |fused: Option<f64>, row: usize| RankedRow {
            row,
            score: cosine(row),
            caption_score: caption_of(row),
            fused,
        };
        let clip_rows: Vec<usize> = clip.iter().map(|&(r, _)| r).collect();
        let rows: Vec<RankedRow> = match (self.rank, text.is_some()) {
            (Rank::Clip, _) | (_, false) => clip_rows.iter().map(|&r| row_of(None, r)).collect(),
            (Rank::Captions, true) => self
                .caption_rows(&bm25)
                .into_iter()
                .map(|r| row_of(None, r))
                .collect(),
            (Rank::Hybrid, true) => fuse(&[clip_rows, self.caption_rows(&bm25)])
                .into_iter()
                .map(|(r, f)| row_of(Some(f), r))
                .collect(),
        };
        rows.into_iter().take(self.top.max(1)).collect()
    }

    /// The rows whose scene has a caption score, best first (ties by row).
    fn caption_rows(&self, bm25: &HashMap<SceneKey, f32>) -> Vec<usize> {
        let mut rows: Vec<(usize, f32)> = self
            .corpus
            .units
            .iter()
            .enumerate()
            .filter_map(|(i, u)| bm25.get(&(u.output, u.scene)).map(|&s| (i, s)))
            .collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        rows.into_iter().map(|(r, _)| r).collect()
    }
}

/// The cosine of the query and a stored row (rows are unit vectors; the query is normalized).
fn host_cosine(corpus: &Corpus, row: usize, query: &[f32]) -> f32 {
    let values = &corpus.rows[row * corpus.dim..(row + 1) * corpus.dim];
    let norm = query.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    values
        .iter()
        .zip(query)
        .map(|(&b, q)| f16::from_bits(b).to_f32() * q)
        .sum::<f32>()
        / norm
}
