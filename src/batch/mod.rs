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
//! - Ctrl-C / SIGTERM: no new inputs are started, running ones finish, the run stays resumable.
pub mod failures;

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::job::{Job, Marker, DONE_MARKER};
use crate::logging::{self, Severity};
use failures::{FailureBook, FailureRecord};

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

    /// From the scheduler's environment: Kubernetes Indexed Jobs (`JOB_COMPLETION_INDEX`, with
    /// the count in `FRAMEPIPE_SHARDS`) or Slurm job arrays.
    pub fn from_env() -> std::result::Result<Option<Shard>, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
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

pub struct Options {
    pub jobs: usize,
    pub shard: Option<Shard>,
    pub retries: u32,
    pub force: bool,
    pub redo_stale: bool,
    pub show_progress: bool,
}

/// A shard's (or a whole unsharded run's) account, written as `summary[.shard-I-of-N].json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub inputs: u64,
    pub done: u64,
    pub skipped_done: u64,
    pub stale_skipped: u64,
    pub failed: u64,
    pub not_started: u64,
    pub frames: u64,
    pub wall_seconds: f64,
    pub frames_per_second: f64,
    pub shards: Vec<String>,
}

enum State {
    Done,
    Stale(Marker),
    Todo,
}

fn state(final_dir: &Path, config_hash: &str) -> State {
    let marker = std::fs::read(final_dir.join(DONE_MARKER))
        .ok()
        .and_then(|b| serde_json::from_slice::<Marker>(&b).ok());
    match marker {
        Some(m) if m.config_hash == config_hash => State::Done,
        Some(m) => State::Stale(m),
        None => State::Todo,
    }
}

fn error_chain(e: &Error) -> Vec<String> {
    let mut chain = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    chain
}

/// Runs the batch; returns its summary (also written to OUT). `stop` is raised by Ctrl-C/SIGTERM.
/// Worker `w` processes its inputs with `jobs[w % jobs.len()]` (one job per
/// device when several are given).
pub fn run(jobs: &[Job], items: &[Item], opts: &Options, stop: Arc<AtomicBool>) -> Result<Summary> {
    let job = &jobs[0];
    let started = Instant::now();
    let config_hash = job.config.hash();
    let mine: Vec<&Item> = items
        .iter()
        .filter(|i| opts.shard.is_none_or(|s| s.takes(&i.id)))
        .collect();
    let mut todo = Vec::new();
    let mut summary = Summary {
        inputs: mine.len() as u64,
        ..Summary::default()
    };
    let book = FailureBook::open(job.out_dir, opts.shard)?;
    for item in &mine {
        let final_dir = job.out_dir.join(&item.relative);
        // A crash mid-input leaves only `<name>.partial/`: never a result, always safe to drop
        // (inputs still to do recreate it anyway).
        let partial = crate::job::partial_path(&final_dir);
        if partial.exists() {
            let _ = std::fs::remove_dir_all(&partial);
        }
        match state(&final_dir, &config_hash) {
            State::Done if !opts.force => {
                summary.skipped_done += 1;
                // Done by another route since it failed (`run`, a shard layout of another N).
                book.succeeded(&item.id)?;
            }
            State::Stale(m) if !(opts.force || opts.redo_stale) => {
                summary.stale_skipped += 1;
                logging::say(
                    Severity::Warning,
                    Some(&item.input.display().to_string()),
                    &format!(
                        "stale: {} was made with config {} (now {}); rerun with --redo-stale to redo it",
                        final_dir.display(),
                        m.config_hash,
                        config_hash
                    ),
                    &[],
                );
            }
            _ => todo.push(*item),
        }
    }
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let frames = std::sync::atomic::AtomicU64::new(0);
    let bar = progress_bar(opts.show_progress, todo.len());
    let last_log = Mutex::new(Instant::now());
    let shard_name = opts.shard.map(|s| format!("{}/{}", s.index, s.count));
    std::thread::scope(|scope| {
        for worker in 0..opts.jobs.max(1).min(todo.len().max(1)) {
            let job = &jobs[worker % jobs.len()];
            let (next, done, failed, frames, book, bar, last_log, todo, stop) = (
                &next, &done, &failed, &frames, &book, &bar, &last_log, &todo, &stop,
            );
            let shard_name = &shard_name;
            scope.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = todo.get(i) else { break };
                bar.set_message(item.id.clone());
                let mut errors = Vec::new();
                let mut attempts = 0;
                let outcome = loop {
                    attempts += 1;
                    match job.process_into(&item.input, &item.relative) {
                        Ok(r) => break Some(r),
                        Err(e) => {
                            errors.push(error_chain(&e).join(": "));
                            // Inputs that are simply not videos fail the same way every time.
                            let permanent = matches!(e, Error::Input { .. } | Error::Config { .. });
                            if permanent || attempts > opts.retries {
                                break None;
                            }
                        }
                    }
                };
                let recorded = match outcome {
                    Some(r) => {
                        done.fetch_add(1, Ordering::Relaxed);
                        frames.fetch_add(r.report.output.frames, Ordering::Relaxed);
                        book.succeeded(&item.id)
                    }
                    None => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let input = item.input.display().to_string();
                        logging::say(
                            Severity::Error,
                            Some(&input),
                            errors.last().map(String::as_str).unwrap_or("failed"),
                            &[],
                        );
                        book.failed(FailureRecord {
                            id: item.id.clone(),
                            input,
                            errors,
                            attempts,
                            shard: shard_name.clone(),
                        })
                    }
                };
                if let Err(e) = recorded {
                    logging::error(Some(&item.input.display().to_string()), &e);
                }
                bar.inc(1);
                if bar.is_hidden() {
                    let mut last = last_log.lock().expect("no panic while holding it");
                    if last.elapsed().as_secs_f64() >= 5.0 {
                        *last = Instant::now();
                        logging::say(
                            Severity::Info,
                            None,
                            &format!(
                                "batch: {}/{} processed ({} failed), {:.1} s",
                                done.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed),
                                todo.len(),
                                failed.load(Ordering::Relaxed),
                                started.elapsed().as_secs_f64()
                            ),
                            &[],
                        );
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    summary.done = done.into_inner() as u64;
    summary.failed = failed.into_inner() as u64;
    summary.not_started = (todo.len() as u64).saturating_sub(summary.done + summary.failed);
    summary.frames = frames.into_inner();
    summary.wall_seconds = started.elapsed().as_secs_f64();
    summary.frames_per_second = summary.frames as f64 / summary.wall_seconds.max(1e-9);
    summary.shards = shard_name.into_iter().collect();
    let name = format!(
        "summary{}.json",
        opts.shard.map(|s| s.suffix()).unwrap_or_default()
    );
    let path = job.out_dir.join(name);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&summary).expect("summary serializes"),
    )
    .map_err(|e| Error::io(&path, "writing the batch summary", e))?;
    Ok(summary)
}

fn progress_bar(show: bool, len: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !show || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "batch [{bar:30}] {pos}/{len} inputs, {elapsed} elapsed, eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Merges the per-shard summaries in OUT into `OUT/summary.json`, and every shard's failures
/// into `OUT/failures.jsonl`.
pub fn merge_summaries(out: &Path) -> Result<Summary> {
    let mut total = Summary::default();
    let mut found = 0;
    let entries =
        std::fs::read_dir(out).map_err(|e| Error::io(out, "reading the batch folder", e))?;
    let mut wall: f64 = 0.0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("summary.shard-") && name.ends_with(".json")) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())
            .map_err(|e| Error::io(entry.path(), "reading a summary", e))?;
        let s: Summary =
            serde_json::from_str(&text).map_err(|e| Error::config(entry.path(), e.to_string()))?;
        found += 1;
        total.inputs += s.inputs;
        total.done += s.done;
        total.skipped_done += s.skipped_done;
        total.stale_skipped += s.stale_skipped;
        total.failed += s.failed;
        total.not_started += s.not_started;
        total.frames += s.frames;
        wall = wall.max(s.wall_seconds);
        total.shards.extend(s.shards);
    }
    if found == 0 {
        return Err(Error::input(
            out,
            "no summary.shard-*.json here: run `framepipe batch --shard I/N` first",
        ));
    }
    total.shards.sort();
    failures::merge(out)?;
    total.wall_seconds = wall;
    total.frames_per_second = total.frames as f64 / wall.max(1e-9);
    let path = out.join("summary.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&total).expect("summary serializes"),
    )
    .map_err(|e| Error::io(&path, "writing the merged summary", e))?;
    Ok(total)
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
