//! What every stage of one input shares: the cancel flag the first failing stage raises, the
//! send that turns a closed downstream into a cancellation, and the timer of a stage's busy
//! time. Below every stage module, so stages import it and never their wiring (`pipeline::run`).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::error::{Error, Result};

/// Shared by all stages of one input: set by the first stage that fails.
#[derive(Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// `Err(Cancelled)` once another stage failed.
    pub fn check(&self, stage: &'static str) -> Result<()> {
        if self.is_raised() {
            Err(Error::Cancelled { stage })
        } else {
            Ok(())
        }
    }
}

/// Sends, turning a closed downstream (it stopped after an error) into a cancellation.
pub fn send<T>(tx: &Sender<T>, value: T, stage: &'static str) -> Result<()> {
    tx.send(value).map_err(|_| Error::Cancelled { stage })
}

/// Time a stage spent working (not waiting on its neighbours).
#[derive(Default, Debug, Clone, Copy)]
pub struct BusyTimer(Duration);

impl BusyTimer {
    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.0 += start.elapsed();
        out
    }
    pub fn seconds(&self) -> f64 {
        self.0.as_secs_f64()
    }
}
