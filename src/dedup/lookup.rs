//! An index's clips held for looking files up (`check`'s `duplicate_of`): the same keys and
//! candidate search as `dedup`, the closest indexed clip per looked-up signature.
use std::path::{Path, PathBuf};

use super::index::{self, Entry};
use super::{lsh, round4};
use crate::clips::signature::{keys, similarity, PHash};
use crate::export::error::ExportError;

/// An index's clips, read once.
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
