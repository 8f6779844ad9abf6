//! Claims: which worker is working on which input, so that many `batch` processes sharing one
//! `OUT` (one machine or many, on a shared file system) each do different inputs.
//!
//! A claim is `OUT/.framepipe/claims/<key>.json` (`key` a hash of the input's id), holding who
//! holds it (host, pid, pid namespace), since when, and a lease expiry the holder renews on a
//! timer ([`ClaimDir::renew_all`]). It is made whole, then hard-linked into place: `link(2)`
//! fails when the name exists (the exclusive create of `O_EXCL`, and the classic lock that also
//! holds on NFS) and, unlike `create_new` followed by a write, never shows an empty claim to a
//! reader or leaves one behind after a SIGKILL. Renewals are written to a temporary name and
//! renamed over the claim.
//!
//! A claim whose lease ran out (its worker was killed, its node lost), or whose holder is a dead
//! process of this host, is *stale* and may be taken over. Exactly one taker wins: it must first
//! create `takeovers/<key>-<token>-<expiry>` exclusively (one name per stale state, never
//! removed, so a taker holding an old reading of the claim cannot win later), then move the
//! claim aside and check it is still the stale one it judged before it creates its own.
//!
//! Clocks: a lease expiry is the holder's wall clock; nodes must agree on the time to well
//! within a lease (NTP). A holder that stops renewing for a whole lease while alive (suspended)
//! can lose its claim to a taker: it notices at its next renewal and says so.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Lease when neither `--claim-lease` nor [`LEASE_ENV`] says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// The lease in seconds (tests use short ones).
pub const LEASE_ENV: &str = "FRAMEPIPE_CLAIM_LEASE_SECONDS";
/// The host name claims give (default: the machine's); tests pose as another node with it.
pub const HOST_ENV: &str = "FRAMEPIPE_CLAIM_HOST";

/// The lease: `--claim-lease` when given, else [`LEASE_ENV`], else [`DEFAULT_LEASE`].
pub fn lease_from(flag: Option<f64>) -> Result<Duration, String> {
    let seconds = match flag {
        Some(s) => s,
        None => match std::env::var(LEASE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            Some(v) => v
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("{LEASE_ENV}={v:?} is not a number of seconds"))?,
            None => return Ok(DEFAULT_LEASE),
        },
    };
    // Renewal every quarter lease must outpace a busy machine: at least a fifth of a second.
    if !(0.2..=86_400.0).contains(&seconds) {
        return Err(format!(
            "claim lease {seconds} s: want 0.2 to 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// One claim file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// The input's batch id.
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// The holder's pid namespace (`/proc/self/ns/pid`): its pid means something only there.
    pub pid_ns: Option<String>,
    /// Unique per claim (not per renewal): tells a renewed claim from a newer one.
    pub token: String,
    pub started_unix: f64,
    pub lease_seconds: f64,
    pub lease_expires_unix: f64,
}

/// Who this process is, as claims name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    pub pid_ns: Option<String>,
}

impl Holder {
    /// This process ([`HOST_ENV`] overrides the host name).
    pub fn me() -> Holder {
        let host = std::env::var(HOST_ENV)
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(hostname);
        Holder {
            host,
            pid: std::process::id(),
            pid_ns: std::fs::read_link("/proc/self/ns/pid")
                .ok()
                .map(|p| p.display().to_string()),
        }
    }

    /// `host:pid`, as logs and summaries name a worker.
    pub fn name(&self) -> String {
        format!("{}:{}", self.host, self.pid)
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or fails.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = if ok {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() {
        "unknown-host".into()
    } else {
        name
    }
}

/// What [`ClaimDir::try_claim`] found.
#[derive(Debug)]
pub enum Attempt {
    /// Ours now.
    Won,
    /// Another worker holds it, lease running.
    Held(ClaimRecord),
    /// Another worker held it and is gone: [`ClaimDir::take_over`] may take it.
    Stale(ClaimRecord),
    /// A claim file that cannot be read (not one of ours): never taken over.
    Unreadable,
}

/// The claims of one `OUT`, and the ones this process holds.
pub struct ClaimDir {
    dir: PathBuf,
    lease: Duration,
    me: Holder,
    /// Held claims by id.
    held: Mutex<BTreeMap<String, ClaimRecord>>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A claim's file name: a hash of the id (ids are paths or free text, not file names).
fn key(id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A name no other process or thread uses at the same time (for temporaries and tokens).
fn unique(holder: &Holder) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{}-{nanos}-{}",
        holder.host.replace(['/', '\\'], "_"),
        holder.pid,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether process `pid` of this pid namespace still exists (a zombie counts as gone).
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        // No /proc entry: gone, if /proc is there at all (else we cannot tell: alive).
        Err(_) => !Path::new("/proc/self/stat").exists(),
    }
}

impl ClaimDir {
    /// The claims under `OUT/.framepipe/claims/` (created), held as `me`.
    pub fn open(out: &Path, lease: Duration, me: Holder) -> std::io::Result<ClaimDir> {
        let dir = out.join(".framepipe").join("claims");
        std::fs::create_dir_all(dir.join("takeovers"))?;
        Ok(ClaimDir {
            dir,
            lease,
            me,
            held: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    pub fn holder(&self) -> &Holder {
        &self.me
    }

    /// The claim file of `id`.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{}.json", key(id)))
    }

    fn fresh_record(&self, id: &str) -> ClaimRecord {
        let now = unix_now();
        ClaimRecord {
            id: id.to_string(),
            host: self.me.host.clone(),
            pid: self.me.pid,
            pid_ns: self.me.pid_ns.clone(),
            token: unique(&self.me),
            started_unix: now,
            lease_seconds: self.lease.as_secs_f64(),
            lease_expires_unix: now + self.lease.as_secs_f64(),
        }
    }

    /// Writes `record` whole under a temporary name in the claims folder; returns that name.
    fn write_temporary(&self, record: &ClaimRecord) -> std::io::Result<PathBuf> {
        let tmp = self.dir.join(format!(".tmp-{}", unique(&self.me)));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(record).expect("a claim serializes"))?;
            f.sync_all()
        })();
        result.inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        Ok(tmp)
    }

    /// Creates the claim of `id` if there is none: `Ok(true)` when it is ours.
    fn create(&self, id: &str) -> std::io::Result<bool> {
        let record = self.fresh_record(id);
        let tmp = self.write_temporary(&record)?;
        let linked = std::fs::hard_link(&tmp, self.path(id));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                self.lock().insert(id.to_string(), record);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The claim of `id` now: `Ok(None)` when there is none, `Err` when it cannot be read.
    pub fn read(&self, id: &str) -> Result<Option<ClaimRecord>, String> {
        read_record(&self.path(id))
    }

    /// Whether `record` may be taken over: its lease ran out, or its holder is a process of this
    /// host (and pid namespace) that no longer exists.
    pub fn is_stale(&self, record: &ClaimRecord) -> bool {
        if unix_now() > record.lease_expires_unix {
            return true;
        }
        record.host == self.me.host
            && record.pid_ns == self.me.pid_ns
            && record.pid_ns.is_some()
            && record.pid != self.me.pid
            && !pid_alive(record.pid)
    }

    /// Whether `record`'s holder is another process of this host (and pid namespace) that runs
    /// now: alive for sure, no need to watch its lease.
    pub fn is_live_here(&self, record: &ClaimRecord) -> bool {
        record.host == self.me.host
            && record.pid_ns == self.me.pid_ns
            && record.pid_ns.is_some()
            && record.pid != self.me.pid
            && pid_alive(record.pid)
    }

    /// Claims `id` unless another worker holds it.
    pub fn try_claim(&self, id: &str) -> std::io::Result<Attempt> {
        // A claim released between our create and our read is simply tried again (bounded: a
        // claim that keeps coming and going is reported as held).
        for _ in 0..3 {
            if self.create(id)? {
                return Ok(Attempt::Won);
            }
            match self.read(id) {
                Ok(Some(record)) if self.is_stale(&record) => return Ok(Attempt::Stale(record)),
                Ok(Some(record)) => return Ok(Attempt::Held(record)),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(claim = %self.path(id).display(), "unreadable claim: {e}");
                    return Ok(Attempt::Unreadable);
                }
            }
        }
        match self.read(id) {
            Ok(Some(record)) => Ok(Attempt::Held(record)),
            _ => Ok(Attempt::Unreadable),
        }
    }

    /// Takes over the stale claim `stale` of `id`: `Ok(true)` when it is ours now, `Ok(false)`
    /// when another taker won or the claim changed since it was read (renewed, released, taken).
    pub fn take_over(&self, id: &str, stale: &ClaimRecord) -> std::io::Result<bool> {
        let k = key(id);
        let expiry_ms = (stale.lease_expires_unix * 1000.0) as u64;
        let marker = self
            .dir
            .join("takeovers")
            .join(format!("{k}-{}-{expiry_ms}", stale.token));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
        {
            Ok(mut f) => {
                let _ = writeln!(f, "{}", self.me.name());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        }
        // Ours to judge alone now; move the claim aside and check it is still the stale one.
        let aside = self
            .dir
            .join("takeovers")
            .join(format!("{k}.taken-{}", unique(&self.me)));
        match std::fs::rename(self.path(id), &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        let moved = read_record(&aside).ok().flatten();
        let unchanged = moved.as_ref().is_some_and(|m| {
            m.token == stale.token && m.lease_expires_unix == stale.lease_expires_unix
        });
        if !unchanged {
            // A newer claim (renewed or made since): put it back unless another appeared.
            let _ = std::fs::hard_link(&aside, self.path(id));
            let _ = std::fs::remove_file(&aside);
            return Ok(false);
        }
        let _ = std::fs::remove_file(&aside);
        self.create(id)
    }

    /// Ends our claim of `id` (the input is done or recorded as failed).
    pub fn release(&self, id: &str) {
        let Some(mine) = self.lock().remove(id) else {
            return;
        };
        let path = self.path(id);
        // Only our own claim goes: one taken over from us (we were too slow) stays its taker's.
        if read_record(&path)
            .ok()
            .flatten()
            .is_some_and(|r| r.token == mine.token)
        {
            let _ = std::fs::remove_file(&path);
        }
    }

    /// Pushes the lease of every held claim forward; returns the ids whose claim another worker
    /// took over meanwhile (no longer held).
    pub fn renew_all(&self) -> Vec<String> {
        let mut held = self.lock();
        let mut lost = Vec::new();
        for (id, record) in held.iter_mut() {
            let path = self.path(id);
            match read_record(&path) {
                Ok(Some(now)) if now.token == record.token => {}
                // Released by a thread of ours just now, or taken: not ours to write back.
                _ => {
                    lost.push(id.clone());
                    continue;
                }
            }
            record.lease_expires_unix = unix_now() + self.lease.as_secs_f64();
            let renewed = self.write_temporary(record).and_then(|tmp| {
                std::fs::rename(&tmp, &path).inspect_err(|_| drop(std::fs::remove_file(&tmp)))
            });
            if let Err(e) = renewed {
                tracing::warn!(claim = %path.display(), "cannot renew the claim: {e}");
            }
        }
        for id in &lost {
            held.remove(id);
        }
        lost
    }

    /// Renews the held claims every quarter lease until `done` is raised (checked every 50 ms).
    pub fn renew_until(&self, done: &AtomicBool) {
        let every = self.lease / 4;
        let mut last = Instant::now();
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50).min(every));
            if last.elapsed() >= every {
                last = Instant::now();
                for id in self.renew_all() {
                    crate::logging::say(
                        crate::logging::Severity::Warning,
                        Some(&id),
                        "claim lost: another worker took this input over (this one was too slow to renew its lease); both may finish it",
                        &[],
                    );
                }
            }
        }
    }

    /// The time of the file system holding the claims (a new file's mtime): one clock for every
    /// node sharing it, whatever their own clocks say.
    pub fn fs_now(&self) -> std::io::Result<SystemTime> {
        let probe = self.dir.join(format!(".clock-{}", unique(&self.me)));
        std::fs::write(&probe, b"")?;
        let t = std::fs::metadata(&probe).and_then(|m| m.modified());
        let _ = std::fs::remove_file(&probe);
        t
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ClaimRecord>> {
        self.held.lock().expect("no panic while holding the claims")
    }
}

fn read_record(path: &Path) -> Result<Option<ClaimRecord>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn holder(host: &str, pid: u32) -> Holder {
        Holder {
            host: host.into(),
            pid,
            pid_ns: None,
        }
    }

    fn claims(out: &Path, who: Holder, lease_ms: u64) -> ClaimDir {
        ClaimDir::open(out, Duration::from_millis(lease_ms), who).unwrap()
    }

    #[test]
    fn create_skip_release() {
        let dir = tempfile::tempdir().unwrap();
        let a = claims(dir.path(), holder("node-a", 1), 60_000);
        let b = claims(dir.path(), holder("node-b", 2), 60_000);
        assert!(matches!(a.try_claim("x.mp4").unwrap(), Attempt::Won));
        let record = a.read("x.mp4").unwrap().unwrap();
        assert_eq!(
            (record.host.as_str(), record.pid, record.id.as_str()),
            ("node-a", 1, "x.mp4")
        );
        match b.try_claim("x.mp4").unwrap() {
            Attempt::Held(r) => assert_eq!(r.host, "node-a"),
            other => panic!("{other:?}"),
        }
        // Another input is free.
        assert!(matches!(b.try_claim("y.mp4").unwrap(), Attempt::Won));
        a.release("x.mp4");
        assert_eq!(a.read("x.mp4").unwrap(), None);
        assert!(matches!(b.try_claim("x.mp4").unwrap(), Attempt::Won));
        // Releasing what is not ours does nothing.
        a.release("x.mp4");
        assert!(b.read("x.mp4").unwrap().is_some());
    }

    #[test]
    fn renewal_keeps_a_claim_alive() {
        let dir = tempfile::tempdir().unwrap();
        let a = claims(dir.path(), holder("node-a", 1), 300);
        let b = claims(dir.path(), holder("node-b", 2), 300);
        assert!(matches!(a.try_claim("x").unwrap(), Attempt::Won));
        let first = a.read("x").unwrap().unwrap();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| a.renew_until(&done));
            std::thread::sleep(Duration::from_millis(700));
            let now = a.read("x").unwrap().unwrap();
            assert_eq!(now.token, first.token);
            assert!(now.lease_expires_unix > first.lease_expires_unix + 0.3);
            assert!(matches!(b.try_claim("x").unwrap(), Attempt::Held(_)));
            done.store(true, Ordering::Relaxed);
        });
        // Without renewal the lease runs out and the claim is stale.
        std::thread::sleep(Duration::from_millis(400));
        assert!(matches!(b.try_claim("x").unwrap(), Attempt::Stale(_)));
    }

    #[test]
    fn a_dead_process_of_this_host_is_stale_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let me = Holder::me();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let gone = claims(
            dir.path(),
            Holder {
                pid: dead,
                ..me.clone()
            },
            60_000,
        );
        assert!(matches!(gone.try_claim("x").unwrap(), Attempt::Won));
        let other = claims(dir.path(), me.clone(), 60_000);
        assert!(matches!(other.try_claim("x").unwrap(), Attempt::Stale(_)));
        // A live one (this process, as another holder) is not.
        let alive = claims(dir.path(), Holder { pid: 1, ..me }, 60_000);
        assert!(matches!(alive.try_claim("y").unwrap(), Attempt::Won));
        assert!(matches!(other.try_claim("y").unwrap(), Attempt::Held(_)));
    }

    #[test]
    fn racing_takers_exactly_one_wins() {
        for round in 0..30 {
            let dir = tempfile::tempdir().unwrap();
            let gone = claims(dir.path(), holder("lost-node", 7), 1);
            assert!(matches!(gone.try_claim("x").unwrap(), Attempt::Won));
            std::thread::sleep(Duration::from_millis(5));
            let takers: Vec<ClaimDir> = (0..6)
                .map(|i| claims(dir.path(), holder(&format!("node-{i}"), 100 + i), 60_000))
                .collect();
            let barrier = Arc::new(Barrier::new(takers.len()));
            let wins: Vec<bool> = std::thread::scope(|s| {
                let handles: Vec<_> = takers
                    .iter()
                    .map(|t| {
                        let barrier = barrier.clone();
                        s.spawn(move || {
                            let Attempt::Stale(stale) = t.try_claim("x").unwrap() else {
                                panic!("round {round}: the expired claim is stale");
                            };
                            barrier.wait();
                            t.take_over("x", &stale).unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(
                wins.iter().filter(|w| **w).count(),
                1,
                "round {round}: {wins:?}"
            );
            let winner = wins.iter().position(|w| *w).unwrap();
            let record = takers[0].read("x").unwrap().unwrap();
            assert_eq!(record.host, format!("node-{winner}"));
        }
    }

    #[test]
    fn an_old_reading_cannot_take_a_newer_claim() {
        let dir = tempfile::tempdir().unwrap();
        let gone = claims(dir.path(), holder("lost-node", 7), 1);
        assert!(matches!(gone.try_claim("x").unwrap(), Attempt::Won));
        std::thread::sleep(Duration::from_millis(5));
        let a = claims(dir.path(), holder("node-a", 1), 60_000);
        let b = claims(dir.path(), holder("node-b", 2), 60_000);
        let Attempt::Stale(seen_by_a) = a.try_claim("x").unwrap() else {
            panic!()
        };
        let Attempt::Stale(seen_by_b) = b.try_claim("x").unwrap() else {
            panic!()
        };
        assert!(a.take_over("x", &seen_by_a).unwrap());
        // b still holds its reading of the dead claim: too late, whether a still works on it...
        assert!(!b.take_over("x", &seen_by_b).unwrap());
        assert_eq!(b.read("x").unwrap().unwrap().host, "node-a");
        // ...or has finished and someone else claimed it since.
        a.release("x");
        let c = claims(dir.path(), holder("node-c", 3), 60_000);
        assert!(matches!(c.try_claim("x").unwrap(), Attempt::Won));
        assert!(!b.take_over("x", &seen_by_b).unwrap());
        assert_eq!(b.read("x").unwrap().unwrap().host, "node-c");
    }

    #[test]
    fn a_renewed_claim_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let slow = claims(dir.path(), holder("node-a", 1), 100);
        assert!(matches!(slow.try_claim("x").unwrap(), Attempt::Won));
        std::thread::sleep(Duration::from_millis(150));
        let b = claims(dir.path(), holder("node-b", 2), 60_000);
        let Attempt::Stale(seen) = b.try_claim("x").unwrap() else {
            panic!()
        };
        // The holder was only late: it renews before the taker acts.
        assert!(slow.renew_all().is_empty());
        assert!(!b.take_over("x", &seen).unwrap());
        assert_eq!(b.read("x").unwrap().unwrap().host, "node-a");
        assert!(slow.renew_all().is_empty(), "still the holder's");
    }

    #[test]
    fn a_holder_learns_it_lost_its_claim() {
        let dir = tempfile::tempdir().unwrap();
        let slow = claims(dir.path(), holder("node-a", 1), 1);
        assert!(matches!(slow.try_claim("x").unwrap(), Attempt::Won));
        std::thread::sleep(Duration::from_millis(5));
        let b = claims(dir.path(), holder("node-b", 2), 60_000);
        let Attempt::Stale(seen) = b.try_claim("x").unwrap() else {
            panic!()
        };
        assert!(b.take_over("x", &seen).unwrap());
        assert_eq!(slow.renew_all(), vec!["x".to_string()]);
        // Its release leaves the taker's claim alone.
        slow.release("x");
        assert_eq!(b.read("x").unwrap().unwrap().host, "node-b");
    }
}
