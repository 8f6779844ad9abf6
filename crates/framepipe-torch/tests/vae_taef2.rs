//! taef2 with its real trained weights (`../shared/models/taef2`, TAESD's native files) on real
//! footage (`../shared/media`): frames normalized to 720p by the ffmpeg CLI go through
//! encode -> decode, and the round trip must reach 25 dB PSNR and beat plain 8x down-and-up
//! scaling of the same frames (the trivial "codec" with the same latent resolution). A wrong
//! pool branch, padding or layer order shows up here as a collapse of the PSNR, which the
//! random-weight fixtures cannot show for the taef2-only parts.
//!
//! Also exact parity with the upstream taesd.py on the same weights
//! (tests/fixtures/taef2-reference.safetensors, made by tests/fixtures/make_vae_fixture.py
//! --taesd-py), which pins the pool branch and the layer order layer by layer.
//!
//! Skips with a message when `../shared` is absent (a fresh clone).
#[path = "../../../tests/common/shared.rs"]
mod shared;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use framepipe_torch::models::vae::TinyAutoencoder;
use tch::{Device, Kind, Tensor};

const WIDTH: i64 = 1280;
const HEIGHT: i64 = 720;
/// Frame numbers taken from each video (all four videos have more than 41 frames).
const FRAMES: [u32; 2] = [0, 40];

/// `FRAMES` of `video`, scaled to fit 1280x720 and padded (black) to it: `[F, 3, 720, 1280]`
/// in [0, 1].
fn frames_720p(video: &Path) -> Tensor {
    let select = FRAMES
        .iter()
        .map(|n| format!("eq(n\\,{n})"))
        .collect::<Vec<_>>()
        .join("+");
    let filter = format!(
        "select='{select}',scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=decrease,\
         pad={WIDTH}:{HEIGHT}:(ow-iw)/2:(oh-ih)/2"
    );
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(video)
        .args(["-vf", &filter, "-fps_mode", "passthrough", "-f", "rawvideo"])
        .args(["-pix_fmt", "rgb24", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg on {}: {}",
        video.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let frame_bytes = (WIDTH * HEIGHT * 3) as usize;
    assert_eq!(
        out.stdout.len(),
        frame_bytes * FRAMES.len(),
        "{}",
        video.display()
    );
    Tensor::from_slice(&out.stdout)
        .view([FRAMES.len() as i64, HEIGHT, WIDTH, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        / 255.0
}

fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let mse = (a.clamp(0.0, 1.0) - b)
        .square()
        .mean(Kind::Float)
        .double_value(&[]);
    10.0 * (1.0 / mse).log10()
}

/// Area downscaling by 8 (the latent grid) then `mode` upscaling back.
fn down_up(x: &Tensor, bicubic: bool) -> Tensor {
    let small = x.avg_pool2d([8, 8], [8, 8], [0, 0], false, true, None);
    if bicubic {
        small.upsample_bicubic2d([HEIGHT, WIDTH], false, None, None)
    } else {
        small.upsample_bilinear2d([HEIGHT, WIDTH], false, None, None)
    }
}

fn taef2_paths() -> Option<(PathBuf, PathBuf)> {
    let models = shared::shared_model("taef2")?;
    let enc = models.join("taef2_encoder.safetensors");
    let dec = models.join("taef2_decoder.safetensors");
    if enc.exists() && dec.exists() {
        Some((enc, dec))
    } else {
        eprintln!("SKIPPED: taef2 weights not found in {}", models.display());
        None
    }
}

#[test]
fn taef2_matches_upstream_taesd_py() {
    let Some((enc, dec)) = taef2_paths() else {
        return;
    };
    let reference: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/taef2-reference.safetensors"),
    )
    .unwrap()
    .into_iter()
    .collect();
    let vae = TinyAutoencoder::load_native(&enc, &dec, Device::Cpu, Kind::Float).unwrap();
    let latents = vae.encode(&reference["input"]).unwrap();
    let d_enc = (&latents - &reference["latents"])
        .abs()
        .max()
        .double_value(&[]);
    let images = vae.decode(&reference["latents"]).unwrap();
    let d_dec = (&images - &reference["decoded"])
        .abs()
        .max()
        .double_value(&[]);
    eprintln!("taef2 vs taesd.py: encode max abs diff {d_enc:.3e}, decode {d_dec:.3e}");
    assert!(d_enc <= 1e-4 && d_dec <= 1e-4, "{d_enc:e} / {d_dec:e}");
}

#[test]
fn taef2_round_trip_beats_8x_down_up_scaling_on_real_footage() {
    let Some((enc, dec)) = taef2_paths() else {
        return;
    };
    let Some(media) = shared::shared_path("media") else {
        return;
    };
    let vae = TinyAutoencoder::load_native(&enc, &dec, Device::Cpu, Kind::Float).unwrap();
    assert_eq!(
        vae.latent_channels(),
        32,
        "taef2 latents are FLUX.2's 32 channels"
    );
    assert!(
        vae.config().midblock_pool,
        "taef2 has the mid-block pool branch"
    );

    let mut videos: Vec<PathBuf> = std::fs::read_dir(&media)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    videos.sort();
    assert!(!videos.is_empty(), "no videos in {}", media.display());

    let mut failures = Vec::new();
    for video in &videos {
        let name = video.file_name().unwrap().to_string_lossy().to_string();
        let x = frames_720p(video);
        let start = Instant::now();
        let latents = vae.encode(&x).unwrap();
        assert_eq!(
            latents.size(),
            [FRAMES.len() as i64, 32, HEIGHT / 8, WIDTH / 8]
        );
        let y = vae.decode(&latents).unwrap();
        let secs = start.elapsed().as_secs_f64();
        let ours = psnr(&y, &x);
        let bilinear = psnr(&down_up(&x, false), &x);
        let bicubic = psnr(&down_up(&x, true), &x);
        eprintln!(
            "{name}: taef2 round trip {ours:.2} dB; 8x area-down + bicubic-up {bicubic:.2} dB, \
             + bilinear-up {bilinear:.2} dB ({} frames at 1280x720, {secs:.1} s)",
            FRAMES.len()
        );
        if ours < 25.0 || ours <= bicubic.max(bilinear) {
            failures.push(format!(
                "{name}: {ours:.2} dB (need >= 25 and > {:.2})",
                bicubic.max(bilinear)
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
