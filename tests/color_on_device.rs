//! `runtime.color_conversion: "device"` (the default on CUDA): the model stages send YUV planes
//! and the libtorch side converts and crops them; the embeddings and latents agree with the
//! swscale path (`"cpu"`), on a letterboxed BT.709-tagged input.
mod common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures")
        .join(name)
}

fn rows(file: &Path, name: &str) -> Vec<Vec<f32>> {
    let t = read_tensor(file, name).unwrap();
    let per: usize = t.shape[1..].iter().product();
    t.values.chunks(per).map(|r| r.to_vec()).collect()
}

#[test]
fn device_conversion_matches_swscale() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("wide.mp4");
    make_cut_clip(
        &input,
        "640x272",
        &[("testsrc2", 20), ("mandelbrot", 20)],
        false,
        &[
            "-colorspace",
            "bt709",
            "-color_primaries",
            "bt709",
            "-color_trc",
            "bt709",
        ],
    );
    let mut runs = Vec::new();
    for mode in ["cpu", "device"] {
        let cfg = pipeline(
            d,
            &format!("{mode}.json"),
            &format!(
                r#"{{"clip": {{"model": {:?}, "labels": ["a", "b"], "sample": {{"every_n_frames": 4}}}},
                    "vae": {{"model": {:?}, "every_n_frames": 4, "dtype": "f32"}},
                    "runtime": {{"color_conversion": "{mode}"}}, "device": "cpu"}}"#,
                fixture("clip-tiny").display().to_string(),
                fixture("vae-tiny-tiny").display().to_string()
            ),
        );
        let out = d.join(mode);
        let o = run_pipeline(&cfg, &out, &input);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let r = report(&out, "wide");
        assert!(
            r["output"]["content"]["height"].as_u64().unwrap() < 720,
            "letterboxed"
        );
        let embeds = rows(&out.join("wide/embeddings.safetensors"), "image_embeds");
        let latents = rows(&out.join("wide/latents/000000.safetensors"), "latents");
        runs.push((embeds, latents));
    }
    let clip_worst = runs[0]
        .0
        .iter()
        .zip(&runs[1].0)
        .map(|(a, b)| cosine(a, b))
        .fold(1f32, f32::min);
    let lat_worst = runs[0]
        .1
        .iter()
        .zip(&runs[1].1)
        .map(|(a, b)| cosine(a, b))
        .fold(1f32, f32::min);
    let lat_diff = runs[0]
        .1
        .iter()
        .flatten()
        .zip(runs[1].1.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!(
        "device vs swscale: CLIP worst cosine {clip_worst:.6}, latents worst cosine {lat_worst:.6}, max abs diff {lat_diff:.4}"
    );
    assert_eq!(runs[0].0.len(), 10);
    assert!(clip_worst > 0.9999, "{clip_worst}");
    assert!(lat_worst > 0.9999, "{lat_worst}");
}
