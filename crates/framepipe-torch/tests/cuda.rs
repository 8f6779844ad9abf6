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

use framepipe_torch::clip::ClipModel;
use framepipe_torch::vae::{AutoencoderKl, GroupNormPath};
use framepipe_torch::{canvas, clip_op, handle, vae_op};
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

/// The dry run on the CPU (FRAMEPIPE_CUDA_TESTS_ON=cpu).
fn dry() -> bool {
    std::env::var("FRAMEPIPE_CUDA_TESTS_ON").as_deref() == Ok("cpu")
}

/// The device under test, its name in requests, and the precision models run in there.
fn gpu_device() -> (Device, &'static str, Kind) {
    if dry() {
        (Device::Cpu, "cpu", Kind::Float)
    } else {
        (Device::Cuda(0), "cuda:0", Kind::Half)
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
    let request = |model: &str, device: &str, crop: Option<[i64; 4]>| {
        let mut r = json!({"model": fixture(model), "device": device, "n": n, "width": w,
            "height": h, "format": "yuv420p", "matrix": "bt709"});
        if let Some(c) = crop {
            r["crop"] = json!(c);
        }
        r
    };
    let crop = Some([8, 0, 48, 48]);
    let mut cpu = vec![0f32; n * 1024];
    let mut dev = vec![0f32; n * 1024];
    let a = clip_op::embed_frames(&request("clip-tiny", "cpu", crop), &bytes, &mut cpu).unwrap();
    let b = clip_op::embed_frames(&request("clip-tiny", name, crop), &bytes, &mut dev).unwrap();
    let dim = a["dim"].as_i64().unwrap();
    assert_eq!(b["dim"], a["dim"]);
    let rows = |v: &[f32]| Tensor::from_slice(&v[..n * dim as usize]).view([n as i64, dim]);
    assert!(min_cosine("clip embed_frames", &rows(&dev), &rows(&cpu)) >= 0.999);

    for model in ["vae-kl-tiny", "vae-tiny-tiny"] {
        // Room for any latent grid of these frames (4 channels, at most 2x downsampling).
        let mut cpu = vec![0f32; n * 4 * w * h / 4];
        let mut dev = vec![0f32; n * 4 * w * h / 4];
        let a = vae_op::encode_frames(&request(model, "cpu", None), &bytes, &mut cpu).unwrap();
        let b = vae_op::encode_frames(&request(model, name, None), &bytes, &mut dev).unwrap();
        assert_eq!(a["shape_per_frame"], b["shape_per_frame"]);
        let len: i64 = a["shape_per_frame"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_i64().unwrap())
            .product::<i64>()
            * n as i64;
        let t = |v: &[f32]| Tensor::from_slice(&v[..len as usize]);
        let what = format!("{model} encode_frames");
        assert!(max_abs_diff(&what, &t(&dev), &t(&cpu)) <= 2e-2);
    }

    // The colour conversion alone: uint8 RGB within one level.
    let req = request("clip-tiny", name, None);
    let on_gpu = framepipe_torch::frames::rgb_on_device(&req, &bytes, gpu).unwrap();
    let on_cpu = framepipe_torch::frames::rgb_on_device(&req, &bytes, Device::Cpu).unwrap();
    assert!(max_abs_diff("yuv420p -> rgb", &on_gpu, &on_cpu) <= 1.0);
}

/// A 1080p NV12 picture whose rows are `pitch` bytes apart (as NVDEC leaves them) made into
/// a 720p canvas on `device` from planes at `base` in `location` memory; returns the handle.
fn nv12_canvas(device: &str, location: &str, base: usize, pitch: i64) -> u64 {
    let request = json!({"device": device, "location": location, "format": "nv12",
        "width": 1920, "height": 1080, "canvas": [1280, 720], "scaled": [1280, 720],
        "rotation": 0, "crop": [0, 0, 1280, 720], "placed": [0, 0, 1280, 720]});
    let base = base as *const u8;
    // SAFETY: `base` holds pitch*1080 bytes of Y, then pitch*540 of interleaved U/V.
    let planes = [
        base,
        unsafe { base.add(pitch as usize * 1080) },
        std::ptr::null(),
    ];
    let reply = unsafe { canvas::make(&request, planes, [pitch, pitch, 0]) }.unwrap();
    reply["handle"].as_u64().unwrap()
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
    let on_cpu = nv12_canvas("cpu", "host", nv12.as_ptr() as usize, pitch);
    let uploaded = Tensor::from_slice(&nv12).to_device(gpu);
    let base = uploaded.data_ptr() as usize;
    let on_gpu = std::thread::spawn(move || nv12_canvas(name, "device", base, pitch))
        .join()
        .unwrap();
    let read = |handle: u64| {
        let mut out = vec![0u8; 1280 * 720 * 3 / 2];
        canvas::read(&json!({ "handle": handle }), &mut out).unwrap();
        Tensor::from_slice(&out)
    };
    let cpu_bytes = read(on_cpu);
    assert!(max_abs_diff("nv12 canvas", &read(on_gpu), &cpu_bytes) <= 1.0);

    let request = json!({"model": fixture("clip-tiny"), "device": name, "n": 1, "width": 1280,
        "height": 720, "format": "yuv420p", "matrix": "bt709"});
    let mut by_handle = request.clone();
    by_handle["canvases"] = json!([on_gpu]);
    let embed = move |request: Value, bytes: Vec<u8>| {
        std::thread::spawn(move || {
            let mut out = vec![0f32; 1024];
            let reply = clip_op::embed_frames(&request, &bytes, &mut out).unwrap();
            let dim = reply["dim"].as_i64().unwrap();
            Tensor::from_slice(&out[..dim as usize]).view([1, dim])
        })
        .join()
        .unwrap()
    };
    let from_canvas = embed(by_handle, Vec::new());
    let from_bytes = embed(request, Vec::<u8>::try_from(&cpu_bytes).unwrap());
    assert!(min_cosine("clip from a canvas", &from_canvas, &from_bytes) >= 0.999);
    let freed = handle(&json!({"op": "canvas_free", "handles": [on_cpu, on_gpu]})).unwrap();
    assert_eq!(freed["freed"], 2);
}

#[test]
fn bench_model_reports_the_allocators_peak() {
    if !gpu() || dry() {
        return;
    }
    let reply = handle(&json!({"op": "bench_model", "stage": "vae",
        "model": fixture("vae-kl-tiny"), "device": "cuda:0", "n": 2, "width": 64, "height": 48,
        "format": "yuv420p", "seconds": 0.2}))
    .unwrap();
    eprintln!("{reply}");
    assert!(reply["frames_per_second"].as_f64().unwrap() > 0.0);
    assert!(reply["peak_memory_bytes"].as_u64().unwrap() > 64 * 48 * 3);
}

/// More frames than the GPU holds: an error that says out of memory (what the vae stage's
/// batch halving and advice look for), and the device keeps working afterwards.
#[test]
fn out_of_memory_is_an_error_and_the_device_recovers() {
    if !gpu() || dry() {
        return;
    }
    let err: String = handle(&json!({"op": "bench_model", "stage": "vae",
        "model": fixture("vae-kl-tiny"), "device": "cuda:0", "n": 400_000, "width": 1280,
        "height": 720, "format": "yuv420p", "seconds": 0}))
    .unwrap_err();
    eprintln!("{err}");
    assert!(err.to_lowercase().contains("out of memory"), "{err}");
    let after: Value = handle(&json!({"op": "bench_model", "stage": "vae",
        "model": fixture("vae-kl-tiny"), "device": "cuda:0", "n": 1, "width": 64, "height": 48,
        "format": "yuv420p", "seconds": 0}))
    .unwrap();
    assert!(after["frames_per_second"].as_f64().unwrap() > 0.0);
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
                framepipe_torch::cuda::use_thread_stream(gpu).unwrap();
                framepipe_torch::cuda::current_stream(gpu).unwrap()
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
    let model = fixture("vae-kl-tiny");
    let cpu = handle(&json!({"op": "vae_plan_batch", "model": model, "device": "cpu", "height": 64, "width": 64}))
        .unwrap_err();
    assert!(cpu.contains("CUDA"), "{cpu}");
    let odd = handle(&json!({"op": "vae_plan_batch", "model": model, "device": "cuda:0", "height": 63, "width": 64}))
        .unwrap_err();
    assert!(odd.contains("multiples of 8"), "{odd}");
}

#[test]
fn batch_planning_on_a_gpu_measures_a_per_frame_cost() {
    if !gpu() || dry() {
        return;
    }
    let model = fixture("vae-kl-tiny");
    let plan = handle(&json!({"op": "vae_plan_batch", "model": model, "device": "cuda:0", "height": 256, "width": 256}))
        .unwrap();
    eprintln!("{plan}");
    let batch = plan["batch_size"].as_u64().unwrap();
    assert!((1..=64).contains(&batch), "{plan}");
    assert!(
        plan["per_frame_bytes"].as_u64().unwrap() > 256 * 256 * 3,
        "{plan}"
    );
    assert!(plan["usable_bytes"].as_u64().unwrap() > 0, "{plan}");
}
