//! The decode direction through the library's entry points, as the binary calls them:
//! `vae_decode_frames` against diffusers' decoder outputs (tests/fixtures/make_vae_fixture.py),
//! and `vae_encode_frames` with `reconstruct` against a PSNR computed here, in plain Rust, from
//! the latents it returned decoded separately. Encoder-only folders encode and refuse to decode.
#[allow(dead_code)] // the parity helpers this file does not need
mod common;

use common::{fixture, reference};
use framepipe_proto::ops::{ModelOn, Reconstruct, VaeDecodeFrames, VaeEncodeFrames, VaeInfo};
use framepipe_proto::{Crop, Device, ErrorKind, FrameLayout};
use framepipe_torch::entry::call_through_c;
use framepipe_torch::ops::vae;
use tch::{Kind, Tensor};

fn on(model: &std::path::Path) -> ModelOn {
    ModelOn {
        model: model.to_path_buf(),
        device: Device::Cpu,
    }
}

/// `[n, 3, h, w]` images in [0, 1] as 8-bit values, the way the op returns them (rounded).
fn to_8bit(x01: &Tensor) -> Vec<u8> {
    let t = (x01.clamp(0.0, 1.0) * 255.0)
        .round()
        .to_kind(Kind::Uint8)
        .permute([0, 2, 3, 1])
        .contiguous();
    Vec::<u8>::try_from(t.view([-1])).unwrap()
}

fn decode(model: &std::path::Path, latents: &Tensor) -> (Vec<u8>, framepipe_proto::ops::Decoded) {
    let size = latents.size();
    let values =
        Vec::<f32>::try_from(latents.to_kind(Kind::Float).contiguous().view([-1])).unwrap();
    let factor = 8; // room for any of the fixtures' grids
    let mut out = vec![0u8; (size[0] * 3 * size[2] * size[3] * factor * factor) as usize];
    let reply = vae::decode_frames(
        &VaeDecodeFrames {
            on: on(model),
            n: size[0] as u32,
            shape_per_frame: [size[1], size[2], size[3]],
            tiling: false,
        },
        &values,
        &mut out,
    )
    .unwrap();
    out.truncate((reply.n * reply.width * reply.height * 3) as usize);
    (out, reply)
}

/// Bytes within one 8-bit level of the reference's (rounding of values within 1e-4).
fn assert_within_one_level(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    let off = got.iter().zip(want).filter(|(a, b)| a != b).count();
    eprintln!(
        "{what}: {off} of {} bytes differ, by at most {worst}",
        got.len()
    );
    assert!(worst <= 1, "{what}: a byte differs by {worst}");
}

#[test]
fn decode_frames_matches_diffusers_for_both_families() {
    // KL: stored latents ((mean - shift) * scale) in, diffusers' [-1, 1] decode out.
    let r = reference("vae-kl-tiny");
    let (got, reply) = decode(&fixture("vae-kl-tiny"), &r["latents_mean"]);
    let want = to_8bit(&((&r["decoded"] + 1.0) / 2.0));
    assert_eq!((reply.width, reply.height), (48, 32));
    assert_within_one_level("KL decode_frames", &got, &want);
    // TAESD (diffusers layout and native files): raw latents in, [0, 1] out.
    let r = reference("vae-tiny-tiny");
    let want = to_8bit(&r["decoded"]);
    let (got, _) = decode(&fixture("vae-tiny-tiny"), &r["latents"]);
    assert_within_one_level("Tiny decode_frames", &got, &want);
}

/// Frames with real structure: the fixture inputs as 8-bit RGB24, frame after frame.
fn frames_of(
    r: &std::collections::HashMap<String, Tensor>,
    name: &str,
) -> (Vec<u8>, i64, i64, i64) {
    let x = &r[name];
    let s = x.size();
    let x01 = if name == "input" && x.min().double_value(&[]) < 0.0 {
        (x + 1.0) / 2.0
    } else {
        x.shallow_clone()
    };
    (to_8bit(&x01), s[0], s[2], s[3])
}

/// PSNR of `b` against `a` (packed RGB24 frames of `w` x `h`) over `crop`, per frame, in f64.
fn psnr(a: &[u8], b: &[u8], w: usize, h: usize, crop: Crop) -> Vec<f64> {
    a.chunks(w * h * 3)
        .zip(b.chunks(w * h * 3))
        .map(|(fa, fb)| {
            let mut sum = 0f64;
            for y in crop.y as usize..(crop.y + crop.height) as usize {
                for x in crop.x as usize..(crop.x + crop.width) as usize {
                    for c in 0..3 {
                        let i = (y * w + x) * 3 + c;
                        sum += (f64::from(fa[i]) - f64::from(fb[i])).powi(2);
                    }
                }
            }
            let mse = sum / f64::from(crop.width * crop.height * 3);
            10.0 * (255.0f64.powi(2) / mse).log10()
        })
        .collect()
}

#[test]
fn reconstruction_psnr_is_the_decoded_latents_psnr_over_the_picture() {
    for (model, input) in [("vae-kl-tiny", "input"), ("vae-tiny-tiny", "input")] {
        let folder = fixture(model);
        let r = reference(model);
        let (rgb, n, h, w) = frames_of(&r, input);
        // A letterboxed picture: the top and bottom 8 rows are bars the comparison leaves out.
        let picture = Crop {
            x: 0,
            y: 8,
            width: w as u32,
            height: (h - 16) as u32,
        };
        let request = VaeEncodeFrames {
            on: on(&folder),
            frames: framepipe_proto::ops::Frames {
                n: n as u32,
                layout: FrameLayout::rgb24(w as u32, h as u32),
                canvases: None,
            },
            tiling: false,
            sampling: None,
            reconstruct: Some(Reconstruct {
                // Only the second frame: positions pick frames.
                frames: vec![1],
                picture: Some(picture),
            }),
        };
        let mut latents = vec![0f32; (n * 16 * h * w) as usize];
        let encoded = vae::encode_frames(&request, &rgb, &mut latents).unwrap();
        let [c, lh, lw] = encoded.shape_per_frame;
        let got = encoded.psnr.clone().expect("PSNRs asked for");
        assert_eq!(got.len(), 1, "{model}");
        // Independently: the returned latents decoded by the decode entry point, compared here.
        let z = Tensor::from_slice(&latents[..(n * c * lh * lw) as usize]).view([n, c, lh, lw]);
        let (decoded, _) = decode(&folder, &z);
        let frame = (h * w * 3) as usize;
        let want = psnr(
            &rgb[frame..2 * frame],
            &decoded[frame..2 * frame],
            w as usize,
            h as usize,
            picture,
        );
        eprintln!(
            "{model}: reconstruction PSNR {:.4} dB, computed here {:.4} dB",
            got[0], want[0]
        );
        assert!(
            (got[0] - want[0]).abs() < 1e-3,
            "{model}: {} vs {}",
            got[0],
            want[0]
        );
        // Over the whole frame it differs (the bars count then): the crop is applied.
        let whole = psnr(
            &rgb[frame..2 * frame],
            &decoded[frame..2 * frame],
            w as usize,
            h as usize,
            Crop {
                x: 0,
                y: 0,
                width: w as u32,
                height: h as u32,
            },
        );
        assert!(
            (whole[0] - want[0]).abs() > 1e-3,
            "{model}: the crop made no difference"
        );
    }
}

#[test]
fn bad_reconstruction_requests_are_refused_with_the_reason() {
    let folder = fixture("vae-tiny-tiny");
    let r = reference("vae-tiny-tiny");
    let (rgb, n, h, w) = frames_of(&r, "input");
    let request = |frames: Vec<u32>, picture: Option<Crop>| VaeEncodeFrames {
        on: on(&folder),
        frames: framepipe_proto::ops::Frames {
            n: n as u32,
            layout: FrameLayout::rgb24(w as u32, h as u32),
            canvases: None,
        },
        tiling: false,
        sampling: None,
        reconstruct: Some(Reconstruct { frames, picture }),
    };
    let mut out = vec![0f32; (n * 16 * h * w) as usize];
    let e = vae::encode_frames(&request(vec![5], None), &rgb, &mut out).unwrap_err();
    assert!(e.message.contains("frame 5 of a batch of 2"), "{e}");
    let outside = Crop {
        x: 0,
        y: 0,
        width: w as u32 + 8,
        height: h as u32,
    };
    let e = vae::encode_frames(&request(vec![0], Some(outside)), &rgb, &mut out).unwrap_err();
    assert!(e.message.contains("not inside"), "{e}");
    // Latents of another channel count.
    let z = Tensor::zeros([1, 16, 4, 6], (Kind::Float, tch::Device::Cpu));
    let values = Vec::<f32>::try_from(z.view([-1])).unwrap();
    let mut rgb_out = vec![0u8; 32 * 48 * 3];
    let e = vae::decode_frames(
        &VaeDecodeFrames {
            on: on(&folder),
            n: 1,
            shape_per_frame: [16, 4, 6],
            tiling: false,
        },
        &values,
        &mut rgb_out,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadInput, "{e}");
    assert!(
        e.message.contains("16 channels") && e.message.contains("makes 4"),
        "{e}"
    );
}

#[test]
fn an_encoder_only_folder_encodes_and_refuses_to_decode() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("vae-tiny-tiny").join("taesd_encoder.safetensors"),
        tmp.path().join("taesd_encoder.safetensors"),
    )
    .unwrap();
    let facts = call_through_c(&VaeInfo { on: on(tmp.path()) }).unwrap();
    assert!(!facts.decoder, "{facts:?}");
    let full = call_through_c(&VaeInfo {
        on: on(&fixture("vae-tiny-tiny")),
    })
    .unwrap();
    assert!(full.decoder);
    let values = vec![0f32; 4 * 4 * 6];
    let mut rgb_out = vec![0u8; 32 * 48 * 3];
    let e = vae::decode_frames(
        &VaeDecodeFrames {
            on: on(tmp.path()),
            n: 1,
            shape_per_frame: [4, 4, 6],
            tiling: false,
        },
        &values,
        &mut rgb_out,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadModel, "{e}");
    assert!(e.message.contains("no decoder"), "{e}");
}
