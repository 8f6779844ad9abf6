//! CLIP preprocessing against transformers' `CLIPImageProcessor` (5.17.0, torchvision backend)
//! on two real frames from ../shared/media (carphone 176x144: upscaled; bikes 640x272:
//! downscaled). Nothing derived from ../shared/media is committed: at test time
//! tests/fixtures/make_clip_fixture.py --preprocess (the project venv's Python, pinned in
//! scripts/requirements.txt) decodes the frames with the ffmpeg CLI into a temporary folder and
//! stores the processor's output next to them as the integer image it normalizes (the script
//! proves that this reproduces `pixel_values` bit for bit). Without ../shared/media or without
//! transformers/torchvision in the venv, the comparisons skip with a message.
#[path = "../../../tests/common/shared.rs"]
mod shared;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use framepipe_torch::models::clip::preprocess::{
    ClipPreprocessor, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD,
};
use tch::{Device, Kind, Tensor};

/// The frames the script extracts (its FRAMES table).
const FRAMES: [&str; 2] = ["carphone", "bikes"];

/// One frame and its reference, read back from the script's temporary output. Plain bytes (a
/// `Tensor` is not `Sync`), so the script runs once for all tests of this file.
struct Frame {
    name: &'static str,
    /// Decoded RGB, HWC.
    rgb: Vec<u8>,
    height: i64,
    width: i64,
    /// CLIPImageProcessor's 224x224 crop before normalization, CHW.
    cropped_u8: Vec<u8>,
}

enum Fixture {
    Ready(Vec<Frame>),
    Skip(String),
}

/// `../shared/media` from the workspace root, if there.
fn shared_media() -> Result<PathBuf, String> {
    let dir = shared::shared_dir()
        .ok_or("the shared folder is hidden or absent")?
        .join("media");
    let missing: Vec<_> = ["carphone_pristine.mp4", "bikes.mp4"]
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if missing.is_empty() {
        Ok(dir)
    } else {
        Err(format!(
            "{} lacks {missing:?} (the sample videos live outside the repository)",
            dir.display()
        ))
    }
}

/// The project venv's Python ($FRAMEPIPE_VENV, default /opt/framepipe/venv), if it can import
/// the reference implementation.
fn venv_python() -> Result<PathBuf, String> {
    let venv = std::env::var_os("FRAMEPIPE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/framepipe/venv"));
    let python = venv.join("bin/python3");
    let ok = Command::new(&python)
        .args(["-c", "import transformers, torchvision"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Ok(python)
    } else {
        Err(format!(
            "{} cannot import transformers, torchvision (the CLIP references; install \
             scripts/requirements.txt into the venv, e.g. with scripts/setup.sh)",
            python.display()
        ))
    }
}

/// Runs make_clip_fixture.py --preprocess into a temporary folder and reads its output.
fn generate() -> Fixture {
    let media = match shared_media() {
        Ok(dir) => dir,
        Err(why) => return Fixture::Skip(why),
    };
    let python = match venv_python() {
        Ok(python) => python,
        Err(why) => return Fixture::Skip(why),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(&python)
        .arg(root.join("tests/fixtures/make_clip_fixture.py"))
        .arg("--preprocess")
        .arg("--out")
        .arg(out.path())
        .arg("--media")
        .arg(&media)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        run.status.success(),
        "make_clip_fixture.py --preprocess failed ({}):\n{}{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let refs: HashMap<String, Tensor> =
        Tensor::read_safetensors(out.path().join("reference.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let frames = FRAMES
        .into_iter()
        .map(|name| {
            let img = image::open(out.path().join(format!("{name}.png")))
                .unwrap()
                .to_rgb8();
            let cropped = &refs[&format!("{name}_cropped_u8")];
            assert_eq!(cropped.size(), [3, 224, 224], "{name}: reference crop");
            assert_eq!(cropped.kind(), Kind::Uint8, "{name}: reference crop");
            Frame {
                name,
                height: img.height() as i64,
                width: img.width() as i64,
                rgb: img.into_raw(),
                cropped_u8: Vec::<u8>::try_from(&cropped.flatten(0, -1)).unwrap(),
            }
        })
        .collect();
    Fixture::Ready(frames)
}

/// The frames and references, generated once per test binary; None (with a SKIP message) when
/// ../shared/media or the reference Python is absent.
fn frames() -> Option<&'static [Frame]> {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    match FIXTURE.get_or_init(generate) {
        Fixture::Ready(frames) => Some(frames),
        Fixture::Skip(why) => {
            eprintln!("SKIP: CLIPImageProcessor comparison not run: {why}");
            None
        }
    }
}

/// A frame as a [1, 3, H, W] uint8 tensor.
fn load_frame(frame: &Frame) -> Tensor {
    Tensor::from_slice(&frame.rgb)
        .view([frame.height, frame.width, 3])
        .permute([2, 0, 1])
        .unsqueeze(0)
        .contiguous()
}

/// transformers' pixel_values for `frame`, rebuilt from the stored integer image with the
/// processor's own fused constants (mean*255, std*255 in fp32).
fn expected_pixel_values(frame: &Frame) -> Tensor {
    let u8 = Tensor::from_slice(&frame.cropped_u8).view([3, 224, 224]);
    let c = |v: [f64; 3]| Tensor::from_slice(&v.map(|x| x as f32)).view([3, 1, 1]) * 255.0;
    ((u8.to_kind(Kind::Float) - c(OPENAI_CLIP_MEAN)) / c(OPENAI_CLIP_STD)).unsqueeze(0)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

#[test]
fn uint8_frames_match_clip_image_processor() {
    let Some(frames) = frames() else { return };
    let p = ClipPreprocessor::default();
    for f in frames {
        let name = f.name;
        let frame = load_frame(f);
        let expected = expected_pixel_values(f);
        // Batched: two copies must give the same rows.
        let got = p.preprocess(&Tensor::cat(&[&frame, &frame], 0)).unwrap();
        assert_eq!(got.size(), [2, 3, 224, 224]);
        let d0 = max_abs_diff(&got.narrow(0, 0, 1), &expected);
        let d1 = max_abs_diff(&got.narrow(0, 1, 1), &expected);
        eprintln!(
            "{name} {:?}: uint8 path max abs diff vs CLIPImageProcessor {d0:.3e} / {d1:.3e}",
            frame.size()
        );
        assert!(
            d0 == 0.0 && d1 == 0.0,
            "{name}: pixel_values differ by {d0} / {d1}"
        );
    }
}

#[test]
fn float_frames_stay_within_a_level_or_two() {
    // Float frames in [0, 1] (and uint8 frames on CUDA, which has no uint8 kernel) go through
    // a float emulation of the uint8 kernel; measured here: at most ~1.1 levels of the 0..255
    // image from the processor. Bound: 1.5 levels in pixel_values units, 1.5 / (255 * std).
    let Some(frames) = frames() else { return };
    let p = ClipPreprocessor::default();
    let bound = 1.5
        / (255.0
            * OPENAI_CLIP_STD
                .iter()
                .cloned()
                .fold(f64::INFINITY, f64::min));
    for f in frames {
        let name = f.name;
        let frame = load_frame(f).to_kind(Kind::Float) / 255.0;
        let got = p.preprocess(&frame).unwrap();
        let expected = expected_pixel_values(f);
        let d = max_abs_diff(&got, &expected);
        let std = Tensor::from_slice(&OPENAI_CLIP_STD.map(|x| x as f32)).view([1, 3, 1, 1]) * 255.0;
        let levels = ((&got - &expected) * std).abs();
        eprintln!(
            "{name}: float path max abs diff {d:.3e} (bound {bound:.3e}); in 0..255 levels max {:.3}, mean {:.4}",
            levels.max().double_value(&[]),
            levels.mean(Kind::Float).double_value(&[])
        );
        assert!(d <= bound, "{name}: float path differs by {d} > {bound}");
    }
}

#[test]
fn preprocessor_config_is_read_in_both_spellings() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        ClipPreprocessor::from_folder(dir.path(), 336).unwrap(),
        ClipPreprocessor::for_image_size(336)
    );
    std::fs::write(
        dir.path().join("preprocessor_config.json"),
        r#"{"size": 256, "crop_size": 240, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}"#,
    )
    .unwrap();
    let p = ClipPreprocessor::from_folder(dir.path(), 224).unwrap();
    assert_eq!(
        (p.shortest_edge, p.crop_size, p.image_mean),
        (256, (240, 240), [0.5; 3])
    );
    std::fs::write(
        dir.path().join("preprocessor_config.json"),
        r#"{"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}}"#,
    )
    .unwrap();
    let p = ClipPreprocessor::from_folder(dir.path(), 224).unwrap();
    assert_eq!(
        (p.shortest_edge, p.crop_size, p.image_mean),
        (336, (336, 336), OPENAI_CLIP_MEAN)
    );
    let out = p
        .preprocess(&Tensor::zeros([1, 3, 100, 120], (Kind::Uint8, Device::Cpu)))
        .unwrap();
    assert_eq!(out.size(), [1, 3, 336, 336]);
}
