//! `framepipe make-random-model`: random weights named exactly as the real checkpoints (same
//! tensor names and shapes as the fixtures made by transformers/diffusers), loadable as models.
mod common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures")
        .join(name)
}

fn shapes(path: &Path) -> Vec<(String, Vec<usize>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<usize>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec()))
        .collect();
    v.sort();
    v
}

#[test]
fn random_models_have_the_checkpoints_names_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, weights, extra) in [
        (
            "clip-tiny",
            "model.safetensors",
            &[
                "tokenizer.json",
                "tokenizer_config.json",
                "preprocessor_config.json",
            ][..],
        ),
        (
            "vae-kl-tiny",
            "diffusion_pytorch_model.safetensors",
            &[][..],
        ),
    ] {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        for f in std::iter::once(&"config.json").chain(extra) {
            std::fs::copy(fixture(name).join(f), folder.join(f)).unwrap();
        }
        let o = framepipe()
            .arg("make-random-model")
            .arg(&folder)
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let mut want = shapes(&fixture(name).join(weights));
        // transformers keeps a `position_ids` buffer in some checkpoints; not a weight.
        want.retain(|(n, _)| !n.ends_with("position_ids"));
        assert_eq!(shapes(&folder.join(weights)), want, "{name}");
    }
    // A config of neither kind, and a folder without one: refused by name, nothing written.
    let odd = dir.path().join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(odd.join("config.json"), r#"{"_class_name": "UNet2DModel"}"#).unwrap();
    for (folder, expected) in [
        (odd.clone(), "neither a CLIP config"),
        (dir.path().join("missing"), "config.json"),
    ] {
        let o = framepipe()
            .arg("make-random-model")
            .arg(&folder)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(expected), "{}", stderr(&o));
    }
    assert_eq!(
        std::fs::read_dir(&odd).unwrap().count(),
        1,
        "only the config is there"
    );
    let png = dir.path().join("f.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48",
        "-frames:v",
        "1",
        png.to_str().unwrap(),
    ]);
    let clip = framepipe()
        .args(["clip", "--device", "cpu", "--model"])
        .arg(dir.path().join("clip-tiny"))
        .arg("--image")
        .arg(&png)
        .args(["--text", "a test"])
        .output()
        .unwrap();
    assert!(clip.status.success(), "{}", stderr(&clip));
    let vae = framepipe()
        .args(["vae", "--device", "cpu", "--model"])
        .arg(dir.path().join("vae-kl-tiny"))
        .arg("encode")
        .arg(&png)
        .arg("-o")
        .arg(dir.path().join("l.safetensors"))
        .output()
        .unwrap();
    assert!(vae.status.success(), "{}", stderr(&vae));
    // Random means random: a model of zeros would give zero latents (and pass any CUDA-vs-CPU
    // comparison of the device check).
    let bytes = std::fs::read(dir.path().join("l.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let latents: Vec<f32> = st
        .tensor("latents")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // (A zero model still gives the constant -shift*scale, so the spread is what tells.)
    assert!(latents.iter().all(|v| v.is_finite()));
    let (lo, hi) = latents
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    assert!(hi - lo > 1e-2, "latents span {lo}..{hi}");
    assert!(hi.abs().max(lo.abs()) < 1e3, "latents span {lo}..{hi}");
}
