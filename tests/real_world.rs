//! Real-world layouts through every command, each under a watchdog. Generated inputs that stress
//! timing and layout (a 20 s single shot with keyframes every 300 frames, VFR with dropped
//! frames, rotation 90/270, letterboxed and pillarboxed pictures, 1–3 frame videos, an odd
//! 721x405 size, an audio track that outlasts the video, 60 frames at 1000 fps) go through
//! `run --report` (scenes, clips, CLIP and VAE with the tiny random fixtures, x264), then
//! `report`, `export` (WebDataset and Parquet), `search`, `check` and `vae decode` on what it
//! made. Every command must end by itself within its stated bound, with 0, 1 or 2 and no panic;
//! one that fails must name the file it failed on and say why. The report page's scene
//! thumbnails of the long shot (the hang this test was written for: seeking back to the one
//! keyframe forever) must exist.
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::watchdog::{head, judge, run_timed, Ran};
use common::*;

/// Bounds per command, for the whole set of inputs at once (2-core machine, release build).
const RUN_LIMIT: Duration = Duration::from_secs(300);
const REPORT_LIMIT: Duration = Duration::from_secs(60);
const EXPORT_LIMIT: Duration = Duration::from_secs(60);
const SEARCH_LIMIT: Duration = Duration::from_secs(60);
const CHECK_LIMIT: Duration = Duration::from_secs(120);
const VAE_DECODE_LIMIT: Duration = Duration::from_secs(120);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/framepipe-torch/tests/fixtures")
}

/// `testsrc2` (moving, no cuts) at `size` and `rate` for `seconds`.
fn src(size: &str, rate: &str, seconds: f64) -> String {
    format!("testsrc2=size={size}:rate={rate}:duration={seconds}")
}

fn args(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn make(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut all: Vec<&str> = args.to_vec();
    all.push(path.to_str().unwrap());
    ffmpeg(&all);
    path
}

const X264: [&str; 6] = [
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    "yuv420p",
];

/// The inputs, by name.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let with = |pre: &[&str], post: &[&str]| -> Vec<String> {
        pre.iter()
            .chain(X264.iter())
            .chain(post.iter())
            .map(|s| s.to_string())
            .collect()
    };
    // A 20 s single shot, one keyframe every 300 frames (12 s at 25 fps).
    let a = with(
        &["-f", "lavfi", "-i", &src("320x180", "25", 20.0)],
        &["-g", "300", "-keyint_min", "300", "-sc_threshold", "0"],
    );
    v.push(make(dir, "long_shot.mp4", &args(&a)));
    // VFR with dropped frames: every 7th and 11th frame left out, timestamps kept.
    let a = with(
        &[
            "-f",
            "lavfi",
            "-i",
            &src("320x240", "30", 4.0),
            "-vf",
            "select='not(eq(mod(n\\,7)\\,3))*not(eq(mod(n\\,11)\\,5))'",
            "-fps_mode",
            "vfr",
        ],
        &[],
    );
    v.push(make(dir, "vfr_dropped.mkv", &args(&a)));
    // Rotation tags (display matrices) 90 and 270, stored landscape.
    let flat = make(
        dir,
        "flat.mp4",
        &args(&with(
            &["-f", "lavfi", "-i", &src("320x180", "25", 2.0)],
            &[],
        )),
    );
    for (name, angle) in [("rot90.mp4", "90"), ("rot270.mp4", "270")] {
        let tag = format!("rotate={angle}");
        v.push(make(
            dir,
            name,
            &[
                "-i",
                flat.to_str().unwrap(),
                "-c",
                "copy",
                "-metadata:s:v:0",
                &tag,
            ],
        ));
    }
    std::fs::remove_file(&flat).unwrap();
    // Letterboxed (bars above and below) and pillarboxed (bars left and right) pictures.
    let a = with(
        &[
            "-f",
            "lavfi",
            "-i",
            &src("320x136", "25", 2.0),
            "-vf",
            "pad=320:240:0:52:black",
        ],
        &[],
    );
    v.push(make(dir, "letterboxed.mp4", &args(&a)));
    let a = with(
        &[
            "-f",
            "lavfi",
            "-i",
            &src("240x240", "25", 2.0),
            "-vf",
            "pad=428:240:94:0:black",
        ],
        &[],
    );
    v.push(make(dir, "pillarboxed.mp4", &args(&a)));
    // One, two and three frames.
    for n in 1..=3 {
        let frames = n.to_string();
        let a = with(
            &["-f", "lavfi", "-i", &src("160x120", "25", 1.0)],
            &["-frames:v", &frames],
        );
        v.push(make(dir, &format!("frames_{n}.mp4"), &args(&a)));
    }
    // An odd size (no 4:2:0 at 721x405): MJPEG keeps it.
    v.push(make(
        dir,
        "odd_721x405.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            &src("721x405", "25", 1.0),
            "-c:v",
            "mjpeg",
            "-q:v",
            "5",
        ],
    ));
    // Audio that goes on 3 s after the video ends.
    let a = with(
        &[
            "-f",
            "lavfi",
            "-i",
            &src("320x180", "25", 2.0),
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=5",
            "-c:a",
            "aac",
        ],
        &[],
    );
    v.push(make(dir, "audio_tail.mp4", &args(&a)));
    // 60 frames with 1000 fps timestamps (60 ms of video).
    let a = with(
        &["-f", "lavfi", "-i", &src("160x120", "1000", 0.06)],
        &["-video_track_timescale", "1000"],
    );
    v.push(make(dir, "fast_1000fps.mp4", &args(&a)));
    v
}

fn fp(args: &[&str]) -> std::process::Command {
    let mut c = framepipe();
    c.args(args).env("RUST_BACKTRACE", "1").env("NO_COLOR", "1");
    c
}

/// A failing command must name the file it failed on and a cause.
fn error_lines_name_a_file(what: &str, ran: &Ran, files: &[String], bad: &mut Vec<String>) {
    for line in ran.stderr.lines().filter(|l| l.starts_with("error")) {
        if !files.iter().any(|f| line.contains(f.as_str())) || !line.contains(": ") {
            bad.push(format!(
                "{what}: error line names no file and cause: {line}"
            ));
        }
    }
}

#[test]
fn every_command_handles_real_world_layouts_within_its_bound() {
    let d = tempfile::tempdir().unwrap();
    let inputs = inputs(d.path());
    let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    let logs = d.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let cfg = pipeline(
        d.path(),
        "everything.json",
        &format!(
            r#"{{"scenes": {{"detector": "content"}},
                "clips": {{"min_seconds": 0.5, "max_seconds": 10.0, "trim_seconds": 0.1}},
                "clip": {{"model": {:?}, "labels": ["a test pattern", "a cat"], "sample": {{"every_n_frames": 25}}}},
                "vae": {{"model": {:?}, "every_n_frames": 25, "frames_per_shard": 8}},
                "encode": {{"preset": "ultrafast"}}, "device": "cpu"}}"#,
            fixtures().join("clip-tiny").display().to_string(),
            fixtures().join("vae-tiny-tiny").display().to_string()
        ),
    );
    let out = d.path().join("out");
    let mut bad = Vec::new();

    // run --report over every input.
    let mut args = vec![
        "run".to_string(),
        "--pipeline".into(),
        cfg.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--report".into(),
    ];
    args.extend(names.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = run_timed(fp(&args), &logs, "run", RUN_LIMIT);
    let code = judge("run --report", &ran, RUN_LIMIT, &mut bad);
    error_lines_name_a_file("run", &ran, &names, &mut bad);
    let done: Vec<PathBuf> = inputs
        .iter()
        .map(|i| out.join(i.file_stem().unwrap()))
        .filter(|o| o.join(".framepipe-done.json").exists() || o.is_dir())
        .collect();
    if code == Some(0) && done.len() != inputs.len() {
        bad.push(format!(
            "run: exit 0 but {} of {} outputs",
            done.len(),
            inputs.len()
        ));
    }
    if code != Some(0) {
        bad.push(format!(
            "run: these generated inputs are all valid videos; exit {code:?}: {}",
            head(&ran.stderr)
        ));
    }
    // Every finished output's video decodes, and the long shot got its page thumbnails.
    for o in &done {
        let stem = o.file_name().unwrap().to_str().unwrap();
        let mp4 = o.join(format!("{stem}.mp4"));
        let mut c = std::process::Command::new("ffmpeg");
        c.args(["-nostdin", "-v", "error", "-i"])
            .arg(&mp4)
            .args(["-map", "0", "-f", "null", "-"]);
        let v = run_timed(c, &logs, &format!("verify-{stem}"), Duration::from_secs(60));
        if !(v.status.is_some_and(|s| s.success()) && v.stderr.trim().is_empty()) {
            bad.push(format!(
                "{stem}.mp4 does not decode cleanly: {}",
                head(&v.stderr)
            ));
        }
    }
    let page = out.join("report/index.html");
    match std::fs::read_to_string(&page) {
        Ok(html) => {
            if !html.contains("long_shot") || !html.contains("thumb-middle") {
                bad.push("run --report: the page lacks the long shot's thumbnails".into());
            }
        }
        Err(e) => bad.push(format!("run --report wrote no page: {e}")),
    }

    // report over the finished outputs.
    let page_dir = d.path().join("page");
    let ran = run_timed(
        fp(&[
            "report",
            out.to_str().unwrap(),
            "-o",
            page_dir.to_str().unwrap(),
        ]),
        &logs,
        "report",
        REPORT_LIMIT,
    );
    if judge("report", &ran, REPORT_LIMIT, &mut bad) != Some(0) {
        bad.push(format!("report: {}", head(&ran.stderr)));
    }

    // export, both formats.
    for format in ["webdataset", "parquet"] {
        let dest = d.path().join(format!("export-{format}"));
        let ran = run_timed(
            fp(&[
                "export",
                out.to_str().unwrap(),
                "-o",
                dest.to_str().unwrap(),
                "--format",
                format,
            ]),
            &logs,
            &format!("export-{format}"),
            EXPORT_LIMIT,
        );
        let code = judge(&format!("export {format}"), &ran, EXPORT_LIMIT, &mut bad);
        if code != Some(0) {
            bad.push(format!("export {format}: {}", head(&ran.stderr)));
        }
    }

    // search by text over every output.
    let clip = fixtures().join("clip-tiny");
    let ran = run_timed(
        fp(&[
            "search",
            out.to_str().unwrap(),
            "--model",
            clip.to_str().unwrap(),
            "--text",
            "a test pattern",
            "--format",
            "json",
            "--device",
            "cpu",
        ]),
        &logs,
        "search",
        SEARCH_LIMIT,
    );
    if judge("search", &ran, SEARCH_LIMIT, &mut bad) != Some(0) {
        bad.push(format!("search: {}", head(&ran.stderr)));
    }

    // check over the inputs: exit 0 or 1 (rule outcomes), never an error about reading.
    let rules = d.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"{"rule_sets": [{"name": "real", "rules": {
            "width": {"min": 16, "max": 4096}, "decodes_cleanly": true,
            "frozen": {"max_seconds": 30}, "scenes": {"min": 1, "max": 100}}}]}"#,
    )
    .unwrap();
    let mut args = vec![
        "check".to_string(),
        "--rules".into(),
        rules.display().to_string(),
        "--format".into(),
        "json".into(),
    ];
    args.extend(names.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = run_timed(fp(&args), &logs, "check", CHECK_LIMIT);
    let code = judge("check", &ran, CHECK_LIMIT, &mut bad);
    if !matches!(code, Some(0 | 1)) {
        bad.push(format!("check: exit {code:?}: {}", head(&ran.stderr)));
    }
    error_lines_name_a_file("check", &ran, &names, &mut bad);

    // vae decode of every output's latents.
    let vae = fixtures().join("vae-tiny-tiny");
    for o in &done {
        let stem = o.file_name().unwrap().to_str().unwrap();
        let latents = o.join("latents");
        if !latents.is_dir() {
            bad.push(format!("{stem}: no latents folder"));
            continue;
        }
        let mp4 = d.path().join(format!("decoded-{stem}.mp4"));
        let ran = run_timed(
            fp(&[
                "vae",
                "--model",
                vae.to_str().unwrap(),
                "--device",
                "cpu",
                "decode",
                latents.to_str().unwrap(),
                "-o",
                mp4.to_str().unwrap(),
                "--preset",
                "ultrafast",
            ]),
            &logs,
            &format!("vae-decode-{stem}"),
            VAE_DECODE_LIMIT,
        );
        let code = judge(
            &format!("vae decode {stem}"),
            &ran,
            VAE_DECODE_LIMIT,
            &mut bad,
        );
        match code {
            Some(0) => {
                let probed = ffprobe(&mp4, &["-count_frames", "-show_streams"]);
                let frames = probed["streams"][0]["nb_read_frames"]
                    .as_str()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                if frames == 0 {
                    bad.push(format!("vae decode {stem}: ffprobe reads no frame"));
                }
            }
            _ => {
                let latents_s = latents.display().to_string();
                error_lines_name_a_file(
                    &format!("vae decode {stem}"),
                    &ran,
                    &[latents_s],
                    &mut bad,
                );
                bad.push(format!(
                    "vae decode {stem}: exit {code:?}: {}",
                    head(&ran.stderr)
                ));
            }
        }
    }
    // `FRAMEPIPE_REAL_WORLD_KEEP=1`: leave the inputs, outputs and logs for a look.
    if std::env::var_os("FRAMEPIPE_REAL_WORLD_KEEP").is_some() {
        eprintln!("kept in {}", d.keep().display());
    }
    assert!(
        bad.is_empty(),
        "{} violation(s):\n{}",
        bad.len(),
        bad.join("\n")
    );
}
