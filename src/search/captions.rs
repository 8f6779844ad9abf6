//! The lexical half of `search`: BM25 over the clips' captions (`clips.jsonl`, `caption`), one
//! document per scene (the captions of its clips, in order), next to CLIP's cosine. Each text
//! query gets a caption score for every scene whose captions share a word with it (stemmed,
//! stop words left out: the `bm25` crate's English tokenizer); `--rank` says which score orders
//! the hits, or fuses the two rankings by reciprocal rank (RRF).
use std::collections::HashMap;

use bm25::{Language, SearchEngine, SearchEngineBuilder};

use super::corpus::Corpus;
use crate::output::clip_record::ClipRecord;
use crate::output::files::CLIPS_FILE;

/// `search --rank`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Rank {
    /// CLIP's cosine of the query and the scene's (or frame's) embedding.
    #[default]
    Clip,
    /// BM25 of the query against the scene's captions (text queries).
    Captions,
    /// Both rankings fused: the sum of 1 / (60 + rank) over the two lists (reciprocal rank
    /// fusion), so a scene high in either comes up.
    Hybrid,
}

/// RRF's constant (Cormack et al.: 60 works across collections).
pub const RRF_K: f64 = 60.0;

/// (output, scene) of the corpus.
pub type SceneKey = (usize, usize);

/// The captions of the corpus's scenes, indexed.
pub struct CaptionIndex {
    engine: SearchEngine<u32>,
    /// Document id → scene.
    scenes: Vec<SceneKey>,
    /// Scene → its captions joined.
    texts: HashMap<SceneKey, String>,
}

impl CaptionIndex {
    /// The index of every caption in the corpus's outputs; `None` when no output has one.
    pub fn build(corpus: &Corpus) -> Option<CaptionIndex> {
        let mut by_scene: HashMap<SceneKey, Vec<String>> = HashMap::new();
        for (o, output) in corpus.outputs.iter().enumerate() {
            for record in read_records(&output.dir.join(CLIPS_FILE)) {
                if let Some(caption) = record.caption {
                    by_scene.entry((o, record.scene)).or_default().push(caption);
                }
            }
        }
        if by_scene.is_empty() {
            return None;
        }
        let mut scenes: Vec<SceneKey> = by_scene.keys().copied().collect();
        scenes.sort_unstable();
        let texts: HashMap<SceneKey, String> = by_scene
            .into_iter()
            .map(|(k, captions)| (k, captions.join(" / ")))
            .collect();
        let corpus_texts: Vec<String> = scenes.iter().map(|k| texts[k].clone()).collect();
        let engine =
            SearchEngineBuilder::<u32>::with_corpus(Language::English, corpus_texts).build();
        Some(CaptionIndex {
            engine,
            scenes,
            texts,
        })
    }

    /// Every scene's BM25 score for `query` (scenes sharing no word with it are absent).
    pub fn scores(&self, query: &str) -> HashMap<SceneKey, f32> {
        self.engine
            .search(query, None)
            .into_iter()
            .map(|hit| (self.scenes[hit.document.id as usize], hit.score))
            .collect()
    }

    /// The scene's captions, joined with " / ".
    pub fn text(&self, scene: SceneKey) -> Option<&str> {
        self.texts.get(&scene).map(String::as_str)
    }
}

/// The records of a `clips.jsonl` (none when it is missing or unreadable: captions are
/// optional to a search, and `export` is where a damaged list is reported).
fn read_records(path: &std::path::Path) -> Vec<ClipRecord> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(r) => records.push(r),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "captions not read");
                return Vec::new();
            }
        }
    }
    records
}

/// Reciprocal rank fusion of ranked lists of rows (each best first): rows by the sum of
/// 1 / (RRF_K + rank) over the lists they are in (rank from 1), best first; ties by row.
pub fn fuse(lists: &[Vec<usize>]) -> Vec<(usize, f64)> {
    let mut fused: HashMap<usize, f64> = HashMap::new();
    for list in lists {
        for (i, &row) in list.iter().enumerate() {
            *fused.entry(row).or_default() += 1.0 / (RRF_K + i as f64 + 1.0);
        }
    }
    let mut out: Vec<(usize, f64)> = fused.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_rows_high_in_both_lists() {
        let fused = fuse(&[vec![1, 2, 3], vec![3, 1, 4]]);
        let order: Vec<usize> = fused.iter().map(|&(r, _)| r).collect();
        assert_eq!(order, [1, 3, 2, 4]);
        assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-12);
    }
}
