//! The persisted dedup index (`DIR/index/` by default): every clip signature deduplicated so
//! far and the matching pairs found among them, so that a new batch is compared with all of
//! them without reading their outputs again.
//!
//! Layout: `manifest.json` (format, signature version, threshold, the parts in order) and per
//! batch a part, `part-NNNNN.clips.jsonl` (one [`Entry`] a line) with
//! `part-NNNNN.pairs.jsonl` (the pairs that batch found, by clip id). Parts are written under
//! temporary names and renamed, and the manifest last: a part it does not list is the leftover
//! of a batch that died, ignored and overwritten. One process at a time: `lock` holds the PID
//! of the one using the index; a lock whose process is gone is taken over.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::lsh::{BITS_PER_TABLE, KEY_DISTANCE_MAX, TABLES};
use crate::clips::signature::{PHash, SIGNATURE_FRAMES};
use crate::export::ExportError;

const MANIFEST: &str = "manifest.json";
const LOCK: &str = "lock";
/// The index layout this build reads and writes.
const FORMAT: u32 = 1;

/// What decides which pairs an index holds: the clip signature and the candidate search. An
/// index made under another one cannot be extended.
pub fn signature_version() -> String {
    format!("phash-dct64x{SIGNATURE_FRAMES}/lsh-{TABLES}x{BITS_PER_TABLE}-key{KEY_DISTANCE_MAX}/v1")
}

/// One clip in the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    /// The output folder it came from (absolute).
    pub output: String,
    pub start_time: f64,
    pub end_time: f64,
    pub motion: f64,
    pub phash: Vec<PHash>,
}

impl Entry {
    pub fn duration(&self) -> f64 {
        self.end_time - self.start_time
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: u32,
    signature: String,
    threshold: f64,
    parts: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PairLine {
    a: String,
    b: String,
    similarity: f64,
}

/// An open index, locked for this process until dropped.
pub struct Index {
    dir: PathBuf,
    manifest: Manifest,
    pub entries: Vec<Entry>,
    /// Matching pairs, as indexes into `entries`.
    pub pairs: Vec<(u32, u32)>,
    ids: HashMap<String, u32>,
    _lock: Lock,
}

impl Index {
    /// Opens the index in `dir` (made when missing) for a dedup at `threshold`.
    pub fn open(dir: &Path, threshold: f64) -> Result<Index, ExportError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ExportError::input(dir, format!("cannot create the index folder: {e}")))?;
        let lock = Lock::take(dir)?;
        let manifest_path = dir.join(MANIFEST);
        let manifest = if manifest_path.is_file() {
            let manifest: Manifest = read_json(&manifest_path)?;
            check_manifest(&manifest_path, &manifest, threshold)?;
            manifest
        } else {
            Manifest {
                format: FORMAT,
                signature: signature_version(),
                threshold,
                parts: Vec::new(),
            }
        };
        let mut index = Index {
            dir: dir.to_path_buf(),
            manifest,
            entries: Vec::new(),
            pairs: Vec::new(),
            ids: HashMap::new(),
            _lock: lock,
        };
        for part in index.manifest.parts.clone() {
            for (line, entry) in read_lines::<Entry>(&dir.join(format!("{part}.clips.jsonl")))? {
                index.push(entry, line)?;
            }
            let pairs_path = dir.join(format!("{part}.pairs.jsonl"));
            for (line, pair) in read_lines::<PairLine>(&pairs_path)? {
                let (Some(&a), Some(&b)) = (index.ids.get(&pair.a), index.ids.get(&pair.b)) else {
                    return Err(ExportError::input(
                        &pairs_path,
                        format!("line {line}: a pair of clips the index does not hold"),
                    ));
                };
                index.pairs.push((a.min(b), a.max(b)));
            }
        }
        Ok(index)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The position of clip `id`, when indexed.
    pub fn position(&self, id: &str) -> Option<u32> {
        self.ids.get(id).copied()
    }

    fn push(&mut self, entry: Entry, line: usize) -> Result<(), ExportError> {
        if self.ids.contains_key(&entry.id) {
            return Err(ExportError::input(
                &self.dir,
                format!(
                    "clip {} is in the index twice (line {line} of a part)",
                    entry.id
                ),
            ));
        }
        self.ids.insert(entry.id.clone(), self.entries.len() as u32);
        self.entries.push(entry);
        Ok(())
    }

    /// Adds a batch: its clips (appended after the indexed ones) and the pairs found for it
    /// (indexes into the entries with the batch's appended), with their similarities.
    pub fn append(
        &mut self,
        batch: Vec<Entry>,
        pairs: &[(u32, u32, f64)],
    ) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let part = format!("part-{:05}", self.manifest.parts.len());
        let new_from = self.entries.len();
        for (i, entry) in batch.into_iter().enumerate() {
            self.push(entry, i + 1)?;
        }
        let clips: Vec<String> = self.entries[new_from..]
            .iter()
            .map(|e| serde_json::to_string(e).expect("an entry serializes"))
            .collect();
        let pair_lines: Vec<String> = pairs
            .iter()
            .map(|&(a, b, similarity)| {
                serde_json::to_string(&PairLine {
                    a: self.entries[a as usize].id.clone(),
                    b: self.entries[b as usize].id.clone(),
                    similarity,
                })
                .expect("a pair serializes")
            })
            .collect();
        write_atomically(&self.dir.join(format!("{part}.clips.jsonl")), &clips)?;
        write_atomically(&self.dir.join(format!("{part}.pairs.jsonl")), &pair_lines)?;
        self.pairs.extend(pairs.iter().map(|&(a, b, _)| (a, b)));
        self.manifest.parts.push(part);
        let manifest = serde_json::to_string_pretty(&self.manifest).expect("a manifest serializes");
        write_atomically(&self.dir.join(MANIFEST), &[manifest])
    }
}

/// Refuses an index this build cannot extend at this threshold.
fn check_manifest(path: &Path, manifest: &Manifest, threshold: f64) -> Result<(), ExportError> {
    if manifest.format != FORMAT {
        return Err(ExportError::input(
            path,
            format!(
                "index format {} (this framepipe reads {FORMAT})",
                manifest.format
            ),
        ));
    }
    let ours = signature_version();
    if manifest.signature != ours {
        return Err(ExportError::input(
            path,
            format!(
                "an index of signature {} (this framepipe makes {ours}): start a new index (--index)",
                manifest.signature
            ),
        ));
    }
    if manifest.threshold != threshold {
        return Err(ExportError::input(
            path,
            format!(
                "an index of pairs found at threshold {} (not {threshold}): use that threshold or start a new index (--index)",
                manifest.threshold
            ),
        ));
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ExportError> {
    let bytes = std::fs::read(path).map_err(|e| ExportError::input(path, e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| ExportError::input(path, e.to_string()))
}

/// Each non-empty line of a JSON-lines file, with its line number.
fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<(usize, T)>, ExportError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ExportError::input(path, e.to_string()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map(|v| (i + 1, v))
                .map_err(|e| ExportError::input(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// Writes `lines` to `path` through a temporary in the same folder and a rename.
pub(crate) fn write_atomically(path: &Path, lines: &[String]) -> Result<(), ExportError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        for line in lines {
            file.write_all(line.as_bytes())?;
            file.write_all(b"\n")?;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ExportError::write(path, "writing", e)
    })
}

/// The index's lock file, removed when dropped.
struct Lock(PathBuf);

impl Lock {
    /// Takes the lock of the index in `dir`; a lock left by a process that is gone is taken
    /// over (once: a second failure means another process took it meanwhile).
    fn take(dir: &Path) -> Result<Lock, ExportError> {
        let path = dir.join(LOCK);
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    file.write_all(std::process::id().to_string().as_bytes())
                        .map_err(|e| ExportError::write(&path, "taking the index lock", e))?;
                    return Ok(Lock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = holder
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                    if alive {
                        return Err(ExportError::input(
                            dir,
                            format!(
                                "the index is in use by process {} (its {LOCK} file)",
                                holder.trim()
                            ),
                        ));
                    }
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(ExportError::write(&path, "taking the index lock", e)),
            }
        }
        Err(ExportError::input(
            dir,
            "the index lock was taken by another process meanwhile",
        ))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
