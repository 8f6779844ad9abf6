//! `framepipe batch`: many inputs with bad ones among them, crash and resume, concurrent shards,
//! stale outputs, SIGTERM.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const FAST: &str =
    r#"{"scenes": {}, "encode": {"preset": "ultrafast", "crf": 30}, "device": "cpu"}"#;

/// `n` copies of one tiny clip under `dir`, spread over sub-folders (equal names in each).
fn tiny_videos(dir: &Path, n: usize) -> Vec<PathBuf> {
    let seed = dir.join("seed.mp4");
    tiny_clip(&seed);
    (0..n)
        .map(|i| {
            let folder = dir.join("videos").join(format!("group{}", i % 10));
            std::fs::create_dir_all(&folder).unwrap();
            let path = folder.join(format!("clip{}.mp4", i / 10));
            std::fs::copy(&seed, &path).unwrap();
            path
        })
        .collect()
}

fn batch(out: &Path, cfg: &Path, extra: &[&str], inputs: &[&Path]) -> std::process::Output {
    framepipe()
        .args(["-q", "batch", "--pipeline"])
        .arg(cfg)
        .arg("-o")
        .arg(out)
        .args(extra)
        .args(inputs)
        .output()
        .unwrap()
}

/// The done markers of finished outputs (a `.partial` folder's marker is not one: a kill can
/// land between writing it and the rename that finishes the output).
fn markers(out: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    fn walk(d: &Path, found: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.extension().is_some_and(|x| x == "partial") {
                    continue;
                }
                walk(&p, found);
            } else if p.file_name().unwrap() == ".framepipe-done.json" {
                found.push(p);
            }
        }
    }
    if out.exists() {
        walk(out, &mut found);
    }
    found.sort();
    found
}

fn partials(out: &Path) -> usize {
    let mut n = 0;
    fn walk(d: &Path, n: &mut usize) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.extension().is_some_and(|x| x == "partial") {
                    *n += 1;
                }
                walk(&p, n);
            }
        }
    }
    walk(out, &mut n);
    n
}

#[test]
fn two_hundred_good_five_bad() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_videos(d, 200);
    let bad = d.join("videos/bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("empty.mp4"), b"").unwrap();
    std::fs::write(bad.join("text.mp4"), "not a video\n".repeat(10)).unwrap();
    std::fs::write(bad.join("zeros.mkv"), vec![0u8; 4096]).unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=0.5",
        bad.join("audio.mp4").to_str().unwrap(),
    ]);
    std::fs::write(
        bad.join("half.mov"),
        &std::fs::read(d.join("seed.mp4")).unwrap()[..300],
    )
    .unwrap();
    let cfg = pipeline(d, "fast.json", FAST);
    let out = d.join("out");
    let o = batch(&out, &cfg, &["--jobs", "2"], &[&d.join("videos")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (summary["done"].as_u64(), summary["failed"].as_u64()),
        (Some(200), Some(5)),
        "{summary}"
    );
    assert_eq!(markers(&out).len(), 200);
    // Equal names in different folders do not collide: the layout mirrors the inputs.
    assert!(
        out.join("group3/clip7/clip7.mp4").exists() && out.join("group4/clip7/clip7.mp4").exists()
    );
    let failures: Vec<serde_json::Value> = std::fs::read_to_string(out.join("failures.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut failed: Vec<String> = failures
        .iter()
        .map(|f| {
            Path::new(f["input"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            "audio.mp4",
            "empty.mp4",
            "half.mov",
            "text.mp4",
            "zeros.mkv"
        ]
    );
    assert!(
        failures
            .iter()
            .all(|f| !f["errors"][0].as_str().unwrap().is_empty()
                && f["attempts"].as_u64() == Some(1))
    );
    assert_eq!(partials(&out), 0);
    assert!(out.join("summary.json").exists());
}

#[test]
fn killed_batch_resumes_without_redoing_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_videos(d, 60);
    let cfg = pipeline(d, "fast.json", FAST);
    let out = d.join("out");
    let mut child = framepipe()
        .args(["-q", "batch", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .arg(d.join("videos"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while markers(&out).len() < 10 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let before: Vec<(PathBuf, std::time::SystemTime)> = markers(&out)
        .into_iter()
        .map(|m| {
            (
                m.clone(),
                std::fs::metadata(&m).unwrap().modified().unwrap(),
            )
        })
        .collect();
    assert!(
        before.len() >= 10 && before.len() < 60,
        "killed mid-batch: {} done",
        before.len()
    );

    // A leftover partial folder next to a finished one (as a crash during a --force redo
    // leaves it): the rerun drops it.
    let done_dir = before[0].0.parent().unwrap().to_path_buf();
    let name = format!(
        "{}.partial",
        done_dir.file_name().unwrap().to_str().unwrap()
    );
    std::fs::create_dir_all(done_dir.with_file_name(name)).unwrap();
    let o = batch(&out, &cfg, &[], &[&d.join("videos")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        summary["skipped_done"].as_u64().unwrap(),
        before.len() as u64,
        "{summary}"
    );
    assert_eq!(
        summary["done"].as_u64().unwrap(),
        60 - before.len() as u64,
        "{summary}"
    );
    for (marker, modified) in &before {
        assert_eq!(
            std::fs::metadata(marker).unwrap().modified().unwrap(),
            *modified,
            "{marker:?} was redone"
        );
    }
    let all = markers(&out);
    assert_eq!(all.len(), 60);
    assert_eq!(partials(&out), 0, "no .partial folder left");
    for marker in &all {
        let folder = marker.parent().unwrap();
        let stem = folder.file_name().unwrap().to_str().unwrap();
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join(format!("{stem}.json"))).unwrap())
                .unwrap();
        assert_eq!(report["output"]["frames"], 3);
        let p = Command::new("ffprobe")
            .args(["-v", "error", "-show_format"])
            .arg(folder.join(format!("{stem}.mp4")))
            .output()
            .unwrap();
        assert!(
            p.status.success(),
            "{folder:?}: {}",
            String::from_utf8_lossy(&p.stderr)
        );
    }
}

#[test]
fn four_concurrent_shards_cover_a_manifest_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let videos = tiny_videos(d, 40);
    let manifest = d.join("manifest.jsonl");
    let lines: Vec<String> = videos
        .iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::json!({"path": v.strip_prefix(d).unwrap(), "id": format!("item-{i:03}")})
                .to_string()
        })
        .collect();
    std::fs::write(&manifest, lines.join("\n")).unwrap();
    let cfg = pipeline(d, "fast.json", FAST);
    let out = d.join("out");
    let children: Vec<_> = (0..4)
        .map(|i| {
            framepipe()
                .args(["-q", "batch", "--pipeline"])
                .arg(&cfg)
                .arg("-o")
                .arg(&out)
                .arg("--manifest")
                .arg(&manifest)
                .args(["--shard", &format!("{i}/4")])
                .output()
        })
        .collect();
    for c in children {
        let c = c.unwrap();
        assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));
    }
    let mut ids: Vec<String> = markers(&out)
        .iter()
        .map(|m| {
            m.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    ids.sort();
    let expected: Vec<String> = (0..40).map(|i| format!("item-{i:03}")).collect();
    assert_eq!(ids, expected);
    let merged = framepipe().arg("batch-summary").arg(&out).output().unwrap();
    assert!(merged.status.success(), "{}", stderr(&merged));
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        (
            s["inputs"].as_u64(),
            s["done"].as_u64(),
            s["shards"].as_array().unwrap().len()
        ),
        (Some(40), Some(40), 4)
    );
}

#[test]
fn shard_from_scheduler_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_videos(d, 12);
    let cfg = pipeline(d, "fast.json", FAST);
    let out = d.join("out");
    let mut total = 0;
    for (i, env) in [("JOB_COMPLETION_INDEX", "0"), ("JOB_COMPLETION_INDEX", "1")]
        .iter()
        .enumerate()
    {
        let o = framepipe()
            .args(["-q", "batch", "--pipeline"])
            .arg(&cfg)
            .arg("-o")
            .arg(&out)
            .arg(d.join("videos"))
            .env(env.0, env.1)
            .env("FRAMEPIPE_SHARDS", "2")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(s["shards"][0], format!("{i}/2"));
        total += s["done"].as_u64().unwrap();
    }
    assert_eq!(total, 12);
    let o = framepipe()
        .args(["batch", "-o"])
        .arg(&out)
        .arg(d.join("videos"))
        .env("JOB_COMPLETION_INDEX", "0")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "a Kubernetes index without FRAMEPIPE_SHARDS is a usage error"
    );
}

#[test]
fn changed_config_makes_outputs_stale() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_videos(d, 6);
    let out = d.join("out");
    let first = pipeline(d, "a.json", FAST);
    assert!(batch(&out, &first, &[], &[&d.join("videos")])
        .status
        .success());
    let second = pipeline(
        d,
        "b.json",
        r#"{"scenes": {}, "encode": {"preset": "ultrafast", "crf": 35}, "device": "cpu"}"#,
    );
    let o = batch(&out, &second, &[], &[&d.join("videos")]);
    assert_eq!(o.status.code(), Some(0));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (s["stale_skipped"].as_u64(), s["done"].as_u64()),
        (Some(6), Some(0)),
        "{s}"
    );
    assert!(
        stderr(&o).contains("stale:") && stderr(&o).contains("--redo-stale"),
        "{}",
        stderr(&o)
    );
    let o = batch(&out, &second, &["--redo-stale"], &[&d.join("videos")]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["done"].as_u64(), Some(6), "{s}");
    let o = batch(&out, &second, &[], &[&d.join("videos")]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["skipped_done"].as_u64(), Some(6), "{s}");
}

#[test]
fn sigterm_stops_taking_inputs_and_stays_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_videos(d, 80);
    let cfg = pipeline(d, "fast.json", FAST);
    let out = d.join("out");
    let child = framepipe()
        .args(["-q", "batch", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .arg(d.join("videos"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while markers(&out).len() < 5 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(s["not_started"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(partials(&out), 0);
    let o = batch(&out, &cfg, &[], &[&d.join("videos")]);
    assert!(o.status.success());
    assert_eq!(markers(&out).len(), 80);
}

/// `OUT/<name>` as parsed JSON lines (every line whole), or nothing when the file is absent.
fn jsonl(out: &Path, name: &str) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(out.join(name)) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {l:?}: {e}")))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// (id, attempts) of each line, sorted by id.
fn failed_ids(lines: &[serde_json::Value]) -> Vec<(String, u64)> {
    let mut ids: Vec<(String, u64)> = lines
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn failures_are_the_state_of_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_videos(d, 40);
    let videos = d.join("videos");
    // Folder ids sort "bad/" before "group*/": the bad inputs fail before the kill.
    let bad = videos.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("empty.mp4"), b"").unwrap();
    std::fs::write(bad.join("text.mp4"), "not a video\n".repeat(10)).unwrap();
    let cfg = pipeline(d, "fast.json", FAST);
    let out = d.join("out");
    let mut child = framepipe()
        .args(["-q", "batch", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .arg(&videos)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while (jsonl(&out, "failures.jsonl").len() < 2 || markers(&out).len() < 3)
        && start.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL mid-batch
    child.wait().unwrap();
    assert!(markers(&out).len() < 40, "killed before the end");
    let first = failed_ids(&jsonl(&out, "failures.jsonl"));
    assert_eq!(
        first,
        [
            ("bad/empty.mp4".to_string(), 1),
            ("bad/text.mp4".to_string(), 1)
        ],
        "ids are relative to the input folder"
    );

    // Resume: the bad inputs fail again; still one line each, attempts counted across runs.
    let o = batch(&out, &cfg, &[], &[&videos]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(markers(&out).len(), 40);
    assert_eq!(
        failed_ids(&jsonl(&out, "failures.jsonl")),
        [
            ("bad/empty.mp4".to_string(), 2),
            ("bad/text.mp4".to_string(), 2)
        ]
    );

    // An input that succeeds on a later run leaves the list.
    std::fs::copy(d.join("seed.mp4"), bad.join("text.mp4")).unwrap();
    let o = batch(&out, &cfg, &[], &[&videos]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let lines = jsonl(&out, "failures.jsonl");
    assert_eq!(failed_ids(&lines), [("bad/empty.mp4".to_string(), 3)]);
    assert!(lines[0]["input"]
        .as_str()
        .unwrap()
        .ends_with("bad/empty.mp4"));
    assert!(!lines[0]["errors"][0].as_str().unwrap().is_empty());

    // Shards: each writes its own list; batch-summary merges them into failures.jsonl.
    for more in 0..6 {
        std::fs::write(bad.join(format!("junk{more}.mkv")), vec![0u8; 2048]).unwrap();
    }
    // Concurrent shard processes over one OUT lose no line.
    let children: Vec<_> = (0..3)
        .map(|i| {
            framepipe()
                .args(["-q", "batch", "--pipeline"])
                .arg(&cfg)
                .arg("-o")
                .arg(&out)
                .args(["--shard", &format!("{i}/3")])
                .arg(&videos)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut from_shards = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let c = c.wait_with_output().unwrap();
        assert!(matches!(c.status.code(), Some(0 | 1)), "{}", stderr(&c));
        from_shards.extend(failed_ids(&jsonl(
            &out,
            &format!("failures.shard-{i}-of-3.jsonl"),
        )));
    }
    from_shards.sort();
    let mut expected: Vec<(String, u64)> =
        (0..6).map(|i| (format!("bad/junk{i}.mkv"), 1)).collect();
    expected.push(("bad/empty.mp4".to_string(), 4));
    expected.sort();
    assert_eq!(from_shards, expected);
    let merged = framepipe().arg("batch-summary").arg(&out).output().unwrap();
    assert!(merged.status.success(), "{}", stderr(&merged));
    assert_eq!(failed_ids(&jsonl(&out, "failures.jsonl")), expected);
}
