//! One `batch` process over its inputs: scan what is done, then claim, process and record each
//! remaining input, then wait (bounded) on the inputs other workers hold.
//!
//! Many processes may run this over the same inputs and `OUT` (a Slurm array or a Kubernetes
//! Job without shards, or several on one machine): each input is claimed ([`super::claims`])
//! before it is touched, so each is processed by one of them; an input held by another worker
//! is left to it, and looked at again at the end: done, failed, still held by a live worker
//! (renewing its lease: left to it), or stale (its worker is gone: taken over and redone).
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::claims::{Attempt, ClaimDir, Holder};
use super::failures::{FailureBook, FailureRecord};
use super::summary::{self, Summary};
use super::{Item, Shard};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::logging::{self, Severity};
use crate::output::files::{Marker, DONE_MARKER};

pub struct Options {
    pub jobs: usize,
    pub shard: Option<Shard>,
    pub retries: u32,
    pub force: bool,
    pub redo_stale: bool,
    pub show_progress: bool,
    /// How long a claim holds without renewal (renewed every quarter of it).
    pub claim_lease: Duration,
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

/// Whether `e` comes from a full file system (then every next input would fail the same way).
fn disk_full(e: &Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(libc::ENOSPC) {
                return true;
            }
        }
        if let Some(ffmpeg_next::Error::Other { errno }) = s.downcast_ref::<ffmpeg_next::Error>() {
            if *errno == libc::ENOSPC {
                return true;
            }
        }
        source = s.source();
    }
    // Stage errors carry the cause as text.
    error_chain(e)
        .iter()
        .any(|m| m.contains("No space left on device"))
}

fn io_disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC)
}

/// Counts, shared by the worker threads.
#[derive(Default)]
struct Tally {
    done: AtomicU64,
    failed: AtomicU64,
    frames: AtomicU64,
    done_elsewhere: AtomicU64,
    failed_elsewhere: AtomicU64,
    left_to_others: AtomicU64,
    taken_over: AtomicU64,
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// How a claim attempt ended.
enum Claimed {
    Ours,
    Others,
    Failed,
}

/// Everything the worker threads share.
struct Run<'a> {
    jobs: &'a [Job<'a>],
    opts: &'a Options,
    out: &'a Path,
    config_hash: String,
    claims: &'a ClaimDir,
    book: &'a FailureBook,
    /// File-system time this process started: failures and outputs newer than it are this
    /// session's.
    fs_started: SystemTime,
    tally: Tally,
    stop: &'a AtomicBool,
    /// The output's file system is full: start nothing more.
    halt: AtomicBool,
    bar: indicatif::ProgressBar,
    last_log: Mutex<Instant>,
    started: Instant,
    shard_name: Option<String>,
}

/// Raises its flag when dropped (also on a panic), so the renewal thread always ends.
struct RaiseOnDrop<'a>(&'a AtomicBool);

impl Drop for RaiseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs the batch; returns this process's summary (also stored in OUT, see [`summary`]).
/// `stop` is raised by Ctrl-C/SIGTERM. Worker `w` processes its inputs with
/// `jobs[w % jobs.len()]` (one job per device when several are given).
pub fn run(jobs: &[Job], items: &[Item], opts: &Options, stop: Arc<AtomicBool>) -> Result<Summary> {
    let job = &jobs[0];
    let started = Instant::now();
    let out = job.out_dir;
    let claims = ClaimDir::open(out, opts.claim_lease, Holder::me())
        .map_err(|e| Error::io(out, "creating the claims folder", e))?;
    let fs_started = claims
        .fs_now()
        .map_err(|e| Error::io(out, "writing into the output folder", e))?;
    let config_hash = job.config.hash();
    let mine: Vec<&Item> = items
        .iter()
        .filter(|i| opts.shard.is_none_or(|s| s.takes(&i.id)))
        .collect();
    let mut summary = Summary {
        inputs: mine.len() as u64,
        workers: vec![claims.holder().name()],
        ..Summary::default()
    };
    let book = FailureBook::open(out, opts.shard)?;
    let todo = scan(&mine, out, &config_hash, opts, &claims, &book, &mut summary)?;
    let run = Run {
        jobs,
        opts,
        out,
        config_hash,
        claims: &claims,
        book: &book,
        fs_started,
        tally: Tally::default(),
        stop: &stop,
        halt: AtomicBool::new(false),
        bar: progress_bar(opts.show_progress, todo.len()),
        last_log: Mutex::new(Instant::now()),
        started,
        shard_name: opts.shard.map(|s| format!("{}/{}", s.index, s.count)),
    };
    let renewals_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| claims.renew_until(&renewals_done));
        let _end_renewals = RaiseOnDrop(&renewals_done);
        let held_by_others = run.work_through(&todo);
        run.wait_for_others(held_by_others);
    });
    run.bar.finish_and_clear();
    run.account(&mut summary, todo.len());
    run.record(&summary)?;
    Ok(summary)
}

/// Sorts this process's inputs by what their output folders hold: done ones are skipped (and
/// counted), stale ones skipped with a warning unless asked to redo them; returns the rest.
/// Only a look: an input is only touched (its `.partial/` replaced) once claimed, since
/// another worker may be working on it right now.
fn scan<'i>(
    mine: &[&'i Item],
    out: &Path,
    config_hash: &str,
    opts: &Options,
    claims: &ClaimDir,
    book: &FailureBook,
    summary: &mut Summary,
) -> Result<Vec<&'i Item>> {
    let mut todo = Vec::new();
    for item in mine {
        let final_dir = out.join(&item.relative);
        match state(&final_dir, config_hash) {
            State::Done if !opts.force => {
                summary.skipped_done += 1;
                drop_leftover_partial(claims, item, &final_dir);
                // Done by another route since it failed (`run`, a shard layout of another N).
                book.succeeded(&item.id)?;
            }
            State::Stale(m) if !(opts.force || opts.redo_stale) => {
                summary.stale_skipped += 1;
                warn_stale(item, &final_dir, &m, config_hash);
            }
            _ => todo.push(*item),
        }
    }
    Ok(todo)
}

fn warn_stale(item: &Item, final_dir: &Path, marker: &Marker, config_hash: &str) {
    logging::say(
        Severity::Warning,
        Some(&item.input.display().to_string()),
        &format!(
            "stale: {} was made with config {} (now {}); rerun with --redo-stale to redo it",
            final_dir.display(),
            marker.config_hash,
            config_hash
        ),
        &[],
    );
}

/// A finished input may have a `.partial/` beside it (a crash during a `--force` redo): it goes,
/// but only under the input's claim (a live worker may be redoing it right now).
fn drop_leftover_partial(claims: &ClaimDir, item: &Item, final_dir: &Path) {
    let partial = crate::output::files::partial_path(final_dir);
    if !partial.exists() {
        return;
    }
    let ours = match claims.try_claim(&item.id) {
        Ok(Attempt::Won) => true,
        Ok(Attempt::Stale(old)) => claims.take_over(&item.id, &old).unwrap_or(false),
        _ => false,
    };
    if ours {
        let _ = std::fs::remove_dir_all(&partial);
        claims.release(&item.id);
    }
}

impl Run<'_> {
    /// Fills `summary` with the workers' counts once they have ended; `todo` inputs were left
    /// to them after the scan.
    fn account(&self, summary: &mut Summary, todo: usize) {
        let t = &self.tally;
        summary.done = get(&t.done);
        summary.failed = get(&t.failed);
        summary.done_elsewhere = get(&t.done_elsewhere);
        summary.failed_elsewhere = get(&t.failed_elsewhere);
        summary.left_to_others = get(&t.left_to_others);
        summary.taken_over = get(&t.taken_over);
        summary.not_started = (todo as u64).saturating_sub(
            summary.done
                + summary.failed
                + summary.done_elsewhere
                + summary.failed_elsewhere
                + summary.left_to_others,
        );
        summary.frames = get(&t.frames);
        summary.wall_seconds = self.started.elapsed().as_secs_f64();
        summary.frames_per_second = summary.frames as f64 / summary.wall_seconds.max(1e-9);
        summary.shards = self.shard_name.clone().into_iter().collect();
    }

    /// Stores this process's summary in OUT.
    fn record(&self, summary: &Summary) -> Result<()> {
        let ended = self.claims.fs_now().unwrap_or_else(|_| SystemTime::now());
        let worker = self.claims.holder().name();
        match summary::record(
            self.out,
            self.opts.shard,
            &worker,
            self.fs_started,
            ended,
            summary,
        ) {
            Ok(_) => {}
            // A full disk was already reported; the account on stdout still tells what happened.
            Err(e) if self.halt.load(Ordering::Relaxed) => logging::error(None, &e),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn halted(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.halt.load(Ordering::Relaxed)
    }

    /// Claims and processes `items` with the worker threads; returns those another worker held.
    fn work_through<'i>(&self, items: &[&'i Item]) -> Vec<&'i Item> {
        let next = AtomicUsize::new(0);
        let others = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for worker in 0..self.opts.jobs.max(1).min(items.len().max(1)) {
                let job = &self.jobs[worker % self.jobs.len()];
                let (next, others) = (&next, &others);
                scope.spawn(move || loop {
                    if self.halted() {
                        break;
                    }
                    let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    match self.claim(item) {
                        Claimed::Ours => {
                            self.work(job, item);
                            self.claims.release(&item.id);
                            self.progress();
                        }
                        Claimed::Others => others.lock().expect("no panic holding it").push(*item),
                        Claimed::Failed => self.progress(),
                    }
                });
            }
        });
        others.into_inner().expect("no panic holding it")
    }

    fn claim(&self, item: &Item) -> Claimed {
        let attempt = self.claims.try_claim(&item.id).and_then(|a| match a {
            Attempt::Won => Ok(Claimed::Ours),
            Attempt::Held(_) | Attempt::Unreadable => Ok(Claimed::Others),
            Attempt::Stale(old) => {
                let won = self.claims.take_over(&item.id, &old)?;
                if won {
                    add(&self.tally.taken_over);
                    logging::say(
                        Severity::Warning,
                        Some(&item.input.display().to_string()),
                        &format!(
                            "taking over from {}:{} (claimed {:.0} s ago, lease ran out {:.0} s ago or its process is gone): redoing it",
                            old.host,
                            old.pid,
                            unix_now() - old.started_unix,
                            (unix_now() - old.lease_expires_unix).max(0.0),
                        ),
                        &[],
                    );
                }
                Ok(if won { Claimed::Ours } else { Claimed::Others })
            }
        });
        attempt.unwrap_or_else(|e| {
            let path = self.claims.path(&item.id);
            if io_disk_full(&e) {
                self.halt_for_full_disk();
            }
            let err = Error::io(&path, "claiming the input", e);
            add(&self.tally.failed);
            logging::error(Some(&item.input.display().to_string()), &err);
            Claimed::Failed
        })
    }

    fn halt_for_full_disk(&self) {
        if !self.halt.swap(true, Ordering::Relaxed) {
            logging::say(
                Severity::Error,
                None,
                &format!(
                    "{}: no space left on device: starting no more inputs (free space and rerun: finished inputs are kept)",
                    self.out.display()
                ),
                &[],
            );
        }
    }

    /// Whether `item` was finished by another worker since this one started: done (with
    /// `--force`, redone during this session), or failed in this session.
    fn finished_elsewhere(&self, item: &Item) -> bool {
        let final_dir = self.out.join(&item.relative);
        if let State::Done = state(&final_dir, &self.config_hash) {
            let fresh = std::fs::metadata(final_dir.join(DONE_MARKER))
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= self.fs_started);
            if !self.opts.force || fresh {
                add(&self.tally.done_elsewhere);
                return true;
            }
        }
        if self.book.failed_since(&item.id, self.fs_started) {
            add(&self.tally.failed_elsewhere);
            return true;
        }
        false
    }

    /// Processes a claimed input (retried) and records how it went.
    fn work(&self, job: &Job, item: &Item) {
        // Another worker may have finished it between our scan and our claim.
        if self.finished_elsewhere(item) {
            return;
        }
        self.bar.set_message(item.id.clone());
        tracing::info!(
            worker = %self.claims.holder().name(),
            "batch: start [{}]",
            item.id
        );
        let mut errors = Vec::new();
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            match job.process_into(&item.input, &item.relative) {
                Ok(r) => break Some(r),
                Err(e) => {
                    let full = disk_full(&e);
                    let mut message = error_chain(&e).join(": ");
                    if full {
                        let partial =
                            crate::output::files::partial_path(&self.out.join(&item.relative));
                        message = format!(
                            "no space left on device while writing {}: {message}",
                            partial.display()
                        );
                        self.halt_for_full_disk();
                    }
                    errors.push(message);
                    // Inputs that are simply not videos fail the same way every time; a full
                    // disk stays full.
                    let permanent = full || matches!(e, Error::Input { .. } | Error::Config { .. });
                    if permanent || attempts > self.opts.retries {
                        break None;
                    }
                }
            }
        };
        let recorded = match outcome {
            Some(r) => {
                add(&self.tally.done);
                self.tally
                    .frames
                    .fetch_add(r.report.output.frames, Ordering::Relaxed);
                // One line per input processed (`-v`): how tests count who did what.
                tracing::info!(
                    worker = %self.claims.holder().name(),
                    "batch: done [{}]",
                    item.id
                );
                self.book.succeeded(&item.id)
            }
            None => {
                add(&self.tally.failed);
                let input = item.input.display().to_string();
                logging::say(
                    Severity::Error,
                    Some(&input),
                    errors.last().map(String::as_str).unwrap_or("failed"),
                    &[],
                );
                self.book.failed(FailureRecord {
                    id: item.id.clone(),
                    input,
                    errors,
                    attempts,
                    shard: self.shard_name.clone(),
                })
            }
        };
        if let Err(e) = recorded {
            logging::error(Some(&item.input.display().to_string()), &e);
        }
    }

    fn progress(&self) {
        self.bar.inc(1);
        if !self.bar.is_hidden() {
            return;
        }
        let mut last = self.last_log.lock().expect("no panic while holding it");
        if last.elapsed().as_secs_f64() >= 5.0 {
            *last = Instant::now();
            let t = &self.tally;
            logging::say(
                Severity::Info,
                None,
                &format!(
                    "batch: {} processed ({} failed), {} by other workers, {:.1} s",
                    get(&t.done) + get(&t.failed),
                    get(&t.failed),
                    get(&t.done_elsewhere) + get(&t.failed_elsewhere),
                    self.started.elapsed().as_secs_f64()
                ),
                &[],
            );
        }
    }

    /// The inputs other workers held: re-read their claims until each is finished, taken over
    /// (its worker gone: lease ran out) and processed here, or shown alive (its lease renewed,
    /// or a running process of this host: left to it). Bounded: a live holder renews within a
    /// quarter lease and a dead one's lease runs out within one, and whatever is left after
    /// three leases is left to its holders.
    fn wait_for_others(&self, held: Vec<&Item>) {
        let lease = self.claims.lease();
        // Cheap (a few small reads) and it is what a waiting worker adds to the batch at its end.
        let poll = (lease / 8).clamp(Duration::from_millis(50), Duration::from_millis(250));
        let deadline = Instant::now() + lease * 3 + Duration::from_secs(1);
        let mut watching: Vec<Watch> = held.into_iter().map(Watch::new).collect();
        while !watching.is_empty() {
            if self.halted() {
                return; // counted as not started
            }
            let mut ready = Vec::new();
            watching.retain_mut(|w| self.look(w, lease, &mut ready));
            if !ready.is_empty() {
                watching.extend(self.work_through(&ready).into_iter().map(Watch::new));
            }
            if watching.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                self.leave_to_holders(watching.len(), lease);
                return;
            }
            std::thread::sleep(poll);
        }
    }

    /// One look at a watched input's claim: whether to keep watching it. An input to process
    /// here (released unfinished, or its holder gone) goes to `ready`.
    fn look<'i>(&self, w: &mut Watch<'i>, lease: Duration, ready: &mut Vec<&'i Item>) -> bool {
        match self.claims.read(&w.item.id) {
            Ok(None) => {
                if self.finished_elsewhere(w.item) {
                    self.progress();
                } else {
                    ready.push(w.item); // released unfinished (its worker stopped)
                }
                false
            }
            Ok(Some(claim)) if self.claims.is_stale(&claim) => {
                ready.push(w.item);
                false
            }
            // A live process of this host: no need to see it renew.
            Ok(Some(claim)) if self.claims.is_live_here(&claim) => {
                add(&self.tally.left_to_others);
                self.progress();
                false
            }
            Ok(Some(claim)) => match &w.seen {
                Some((token, expiry)) if *token == claim.token => {
                    if claim.lease_expires_unix > *expiry {
                        add(&self.tally.left_to_others);
                        tracing::info!(input = %w.item.input.display(), holder = %format!("{}:{}", claim.host, claim.pid), "left to its live holder");
                        self.progress();
                        return false;
                    }
                    true
                }
                _ => {
                    w.seen = Some((claim.token, claim.lease_expires_unix));
                    true
                }
            },
            Err(_) if w.since.elapsed() > lease => {
                add(&self.tally.left_to_others);
                false
            }
            Err(_) => true,
        }
    }

    /// The wait's bound is reached: the `still` inputs yet claimed are left to their holders.
    fn leave_to_holders(&self, still: usize, lease: Duration) {
        logging::say(
            Severity::Warning,
            None,
            &format!(
                "{} inputs still claimed by other workers after {:.0} s: left to them",
                still,
                (lease * 3).as_secs_f64()
            ),
            &[],
        );
        for _ in 0..still {
            add(&self.tally.left_to_others);
        }
    }
}

/// An input another worker held, as [`Run::wait_for_others`] watches it.
struct Watch<'i> {
    item: &'i Item,
    /// The claim as first seen: token and lease expiry.
    seen: Option<(String, f64)>,
    since: Instant,
}

impl<'i> Watch<'i> {
    fn new(item: &'i Item) -> Watch<'i> {
        Watch {
            item,
            seen: None,
            since: Instant::now(),
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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
