//! The `cuda` test set: CUDA outputs against CPU outputs (fp16 on the GPU, the precision the
//! pipeline uses there, against fp32 on the CPU) and the GPU-only behaviour, run on the GPU
//! machine by scripts/gpu/check.sh (prepare.sh bundles this test binary).
//!
//! Tolerances, fp16 against fp32: CLIP embeddings cosine >= 0.999 per row (unit vectors; fp16
//! keeps about 3 decimal digits through 2 layers); VAE latents and decoded images max abs
//! difference <= 2e-2 on values of magnitude ~1; YUV->RGB conversion and device canvases within
//! 1 level of 255.
//!
//! Without a GPU every test says "skipped" and passes, unless FRAMEPIPE_REQUIRE_CUDA=1 (set by
//! the device check, so a machine that silently lost its GPU fails instead of skipping).
//! FRAMEPIPE_CUDA_TESTS_ON=cpu is a dry run of the comparisons with the CPU (fp32) standing in
//! for the GPU, so their plumbing is proven before device time is spent; the CUDA-only tests
//! (streams, allocator peaks, out-of-memory, batch planning) skip in it.
//! FRAMEPIPE_FIXTURES points at the fixtures when the binary runs away from this checkout.
use std::path::PathBuf;

use framepipe_proto::ops::{
    BenchModel, CanvasFree, CanvasMake, CanvasRead, ClipEmbedFrames, Frames, ModelOn, ModelStage,
    PlaneLocation, SourceFormat, VaeEncodeFrames, VaePlanBatch,
};
use framepipe_proto::{Crop, ErrorKind, FrameLayout, Matrix};
use framepipe_torch::entry::call_through_c;
use framepipe_torch::models::clip::ClipModel;
use framepipe_torch::models::vae::{AutoencoderKl, GroupNormPath};
use framepipe_torch::ops::{clip, vae};
use framepipe_torch::runtime::canvas;
use tch::{Device, Kind, Tensor};

/// The dry run on the CPU (FRAMEPIPE_CUDA_TESTS_ON=cpu).
fn dry() -> bool {
    std::env::var("FRAMEPIPE_CUDA_TESTS_ON").as_deref() == Ok("cpu")
}

/// The device under test, its name in requests, and the precision models run in there.
fn gpu_device() -> (Device, framepipe_proto::Device, Kind) {
    if dry() {
        (Device::Cpu, framepipe_proto::Device::Cpu, Kind::Float)
    } else {
        (
            Device::Cuda(0),
            framepipe_proto::Device::Cuda(0),
            Kind::Half,
        )
    }
}

fn on(model: &str, device: framepipe_proto::Device) -> ModelOn {
    ModelOn {
        model: fixture(model),
        device,
    }
}

fn bench_vae(n: u32, (width, height): (u32, u32), seconds: f64) -> BenchModel {
    BenchModel {
        stage: ModelStage::Vae,
        on: on("vae-kl-tiny", framepipe_proto::Device::Cuda(0)),
        n,
        layout: FrameLayout::yuv420p((width, height), Matrix::Bt601, false, None),
        tiling: false,
        seconds,
        warmup: 2,
        model_only: false,
    }
}

fn plan_batch(device: framepipe_proto::Device, height: u32, width: u32) -> VaePlanBatch {
    VaePlanBatch {
        on: on("vae-kl-tiny", device),
        width,
        height,
        tiling: false,
    }
}

/// Whether to run: a GPU is there (or the dry run). Panics when one is required and absent.
fn gpu() -> bool {
    if tch::Cuda::is_available() || dry() {
        return true;
    }
    assert!(
        std::env::var("FRAMEPIPE_REQUIRE_CUDA").as_deref() != Ok("1"),
        "FRAMEPIPE_REQUIRE_CUDA=1 but libtorch sees no CUDA device"
    );
    eprintln!("no CUDA device: skipped");
    false
}

fn fixture(name: &str) -> PathBuf {
    std::env::var_os("FRAMEPIPE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
        .join(name)
}

fn reference(folder: &str) -> std::collections::HashMap<String, Tensor> {
    Tensor::read_safetensors(fixture(folder).join("reference.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn max_abs_diff(what: &str, got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let got = got.to_device(Device::Cpu).to_kind(Kind::Float);
    let d = (got - want.to_kind(Kind::Float))
        .abs()
        .max()
        .double_value(&[]);
    eprintln!("{what}: max abs diff {d:.3e}");
    d
}

fn min_cosine(what: &str, got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let got = got.to_device(Device::Cpu).to_kind(Kind::Float);
    let c = Tensor::cosine_similarity(&got, &want.to_kind(Kind::Float), 1, 1e-8)
        .min()
        .double_value(&[]);
    eprintln!("{what}: min cosine {c:.6}");
    c
}

/// A patterned yuv420p batch: `n` frames of `w`x`h`.
fn yuv_frames(n: usize, w: usize, h: usize) -> Vec<u8> {
    let per_frame = w * h * 3 / 2;
    (0..n * per_frame)
        .map(|i| {
            let (f, j) = (i / per_frame, i % per_frame);
            (16 + (j * 7 + f * 31 + j / w * 3) % 220) as u8
        })
        .collect()
}

#[test]
fn clip_embeddings_in_fp16_match_transformers() {
    if !gpu() {
        return;
    }
    let (gpu, _, kind) = gpu_device();
    let r = reference("clip-tiny");
    let model = ClipModel::load(&fixture("clip-tiny"), gpu, kind).unwrap();
    let images = model
        .image_embeds(&r["pixel_values"].to_device(gpu))
        .unwrap();
    assert!(min_cosine("image_embeds", &images, &r["image_embeds"]) >= 0.999);
    let texts = model.text_embeds(&r["input_ids"].to_device(gpu)).unwrap();
    assert!(min_cosine("text_embeds", &texts, &r["text_embeds"]) >= 0.999);
}

#[test]
fn kl_vae_in_fp16_matches_diffusers_with_either_group_norm() {
    if !gpu() {
        return;
    }
    let (gpu, _, kind) = gpu_device();
    let r = reference("vae-kl-tiny");
    let vae = AutoencoderKl::load(&fixture("vae-kl-tiny"), gpu, kind).unwrap();
    let input = r["input"].to_device(gpu).to_kind(kind);
    // The split GroupNorm+SiLU is the CUDA default; libtorch's kernel must agree as well.
    for path in [GroupNormPath::Split, GroupNormPath::Native] {
        GroupNormPath::force(Some(path));
        let latents = tch::no_grad(|| vae.encode(&input, None)).unwrap();
        let what = format!("KL encode {kind:?} {path:?}");
        assert!(max_abs_diff(&what, &latents, &r["latents_mean"]) <= 2e-2);
        let images =
            tch::no_grad(|| vae.decode(&r["latents_mean"].to_device(gpu).to_kind(kind))).unwrap();
        let what = format!("KL decode {kind:?} {path:?}");
        assert!(max_abs_diff(&what, &images, &r["decoded"]) <= 2e-2);
    }
    GroupNormPath::force(None);
}

/// The stages' own calls (bytes in, f32 out) on CUDA against the same calls on the CPU:
/// yuv420p planes with a crop for CLIP, whole frames for the VAEs (KL and TAESD).
#[test]
fn frame_calls_on_cuda_match_the_cpu() {
    if !gpu() {
        return;
    }
    let (gpu, name, _) = gpu_device();
    let (n, w, h) = (3, 64, 48);
    let bytes = yuv_frames(n, w, h);
    let frames = |crop: Option<Crop>| Frames {
        n: n as u32,
        layout: FrameLayout::yuv420p((w as u32, h as u32), Matrix::Bt709, false, crop),
        canvases: None,
    };
    let clip_request = |device| ClipEmbedFrames {
        on: on("clip-tiny", device),
        frames: frames(Some(Crop {
            x: 8,
            y: 0,
            width: 48,
            height: 48,
        })),
    };
    let cpu_device = framepipe_proto::Device::Cpu;
    let mut cpu = vec![0f32; n * 1024];
    let mut dev = vec![0f32; n * 1024];
    let a = clip::embed_frames(&clip_request(cpu_device), &bytes, &mut cpu).unwrap();
    let b = clip::embed_frames(&clip_request(name), &bytes, &mut dev).unwrap();
    let dim = i64::from(a.dim);
    assert_eq!(b.dim, a.dim);
    let rows = |v: &[f32]| Tensor::from_slice(&v[..n * dim as usize]).view([n as i64, dim]);
    assert!(min_cosine("clip embed_frames", &rows(&dev), &rows(&cpu)) >= 0.999);

    for model in ["vae-kl-tiny", "vae-tiny-tiny"] {
        let vae_request = |device| VaeEncodeFrames {
            on: on(model, device),
            frames: frames(None),
            tiling: false,
            sampling: None,
            reconstruct: Some(framepipe_proto::ops::Reconstruct {
                frames: (0..n as u32).collect(),
                picture: None,
            }),
        };
        // Room for any latent grid of these frames (4 channels, at most 2x downsampling).
        let mut cpu = vec![0f32; n * 4 * w * h / 4];
        let mut dev = vec![0f32; n * 4 * w * h / 4];
        let a = vae::encode_frames(&vae_request(cpu_device), &bytes, &mut cpu).unwrap();
        let b = vae::encode_frames(&vae_request(name), &bytes, &mut dev).unwrap();
        assert_eq!(a.shape_per_frame, b.shape_per_frame);
        let len = a.shape_per_frame.iter().product::<i64>() * n as i64;
        let t = |v: &[f32]| Tensor::from_slice(&v[..len as usize]);
        let what = format!("{model} encode_frames");
        assert!(max_abs_diff(&what, &t(&dev), &t(&cpu)) <= 2e-2);
        // Reconstruction in fp16 against fp32: PSNRs within a fraction of a dB.
        let (pa, pb) = (a.psnr.clone().unwrap(), b.psnr.clone().unwrap());
        assert_eq!(pa.len(), n);
        for (x, y) in pa.iter().zip(&pb) {
            assert!(
                (x - y).abs() < 0.5,
                "{model} reconstruction PSNR {x} on CPU, {y} on CUDA"
            );
        }
    }

    // The colour conversion alone: uint8 RGB within one level.
    let whole = frames(None);
    let on_gpu = framepipe_torch::runtime::frames::rgb_on_device(&whole, &bytes, gpu).unwrap();
    let on_cpu =
        framepipe_torch::runtime::frames::rgb_on_device(&whole, &bytes, Device::Cpu).unwrap();
    assert!(max_abs_diff("yuv420p -> rgb", &on_gpu, &on_cpu) <= 1.0);
}

/// A 1080p NV12 picture whose rows are `pitch` bytes apart (as NVDEC leaves them) made into
/// a 720p canvas on `device` from planes at `base` in `location` memory; returns the handle.
fn nv12_canvas(
    device: framepipe_proto::Device,
    location: PlaneLocation,
    base: usize,
    pitch: i64,
) -> u64 {
    let request = CanvasMake {
        device,
        location,
        format: SourceFormat::Nv12,
        width: 1920,
        height: 1080,
        full_range: false,
        canvas: [1280, 720],
        scaled: [1280, 720],
        rotation: 0,
        crop: [0, 0, 1280, 720],
        placed: [0, 0, 1280, 720],
    };
    let base = base as *const u8;
    // SAFETY: `base` holds pitch*1080 bytes of Y, then pitch*540 of interleaved U/V.
    let planes = [
        base,
        unsafe { base.add(pitch as usize * 1080) },
        std::ptr::null(),
    ];
    unsafe { canvas::make(&request, planes, [pitch, pitch, 0]) }
        .unwrap()
        .handle
}

/// Device canvases on CUDA: made from an NV12 picture in GPU memory (as NVDEC leaves it, rows
/// wider than the picture) on one thread's stream and read by a CLIP call on another thread's
/// stream (the events order them), against the same canvas made on the CPU from host memory:
/// within one level, and CLIP embeds it as it embeds the CPU canvas's bytes.
#[test]
fn canvases_from_gpu_memory_match_the_cpu_and_feed_the_models() {
    if !gpu() {
        return;
    }
    let (gpu, name, _) = gpu_device();
    let pitch = 2048i64;
    let nv12: Vec<u8> = (0..pitch * 1620)
        .map(|i| (16 + (i * 7 + i / pitch * 3) % 220) as u8)
        .collect();
    let on_cpu = nv12_canvas(
        framepipe_proto::Device::Cpu,
        PlaneLocation::Host,
        nv12.as_ptr() as usize,
        pitch,
    );
    let uploaded = Tensor::from_slice(&nv12).to_device(gpu);
    let base = uploaded.data_ptr() as usize;
    let on_gpu = std::thread::spawn(move || nv12_canvas(name, PlaneLocation::Device, base, pitch))
        .join()
        .unwrap();
    let read = |handle: u64| {
        let mut out = vec![0u8; 1280 * 720 * 3 / 2];
        canvas::read(&CanvasRead { handle }, &mut out).unwrap();
        Tensor::from_slice(&out)
    };
    let cpu_bytes = read(on_cpu);
    assert!(max_abs_diff("nv12 canvas", &read(on_gpu), &cpu_bytes) <= 1.0);

    let request = ClipEmbedFrames {
        on: on("clip-tiny", name),
        frames: Frames {
            n: 1,
            layout: FrameLayout::yuv420p((1280, 720), Matrix::Bt709, false, None),
            canvases: None,
        },
    };
    let mut by_handle = request.clone();
    by_handle.frames.canvases = Some(vec![on_gpu]);
    let embed = move |request: ClipEmbedFrames, bytes: Vec<u8>| {
        std::thread::spawn(move || {
            let mut out = vec![0f32; 1024];
            let reply = clip::embed_frames(&request, &bytes, &mut out).unwrap();
            let dim = i64::from(reply.dim);
            Tensor::from_slice(&out[..dim as usize]).view([1, dim])
        })
        .join()
        .unwrap()
    };
    let from_canvas = embed(by_handle, Vec::new());
    let from_bytes = embed(request, Vec::<u8>::try_from(&cpu_bytes).unwrap());
    assert!(min_cosine("clip from a canvas", &from_canvas, &from_bytes) >= 0.999);
    let freed = call_through_c(&CanvasFree {
        handles: vec![on_cpu, on_gpu],
    })
    .unwrap();
    assert_eq!(freed.freed, 2);
}

#[test]
fn bench_model_reports_the_allocators_peak() {
    if !gpu() || dry() {
        return;
    }
    let reply = call_through_c(&bench_vae(2, (64, 48), 0.2)).unwrap();
    eprintln!("{reply:?}");
    assert!(reply.frames_per_second > 0.0);
    assert!(reply.peak_memory_bytes.unwrap() > 64 * 48 * 3);
}

/// More frames than the GPU holds: an out-of-memory error (what the vae stage's batch halving
/// and advice look for), and the device keeps working afterwards.
#[test]
fn out_of_memory_is_an_error_and_the_device_recovers() {
    if !gpu() || dry() {
        return;
    }
    let err = call_through_c(&bench_vae(400_000, (1280, 720), 0.0)).unwrap_err();
    eprintln!("{err}");
    assert_eq!(err.kind, ErrorKind::OutOfMemory, "{err}");
    let after = call_through_c(&bench_vae(1, (64, 48), 0.0)).unwrap();
    assert!(after.frames_per_second > 0.0);
}

/// Two stage threads get two streams of their own, neither the default one.
#[test]
fn stage_threads_get_streams_of_their_own() {
    if !gpu() || dry() {
        return;
    }
    let ids: Vec<i64> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                let gpu = Device::Cuda(0);
                framepipe_torch::runtime::cuda::use_thread_stream(gpu).unwrap();
                framepipe_torch::runtime::cuda::current_stream(gpu).unwrap()
            })
        })
        .map(|t| t.join().unwrap())
        .collect();
    assert_ne!(ids[0], ids[1]);
    assert!(ids.iter().all(|id| *id != 0), "{ids:?}");
}

#[test]
fn the_gpu_requirement_is_checked() {
    // On a machine without a GPU and without FRAMEPIPE_REQUIRE_CUDA this must not panic; with
    // a GPU it is true. (FRAMEPIPE_REQUIRE_CUDA=1 without a GPU makes it panic: the device
    // check's guard against skipping everything.)
    let ran = gpu();
    assert_eq!(ran, tch::Cuda::is_available() || dry());
}

#[test]
fn batch_planning_needs_a_cuda_device_and_a_latent_grid_size() {
    let cpu = call_through_c(&plan_batch(framepipe_proto::Device::Cpu, 64, 64)).unwrap_err();
    assert!(cpu.message.contains("CUDA"), "{cpu}");
    let odd = call_through_c(&plan_batch(framepipe_proto::Device::Cuda(0), 63, 64)).unwrap_err();
    assert!(odd.message.contains("multiples of 8"), "{odd}");
}

#[test]
fn batch_planning_on_a_gpu_measures_a_per_frame_cost() {
    if !gpu() || dry() {
        return;
    }
    let plan = call_through_c(&plan_batch(framepipe_proto::Device::Cuda(0), 256, 256)).unwrap();
    eprintln!("{plan:?}");
    assert!((1..=64).contains(&plan.batch_size), "{plan:?}");
    assert!(plan.per_frame_bytes > 256 * 256 * 3, "{plan:?}");
    assert!(plan.usable_bytes > 0, "{plan:?}");
}
