//! Scene cuts agree with PySceneDetect 0.7.2 `detect-content` defaults: F1 >= 0.9 with a
//! tolerance of ±2 frames, on the real videos of ../shared/media and on generated clips.
//! The reference runs from the project venv (scripts/setup.sh installs it); without it the test
//! says so and skips.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var("FRAMEPIPE_VENV").unwrap_or_else(|_| "/opt/framepipe/venv".into());
    let python = Path::new(&venv).join("bin/python3");
    let ok = Command::new(&python)
        .args(["-c", "import scenedetect, cv2"])
        .output()
        .map(|o| o.status.success());
    if ok.unwrap_or(false) {
        Some(python)
    } else {
        eprintln!("SKIP: no PySceneDetect in {venv} (run scripts/setup.sh)");
        None
    }
}

/// PySceneDetect's cuts and the minimum scene length (frames) its CLI used.
fn reference(python: &Path, video: &Path) -> (Vec<u64>, u64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/scene_reference.py");
    let out = Command::new(python)
        .arg(script)
        .arg(video)
        .output()
        .unwrap();
    assert!(out.status.success(), "reference failed: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cuts = v["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    (cuts, v["min_scene_len"].as_u64().unwrap())
}

fn ours(dir: &Path, video: &Path, min_scene_len: u64) -> Vec<u64> {
    let cfg = pipeline(
        dir,
        "scenes.json",
        &format!(r#"{{"scenes": {{"min_scene_frames": {min_scene_len}}}, "device": "cpu"}}"#),
    );
    let out = dir.join("out");
    let o = framepipe()
        .args(["-q", "run", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .arg(video)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let stem = video.file_stem().unwrap().to_str().unwrap();
    let r = report(&out, stem);
    r["scenes"].as_array().unwrap()[1..]
        .iter()
        .map(|s| s["start_frame"].as_u64().unwrap())
        .collect()
}

/// F1 of `found` against `truth`, a match being within `tolerance` frames (each used once).
fn f1(truth: &[u64], found: &[u64], tolerance: u64) -> f64 {
    if truth.is_empty() && found.is_empty() {
        return 1.0;
    }
    let mut used = vec![false; found.len()];
    let mut matched = 0;
    for &t in truth {
        if let Some(i) = (0..found.len()).find(|&i| !used[i] && found[i].abs_diff(t) <= tolerance) {
            used[i] = true;
            matched += 1;
        }
    }
    if matched == 0 {
        return 0.0;
    }
    let precision = f64::from(matched) / found.len() as f64;
    let recall = f64::from(matched) / truth.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

#[test]
fn f1_counts_tolerant_one_to_one_matches() {
    assert_eq!(f1(&[10, 50], &[11, 52], 2), 1.0);
    assert_eq!(f1(&[10, 50], &[13], 2), 0.0);
    assert!((f1(&[10, 50], &[10], 2) - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(f1(&[], &[], 2), 1.0);
    assert_eq!(f1(&[10], &[], 2), 0.0);
}

#[test]
fn cuts_agree_with_pyscenedetect() {
    let Some(python) = venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut videos: Vec<PathBuf> = [
        "bears.mp4",
        "orangutan.mp4",
        "bikes.mp4",
        "carphone_pristine.mp4",
    ]
    .iter()
    .filter_map(|n| shared_media(n))
    .collect();
    let synthetic = dir.path().join("synthetic.mp4");
    make_cut_clip(
        &synthetic,
        "1280x720",
        &[
            ("testsrc2", 40),
            ("smptebars", 30),
            ("mandelbrot", 50),
            ("testsrc2", 20),
            ("rgbtestsrc", 35),
        ],
        false,
        &[],
    );
    videos.push(synthetic);
    let mut total_truth = 0;
    for video in &videos {
        let (truth, min_len) = reference(&python, video);
        let work = dir.path().join(video.file_stem().unwrap());
        std::fs::create_dir_all(&work).unwrap();
        let found = ours(&work, video, min_len);
        let score = f1(&truth, &found, 2);
        eprintln!(
            "{}: PySceneDetect {truth:?}, framepipe {found:?}, F1 {score:.3}",
            video.display()
        );
        assert!(
            score >= 0.9,
            "{}: F1 {score:.3} < 0.9 (reference {truth:?}, ours {found:?})",
            video.display()
        );
        total_truth += truth.len();
    }
    assert!(
        total_truth >= 8,
        "the test media must contain cuts to compare"
    );
}
