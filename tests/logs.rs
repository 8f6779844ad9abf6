//! stderr fits files and machines: no ANSI escape codes unless stderr is a terminal (and then
//! not with `NO_COLOR`), and `--log-format json` writes one JSON object per line for log
//! collectors, naming the input each line is about.
mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const FAST: &str =
    r#"{"scenes": {}, "encode": {"preset": "ultrafast", "crf": 30}, "device": "cpu"}"#;

/// A good clip and a bad one in `d`, and the fast pipeline: `(good, bad, pipeline)`.
fn inputs(d: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let good = d.join("good.mp4");
    tiny_clip(&good);
    let bad = d.join("bad.mp4");
    std::fs::write(&bad, "not a video\n".repeat(10)).unwrap();
    (good, bad, pipeline(d, "fast.json", FAST))
}

/// The `script` command line that runs framepipe with `args` under a pseudo-terminal.
fn in_a_terminal(args: &[&str]) -> Command {
    let bin = env!("CARGO_BIN_EXE_framepipe");
    let line = std::iter::once(bin)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]);
    cmd
}

#[test]
fn no_escape_codes_when_stderr_is_a_file_or_no_color_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (good, bad, cfg) = inputs(d);
    let args = |out: &str| {
        vec![
            "-v".to_string(),
            "run".into(),
            "--pipeline".into(),
            cfg.display().to_string(),
            "-o".into(),
            d.join(out).display().to_string(),
            good.display().to_string(),
            bad.display().to_string(),
        ]
    };
    // stderr piped (as into a file or a cluster's log): plain text.
    let o = framepipe().args(args("piped")).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("processing") && err.contains("error: "),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "escape codes in piped stderr: {err:?}"
    );

    // Under a terminal tracing colours its lines, unless NO_COLOR says not to.
    let Ok(probe) = Command::new("script").arg("--version").output() else {
        eprintln!("SKIP: no `script` (util-linux) for a pseudo-terminal");
        return;
    };
    assert!(probe.status.success());
    let refs = args("tty");
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let o = in_a_terminal(&refs)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        screen.contains('\u{1b}'),
        "a terminal gets colours: {screen:?}"
    );
    let refs = args("no-color");
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let o = in_a_terminal(&refs).env("NO_COLOR", "1").output().unwrap();
    let screen = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(screen.contains("processing"), "{screen:?}");
    // The progress bar may still draw on a terminal; the log lines carry no colour codes.
    for line in screen.lines().filter(|l| l.contains("processing")) {
        assert!(!line.contains("\u{1b}["), "NO_COLOR: {line:?}");
    }
}

/// Every stderr line as a JSON object with the fixed keys.
fn json_lines(err: &str) -> Vec<serde_json::Value> {
    err.lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}"));
            for key in ["timestamp", "level", "target", "input", "message", "fields"] {
                assert!(v.get(key).is_some(), "{key} missing: {l}");
            }
            assert!(v["fields"].is_object(), "{l}");
            v
        })
        .collect()
}

#[test]
fn json_logs_are_one_object_per_line_naming_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (good, bad, cfg) = inputs(d);
    let o = framepipe()
        .args(["-v", "--log-format", "json", "run", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(d.join("out"))
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let lines = json_lines(&stderr(&o));
    let good_text = good.display().to_string();
    let bad_text = bad.display().to_string();
    let processing = lines
        .iter()
        .find(|l| l["message"] == "processing")
        .expect("an info line per input");
    assert_eq!(processing["input"], good_text.as_str());
    assert_eq!(processing["level"], "INFO");
    assert_eq!(processing["fields"]["codec"], "h264");
    let error = lines
        .iter()
        .find(|l| l["level"] == "ERROR")
        .expect("the bad input's error");
    assert_eq!(error["input"], bad_text.as_str());
    assert!(
        error["message"].as_str().unwrap().contains("bad.mp4"),
        "{error}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["timestamp"].as_str().unwrap().ends_with('Z')),
        "RFC 3339 UTC timestamps"
    );

    // The batch's messages (errors, progress) are JSON lines too.
    let o = framepipe()
        .args(["--log-format", "json", "batch", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(d.join("batch"))
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let lines = json_lines(&stderr(&o));
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "ERROR" && l["input"] == bad_text.as_str()),
        "{lines:?}"
    );
}
