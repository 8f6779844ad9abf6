//! Slurm for real: a one-node Slurm (munged, slurmctld, slurmd as children of this test, as root,
//! no systemd, its own config, state and ports in a temporary folder) runs
//! `deploy/slurm/framepipe-array.sbatch` as a 4-task array over a manifest: every input done
//! exactly once and the shard summaries merge. Then one task of a slower array is cancelled
//! mid-run (`scancel JOB_TASK`) and resubmitted alone: nothing finished is redone, nothing is
//! missing. Last, a 3-task array with no shards (`SHARDS` = `none`): the tasks share the inputs
//! by claims, each input done exactly once.
//!
//! Needs Debian's `slurm-wlm` and `munge` (scripts/setup.sh installs them) and root. Without
//! them the test prints `SKIP:` and passes, unless `FRAMEPIPE_REQUIRE_SLURM=1`, which makes it
//! fail instead (CI sets it).
//!
//! Only this machine is reached: the daemons talk over 127.0.0.1, on free ports picked here.

mod common;

use common::ffmpeg;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use framepipe::batch::Shard;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/slurm/framepipe-array.sbatch"
);
const FAST: &str =
    r#"{"scenes": {}, "encode": {"preset": "ultrafast", "crf": 30}, "device": "cpu"}"#;
/// Slower per input (bigger clips, a slower x264 preset), so a task can be cancelled mid-run.
const SLOW: &str = r#"{"scenes": {}, "encode": {"preset": "medium", "crf": 30}, "device": "cpu"}"#;
const SHARDS: u64 = 4;
/// Longest wait for anything the cluster does (node up, an array done, a task gone).
const WAIT: Duration = Duration::from_secs(120);

/// Every program the test runs, or why it cannot run (`None`: all there).
fn missing_prerequisites() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (slurmd runs jobs as root here)".into());
    }
    let missing: Vec<&str> = [
        "munged",
        "slurmctld",
        "slurmd",
        "sbatch",
        "squeue",
        "scancel",
        "scontrol",
        "sinfo",
        "ffmpeg",
    ]
    .into_iter()
    .filter(|t| tool(t).is_none())
    .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} not installed (apt-get install slurm-wlm munge ffmpeg)",
            missing.join(", ")
        )
    })
}

/// A program on PATH or in the sbin folders (root's daemons live there).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A port nobody listens on now (the daemons bind it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

fn short_hostname() -> String {
    let out = Command::new("hostname").arg("-s").output();
    match out {
        Ok(o) if o.status.success() && !text(&o.stdout).trim().is_empty() => {
            text(&o.stdout).trim().to_string()
        }
        _ => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .expect("a hostname")
            .trim()
            .split('.')
            .next()
            .unwrap()
            .to_string(),
    }
}

fn nproc() -> usize {
    let out = Command::new("nproc").output().expect("nproc runs");
    text(&out.stdout)
        .trim()
        .parse()
        .expect("nproc prints a number")
}

/// Whether process `pid` (a child of ours) still runs: not gone, not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// A running one-node cluster; dropping it cancels what is left of its jobs and stops the daemons
/// by their PIDs (also when the test fails).
struct Slurm {
    root: PathBuf,
    conf: PathBuf,
    daemons: Vec<Daemon>,
}

impl Slurm {
    fn start(root: &Path) -> Slurm {
        let dirs = ["munge", "state", "spool", "log", "run", "jobs"].map(|d| root.join(d));
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        let [munge, state, spool, log, run, _] = &dirs;
        use std::os::unix::fs::PermissionsExt;
        // munged wants the socket's folder searchable by all and the key readable by it alone.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(munge, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = munge.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
            .unwrap();
        std::fs::write(&key, &bytes).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let socket = munge.join("munge.socket");

        let host = short_hostname();
        let (ctld_port, d_port) = (free_port(), free_port());
        let conf = root.join("slurm.conf");
        let p = |d: &Path| d.display().to_string();
        std::fs::write(
            &conf,
            format!(
                "# One-node test cluster (tests/slurm.rs)\n\
                 ClusterName=framepipe-test\n\
                 SlurmctldHost={host}(127.0.0.1)\n\
                 SlurmctldPort={ctld_port}\n\
                 SlurmdPort={d_port}\n\
                 AuthType=auth/munge\n\
                 CredType=cred/munge\n\
                 AuthInfo=socket={socket}\n\
                 SlurmUser=root\n\
                 SlurmdUser=root\n\
                 StateSaveLocation={state}\n\
                 SlurmdSpoolDir={spool}\n\
                 SlurmctldPidFile={run}/slurmctld.pid\n\
                 SlurmdPidFile={run}/slurmd.pid\n\
                 SlurmctldDebug=info\n\
                 SlurmdDebug=info\n\
                 ProctrackType=proctrack/linuxproc\n\
                 TaskPlugin=task/none\n\
                 JobAcctGatherType=jobacct_gather/none\n\
                 AccountingStorageType=accounting_storage/none\n\
                 JobCompType=jobcomp/none\n\
                 SelectType=select/cons_tres\n\
                 SelectTypeParameters=CR_CPU\n\
                 SchedulerType=sched/builtin\n\
                 SlurmdParameters=config_overrides\n\
                 MpiDefault=none\n\
                 ReturnToService=2\n\
                 KillWait=10\n\
                 MailProg=/bin/true\n\
                 NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN\n\
                 PartitionName=test Nodes=ALL Default=YES MaxTime=10 State=UP\n",
                socket = p(&socket),
                state = p(state),
                spool = p(spool),
                run = p(run),
                cpus = nproc(),
            ),
        )
        .unwrap();
        let mut slurm = Slurm {
            root: root.to_path_buf(),
            conf,
            daemons: Vec::new(),
        };
        slurm.spawn(
            "munged",
            &[
                "--foreground",
                "--force",
                &format!("--socket={}", p(&socket)),
                &format!("--key-file={}", p(&key)),
                &format!("--pid-file={}", p(&munge.join("munged.pid"))),
                &format!("--log-file={}", p(&log.join("munged.file.log"))),
                &format!("--seed-file={}", p(&munge.join("munged.seed"))),
            ],
        );
        slurm.wait_for("munged's socket", || socket.exists());
        slurm.spawn("slurmctld", &["-D"]);
        slurm.spawn("slurmd", &["-D"]);
        slurm.wait_for("the node to be idle", || {
            slurm
                .cmd("sinfo")
                .args(["-h", "-N", "-o", "%t"])
                .output()
                .is_ok_and(|o| text(&o.stdout).trim() == "idle")
        });
        slurm
    }

    /// Starts a daemon in the foreground, its output in `log/NAME.log`.
    fn spawn(&mut self, name: &'static str, args: &[&str]) {
        let log = self.root.join("log").join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let child = self
            .cmd(tool(name).unwrap().to_str().unwrap())
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.daemons.push(Daemon { name, child, log });
    }

    /// A Slurm command (or daemon) that uses this cluster: its `SLURM_CONF`, none of the
    /// environment of a Slurm job this test may itself run in.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SLURM_") {
                c.env_remove(k);
            }
        }
        c.env("SLURM_CONF", &self.conf).current_dir(&self.root);
        c
    }

    /// The daemons' logs, the job outputs and the queue, for a failure message.
    fn logs(&self) -> String {
        let mut s = String::new();
        for d in &self.daemons {
            let log = std::fs::read_to_string(&d.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            s += &format!("\n--- {} ({}):\n", d.name, d.log.display());
            for line in tail.iter().rev() {
                s += line;
                s += "\n";
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.root.join("jobs")) {
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                s += &format!(
                    "\n--- {}:\n{}",
                    f.display(),
                    std::fs::read_to_string(&f).unwrap_or_default()
                );
            }
        }
        if let Ok(o) = self.cmd("squeue").arg("-a").output() {
            s += &format!("\n--- squeue:\n{}{}", text(&o.stdout), text(&o.stderr));
        }
        s
    }

    /// Polls `ready` every 100 ms for at most [`WAIT`]; panics with the logs (and whether a
    /// daemon died) when it never holds.
    fn wait_for(&self, what: &str, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ready() {
            if let Some(d) = self.daemons.iter().find(|d| !alive(d.child.id())) {
                panic!("{} exited while waiting for {what}{}", d.name, self.logs());
            }
            if start.elapsed() > WAIT {
                panic!(
                    "timed out after {:?} waiting for {what}{}",
                    WAIT,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `sbatch` of the array script with `sbatch_args` and `script_args`; with `--wait` among
    /// the sbatch options it returns once the job has ended (bounded: killed after [`WAIT`]).
    fn sbatch(&self, sbatch_args: &[&str], script_args: &[&Path], env: &[(&str, &str)]) -> Output {
        let mut c = self.cmd("sbatch");
        c.args(["--parsable", "--cpus-per-task=1", "--time=5"])
            .arg(format!(
                "--output={}/slurm-%A_%a.out",
                self.root.join("jobs").display()
            ))
            .args(sbatch_args)
            .arg(SCRIPT)
            .args(script_args)
            .env("FRAMEPIPE_BIN", env!("CARGO_BIN_EXE_framepipe"))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("sbatch runs");
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > WAIT {
                let _ = child.kill();
                panic!(
                    "sbatch {sbatch_args:?} still waiting after {WAIT:?}{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.wait_with_output().unwrap()
    }

    /// The tasks of `job` still queued or running (`squeue -j`).
    fn queued(&self, job: &str) -> Vec<String> {
        let o = self
            .cmd("squeue")
            .args(["-h", "-j", job, "-o", "%i %T"])
            .output()
            .unwrap();
        if !o.status.success() && text(&o.stderr).contains("Invalid job id") {
            return Vec::new(); // purged: long gone
        }
        assert!(o.status.success(), "squeue: {}", text(&o.stderr));
        text(&o.stdout).lines().map(str::to_string).collect()
    }

    /// `JobState` of one job or array task (`JOB_TASK`).
    fn state(&self, task: &str) -> String {
        let o = self
            .cmd("scontrol")
            .args(["-o", "show", "job", task])
            .output()
            .unwrap();
        let out = text(&o.stdout);
        out.split_whitespace()
            .find_map(|f| f.strip_prefix("JobState="))
            .unwrap_or_else(|| panic!("no JobState for {task}: {out}{}", text(&o.stderr)))
            .to_string()
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        // Jobs first (their processes are the daemons' grandchildren), then the daemons.
        let _ = self.cmd("scancel").arg("--user=root").output();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            let Ok(o) = self.cmd("squeue").args(["-h", "-o", "%i"]).output() else {
                break;
            };
            if !o.status.success() || text(&o.stdout).trim().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        for d in self.daemons.iter_mut().rev() {
            let pid = d.child.id() as libc::pid_t;
            // SAFETY: a signal to our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let start = Instant::now();
            while matches!(d.child.try_wait(), Ok(None))
                && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(d.child.try_wait(), Ok(None)) {
                eprintln!("{} ignored SIGTERM for 10 s: SIGKILL", d.name);
                let _ = d.child.kill();
                let _ = d.child.wait();
            }
        }
    }
}

/// `n` clips (copies of one, `lavfi` source `src`) under `dir/videos` and a `.jsonl` manifest
/// naming them with the given ids.
fn inputs(dir: &Path, src: &str, ids: &[String]) -> PathBuf {
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
    let mut lines = Vec::new();
    for id in ids {
        let path = videos.join(format!("{id}.mp4"));
        std::fs::copy(&seed, &path).unwrap();
        lines.push(serde_json::json!({"path": format!("videos/{id}.mp4"), "id": id}).to_string());
    }
    let manifest = dir.join("manifest.jsonl");
    std::fs::write(&manifest, lines.join("\n") + "\n").unwrap();
    manifest
}

/// Ids `item-NNN` such that shard `s` of [`SHARDS`] takes `per_shard[s]` of them.
fn ids_per_shard(per_shard: [usize; SHARDS as usize]) -> Vec<String> {
    let shards: Vec<Shard> = (0..SHARDS)
        .map(|index| Shard {
            index,
            count: SHARDS,
        })
        .collect();
    let mut want = per_shard;
    let mut ids = Vec::new();
    for n in 0.. {
        if want.iter().all(|&w| w == 0) {
            break;
        }
        let id = format!("item-{n:03}");
        let s = shards.iter().position(|s| s.takes(&id)).unwrap();
        if want[s] > 0 {
            want[s] -= 1;
            ids.push(id);
        }
    }
    ids
}

fn shard_of(id: &str) -> u64 {
    (0..SHARDS)
        .find(|&index| {
            Shard {
                index,
                count: SHARDS,
            }
            .takes(id)
        })
        .unwrap()
}

/// Done markers under `out` by input id (the folder name: the manifest's id), with their mtimes.
fn done(out: &Path) -> BTreeMap<String, SystemTime> {
    let mut found = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(out) else {
        return found;
    };
    for e in entries.flatten() {
        let marker = e.path().join(".framepipe-done.json");
        if let Ok(m) = std::fs::metadata(&marker) {
            let id = e.file_name().to_string_lossy().into_owned();
            assert!(
                found.insert(id, m.modified().unwrap()).is_none(),
                "one marker per folder"
            );
        }
    }
    found
}

fn partials(out: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(out)
        .map(|es| {
            es.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "partial"))
                .collect()
        })
        .unwrap_or_default()
}

fn json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn shard_summary(out: &Path, s: u64) -> serde_json::Value {
    json(&out.join(format!("summary.shard-{s}-of-{SHARDS}.json")))
}

fn job_id(o: &Output) -> String {
    text(&o.stdout)
        .lines()
        .next()
        .and_then(|l| l.split(';').next())
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| {
            panic!(
                "sbatch printed no job id: {}{}",
                text(&o.stdout),
                text(&o.stderr)
            )
        })
        .to_string()
}

/// `framepipe batch-summary OUT`: exit 0, and the merged summary it prints and writes.
fn merge(out: &Path) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_framepipe"))
        .arg("batch-summary")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "batch-summary: {}", text(&o.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(printed, json(&out.join("summary.json")));
    printed
}

fn count(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

#[test]
fn slurm_array_covers_a_manifest_and_a_cancelled_task_resumes() {
    if let Some(why) = missing_prerequisites() {
        if std::env::var("FRAMEPIPE_REQUIRE_SLURM").as_deref() == Ok("1") {
            panic!("FRAMEPIPE_REQUIRE_SLURM=1 but {why}");
        }
        eprintln!("SKIP: Slurm test: {why}");
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let slurm = Slurm::start(&d.join("slurm"));
    eprintln!("slurm: cluster up in {:.1} s", t0.elapsed().as_secs_f64());

    // Part 1: the whole array, `sbatch --wait`.
    let t1 = Instant::now();
    let one = d.join("one");
    std::fs::create_dir_all(&one).unwrap();
    let ids = ids_per_shard([4, 4, 4, 4]);
    let manifest = inputs(&one, "testsrc2=size=64x48:rate=10:duration=0.3", &ids);
    let fast = one.join("fast.json");
    std::fs::write(&fast, FAST).unwrap();
    let out = one.join("out");
    let o = slurm.sbatch(&["--wait", "--array=0-3"], &[&fast, &manifest, &out], &[]);
    assert!(
        o.status.success(),
        "sbatch --wait --array=0-3: {}{}{}",
        text(&o.stdout),
        text(&o.stderr),
        slurm.logs()
    );
    let job = job_id(&o);
    for s in 0..SHARDS {
        assert_eq!(slurm.state(&format!("{job}_{s}")), "COMPLETED");
    }
    let finished = done(&out);
    assert_eq!(
        finished.keys().cloned().collect::<Vec<_>>(),
        ids,
        "one done marker per input{}",
        slurm.logs()
    );
    assert!(partials(&out).is_empty());
    let mut total_done = 0;
    for s in 0..SHARDS {
        let summary = shard_summary(&out, s);
        let mine = ids.iter().filter(|id| shard_of(id) == s).count() as u64;
        assert_eq!(
            (count(&summary, "inputs"), count(&summary, "done")),
            (mine, mine),
            "shard {s}: {summary}"
        );
        assert_eq!(
            summary["shards"],
            serde_json::json!([format!("{s}/{SHARDS}")])
        );
        total_done += count(&summary, "done");
    }
    // Each input is in exactly one shard's account.
    assert_eq!(total_done, ids.len() as u64);
    let merged = merge(&out);
    assert_eq!(
        (
            count(&merged, "inputs"),
            count(&merged, "done"),
            count(&merged, "failed"),
            count(&merged, "skipped_done"),
        ),
        (ids.len() as u64, ids.len() as u64, 0, 0),
        "{merged}"
    );
    assert_eq!(
        merged["shards"],
        serde_json::json!(["0/4", "1/4", "2/4", "3/4"])
    );
    eprintln!(
        "slurm: part 1 ({} inputs, 4 tasks) in {:.1} s",
        ids.len(),
        t1.elapsed().as_secs_f64()
    );

    // Part 2: a slower array; task 2 (most of the inputs) is cancelled once it has done some.
    let t2 = Instant::now();
    let two = d.join("two");
    std::fs::create_dir_all(&two).unwrap();
    const TARGET: u64 = 2;
    let ids = ids_per_shard([2, 2, 12, 2]);
    let target_ids: BTreeSet<String> = ids
        .iter()
        .filter(|id| shard_of(id) == TARGET)
        .cloned()
        .collect();
    let manifest = inputs(&two, "testsrc2=size=320x240:rate=25:duration=1", &ids);
    let slow = two.join("slow.json");
    std::fs::write(&slow, SLOW).unwrap();
    let out = two.join("out");
    let o = slurm.sbatch(&["--array=0-3"], &[&slow, &manifest, &out], &[]);
    assert!(o.status.success(), "sbatch: {}", text(&o.stderr));
    let job = job_id(&o);
    let target_done = || {
        done(&out)
            .keys()
            .filter(|id| target_ids.contains(*id))
            .count()
    };
    slurm.wait_for("task 2 to finish its first input", || target_done() >= 1);
    let when = target_done();
    assert!(
        when < target_ids.len(),
        "task {TARGET} did all {} inputs before it could be cancelled: make them slower",
        target_ids.len()
    );
    let task = format!("{job}_{TARGET}");
    let o = slurm.cmd("scancel").arg(&task).output().unwrap();
    assert!(o.status.success(), "scancel {task}: {}", text(&o.stderr));
    let cancelled_at = t2.elapsed().as_secs_f64();
    slurm.wait_for("the array to end", || slurm.queued(&job).is_empty());
    assert_eq!(slurm.state(&task), "CANCELLED");
    for s in (0..SHARDS).filter(|&s| s != TARGET) {
        assert_eq!(slurm.state(&format!("{job}_{s}")), "COMPLETED");
    }
    let before = done(&out);
    let target_before = before.keys().filter(|id| target_ids.contains(*id)).count();
    assert!(
        target_before >= when && target_before < target_ids.len(),
        "cancelled mid-run: {target_before} of {} done",
        target_ids.len()
    );
    assert_eq!(before.len(), ids.len() - (target_ids.len() - target_before));
    // SIGTERM: the running input finished, nothing new started, the account says so.
    assert!(partials(&out).is_empty(), "{:?}", partials(&out));
    let cancelled = shard_summary(&out, TARGET);
    assert!(
        count(&cancelled, "not_started") > 0 && count(&cancelled, "done") == target_before as u64,
        "{cancelled}"
    );
    eprintln!(
        "slurm: task {task} cancelled after {target_before} of {} inputs ({cancelled_at:.1} s), \
         the array ended at {:.1} s",
        target_ids.len(),
        t2.elapsed().as_secs_f64()
    );

    // The lone index without SHARDS: refused (its array has 1 task, it would take everything).
    let o = slurm.sbatch(
        &["--wait", &format!("--array={TARGET}")],
        &[&slow, &manifest, &out],
        &[],
    );
    assert!(!o.status.success(), "a lone index without SHARDS runs");
    let refused = job_id(&o);
    let log = std::fs::read_to_string(
        slurm
            .root
            .join("jobs")
            .join(format!("slurm-{refused}_{TARGET}.out")),
    )
    .unwrap();
    assert!(log.contains("pass SHARDS"), "{log}");
    assert_eq!(done(&out), before, "the refused task did nothing");

    // Resubmitted with SHARDS: the rest of shard 2, nothing else.
    let o = slurm.sbatch(
        &["--wait", &format!("--array={TARGET}")],
        &[&slow, &manifest, &out, Path::new("4")],
        &[],
    );
    assert!(
        o.status.success(),
        "resubmitted {TARGET}: {}{}",
        text(&o.stderr),
        slurm.logs()
    );
    let after = done(&out);
    assert_eq!(
        after.keys().cloned().collect::<Vec<_>>(),
        ids,
        "every input done{}",
        slurm.logs()
    );
    for (id, mtime) in &before {
        assert_eq!(after[id], *mtime, "{id} was redone");
    }
    assert!(partials(&out).is_empty(), "{:?}", partials(&out));
    let resumed = shard_summary(&out, TARGET);
    assert_eq!(
        (
            count(&resumed, "skipped_done"),
            count(&resumed, "done"),
            count(&resumed, "failed"),
            count(&resumed, "not_started"),
        ),
        (
            target_before as u64,
            (target_ids.len() - target_before) as u64,
            0,
            0
        ),
        "{resumed}"
    );
    let merged = merge(&out);
    assert_eq!(
        (
            count(&merged, "inputs"),
            count(&merged, "done") + count(&merged, "skipped_done"),
            count(&merged, "failed"),
        ),
        (ids.len() as u64, ids.len() as u64, 0),
        "{merged}"
    );
    eprintln!(
        "slurm: part 2 ({} inputs, cancel + resubmit) in {:.1} s",
        ids.len(),
        t2.elapsed().as_secs_f64(),
    );

    // Part 3: no shards: a 3-task array shares one manifest by claims.
    let t3 = Instant::now();
    let three = d.join("three");
    std::fs::create_dir_all(&three).unwrap();
    let ids: Vec<String> = (0..12).map(|i| format!("item-{i:03}")).collect();
    let manifest = inputs(&three, "testsrc2=size=64x48:rate=10:duration=0.3", &ids);
    let fast = three.join("fast.json");
    std::fs::write(&fast, FAST).unwrap();
    let out = three.join("out");
    let o = slurm.sbatch(
        &["--wait", "--array=0-2"],
        &[
            &fast,
            &manifest,
            &out,
            Path::new("none"),
            Path::new("--"),
            Path::new("-v"),
        ],
        &[],
    );
    assert!(
        o.status.success(),
        "sbatch --wait --array=0-2 (no shards): {}{}{}",
        text(&o.stdout),
        text(&o.stderr),
        slurm.logs()
    );
    let job = job_id(&o);
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for task in 0..3 {
        assert_eq!(slurm.state(&format!("{job}_{task}")), "COMPLETED");
        let log = slurm
            .root
            .join("jobs")
            .join(format!("slurm-{job}_{task}.out"));
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(log.contains("no shards"), "{log}");
        for line in log.lines() {
            if let Some((_, rest)) = line.split_once("batch: done [") {
                let id = rest.split_once(']').unwrap().0.to_string();
                *runs.entry(id).or_default() += 1;
            }
        }
    }
    let once: BTreeMap<String, usize> = ids.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(runs, once, "every input done exactly once{}", slurm.logs());
    assert_eq!(done(&out).keys().cloned().collect::<Vec<_>>(), ids);
    assert!(partials(&out).is_empty(), "{:?}", partials(&out));
    let merged = merge(&out);
    assert_eq!(
        (
            count(&merged, "inputs"),
            count(&merged, "done") + count(&merged, "skipped_done"),
            count(&merged, "failed"),
        ),
        (ids.len() as u64, ids.len() as u64, 0),
        "{merged}"
    );
    eprintln!(
        "slurm: part 3 ({} inputs, 3 tasks, no shards) in {:.1} s; whole test {:.1} s",
        ids.len(),
        t3.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
