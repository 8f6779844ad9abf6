//! The workers that caption clips (each with its output's cache): `caption.concurrency` threads, each turning a
//! clip's frames into JPEGs and asking the server (or the cache), so that many requests are in
//! flight while the caller goes on (the encoder keeps encoding; `framepipe caption` keeps
//! decoding). Clips are handed over through a bounded channel (`concurrency` clips wait at
//! most), and every outcome is returned under the number the caller gave its clip: which
//! answer came first never matters.
//!
//! With `on_error: fail` the first failure stops the pool: workers take no further clip,
//! [`CaptionPool::submit`] answers with the failure so the caller stops too.
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

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

/// The running workers of one output.
pub struct CaptionPool {
    jobs: Option<Sender<ClipJob>>,
    workers: Vec<JoinHandle<Vec<(u64, Outcome)>>>,
    stop: Stop,
}

/// What [`CaptionPool::finish`] returns: each clip's outcome by its number, ascending.
pub type Outcomes = Vec<(u64, Outcome)>;

impl CaptionPool {
    pub fn start(captioner: Arc<Captioner>) -> CaptionPool {
        let workers = captioner.config.concurrency.max(1);
        let (tx, rx) = crossbeam_channel::bounded::<ClipJob>(workers);
        let stop: Stop = Arc::default();
        let workers = (0..workers)
            .map(|i| {
                let (rx, captioner, stop) = (rx.clone(), Arc::clone(&captioner), Arc::clone(&stop));
                std::thread::Builder::new()
                    .name(format!("caption-{i}"))
                    .spawn(move || {
                        let mut maker = JpegMaker::default();
                        let mut out = Vec::new();
                        for job in rx {
                            if stop.lock().expect("stop lock").is_some() {
                                continue;
                            }
                            let (number, name) = (job.number, job.name.clone());
                            let outcome = caption_one(&captioner, &mut maker, job);
                            if let Outcome::Failed { error, .. } = &outcome {
                                if captioner.config.on_error == OnError::Fail {
                                    stop.lock()
                                        .expect("stop lock")
                                        .get_or_insert_with(|| format!("{name}: {error}"));
                                }
                            }
                            out.push((number, outcome));
                        }
                        out
                    })
                    .expect("spawning a caption worker")
            })
            .collect();
        CaptionPool {
            jobs: Some(tx),
            workers,
            stop,
        }
    }

    /// Hands a clip to the workers (waits while `concurrency` clips are waiting already). An
    /// error is the failure that stopped the pool (`on_error: fail`).
    pub fn submit(&mut self, job: ClipJob) -> Result<(), String> {
        self.stopped()?;
        let Some(tx) = &self.jobs else {
            return Err("the caption workers have stopped".into());
        };
        if tx.send(job).is_err() {
            self.jobs = None;
            return Err("the caption workers have stopped".into());
        }
        Ok(())
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

fn caption_one(captioner: &Captioner, maker: &mut JpegMaker, job: ClipJob) -> Outcome {
    let jpegs = job.pictures.jpegs(maker, captioner.config.size);
    // The frames (megabytes each) are let go before the request, which may take seconds.
    drop(job.pictures);
    match jpegs {
        Ok(jpegs) if !jpegs.is_empty() => captioner.caption(&job.cache, &jpegs),
        Ok(_) => Outcome::Failed {
            error: "no frame to send".into(),
            attempts: 0,
        },
        Err(error) => Outcome::Failed { error, attempts: 0 },
    }
}
