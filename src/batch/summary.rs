//! The batch's accounts: one per worker process, and their merges.
//!
//! Every `batch` process writes its own account, `OUT/.framepipe/summaries/<group>.<host>-<pid>-
//! <ms>.json` (`group`: `all`, or `shard-I-of-N`), with its start and end on the file system's
//! clock (one clock for every node sharing `OUT`). Workers of one group whose runs overlap in
//! time form a *session* (several workers sharing `OUT` through claims); a run after them starts
//! a new one (a resume). The file users read, `summary.json` or `summary.shard-I-of-N.json`, is
//! the merge of the writer's session, rewritten by each worker as it ends, so the last one to end
//! leaves the whole session's account; `batch-summary` recomputes every group's latest session
//! from the accounts and adds the groups up.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::failures;
use super::Shard;
use crate::error::{Error, Result};

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A worker's (or a merged) account of a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub inputs: u64,
    pub done: u64,
    /// Done before this run looked at them (in a session: before its first worker started).
    pub skipped_done: u64,
    pub stale_skipped: u64,
    pub failed: u64,
    pub not_started: u64,
    pub frames: u64,
    pub wall_seconds: f64,
    pub frames_per_second: f64,
    pub shards: Vec<String>,
    /// Inputs another worker sharing `OUT` finished while this one ran (one worker's account).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub done_elsewhere: u64,
    /// Inputs another worker tried and failed while this one ran (one worker's account).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_elsewhere: u64,
    /// Inputs still claimed by a live worker when this one ended (one worker's account).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub left_to_others: u64,
    /// Inputs taken over from a worker that was gone (lease run out).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub taken_over: u64,
    /// The workers (`host:pid`) this account covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<String>,
}

/// One worker's account as stored, with its run's span.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Account {
    /// `all` or `I/N`.
    group: String,
    /// File-system time (seconds since the epoch) the worker started and ended.
    started: f64,
    ended: f64,
    summary: Summary,
}

fn accounts_dir(out: &Path) -> PathBuf {
    out.join(".framepipe").join("summaries")
}

fn group_of(shard: Option<Shard>) -> String {
    shard.map_or("all".into(), |s| format!("{}/{}", s.index, s.count))
}

/// The file users read for a group: `summary.json` or `summary.shard-I-of-N.json`.
pub fn summary_path(out: &Path, shard: Option<Shard>) -> PathBuf {
    out.join(format!(
        "summary{}.json",
        shard.map(|s| s.suffix()).unwrap_or_default()
    ))
}

fn seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn write_json(path: &Path, value: &impl Serialize, what: &str) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).expect("a summary serializes");
    failures::write_atomically(path, &bytes).map_err(|e| Error::io(path, what, e))
}

/// Stores this worker's account and rewrites its group's summary file with its session's merge;
/// returns that merge.
pub fn record(
    out: &Path,
    shard: Option<Shard>,
    worker: &str,
    started: SystemTime,
    ended: SystemTime,
    summary: &Summary,
) -> Result<Summary> {
    let dir = accounts_dir(out);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(&dir, "creating the summaries folder", e))?;
    let account = Account {
        group: group_of(shard),
        started: seconds(started),
        ended: seconds(ended).max(seconds(started)),
        summary: summary.clone(),
    };
    let file = format!(
        "{}.{}-{}.json",
        shard.map_or("all".into(), |s| s
            .suffix()
            .trim_start_matches('.')
            .to_string()),
        worker.replace([':', '/', '\\'], "-"),
        (account.started * 1000.0) as u64
    );
    write_json(&dir.join(&file), &account, "writing the worker's summary")?;
    // Write, then look again: a peer that stored its account meanwhile may have written its
    // merge before ours, so ours is redone with it. The last writer always saw every account
    // stored before its write, so the file ends whole (bounded: each round needs a new peer).
    let mut merged = Summary::default();
    let mut previous: Option<Vec<String>> = None;
    for _ in 0..8 {
        let session = session_of(out, &account)?;
        let workers: Vec<String> = session
            .iter()
            .flat_map(|a| a.summary.workers.clone())
            .collect();
        if previous.as_ref() == Some(&workers) {
            break;
        }
        merged = merge_session(&session);
        write_json(
            &summary_path(out, shard),
            &merged,
            "writing the batch summary",
        )?;
        previous = Some(workers);
    }
    Ok(merged)
}

/// The stored accounts of `account`'s session (itself included).
fn session_of(out: &Path, account: &Account) -> Result<Vec<Account>> {
    let group: Vec<Account> = load(out)?
        .into_iter()
        .filter(|a| a.group == account.group)
        .collect();
    Ok(sessions(group)
        .into_iter()
        .find(|s| {
            // Its own account, read back: the same worker, started at the same time. Not `==`
            // on the time: serde_json's default float parsing may land one ulp off the value
            // it wrote, which left a worker alone in a "session" of its own now and then.
            s.iter().any(|a| {
                (a.started - account.started).abs() < 1e-3
                    && a.summary.workers == account.summary.workers
            })
        })
        .unwrap_or_else(|| vec![account.clone()]))
}

/// Every stored account (an unreadable one is reported and left out).
fn load(out: &Path) -> Result<Vec<Account>> {
    let dir = accounts_dir(out);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, "reading the worker summaries", e)),
    };
    let mut accounts = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue; // a temporary file a killed process left behind
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Account>(&b).map_err(|e| e.to_string()))
        {
            Ok(a) => accounts.push(a),
            Err(e) => tracing::warn!(summary = %path.display(), "unreadable worker summary: {e}"),
        }
    }
    Ok(accounts)
}

/// Accounts of one group split into sessions (runs overlapping in time), oldest first.
fn sessions(mut group: Vec<Account>) -> Vec<Vec<Account>> {
    group.sort_by(|a, b| a.started.total_cmp(&b.started));
    let mut sessions: Vec<Vec<Account>> = Vec::new();
    let mut end = f64::NEG_INFINITY;
    for a in group {
        match sessions.last_mut() {
            Some(s) if a.started <= end => s.push(a.clone()),
            _ => sessions.push(vec![a.clone()]),
        }
        end = end.max(a.ended);
    }
    sessions
}

/// One session's account: its workers' work added up, the inputs counted once.
fn merge_session(session: &[Account]) -> Summary {
    if let [only] = session {
        return only.summary.clone();
    }
    let mut m = Summary::default();
    let (mut start, mut end) = (f64::INFINITY, f64::NEG_INFINITY);
    m.skipped_done = u64::MAX;
    for a in session {
        let s = &a.summary;
        m.inputs = m.inputs.max(s.inputs);
        m.done += s.done;
        m.failed += s.failed;
        m.frames += s.frames;
        m.taken_over += s.taken_over;
        m.stale_skipped = m.stale_skipped.max(s.stale_skipped);
        // The earliest look at what was done before; later workers also count their peers' work.
        m.skipped_done = m.skipped_done.min(s.skipped_done);
        m.workers.extend(s.workers.iter().cloned());
        for shard in &s.shards {
            if !m.shards.contains(shard) {
                m.shards.push(shard.clone());
            }
        }
        start = start.min(a.started);
        end = end.max(a.ended);
    }
    m.not_started = m
        .inputs
        .saturating_sub(m.done + m.failed + m.skipped_done + m.stale_skipped);
    m.wall_seconds = (end - start).max(0.0);
    m.frames_per_second = m.frames as f64 / m.wall_seconds.max(1e-9);
    m.workers.sort();
    m
}

/// `batch-summary`: every group's latest session (the groups of the kind, sharded or not, of
/// the latest run; shard summaries without accounts, from older versions, as they are) added
/// up into `OUT/summary.json`, and every failure record into `OUT/failures.jsonl`.
pub fn merge_summaries(out: &Path) -> Result<Summary> {
    let accounts = load(out)?;
    let sharded = accounts
        .iter()
        .max_by(|a, b| a.ended.total_cmp(&b.ended))
        .is_none_or(|latest| latest.group != "all");
    let mut groups: BTreeMap<String, Summary> = BTreeMap::new();
    let mut by_group: BTreeMap<String, Vec<Account>> = BTreeMap::new();
    for a in accounts {
        if (a.group != "all") == sharded {
            by_group.entry(a.group.clone()).or_default().push(a);
        }
    }
    for (group, list) in by_group {
        let latest = sessions(list).pop().expect("a group has an account");
        groups.insert(group, merge_session(&latest));
    }
    if sharded {
        let entries =
            std::fs::read_dir(out).map_err(|e| Error::io(out, "reading the batch folder", e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("summary.shard-") && name.ends_with(".json")) {
                continue;
            }
            let text = std::fs::read_to_string(entry.path())
                .map_err(|e| Error::io(entry.path(), "reading a summary", e))?;
            let s: Summary = serde_json::from_str(&text)
                .map_err(|e| Error::config(entry.path(), e.to_string()))?;
            let group = s.shards.first().cloned().unwrap_or(name);
            groups.entry(group).or_insert(s);
        }
    }
    if groups.is_empty() {
        return Err(Error::input(
            out,
            "no batch summaries here: run `framepipe batch` (with or without --shard I/N) first",
        ));
    }
    let mut total = Summary::default();
    let mut wall: f64 = 0.0;
    for s in groups.into_values() {
        total.inputs += s.inputs;
        total.done += s.done;
        total.skipped_done += s.skipped_done;
        total.stale_skipped += s.stale_skipped;
        total.failed += s.failed;
        total.not_started += s.not_started;
        total.frames += s.frames;
        total.taken_over += s.taken_over;
        wall = wall.max(s.wall_seconds);
        total.shards.extend(s.shards);
        total.workers.extend(s.workers);
    }
    total.shards.sort();
    total.workers.sort();
    failures::merge(out)?;
    total.wall_seconds = wall;
    total.frames_per_second = total.frames as f64 / wall.max(1e-9);
    write_json(
        &out.join("summary.json"),
        &total,
        "writing the merged summary",
    )?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(group: &str, started: f64, ended: f64, done: u64, skipped: u64) -> Account {
        Account {
            group: group.into(),
            started,
            ended,
            summary: Summary {
                inputs: 12,
                done,
                skipped_done: skipped,
                not_started: 0,
                frames: done * 3,
                wall_seconds: ended - started,
                workers: vec![format!("h:{started}")],
                ..Summary::default()
            },
        }
    }

    /// A worker finds its own account again although its start time does not survive the
    /// JSON round trip bit for bit (about one time in eight with serde_json's default parser).
    #[test]
    fn a_worker_finds_its_own_account_whatever_the_float_parser_does() {
        let mut t = 1.765e9 + 0.123_456_789;
        while serde_json::from_str::<f64>(&serde_json::to_string(&t).unwrap()).unwrap() == t {
            t += 0.000_013_7;
        }
        let out = tempfile::tempdir().unwrap();
        let at = |s: f64| UNIX_EPOCH + std::time::Duration::from_secs_f64(s);
        let mine = |w: &str, done| Summary {
            inputs: 4,
            done,
            workers: vec![w.into()],
            ..Summary::default()
        };
        record(out.path(), None, "h:1", at(t), at(t + 5.0), &mine("h:1", 2)).unwrap();
        let merged = record(out.path(), None, "h:2", at(t), at(t + 6.0), &mine("h:2", 2)).unwrap();
        assert_eq!(merged.workers, ["h:1", "h:2"]);
        assert_eq!(merged.done, 4);
    }

    #[test]
    fn overlapping_workers_form_a_session_and_merge() {
        let list = vec![
            account("all", 0.0, 10.0, 5, 0),
            account("all", 1.0, 12.0, 7, 2),
            // A resume afterwards: a session of its own.
            account("all", 20.0, 21.0, 0, 12),
        ];
        let s = sessions(list);
        assert_eq!(s.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
        let m = merge_session(&s[0]);
        assert_eq!(
            (m.inputs, m.done, m.skipped_done, m.not_started, m.frames),
            (12, 12, 0, 0, 36)
        );
        assert_eq!(m.wall_seconds, 12.0);
        assert_eq!(m.workers.len(), 2);
        assert_eq!(merge_session(&s[1]).skipped_done, 12);
    }
}
