//! The vae stage of `framepipe run`: latents streamed to shards in frame order, the report's
//! `latents` block, rows that agree with `framepipe vae encode` on the same frame, config errors
//! before decoding.
mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The small diffusers AutoencoderTiny fixture: fast enough at 720p on a CPU (the KL fixture's
/// mid-block attention at 1/2 resolution is not).
fn tiny_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures/vae-tiny-tiny")
}

/// A shard: shape, values, frame indices, metadata.
fn shard(
    path: &Path,
) -> (
    Vec<usize>,
    Vec<f32>,
    Vec<i64>,
    std::collections::HashMap<String, String>,
) {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let t = read_tensor(path, "latents").unwrap();
    let index = read_tensor(path, "frame_index")
        .map(|t| t.values.iter().map(|&v| v as i64).collect())
        .unwrap_or_default();
    (
        t.shape,
        t.values,
        index,
        meta.metadata().clone().unwrap_or_default(),
    )
}

#[test]
fn latents_stream_to_shards_in_frame_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("clip.mp4");
    make_cut_clip(&input, "320x180", &[("testsrc2", 70)], false, &[]);
    let cfg = pipeline(
        d,
        "vae.json",
        &format!(
            r#"{{"vae": {{"model": {:?}, "frames_per_shard": 16, "batch_size": 5, "dtype": "f32"}}, "device": "cpu"}}"#,
            tiny_fixture().display().to_string()
        ),
    );
    let out = d.join("out");
    let o = framepipe()
        .args(["-q", "run", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&out, "clip");
    let files: Vec<String> = r["latents"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(files.len(), 5, "70 frames in shards of 16: {files:?}");
    assert_eq!(r["latents"]["frames"], 70);
    assert_eq!(r["latents"]["dtype"], "f32");
    let mut all_index = Vec::new();
    let mut first_row = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let (shape, values, index, meta) = shard(&out.join("clip").join(f));
        assert_eq!(shape[0], if i < 4 { 16 } else { 6 });
        assert_eq!(
            &shape[1..],
            r["latents"]["shape_per_frame"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect::<Vec<_>>()
        );
        assert_eq!(meta["resolution"], "1280x720");
        assert_eq!(
            meta["scaling_factor"],
            r["latents"]["scaling_factor"].as_f64().unwrap().to_string()
        );
        if i == 0 {
            first_row = values[..values.len() / shape[0]].to_vec();
        }
        all_index.extend(index);
    }
    assert_eq!(
        all_index,
        (0..70).collect::<Vec<i64>>(),
        "every frame once, in order"
    );

    // Frame 0 through `framepipe vae encode` (the same 720p canvas, made by ffmpeg: 16:9 input,
    // so no bars) agrees with the pipeline's first row.
    let png = d.join("f0.png");
    ffmpeg(&[
        "-i",
        input.to_str().unwrap(),
        "-vf",
        "scale=1280:720:flags=bicubic",
        "-frames:v",
        "1",
        "-pix_fmt",
        "rgb24",
        png.to_str().unwrap(),
    ]);
    let lat = d.join("f0.safetensors");
    let c = framepipe()
        .args(["vae", "--model"])
        .arg(tiny_fixture())
        .args(["--device", "cpu", "encode"])
        .arg(&png)
        .arg("-o")
        .arg(&lat)
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", stderr(&c));
    let (_, values, _, _) = shard(&lat);
    let cos = cosine(&values, &first_row);
    eprintln!("cosine(pipeline latents, framepipe vae encode) = {cos:.5}");
    assert!(cos > 0.99, "{cos}");
}

#[test]
fn vae_config_errors_come_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (vae, expected) in [
        (r#"{"model": "/nonexistent/vae"}"#.to_string(), "vae.model"),
        (
            format!(
                r#"{{"model": {:?}, "frames_per_shard": 0}}"#,
                tiny_fixture().display().to_string()
            ),
            "vae.frames_per_shard = 0",
        ),
        (
            format!(
                r#"{{"model": {:?}, "dtype": "f64"}}"#,
                tiny_fixture().display().to_string()
            ),
            "unknown variant `f64`",
        ),
        (
            format!(r#"{{"model": {:?}}}"#, d.display().to_string()),
            "not a VAE folder",
        ),
    ] {
        let cfg = pipeline(
            d,
            "vae.json",
            &format!(r#"{{"vae": {vae}, "device": "cpu"}}"#),
        );
        let o = framepipe()
            .args(["run", "--pipeline"])
            .arg(&cfg)
            .arg("-o")
            .arg(d.join("out"))
            .arg("never-opened.mp4")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{vae}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{vae}: {}", stderr(&o));
        assert!(!stderr(&o).contains("never-opened"), "{}", stderr(&o));
    }
}
