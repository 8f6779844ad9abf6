//! The batch's failures as state, not as a log of attempts.
//!
//! Each input whose latest attempt failed has one record, `OUT/.framepipe/failures/<key>.json`
//! (`key` a hash of the input's id), written to a temporary name and renamed, and removed when
//! the input later succeeds. Records of different inputs are different files, so shard
//! processes sharing `OUT` never lose each other's lines, and a SIGKILL leaves every record
//! whole. The `failures*.jsonl` files users read are views of those records, rewritten the same
//! atomic way after every change: `failures.jsonl` for an unsharded run and for `batch-summary`
//! (all records), `failures.shard-I-of-N.jsonl` for a shard (the records of its inputs).
//! Workers sharing `OUT` (claims, see [`super::claims`]) record each other's inputs, so a view
//! is rewritten from the records on disk, not from what one process did.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::Shard;
use crate::error::{Error, Result};

/// One input whose latest attempt failed: one line of `failures.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The input's batch id (relative to its folder, the manifest's `id`, or the path as given).
    pub id: String,
    pub input: String,
    /// The latest run's error chain per attempt, each `message: cause: ...`.
    pub errors: Vec<String>,
    /// Attempts across all runs since the input last succeeded (or ever).
    pub attempts: u32,
    /// The shard (`I/N`) that made the latest attempt, if sharded.
    pub shard: Option<String>,
}

/// The folder holding the records.
fn records_dir(out: &Path) -> PathBuf {
    out.join(".framepipe").join("failures")
}

/// A record's file name: a hash of the id (ids are paths or free text, not file names).
fn record_name(id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.json")
}

/// Writes `bytes` to `path` through a unique temporary name and a rename: readers (and a rerun
/// after SIGKILL) see the old file or the new one, never a torn one.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Every record under `OUT` (a record that cannot be read is reported and left out).
fn load_all(out: &Path) -> Result<BTreeMap<String, FailureRecord>> {
    let dir = records_dir(out);
    let mut records = BTreeMap::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(records),
        Err(e) => return Err(Error::io(&dir, "reading the failure records", e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue; // a temporary file a killed process left behind
        }
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<FailureRecord>(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(r) => {
                records.insert(r.id.clone(), r);
            }
            Err(e) => tracing::warn!(record = %path.display(), "unreadable failure record: {e}"),
        }
    }
    Ok(records)
}

/// Rewrites a view: one line per record, by id; removed when there is none.
fn write_view(path: &Path, records: &BTreeMap<String, FailureRecord>) -> Result<()> {
    if records.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(path, "removing the empty failure list", e))
            }
            _ => Ok(()),
        };
    }
    let mut text = String::new();
    for record in records.values() {
        text.push_str(&serde_json::to_string(record).expect("a failure record serializes"));
        text.push('\n');
    }
    write_atomically(path, text.as_bytes()).map_err(|e| Error::io(path, "writing failures", e))
}

/// The view a run writes: `failures.jsonl`, or the shard's own.
pub fn view_path(out: &Path, shard: Option<Shard>) -> PathBuf {
    out.join(match shard {
        Some(s) => format!("failures{}.jsonl", s.suffix()),
        None => "failures.jsonl".to_string(),
    })
}

/// A running batch's failures: the records of its inputs, on disk (shared with the other
/// workers of `OUT`).
pub struct FailureBook {
    out: PathBuf,
    shard: Option<Shard>,
    view: PathBuf,
    /// One writer of this process at a time (records and view).
    lock: Mutex<()>,
}

impl FailureBook {
    /// Writes the view of the records this run shows (all of them, or the shard's).
    pub fn open(out: &Path, shard: Option<Shard>) -> Result<FailureBook> {
        let book = FailureBook {
            out: out.to_path_buf(),
            shard,
            view: view_path(out, shard),
            lock: Mutex::new(()),
        };
        book.rewrite_view()?;
        Ok(book)
    }

    fn rewrite_view(&self) -> Result<()> {
        let mine: BTreeMap<_, _> = load_all(&self.out)?
            .into_iter()
            .filter(|(id, _)| self.shard.is_none_or(|s| s.takes(id)))
            .collect();
        write_view(&self.view, &mine)
    }

    /// Attempts recorded for `id` so far (0 when it has not failed).
    pub fn attempts_before(&self, id: &str) -> u32 {
        read_record(&self.out, id).map_or(0, |r| r.attempts)
    }

    /// Records the input's latest failure (`record.attempts` counts this run's attempts only).
    pub fn failed(&self, mut record: FailureRecord) -> Result<()> {
        let _guard = self.lock();
        record.attempts += self.attempts_before(&record.id);
        let dir = records_dir(&self.out);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(&dir, "creating the failure records folder", e))?;
        let path = dir.join(record_name(&record.id));
        let bytes = serde_json::to_vec(&record).expect("a failure record serializes");
        write_atomically(&path, &bytes).map_err(|e| Error::io(&path, "recording a failure", e))?;
        self.rewrite_view()
    }

    /// The input succeeded: its record (if any) goes.
    pub fn succeeded(&self, id: &str) -> Result<()> {
        let _guard = self.lock();
        let path = records_dir(&self.out).join(record_name(id));
        match std::fs::remove_file(&path) {
            Ok(()) => self.rewrite_view(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path, "removing a failure record", e)),
        }
    }

    /// Whether `id`'s latest failure was recorded at `since` or later (file-system time, see
    /// [`super::claims::ClaimDir::fs_now`]): another worker of this run tried it and failed.
    pub fn failed_since(&self, id: &str, since: std::time::SystemTime) -> bool {
        std::fs::metadata(records_dir(&self.out).join(record_name(id)))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock
            .lock()
            .expect("no panic while holding the failure book")
    }
}

/// The record of `id`, if it has one that can be read.
fn read_record(out: &Path, id: &str) -> Option<FailureRecord> {
    let bytes = std::fs::read(records_dir(out).join(record_name(id))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `batch-summary`: `OUT/failures.jsonl` from every shard's records; returns how many.
pub fn merge(out: &Path) -> Result<usize> {
    let all = load_all(out)?;
    write_view(&view_path(out, None), &all)?;
    Ok(all.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, attempts: u32) -> FailureRecord {
        FailureRecord {
            id: id.into(),
            input: format!("/in/{id}"),
            errors: vec!["bad".into()],
            attempts,
            shard: None,
        }
    }

    fn lines(path: &Path) -> Vec<FailureRecord> {
        std::fs::read_to_string(path)
            .map(|t| {
                t.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn attempts_add_up_across_runs_and_success_clears() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        for _ in 0..3 {
            let book = FailureBook::open(out, None).unwrap();
            book.failed(record("a.mp4", 1)).unwrap();
            book.failed(record("b.mp4", 2)).unwrap();
        }
        let view = lines(&out.join("failures.jsonl"));
        assert_eq!(view.len(), 2);
        assert_eq!((view[0].attempts, view[1].attempts), (3, 6));
        let book = FailureBook::open(out, None).unwrap();
        book.succeeded("a.mp4").unwrap();
        assert_eq!(lines(&out.join("failures.jsonl")), vec![record("b.mp4", 6)]);
        book.succeeded("b.mp4").unwrap();
        assert!(!out.join("failures.jsonl").exists());
    }

    #[test]
    fn shards_keep_their_own_views_and_merge_sees_all() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let ids: Vec<String> = (0..20).map(|i| format!("v{i}.mp4")).collect();
        let shards = [Shard { index: 0, count: 2 }, Shard { index: 1, count: 2 }];
        let books: Vec<_> = shards
            .iter()
            .map(|s| FailureBook::open(out, Some(*s)).unwrap())
            .collect();
        for id in &ids {
            let s = usize::from(shards[1].takes(id));
            books[s].failed(record(id, 1)).unwrap();
        }
        let view0 = lines(&out.join("failures.shard-0-of-2.jsonl"));
        let view1 = lines(&out.join("failures.shard-1-of-2.jsonl"));
        assert_eq!(view0.len() + view1.len(), 20);
        assert!(view0.iter().all(|r| shards[0].takes(&r.id)));
        assert_eq!(merge(out).unwrap(), 20);
        assert_eq!(lines(&out.join("failures.jsonl")).len(), 20);
    }

    #[test]
    fn leftover_temporary_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        FailureBook::open(out, None)
            .unwrap()
            .failed(record("a", 1))
            .unwrap();
        std::fs::write(records_dir(out).join("x.json.tmp-1-0"), b"{\"id\": \"to").unwrap();
        assert_eq!(merge(out).unwrap(), 1);
    }
}
