//! `framepipe batch`: many inputs, resumable, shardable across machines, nothing lost.
//!
//! - Inputs come from arguments, folders (recursive, by extension) or a manifest (`.txt` one path
//!   per line, `.jsonl` with `path` and optional `id`, `.csv` with a `path` column and optional
//!   `id`). Each input's output folder mirrors its relative path, so equal names in different
//!   folders never collide.
//! - An input is done when its output folder exists (atomic rename) with a marker naming the
//!   config hash and tool version: reruns skip it; outputs of another config are stale (reported,
//!   redone only with `--redo-stale` or `--force`).
//! - Failures are retried, then recorded as state ([`failures`]): `OUT/failures.jsonl` holds one
//!   line per input whose latest attempt failed, with its attempts across runs; the batch goes on.
//! - `--shard I/N` (or Kubernetes' `JOB_COMPLETION_INDEX` + `FRAMEPIPE_SHARDS`, or Slurm's
//!   `SLURM_ARRAY_TASK_ID`/`SLURM_ARRAY_TASK_COUNT`) takes a deterministic slice by a stable hash
//!   of the input id, so N processes cover the inputs exactly once.
//! - Many processes may share one `OUT` with or without shards: each input is claimed
//!   ([`claims`]) before it is touched, so each is processed once, and the input of a worker that
//!   died is taken over once its lease runs out ([`run`]). Each process keeps its own account
//!   ([`summary`]); `batch-summary` merges them.
//! - Ctrl-C / SIGTERM: no new inputs are started, running ones finish, the run stays resumable.
pub mod claims;
pub mod failures;
mod run;
pub mod summary;

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
pub use run::{run, Options};
pub use summary::{merge_summaries, Summary};

/// One input of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Stable identity (sharding, failures): the manifest's `id`, the path relative to the folder
    /// given (inputs found in a folder), else the path as given.
    pub id: String,
    pub input: PathBuf,
    /// Output folder under OUT.
    pub relative: PathBuf,
}

/// Lists the inputs: arguments (files or folders) and an optional manifest.
pub fn collect_items(args: &[PathBuf], manifest: Option<&Path>) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for arg in args {
        if arg.is_dir() {
            for f in crate::check::find_videos(arg) {
                let rel = f.strip_prefix(arg).unwrap_or(&f).to_path_buf();
                items.push(Item {
                    id: rel.display().to_string(),
                    relative: without_extension(&rel),
                    input: f,
                });
            }
        } else {
            items.push(Item {
                id: arg.display().to_string(),
                relative: relative_for(arg, None),
                input: arg.clone(),
            });
        }
    }
    if let Some(m) = manifest {
        items.extend(read_manifest(m)?);
    }
    disambiguate(&mut items);
    Ok(items)
}

fn without_extension(rel: &Path) -> PathBuf {
    rel.with_extension("")
}

/// A safe relative output path for `input`: its path (relative to `base` when under it, else as
/// given without root or `..`), minus the extension.
fn relative_for(input: &Path, base: Option<&Path>) -> PathBuf {
    let rel = base
        .and_then(|b| input.strip_prefix(b).ok())
        .unwrap_or(input);
    let clean: PathBuf = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_os_string()),
            Component::ParentDir => Some("_up".into()),
            _ => None,
        })
        .collect();
    without_extension(&clean)
}

/// Two inputs that map to one folder (clip.mp4 and clip.mkv side by side) get their extension
/// appended.
fn disambiguate(items: &mut [Item]) {
    let mut seen = std::collections::HashMap::<PathBuf, usize>::new();
    for item in items.iter() {
        *seen.entry(item.relative.clone()).or_default() += 1;
    }
    for item in items.iter_mut() {
        if seen[&item.relative] > 1 {
            if let Some(ext) = item.input.extension() {
                let mut name = item.relative.file_name().unwrap_or_default().to_os_string();
                name.push("_");
                name.push(ext);
                item.relative.set_file_name(name);
            }
        }
    }
}

#[derive(Deserialize)]
struct ManifestLine {
    path: PathBuf,
    #[serde(default)]
    id: Option<String>,
}

fn read_manifest(path: &Path) -> Result<Vec<Item>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(path, format!("cannot read manifest: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let make = |p: PathBuf, id: Option<String>| {
        let input = resolve(&p);
        let relative = match &id {
            Some(id) => relative_for(Path::new(id), None),
            None => relative_for(&p, None),
        };
        Item {
            id: id.unwrap_or_else(|| p.display().to_string()),
            input,
            relative,
        }
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let mut items = Vec::new();
    match ext {
        "jsonl" => {
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let entry: ManifestLine = serde_json::from_str(line).map_err(|e| {
                    Error::config(
                        path,
                        format!("line {}: {e} (want {{\"path\": ..., \"id\": ...}})", n + 1),
                    )
                })?;
                items.push(make(entry.path, entry.id));
            }
        }
        "csv" => {
            let mut lines = text.lines().filter(|l| !l.trim().is_empty());
            let header: Vec<&str> = lines
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .collect();
            let col = |name: &str| header.iter().position(|h| *h == name);
            let path_col = col("path")
                .ok_or_else(|| Error::config(path, "CSV manifest needs a `path` column"))?;
            let id_col = col("id");
            for (n, line) in lines.enumerate() {
                let fields: Vec<&str> = line.split(',').map(str::trim).collect();
                let p = fields
                    .get(path_col)
                    .ok_or_else(|| Error::config(path, format!("line {}: no path field", n + 2)))?;
                items.push(make(
                    PathBuf::from(p),
                    id_col.and_then(|c| fields.get(c)).map(|s| s.to_string()),
                ));
            }
        }
        _ => {
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                items.push(make(PathBuf::from(line), None));
            }
        }
    }
    Ok(items)
}

/// What Slurm tells an array task about its array (the `SLURM_ARRAY_TASK_*` variables) and
/// `FRAMEPIPE_SHARDS`.
struct SlurmArray {
    id: String,
    min: Option<String>,
    max: Option<String>,
    count: Option<String>,
    shards: Option<String>,
}

/// `--shard none` / `FRAMEPIPE_SHARDS=none`: every worker takes any input (by claims).
pub const NO_SHARDS: &str = "none";

/// `I/N`, 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub fn parse(text: &str) -> std::result::Result<Shard, String> {
        let (i, n) = text.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
        let index: u64 = i
            .trim()
            .parse()
            .map_err(|_| format!("shard index {i:?} is not a number"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("shard count {n:?} is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= I < N"));
        }
        Ok(Shard { index, count })
    }

    /// `--shard`: `I/N`, or `none` (no slice, whatever the environment says: the workers of an
    /// array or a Job share the inputs through claims instead).
    pub fn parse_flag(text: &str) -> std::result::Result<Option<Shard>, String> {
        if text.trim() == NO_SHARDS {
            return Ok(None);
        }
        Shard::parse(text).map(Some)
    }

    /// From the scheduler's environment: Kubernetes Indexed Jobs (`JOB_COMPLETION_INDEX`, with
    /// the count in `FRAMEPIPE_SHARDS`) or Slurm job arrays; none when `FRAMEPIPE_SHARDS=none`.
    pub fn from_env() -> std::result::Result<Option<Shard>, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if var("FRAMEPIPE_SHARDS").is_some_and(|v| v.trim() == NO_SHARDS) {
            return Ok(None);
        }
        if let Some(i) = var("JOB_COMPLETION_INDEX") {
            let n = var("FRAMEPIPE_SHARDS").ok_or(
                "JOB_COMPLETION_INDEX is set: also set FRAMEPIPE_SHARDS to the Job's completions",
            )?;
            return Shard::parse(&format!("{i}/{n}")).map(Some);
        }
        if let Some(id) = var("SLURM_ARRAY_TASK_ID") {
            return Shard::from_slurm(&SlurmArray {
                id,
                min: var("SLURM_ARRAY_TASK_MIN"),
                max: var("SLURM_ARRAY_TASK_MAX"),
                count: var("SLURM_ARRAY_TASK_COUNT"),
                shards: var("FRAMEPIPE_SHARDS"),
            })
            .map(Some);
        }
        Ok(None)
    }

    /// A Slurm array task's shard: the array index is the shard index. The count is
    /// `FRAMEPIPE_SHARDS` when set, else the array's size when the array is the whole `0..N-1`;
    /// anything else (one index resubmitted, a 1-based or stepped array) is refused rather than
    /// sliced another way, since a lone resubmitted index looks like an array of one.
    fn from_slurm(a: &SlurmArray) -> std::result::Result<Shard, String> {
        let number = |name: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{name} {v:?} is not a number"))
        };
        let index = number("SLURM_ARRAY_TASK_ID", &a.id)?;
        let count = match &a.shards {
            Some(n) => number("FRAMEPIPE_SHARDS", n)?,
            None => {
                let whole = |v: &Option<String>| v.as_deref().and_then(|v| v.parse::<u64>().ok());
                match (whole(&a.min), whole(&a.max), whole(&a.count)) {
                    (Some(0), Some(max), Some(count)) if count == max + 1 => count,
                    (min, max, count) => {
                        return Err(format!(
                            "Slurm array {}-{} ({} tasks) is not 0..N-1: set FRAMEPIPE_SHARDS to \
                             the original array's size (array indices are shard indices), or \
                             pass --shard I/N",
                            min.map_or("?".into(), |v| v.to_string()),
                            max.map_or("?".into(), |v| v.to_string()),
                            count.map_or("?".into(), |v| v.to_string()),
                        ))
                    }
                }
            }
        };
        Shard::parse(&format!("{index}/{count}"))
    }

    /// Whether `id` belongs to this shard (stable across machines and runs).
    pub fn takes(&self, id: &str) -> bool {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(id.as_bytes());
        let h = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        h % self.count == self.index
    }

    fn suffix(&self) -> String {
        format!(".shard-{}-of-{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_ids() {
        let ids: Vec<String> = (0..1000).map(|i| format!("videos/{i}.mp4")).collect();
        let shards: Vec<Shard> = (0..4).map(|i| Shard { index: i, count: 4 }).collect();
        for id in &ids {
            assert_eq!(shards.iter().filter(|s| s.takes(id)).count(), 1);
        }
        let first = ids.iter().filter(|id| shards[0].takes(id)).count();
        assert!((150..350).contains(&first), "roughly even: {first}");
        assert!(Shard::parse("4/4").is_err() && Shard::parse("x").is_err());
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(Shard::parse_flag("none"), Ok(None));
        assert_eq!(
            Shard::parse_flag("1/3"),
            Ok(Some(Shard { index: 1, count: 3 }))
        );
    }

    #[test]
    fn slurm_array_index_is_the_shard_index() {
        let array =
            |id: &str, min: &str, max: &str, count: &str, shards: Option<&str>| SlurmArray {
                id: id.into(),
                min: Some(min.into()),
                max: Some(max.into()),
                count: Some(count.into()),
                shards: shards.map(String::from),
            };
        let shard = |a| Shard::from_slurm(&a);
        assert_eq!(
            shard(array("3", "0", "7", "8", None)),
            Ok(Shard { index: 3, count: 8 })
        );
        // One index resubmitted: an array of one, unless told the original size.
        assert!(shard(array("3", "3", "3", "1", None))
            .unwrap_err()
            .contains("FRAMEPIPE_SHARDS"));
        assert_eq!(
            shard(array("3", "3", "3", "1", Some("8"))),
            Ok(Shard { index: 3, count: 8 })
        );
        // Stepped and 1-based arrays do not cover 0..N-1.
        assert!(shard(array("4", "0", "6", "4", None)).is_err());
        assert!(shard(array("1", "1", "8", "8", None)).is_err());
        assert!(shard(array("8", "0", "7", "8", Some("8"))).is_err());
    }

    #[test]
    fn relative_paths_are_safe_and_distinct() {
        assert_eq!(
            relative_for(Path::new("/data/a/b.mp4"), None),
            PathBuf::from("data/a/b")
        );
        assert_eq!(
            relative_for(Path::new("../x.mp4"), None),
            PathBuf::from("_up/x")
        );
        assert_eq!(
            relative_for(Path::new("/m/a/b.mp4"), Some(Path::new("/m"))),
            PathBuf::from("a/b")
        );
        let mut items = vec![
            Item {
                id: "a".into(),
                input: "d/clip.mp4".into(),
                relative: "d/clip".into(),
            },
            Item {
                id: "b".into(),
                input: "d/clip.mkv".into(),
                relative: "d/clip".into(),
            },
        ];
        disambiguate(&mut items);
        assert_eq!(items[0].relative, PathBuf::from("d/clip_mp4"));
        assert_eq!(items[1].relative, PathBuf::from("d/clip_mkv"));
    }
}
