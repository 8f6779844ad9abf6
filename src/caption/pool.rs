//! The workers that caption clips (each with its output's cache), in two kinds so that the
//! server always has `caption.concurrency` requests to answer:
//!
//! ```text
//! submit ─► [clips, bounded: concurrency] ─► makers (one per core): frames → JPEGs, cache?
//!                                              └─► [requests, bounded: concurrency] ─► requesters
//!                                                  (caption.concurrency threads: HTTP, retries)
//! ```
//! Making the JPEGs (and, for `framepipe caption`, decoding the clip files) is CPU work; were it
//! done in the request slots, a slot would sit idle while its next clip is decoded. Each outcome
//! is returned under the number the caller gave its clip: which answer came first never matters.
//!
//! With `on_error: fail` the first failure stops the pool: no further clip is asked for, and
//! [`CaptionPool::submit`] answers with the failure so the caller stops too. `submit` also
//! gives up when the caller's `cancelled` says so, so a stage waiting for room never outlives a
//! cancelled run by more than [`SUBMIT_POLL`].
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::cache::CaptionCache;
use super::images::JpegMaker;
use super::{Captioner, Outcome};
use crate::config::OnError;

/// A clip's frames, made into JPEGs by a worker.
pub trait ClipPictures: Send {
    /// `size` pixels on the picture's long side, in time order.
    fn jpegs(&self, maker: &mut JpegMaker, size: u32) -> Result<Vec<Vec<u8>>, String>;
}

/// One clip to caption.
pub struct ClipJob {
    /// The caller's number for the clip (its first output frame; its index in a clip list).
    pub number: u64,
    /// How errors name it (`clip from output frame 120`, a clip id).
    pub name: String,
    /// The cache of the output it belongs to.
    pub cache: Arc<CaptionCache>,
    pub pictures: Box<dyn ClipPictures>,
}

/// A failure that stops the pool (`on_error: fail`).
type Stop = Arc<Mutex<Option<String>>>;

/// How often a waiting [`CaptionPool::submit`] looks at its caller's cancel flag.
pub const SUBMIT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// A clip's JPEGs, made, waiting for a request slot.
struct Ready {
    number: u64,
    name: String,
    cache: Arc<CaptionCache>,
    /// The cache key the maker computed (so the answer is filed without hashing again).
    key: String,
    jpegs: Vec<Vec<u8>>,
}

/// The running workers.
pub struct CaptionPool {
    jobs: Option<Sender<ClipJob>>,
    workers: Vec<JoinHandle<Outcomes>>,
    stop: Stop,
}

/// What [`CaptionPool::finish`] returns: each clip's outcome by its number, ascending.
pub type Outcomes = Vec<(u64, Outcome)>;

/// Records `outcome` of clip `name`, stopping the pool on a failure under `on_error: fail`.
fn settle(captioner: &Captioner, stop: &Stop, name: &str, outcome: &Outcome) {
    if let Outcome::Failed { error, .. } = outcome {
        if captioner.config.on_error == OnError::Fail {
            stop.lock()
                .expect("stop lock")
                .get_or_insert_with(|| format!("{name}: {error}"));
        }
    }
}

fn is_stopped(stop: &Stop) -> bool {
    stop.lock().expect("stop lock").is_some()
}

/// A maker: clips in, JPEGs out to the requesters (or the outcome at once: from the cache, or
/// why no JPEG could be made).
fn make(
    captioner: &Captioner,
    stop: &Stop,
    jobs: &Receiver<ClipJob>,
    ready: &Sender<Ready>,
) -> Outcomes {
    let mut maker = JpegMaker::default();
    let mut out = Vec::new();
    for job in jobs {
        if is_stopped(stop) {
            continue;
        }
        let jpegs = job.pictures.jpegs(&mut maker, captioner.config.size);
        // The frames (megabytes each) go before the request, which may take seconds.
        drop(job.pictures);
        let outcome = match jpegs {
            Ok(jpegs) if !jpegs.is_empty() => {
                let key = captioner.key(&jpegs);
                match captioner.cached(&job.cache, &key) {
                    Some(outcome) => outcome,
                    None => {
                        let request = Ready {
                            number: job.number,
                            name: job.name,
                            cache: job.cache,
                            key,
                            jpegs,
                        };
                        if ready.send(request).is_err() {
                            break;
                        }
                        continue;
                    }
                }
            }
            Ok(_) => Outcome::Failed {
                error: "no frame to send".into(),
                attempts: 0,
            },
            Err(error) => Outcome::Failed { error, attempts: 0 },
        };
        settle(captioner, stop, &job.name, &outcome);
        out.push((job.number, outcome));
    }
    out
}

/// A requester: made requests in, the server's answers (or failures) out.
fn request(captioner: &Captioner, stop: &Stop, ready: &Receiver<Ready>) -> Outcomes {
    let mut out = Vec::new();
    for r in ready {
        if is_stopped(stop) {
            continue;
        }
        let outcome = captioner.ask(&r.cache, r.key, &r.jpegs);
        settle(captioner, stop, &r.name, &outcome);
        out.push((r.number, outcome));
    }
    out
}

impl CaptionPool {
    pub fn start(captioner: Arc<Captioner>) -> CaptionPool {
        let slots = captioner.config.concurrency.max(1);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let (tx, jobs) = crossbeam_channel::bounded::<ClipJob>(slots);
        let (ready_tx, ready) = crossbeam_channel::bounded::<Ready>(slots);
        let stop: Stop = Arc::default();
        let spawn = |name: String, body: Box<dyn FnOnce() -> Outcomes + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(body)
                .expect("spawning a caption worker")
        };
        let mut workers = Vec::new();
        for i in 0..cores {
            let (c, s, j, r) = (
                Arc::clone(&captioner),
                Arc::clone(&stop),
                jobs.clone(),
                ready_tx.clone(),
            );
            workers.push(spawn(
                format!("caption-jpeg-{i}"),
                Box::new(move || make(&c, &s, &j, &r)),
            ));
        }
        // The requesters end when the last maker has ended (and dropped its sender).
        drop(ready_tx);
        for i in 0..slots {
            let (c, s, r) = (Arc::clone(&captioner), Arc::clone(&stop), ready.clone());
            workers.push(spawn(
                format!("caption-{i}"),
                Box::new(move || request(&c, &s, &r)),
            ));
        }
        CaptionPool {
            jobs: Some(tx),
            workers,
            stop,
        }
    }

    /// Hands a clip to the workers, waiting while `concurrency` clips wait already, until
    /// `cancelled()` says the caller stops. An error is the failure that stopped the pool
    /// (`on_error: fail`), or that the caller was cancelled.
    pub fn submit(&mut self, job: ClipJob, cancelled: &dyn Fn() -> bool) -> Result<(), String> {
        self.stopped()?;
        let Some(tx) = &self.jobs else {
            return Err("the caption workers have stopped".into());
        };
        let mut job = job;
        loop {
            match tx.send_timeout(job, SUBMIT_POLL) {
                Ok(()) => return Ok(()),
                Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                    self.stopped()?;
                    if cancelled() {
                        return Err("cancelled while waiting for a caption worker".into());
                    }
                    job = back;
                }
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
                    self.jobs = None;
                    return Err("the caption workers have stopped".into());
                }
            }
        }
    }
    /// The failure that stopped the pool, if any.
    pub fn stopped(&self) -> Result<(), String> {
        match self.stop.lock().expect("stop lock").as_ref() {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// Waits for every clip handed over; their outcomes by number (ascending), or the failure
    /// that stopped the pool.
    pub fn finish(mut self) -> Result<Outcomes, String> {
        self.jobs = None;
        let mut all = Vec::new();
        let mut panicked = false;
        for worker in self.workers.drain(..) {
            match worker.join() {
                Ok(outcomes) => all.extend(outcomes),
                Err(_) => panicked = true,
            }
        }
        self.stopped()?;
        if panicked {
            return Err("a caption worker panicked".into());
        }
        all.sort_by_key(|&(number, _)| number);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caption::client::Client;
    use crate::config::CaptionConfig;
    use std::time::{Duration, Instant};

    struct Fixed;

    impl ClipPictures for Fixed {
        fn jpegs(&self, _: &mut JpegMaker, _: u32) -> Result<Vec<Vec<u8>>, String> {
            Ok(vec![vec![0xff, 0xd8, 0xff, 0xd9]])
        }
    }

    /// A server that takes connections and never answers: every slot and queue fills, and a
    /// waiting `submit` must still end when its caller is cancelled.
    #[test]
    fn a_waiting_submit_ends_when_the_caller_is_cancelled() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config: CaptionConfig = serde_json::from_str(&format!(
            r#"{{"endpoint": "http://{}/v1", "model": "m", "concurrency": 1, "timeout_seconds": 30, "retries": 0}}"#,
            silent.local_addr().unwrap()
        ))
        .unwrap();
        let captioner = Arc::new(Captioner {
            client: Client::new(&config, None),
            settings_id: config.settings_id(),
            config,
            unavailable: None,
        });
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(CaptionCache::open(&dir.path().join("c.jsonl"), &[]).unwrap());
        let mut pool = CaptionPool::start(captioner);
        let started = Instant::now();
        let cancel_after = Duration::from_millis(500);
        let mut outcome = Ok(());
        for number in 0..64 {
            let job = ClipJob {
                number,
                name: format!("clip {number}"),
                cache: Arc::clone(&cache),
                pictures: Box::new(Fixed),
            };
            outcome = pool.submit(job, &|| started.elapsed() > cancel_after);
            if outcome.is_err() {
                break;
            }
        }
        assert_eq!(
            outcome,
            Err("cancelled while waiting for a caption worker".to_string())
        );
        assert!(
            started.elapsed() < cancel_after + 4 * SUBMIT_POLL,
            "{:?}",
            started.elapsed()
        );
    }
}
