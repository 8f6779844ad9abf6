//! Commands under a watchdog: run with stdout and stderr in files, killed at a time limit, and
//! judged the same way everywhere (exited by itself with 0, 1 or 2, no panic).
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How one command ended: `None` when it was killed at its time limit.
pub struct Ran {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` with stdout and stderr in files of `dir` (no pipe to fill), polling for its end;
/// kills it when `limit` passes.
pub fn run_timed(mut cmd: Command, dir: &Path, tag: &str, limit: Duration) -> Ran {
    let out_path = dir.join(format!("{tag}.stdout"));
    let err_path = dir.join(format!("{tag}.stderr"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{tag}: cannot start: {e}"));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(15));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Ran {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

/// The first lines of a text, for a violation message.
pub fn head(text: &str) -> String {
    let lines: Vec<&str> = text.lines().take(6).collect();
    let mut s = lines.join(" | ");
    if s.len() > 600 {
        let mut cut = 600;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// The common judgement of a framepipe command: exited by itself with 0, 1 or 2 and printed
/// no panic. Returns the exit code when it exited at all.
pub fn judge(what: &str, ran: &Ran, limit: Duration, bad: &mut Vec<String>) -> Option<i32> {
    if ran.stderr.contains("panicked") {
        let line = ran
            .stderr
            .lines()
            .find(|l| l.contains("panicked"))
            .unwrap_or("");
        bad.push(format!("{what}: panic on stderr: {line}"));
    }
    let Some(status) = ran.status else {
        bad.push(format!(
            "{what}: no exit within {} s (hang; killed)",
            limit.as_secs()
        ));
        return None;
    };
    if let Some(sig) = status.signal() {
        bad.push(format!(
            "{what}: killed by signal {sig} (6 = abort, e.g. a panic in a panic or an FFmpeg assert; 11 = segfault); stderr: {}",
            head(&ran.stderr)
        ));
        return None;
    }
    let code = status.code().unwrap();
    if !matches!(code, 0..=2) {
        bad.push(format!(
            "{what}: exit code {code} (allowed: 0, 1, 2); stderr: {}",
            head(&ran.stderr)
        ));
    }
    Some(code)
}
