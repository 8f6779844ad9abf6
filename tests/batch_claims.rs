//! Many `framepipe batch` workers, one OUT, no shards: each input is claimed, so each is done
//! exactly once; a killed worker's input is taken over once its lease runs out, and nothing else
//! is redone; a worker waiting on others' claims at the end stops within a bound; a disk that
//! fills mid-run stops the batch cleanly and a resume finishes it.
//!
//! Who did what comes from the workers' `-v` lines (`batch: start [ID]`, `batch: done [ID]`).
//! Every wait has a bound: a worker still running after it is killed and the test fails.
mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use framepipe::batch::claims::{Attempt, ClaimDir, Holder};

const FAST: &str =
    r#"{"scenes": {}, "encode": {"preset": "ultrafast", "crf": 30}, "device": "cpu"}"#;
/// Longest any worker may run in these tests.
const BOUND: Duration = Duration::from_secs(180);

/// `n` copies of one clip (lavfi `src`) and a `.jsonl` manifest naming them `clip-NN`.
fn clips(dir: &Path, n: usize, src: &str) -> (PathBuf, Vec<String>) {
    let videos = dir.join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let seed = dir.join("seed.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        src,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        seed.to_str().unwrap(),
    ]);
    let ids: Vec<String> = (0..n).map(|i| format!("clip-{i:02}")).collect();
    let mut lines = String::new();
    for id in &ids {
        std::fs::copy(&seed, videos.join(format!("{id}.mp4"))).unwrap();
        lines += &serde_json::json!({"path": format!("videos/{id}.mp4"), "id": id}).to_string();
        lines += "\n";
    }
    let manifest = dir.join("manifest.jsonl");
    std::fs::write(&manifest, lines).unwrap();
    (manifest, ids)
}

/// A running `framepipe -v batch`, its stderr collected line by line as it comes.
struct Worker {
    child: Child,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

struct Ended {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ended {
    fn summary(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: stdout {:?}\nstderr:\n{}", self.stdout, self.stderr))
    }
}

fn worker(cfg: &Path, manifest: &Path, out: &Path, env: &[(&str, &str)]) -> Worker {
    let mut c = framepipe();
    // Whatever scheduler this test itself runs under: no shards from it.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("SLURM_") || k == "JOB_COMPLETION_INDEX" || k == "FRAMEPIPE_SHARDS" {
            c.env_remove(k);
        }
    }
    let mut child = c
        .args(["-v", "batch", "--shard", "none", "-j", "1", "--pipeline"])
        .arg(cfg)
        .arg("--manifest")
        .arg(manifest)
        .arg("-o")
        .arg(out)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let lines = Arc::new(Mutex::new(Vec::new()));
    let err = child.stderr.take().unwrap();
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    Worker {
        child,
        stdout: Some(stdout),
        stderr: lines,
        reader: Some(reader),
    }
}

impl Worker {
    fn lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the worker to exit, at most until `deadline`; kills it after that and panics.
    fn finish(mut self, deadline: Instant) -> Ended {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.reader.take().unwrap().join().unwrap();
                return Ended {
                    code: status.code(),
                    stdout: self.stdout.take().unwrap().join().unwrap(),
                    stderr: self.lines().join("\n"),
                };
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "worker {} still running at its deadline: killed\n{}",
                    self.child.id(),
                    self.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A test that fails half-way leaves no worker behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `batch: <what> [ID]` lines of one worker's stderr, by id.
fn counted(stderr: &str, what: &str) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    let tag = format!("batch: {what} [");
    for line in stderr.lines() {
        if let Some(rest) = line.split_once(&tag).map(|(_, r)| r) {
            if let Some((id, _)) = rest.split_once(']') {
                *n.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    n
}

fn add_counts(total: &mut BTreeMap<String, usize>, more: BTreeMap<String, usize>) {
    for (id, n) in more {
        *total.entry(id).or_default() += n;
    }
}

/// Finished folders under `out` by id, with their done markers' mtimes.
fn finished(out: &Path) -> BTreeMap<String, SystemTime> {
    let mut found = BTreeMap::new();
    for e in std::fs::read_dir(out).unwrap().flatten() {
        if let Ok(m) = std::fs::metadata(e.path().join(".framepipe-done.json")) {
            found.insert(
                e.file_name().to_string_lossy().into_owned(),
                m.modified().unwrap(),
            );
        }
    }
    found
}

/// Folders under `out` that are neither finished nor bookkeeping (`.partial`, half-made).
fn unfinished(out: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name().unwrap() != ".framepipe"
                && !p.join(".framepipe-done.json").exists()
        })
        .collect()
}

/// Claim files still in `out`.
fn claims_left(out: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(out.join(".framepipe/claims"))
        .map(|es| {
            es.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default()
}

/// Every output video decodes to as many frames as its report says.
fn assert_outputs_clean(out: &Path, ids: &[String]) {
    for id in ids {
        let video = out.join(id).join(format!("{id}.mp4"));
        let probed = probe_output(&video);
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(id).join(format!("{id}.json"))).unwrap(),
        )
        .unwrap();
        assert!(probed.frames > 0, "{video:?}");
        assert_eq!(
            Some(probed.frames),
            report["output"]["frames"].as_u64(),
            "{video:?}"
        );
    }
}

fn batch_summary(out: &Path) -> serde_json::Value {
    let o = framepipe().arg("batch-summary").arg(out).output().unwrap();
    assert!(o.status.success(), "batch-summary: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn n_workers_share_twelve_inputs(n: usize) {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (manifest, ids) = clips(d, 12, "testsrc2=size=160x120:rate=25:duration=1");
    let cfg = pipeline(d, "fast.json", FAST);
    let out = d.join("out");
    let workers: Vec<Worker> = (0..n).map(|_| worker(&cfg, &manifest, &out, &[])).collect();
    let deadline = Instant::now() + BOUND;
    let ended: Vec<Ended> = workers.into_iter().map(|w| w.finish(deadline)).collect();
    let mut done = BTreeMap::new();
    let mut by_worker = Vec::new();
    for e in &ended {
        assert_eq!(e.code, Some(0), "{}", e.stderr);
        let mine = counted(&e.stderr, "done");
        by_worker.push(mine.len());
        assert_eq!(
            e.summary()["done"].as_u64(),
            Some(mine.len() as u64),
            "{}",
            e.stderr
        );
        add_counts(&mut done, mine);
    }
    let want: BTreeMap<String, usize> = ids.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(done, want, "every input done exactly once");
    assert_eq!(finished(&out).len(), 12);
    assert!(unfinished(&out).is_empty(), "{:?}", unfinished(&out));
    assert!(claims_left(&out).is_empty(), "{:?}", claims_left(&out));
    assert_outputs_clean(&out, &ids);
    let own: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let merged = batch_summary(&out);
    assert_eq!(
        (
            merged["inputs"].as_u64(),
            merged["done"].as_u64(),
            merged["failed"].as_u64(),
            merged["not_started"].as_u64(),
        ),
        (Some(12), Some(12), Some(0), Some(0)),
        "{merged}"
    );
    // Started together, they ran as one session: one account each, merged.
    assert_eq!(merged["workers"].as_array().unwrap().len(), n, "{merged}");
    assert_eq!(own, merged, "the last worker to end left the same merge");
    eprintln!(
        "{n} workers: inputs per worker {by_worker:?}, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn two_workers_share_twelve_inputs() {
    n_workers_share_twelve_inputs(2);
}

#[test]
fn four_workers_share_twelve_inputs() {
    n_workers_share_twelve_inputs(4);
}

#[test]
fn a_killed_worker_s_input_is_taken_over_and_nothing_else_redone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Long enough per input to be killed inside one.
    let (manifest, ids) = clips(d, 12, "testsrc2=size=320x240:rate=25:duration=2");
    let cfg = pipeline(d, "fast.json", FAST);
    let out = d.join("out");
    // The victim poses as another node: its claim only goes stale when its lease runs out.
    let lease = [("FRAMEPIPE_CLAIM_LEASE_SECONDS", "2")];
    let victim = worker(
        &cfg,
        &manifest,
        &out,
        &[lease[0], ("FRAMEPIPE_CLAIM_HOST", "lost-node")],
    );
    let start = Instant::now();
    // Killed right after it starts its third input.
    let target = loop {
        let lines = victim.lines().join("\n");
        let started: Vec<String> = lines
            .lines()
            .filter_map(|l| {
                l.split_once("batch: start [")
                    .and_then(|(_, r)| r.split_once(']'))
            })
            .map(|(id, _)| id.to_string())
            .collect();
        if started.len() >= 3 {
            break started[2].clone();
        }
        assert!(
            start.elapsed() < BOUND,
            "the victim never got to a third input:\n{lines}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let victim_pid = victim.child.id();
    // SAFETY: a signal to our own child, not yet reaped.
    unsafe { libc::kill(victim_pid as libc::pid_t, libc::SIGKILL) };
    let v = victim.finish(Instant::now() + Duration::from_secs(30));
    let victim_done = counted(&v.stderr, "done");
    assert!(
        !victim_done.contains_key(&target),
        "{target} finished before the kill: make inputs slower\n{}",
        v.stderr
    );
    let before = finished(&out);
    assert_eq!(before.len(), victim_done.len());
    let held = ClaimDir::open(&out, Duration::from_secs(2), Holder::me())
        .unwrap()
        .read(&target)
        .unwrap()
        .expect("the killed worker's claim is left");
    assert_eq!((held.host.as_str(), held.pid), ("lost-node", victim_pid));

    let deadline = Instant::now() + BOUND;
    let survivors: Vec<Ended> = (0..2)
        .map(|_| worker(&cfg, &manifest, &out, &lease))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|w| w.finish(deadline))
        .collect();
    let mut done = victim_done.clone();
    let mut taken = 0;
    for e in &survivors {
        assert_eq!(e.code, Some(0), "{}", e.stderr);
        let mine = counted(&e.stderr, "done");
        for id in before.keys() {
            assert!(!mine.contains_key(id), "{id} was redone\n{}", e.stderr);
        }
        add_counts(&mut done, mine);
        taken += e.summary()["taken_over"].as_u64().unwrap_or(0);
        if e.stderr.contains("taking over") {
            assert!(
                e.stderr
                    .contains(&format!("taking over from lost-node:{victim_pid}")),
                "{}",
                e.stderr
            );
        }
    }
    assert_eq!(taken, 1, "one takeover, of {target}");
    let want: BTreeMap<String, usize> = ids.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(done, want, "every input done exactly once");
    let after = finished(&out);
    for (id, t) in &before {
        assert_eq!(after[id], *t, "{id} was redone");
    }
    assert_eq!(after.len(), 12);
    assert!(unfinished(&out).is_empty(), "{:?}", unfinished(&out));
    assert!(claims_left(&out).is_empty(), "{:?}", claims_left(&out));
    assert_outputs_clean(&out, &ids);
}

#[test]
fn waiting_on_other_workers_claims_ends() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (manifest, ids) = clips(d, 5, "testsrc2=size=64x48:rate=10:duration=0.3");
    let cfg = pipeline(d, "fast.json", FAST);
    let out = d.join("out");
    let fake = |host: &str, lease: Duration| {
        ClaimDir::open(
            &out,
            lease,
            Holder {
                host: host.into(),
                pid: 4242,
                pid_ns: None,
            },
        )
        .unwrap()
    };
    // ids[0]: a live worker elsewhere, renewing its lease; ids[1]: a claim whose lease is far
    // off and never renewed (a hung worker); ids[2]: one whose lease runs out in 1.5 s.
    let live = fake("live-node", Duration::from_secs(2));
    let hung = fake("hung-node", Duration::from_secs(3600));
    let dying = fake("dying-node", Duration::from_millis(1500));
    for (claims, id) in [(&live, &ids[0]), (&hung, &ids[1]), (&dying, &ids[2])] {
        assert!(matches!(claims.try_claim(id).unwrap(), Attempt::Won));
    }
    let renewing = AtomicBool::new(false);
    let start = Instant::now();
    let ended = std::thread::scope(|s| {
        s.spawn(|| live.renew_until(&renewing));
        let e = worker(
            &cfg,
            &manifest,
            &out,
            &[("FRAMEPIPE_CLAIM_LEASE_SECONDS", "1")],
        )
        .finish(Instant::now() + Duration::from_secs(60));
        renewing.store(true, Ordering::Relaxed);
        e
    });
    let took = start.elapsed();
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    let s = ended.summary();
    assert_eq!(
        (
            s["done"].as_u64(),
            s["taken_over"].as_u64(),
            s["left_to_others"].as_u64(),
        ),
        (Some(3), Some(1), Some(2)),
        "{s}\n{}",
        ended.stderr
    );
    assert!(ended.stderr.contains("taking over from dying-node:4242"));
    // Three leases of 1 s after the last input at most, whatever the hung claim says.
    assert!(took < Duration::from_secs(30), "waited {took:?}");
    let done = finished(&out);
    assert!(!done.contains_key(&ids[0]) && !done.contains_key(&ids[1]));
    assert!(done.contains_key(&ids[2]));
    eprintln!("worker with two inputs held elsewhere ended after {took:?}");
}

/// A tmpfs mounted for the test, unmounted when dropped (also when the test fails).
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(at).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(Mount(at.to_path_buf()))
    }

    /// Bytes free for an unprivileged writer.
    fn free(&self) -> u64 {
        let path = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and a zeroed statvfs for the call to fill.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Bytes a folder takes on a tmpfs: its files, each rounded up to whole pages, and a page per
/// folder.
fn footprint(dir: &Path) -> u64 {
    let mut total = 4096;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        total += if p.is_dir() {
            footprint(&p)
        } else {
            std::fs::metadata(&p).unwrap().len().div_ceil(4096) * 4096
        };
    }
    total
}

#[test]
fn a_full_disk_stops_the_batch_and_a_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mount = match Mount::tmpfs(&d.join("small"), "30m") {
        Ok(m) => m,
        Err(why) if std::env::var("FRAMEPIPE_REQUIRE_MOUNT").as_deref() != Ok("1") => {
            eprintln!(
                "SKIP: full-disk test: {why} (set FRAMEPIPE_REQUIRE_MOUNT=1 to fail instead)"
            );
            return;
        }
        Err(why) => panic!("FRAMEPIPE_REQUIRE_MOUNT=1 but {why}"),
    };
    let (manifest, ids) = clips(d, 6, "testsrc2=size=160x120:rate=25:duration=1");
    let cfg = pipeline(d, "fast.json", FAST);
    // What one input's output takes, measured on the real disk.
    let probe = d.join("probe");
    let e = worker(&cfg, &manifest, &probe, &[]).finish(Instant::now() + BOUND);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    let per_input = footprint(&probe.join(&ids[0]));
    // Room for two and a half outputs (and the bookkeeping): the third fills the disk.
    let filler = mount.0.join("filler");
    let room = per_input * 5 / 2 + 64 * 1024;
    let fill = mount.free().saturating_sub(room);
    std::fs::write(&filler, vec![0u8; fill as usize]).unwrap();
    eprintln!(
        "full-disk test: {} KiB per output, {} KiB left free",
        per_input / 1024,
        mount.free() / 1024
    );

    let out = mount.0.join("out");
    let full = worker(&cfg, &manifest, &out, &[]).finish(Instant::now() + BOUND);
    assert_eq!(full.code, Some(1), "{}", full.stderr);
    assert!(
        full.stderr
            .contains("no space left on device while writing")
            && full.stderr.contains(&out.display().to_string()),
        "names the file it could not write:\n{}",
        full.stderr
    );
    for line in full.stderr.lines().filter(|l| l.contains("space")) {
        eprintln!("full-disk test: {line}");
    }
    let s = full.summary();
    assert_eq!(s["failed"].as_u64(), Some(1), "{s}");
    let before = finished(&out);
    assert!(
        !before.is_empty() && before.len() < ids.len(),
        "{} of {} done before the disk was full",
        before.len(),
        ids.len()
    );
    // Nothing that looks finished but is not: every folder has its done marker.
    assert!(unfinished(&out).is_empty(), "{:?}", unfinished(&out));

    // Space again: the rest is done, the finished ones are not redone.
    std::fs::remove_file(&filler).unwrap();
    let resumed = worker(&cfg, &manifest, &out, &[]).finish(Instant::now() + BOUND);
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    let after = finished(&out);
    assert_eq!(after.len(), ids.len());
    for (id, t) in &before {
        assert_eq!(after[id], *t, "{id} was redone");
    }
    let redone = counted(&resumed.stderr, "done");
    assert_eq!(redone.len(), ids.len() - before.len());
    assert!(unfinished(&out).is_empty());
    assert_outputs_clean(&out, &ids);
}
