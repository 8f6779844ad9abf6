//! The persisted dedup index (`DIR/index/` by default): every clip signature deduplicated so
//! far and the matching pairs found among them, so that a new batch is compared with all of
//! them without reading their outputs again.
//!
//! Layout: `manifest.json` (format, signature version, [`Settings`], the CLIP model, the parts
//! in order) and per batch a part, `part-NNNNN.clips.jsonl` (one [`Entry`] a line) with
//! `part-NNNNN.pairs.jsonl` (the pairs that batch found, by clip id) and, when embeddings take
//! part, `part-NNNNN.embeddings.safetensors` (`embeddings` f32 `[clips, dim]`, a zero row for a
//! clip without one) and once `centroids.safetensors` (the clusters, [`super::clusters`]). Parts are written under
//! temporary names and renamed, and the manifest last: a part it does not list is the leftover
//! of a batch that died, ignored and overwritten. One process at a time: `lock` holds the PID
//! of the one using the index; a lock whose process is gone is taken over.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::clusters::{Centroids, PROBES};
use super::lsh::{BITS_PER_TABLE, KEY_DISTANCE_MAX, TABLES};
use crate::clips::signature::{PHash, SIGNATURE_FRAMES};
use crate::export::error::ExportError;

const MANIFEST: &str = "manifest.json";
const CENTROIDS: &str = "centroids.safetensors";
const EMBEDDINGS_TENSOR: &str = "embeddings";
const CENTROIDS_TENSOR: &str = "centroids";
const LOCK: &str = "lock";
/// The index layout this build reads and writes.
const FORMAT: u32 = 1;

/// What decides which pairs an index holds: the clip signature and the candidate search. An
/// index made under another one cannot be extended.
pub fn signature_version() -> String {
    format!(
        "phash-dct64x{SIGNATURE_FRAMES}/lsh-{TABLES}x{BITS_PER_TABLE}-key{KEY_DISTANCE_MAX}/kmeans-probe{PROBES}/v1"
    )
}

/// What a dedup compares clips by (`--by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// The perceptual signature (`phash`): the same footage, re-encoded, rescaled, cropped.
    Hash,
    /// The clip's CLIP embedding: the same scene, also from another take or angle.
    Embedding,
    /// Either: a pair that matches by one of them.
    Both,
}

impl By {
    pub fn hash(self) -> bool {
        matches!(self, By::Hash | By::Both)
    }

    pub fn embedding(self) -> bool {
        matches!(self, By::Embedding | By::Both)
    }
}

/// What an index is made under; a later batch must use the same.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub by: By,
    /// The least signature similarity of a pair (`--threshold`).
    pub threshold: f64,
    /// The least embedding cosine of a pair (`--embedding-threshold`).
    pub embedding_threshold: f64,
}

/// The CLIP model the embeddings of an index come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Its fingerprint, as the reports give it (`sha256:…`).
    pub model_hash: String,
    pub dim: usize,
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
    /// The clusters its embedding is compared through, its home first (embedding indexes;
    /// empty for a clip without an embedding).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<u32>,
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
    settings: Settings,
    /// Set by the first batch with embeddings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<Model>,
    parts: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PairLine {
    a: String,
    b: String,
    /// Signature similarity, when the signatures matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    similarity: Option<f64>,
    /// Embedding cosine, when the embeddings matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cosine: Option<f64>,
}

/// A matching pair of a batch: entry indexes `a < b`, and what matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub a: u32,
    pub b: u32,
    pub similarity: Option<f64>,
    pub cosine: Option<f64>,
}

/// An open index, locked for this process until dropped.
pub struct Index {
    dir: PathBuf,
    manifest: Manifest,
    pub entries: Vec<Entry>,
    /// Matching pairs, as indexes into `entries`.
    pub pairs: Vec<(u32, u32)>,
    /// The entries' embeddings, `[entries, model.dim]` (embedding indexes only).
    pub embeddings: Vec<f32>,
    pub centroids: Option<Centroids>,
    /// Whether the centroids were trained by this process (written with the next part).
    centroids_new: bool,
    ids: HashMap<String, u32>,
    _lock: Lock,
}

impl Index {
    /// Opens the index in `dir` (made when missing) for a dedup with `settings`.
    pub fn open(dir: &Path, settings: Settings) -> Result<Index, ExportError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ExportError::input(dir, format!("cannot create the index folder: {e}")))?;
        let lock = Lock::take(dir)?;
        let manifest_path = dir.join(MANIFEST);
        let manifest = if manifest_path.is_file() {
            let manifest: Manifest = read_json(&manifest_path)?;
            check_manifest(&manifest_path, &manifest, settings)?;
            manifest
        } else {
            Manifest {
                format: FORMAT,
                signature: signature_version(),
                settings,
                model: None,
                parts: Vec::new(),
            }
        };
        let mut index = Index {
            dir: dir.to_path_buf(),
            manifest,
            entries: Vec::new(),
            pairs: Vec::new(),
            embeddings: Vec::new(),
            centroids: None,
            centroids_new: false,
            ids: HashMap::new(),
            _lock: lock,
        };
        if let Some(model) = &index.manifest.model {
            let path = dir.join(CENTROIDS);
            if path.is_file() {
                let rows = read_tensor(&path, CENTROIDS_TENSOR, model.dim)?;
                index.centroids = Some(Centroids {
                    dim: model.dim,
                    rows,
                });
            }
        }
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
            if let Some(model) = &index.manifest.model {
                let path = dir.join(format!("{part}.embeddings.safetensors"));
                let rows = read_tensor(&path, EMBEDDINGS_TENSOR, model.dim)?;
                index.embeddings.extend(rows);
            }
            if let Some(model) = &index.manifest.model {
                if index.embeddings.len() != index.entries.len() * model.dim {
                    return Err(ExportError::input(
                        dir.join(format!("{part}.embeddings.safetensors")),
                        "its rows are not the part's clips",
                    ));
                }
            }
        }
        Ok(index)
    }

    pub fn model(&self) -> Option<&Model> {
        self.manifest.model.as_ref()
    }

    /// Sets the index's CLIP model (the first batch with embeddings).
    pub fn set_model(&mut self, model: Model) {
        self.manifest.model = Some(model);
    }

    /// Keeps centroids trained for this batch; written with its part.
    pub fn set_centroids(&mut self, centroids: Centroids) {
        self.centroids = Some(centroids);
        self.centroids_new = true;
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

    /// Adds a batch: its clips (appended after the indexed ones), their embeddings (`[clips,
    /// dim]`, embedding indexes) and the pairs found for it (indexes into the entries with the
    /// batch's appended), with their similarities.
    pub fn append(
        &mut self,
        batch: Vec<Entry>,
        embeddings: Vec<f32>,
        pairs: &[Pair],
    ) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let part = format!("part-{:05}", self.manifest.parts.len());
        let new_from = self.entries.len();
        for (i, entry) in batch.into_iter().enumerate() {
            self.push(entry, i + 1)?;
        }
        let pair_lines = pairs.iter().map(|pair| PairLine {
            a: self.entries[pair.a as usize].id.clone(),
            b: self.entries[pair.b as usize].id.clone(),
            similarity: pair.similarity,
            cosine: pair.cosine,
        });
        write_atomically(
            &self.dir.join(format!("{part}.clips.jsonl")),
            self.entries[new_from..].iter(),
        )?;
        write_atomically(&self.dir.join(format!("{part}.pairs.jsonl")), pair_lines)?;
        if let Some(model) = &self.manifest.model {
            let rows = self.entries.len() - new_from;
            if embeddings.len() != rows * model.dim {
                return Err(ExportError::Usage(format!(
                    "internal: {} embedding values for {rows} clips of {}",
                    embeddings.len(),
                    model.dim
                )));
            }
            let path = self.dir.join(format!("{part}.embeddings.safetensors"));
            write_tensor(&path, EMBEDDINGS_TENSOR, &embeddings, model.dim)?;
            self.embeddings.extend(embeddings);
            if let (true, Some(centroids)) = (self.centroids_new, &self.centroids) {
                write_tensor(
                    &self.dir.join(CENTROIDS),
                    CENTROIDS_TENSOR,
                    &centroids.rows,
                    model.dim,
                )?;
                self.centroids_new = false;
            }
        }
        self.pairs.extend(pairs.iter().map(|p| (p.a, p.b)));
        self.manifest.parts.push(part);
        write_atomically(&self.dir.join(MANIFEST), [&self.manifest])
    }
}

/// The clips of the index in `dir`, read without taking its lock (a dedup writing meanwhile
/// renames its part into place before the manifest lists it, so what the manifest lists is
/// complete), for looking files up (`check`'s `duplicate_of`).
pub fn read_entries(dir: &Path) -> Result<Vec<Entry>, ExportError> {
    let manifest_path = dir.join(MANIFEST);
    if !manifest_path.is_file() {
        return Err(ExportError::input(
            dir,
            format!("not a dedup index (no {MANIFEST}; `framepipe dedup` makes one)"),
        ));
    }
    let manifest: Manifest = read_json(&manifest_path)?;
    check_version(&manifest_path, &manifest)?;
    let mut entries = Vec::new();
    for part in &manifest.parts {
        let path = dir.join(format!("{part}.clips.jsonl"));
        entries.extend(read_lines::<Entry>(&path)?.into_iter().map(|(_, e)| e));
    }
    Ok(entries)
}

/// Refuses an index of another layout or signature.
fn check_version(path: &Path, manifest: &Manifest) -> Result<(), ExportError> {
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
    Ok(())
}

/// Refuses an index this build cannot extend with these settings.
fn check_manifest(path: &Path, manifest: &Manifest, settings: Settings) -> Result<(), ExportError> {
    check_version(path, manifest)?;
    let made = manifest.settings;
    let differs = |what: &str, was: String, now: String| {
        Err(ExportError::input(
            path,
            format!("an index made with {what} {was} (not {now}): give the same or start a new index (--index)"),
        ))
    };
    if made.by != settings.by {
        return differs(
            "--by",
            format!("{:?}", made.by).to_lowercase(),
            format!("{:?}", settings.by).to_lowercase(),
        );
    }
    if made.by.hash() && made.threshold != settings.threshold {
        return differs(
            "--threshold",
            made.threshold.to_string(),
            settings.threshold.to_string(),
        );
    }
    if made.by.embedding() && made.embedding_threshold != settings.embedding_threshold {
        return differs(
            "--embedding-threshold",
            made.embedding_threshold.to_string(),
            settings.embedding_threshold.to_string(),
        );
    }
    Ok(())
}

/// A safetensors file's f32 tensor `name`, `[rows, dim]`.
fn read_tensor(path: &Path, name: &str, dim: usize) -> Result<Vec<f32>, ExportError> {
    let bytes = std::fs::read(path).map_err(|e| ExportError::input(path, e.to_string()))?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| ExportError::input(path, e.to_string()))?;
    let tensor = tensors
        .tensor(name)
        .map_err(|e| ExportError::input(path, format!("{name}: {e}")))?;
    let shape = tensor.shape();
    if tensor.dtype() != safetensors::Dtype::F32 || shape.len() != 2 || shape[1] != dim {
        return Err(ExportError::input(
            path,
            format!(
                "{name} is {:?} {shape:?}, not F32 [n, {dim}]",
                tensor.dtype()
            ),
        ));
    }
    Ok(tensor
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Writes `rows` (`[n, dim]`) as the f32 tensor `name`, through a temporary and a rename.
fn write_tensor(path: &Path, name: &str, rows: &[f32], dim: usize) -> Result<(), ExportError> {
    let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![rows.len() / dim.max(1), dim],
        &bytes,
    )
    .map_err(|e| ExportError::write(path, "assembling the tensor", e))?;
    let data = safetensors::serialize([(name, view)], None)
        .map_err(|e| ExportError::write(path, "serializing the tensor", e))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, data)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            ExportError::write(path, "writing", e)
        })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ExportError> {
    let bytes = std::fs::read(path).map_err(|e| ExportError::input(path, e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| ExportError::input(path, e.to_string()))
}

/// Each non-empty line of a JSON-lines file, with its line number; read line by line (an
/// index part of a million clips is hundreds of MB of text).
fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<(usize, T)>, ExportError> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| ExportError::input(path, e.to_string()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::with_capacity(1 << 20, file)
        .lines()
        .enumerate()
    {
        let line = line.map_err(|e| ExportError::input(path, format!("line {}: {e}", i + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line)
            .map_err(|e| ExportError::input(path, format!("line {}: {e}", i + 1)))?;
        out.push((i + 1, value));
    }
    Ok(out)
}

/// Writes each item as a line of JSON to `path`, through a temporary in the same folder and a
/// rename.
pub(crate) fn write_atomically<T: Serialize>(
    path: &Path,
    items: impl IntoIterator<Item = T>,
) -> Result<(), ExportError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        for item in items {
            serde_json::to_writer(&mut file, &item)?;
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
                                "the index is held by process {} (its {LOCK} file)",
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
