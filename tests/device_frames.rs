//! `runtime.device_frames`: canvases made on the model device (here the CPU stands in for the
//! GPU, through the same libtorch code) match the swscale canvases, and a pipeline that keeps
//! its frames on the device embeds and encodes like one that does not.
mod common;

use std::path::Path;

use common::*;
use ff::format::Pixel;
use ffmpeg_next as ff;
use framepipe::config::FitMode;
use framepipe::gpu::device_canvas::DeviceNormalizer;
use framepipe::media::decode::{SourceFrame, VideoDecoder};
use framepipe::media::normalize::{Geometry, Normalizer};
use framepipe::media::probe;
use framepipe::torch::Torch;

fn clip_fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures/clip-tiny")
        .display()
        .to_string()
}

fn vae_fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures/vae-tiny-tiny")
        .display()
        .to_string()
}

/// `dir/name`: `frames` frames of FFmpeg's testsrc2 at `size` (WxH), 25 fps, H.264 in
/// `pix_fmt` (`-qp 0`: lossless, so the decoded picture is the pattern).
fn test_video(
    dir: &Path,
    name: &str,
    size: &str,
    frames: u32,
    pix_fmt: &str,
) -> std::path::PathBuf {
    let path = dir.join(name);
    let source = format!("testsrc2=size={size}:rate=25");
    let frames = frames.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &source,
        "-frames:v",
        &frames,
        "-pix_fmt",
        pix_fmt,
        "-c:v",
        "libx264",
        "-qp",
        "0",
        path.to_str().unwrap(),
    ]);
    path
}

/// The first frame of `path`, decoded by framepipe.
fn first_frame(path: &Path) -> ff::frame::Video {
    let (mut input, info) = probe::open(path).unwrap();
    let mut decoder = VideoDecoder::open(path, &input, info.video_stream_index, 0, 0).unwrap();
    let mut first = None;
    let mut sink = |f: SourceFrame| {
        first.get_or_insert(f.frame);
        Ok(())
    };
    decoder
        .decode_all(&mut input, &mut sink, &|| false)
        .unwrap();
    first.unwrap()
}

/// `src` converted by swscale to `format` at `w`x`h`, tagged `range`.
fn converted(
    src: &ff::frame::Video,
    format: Pixel,
    (w, h): (u32, u32),
    range: ff::color::Range,
) -> ff::frame::Video {
    let mut scaler = ff::software::scaling::Context::get(
        src.format(),
        src.width(),
        src.height(),
        format,
        w,
        h,
        ff::software::scaling::Flags::BICUBIC,
    )
    .unwrap();
    let mut out = ff::frame::Video::empty();
    scaler.run(src, &mut out).unwrap();
    out.set_color_range(range);
    out.set_color_space(ff::color::Space::BT709);
    out
}

/// A canvas's planes (Y, U, V) without line padding.
fn planes(frame: &ff::frame::Video) -> Vec<u8> {
    let mut out = Vec::new();
    for (plane, (w, h)) in [
        (0, (frame.width(), frame.height())),
        (1, (frame.width() / 2, frame.height() / 2)),
        (2, (frame.width() / 2, frame.height() / 2)),
    ] {
        let stride = frame.stride(plane);
        for y in 0..h as usize {
            out.extend_from_slice(&frame.data(plane)[y * stride..y * stride + w as usize]);
        }
    }
    out
}

/// Canvases of one source both ways: (swscale's, the device's, the plan).
fn both_ways(src: &ff::frame::Video, rotation: u32, mode: FitMode) -> (Vec<u8>, Vec<u8>, Geometry) {
    let torch = Torch::get().expect("libtorch library built");
    let g = Geometry::plan(
        src.width(),
        src.height(),
        (1, 1),
        rotation,
        (1280, 720),
        mode,
    );
    let host = Normalizer::new(g, mode, (1, 1)).normalize(src).unwrap();
    let device = DeviceNormalizer::new(torch, framepipe::device::Device::Cpu, g, mode, (1, 1))
        .normalize(src)
        .unwrap();
    assert_eq!((device.width, device.height), (1280, 720));
    (planes(&host), device.read().unwrap(), g)
}

/// Mean and 99.9th percentile of the absolute level differences.
fn diff_stats(a: &[u8], b: &[u8]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let mut d: Vec<u8> = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).collect();
    let mean = d.iter().map(|v| f64::from(*v)).sum::<f64>() / d.len() as f64;
    d.sort_unstable();
    (mean, d[d.len() * 999 / 1000])
}

/// Device canvases against swscale's, for every source format the device reads itself (8 and
/// 10 bits, planar and interleaved, limited and full range) and the geometries of the
/// normalizer (downscale, upscale with pillarbox, fill crop, rotation). Both resample with a
/// bicubic filter, but not the same one (swscale's has a = -0.6 and its own chroma siting,
/// libtorch's a = -0.75, antialiased when shrinking), so levels may differ a little at edges;
/// the padding must be exactly black, and the picture within half a level on average (0.02-0.32
/// measured) and 4 levels at the 99.9th percentile (2-3 measured).
#[test]
fn device_canvases_match_swscale_canvases() {
    let dir = tempfile::tempdir().unwrap();
    let video = test_video(dir.path(), "src.mp4", "1920x1080", 1, "yuv420p");
    let decoded = first_frame(&video);
    let limited = ff::color::Range::MPEG;
    let cases = [
        (
            "yuv420p 1080p → 720p",
            Pixel::YUV420P,
            (1920, 1080),
            limited,
            0,
            FitMode::Fit,
        ),
        (
            "nv12 1080p → 720p",
            Pixel::NV12,
            (1920, 1080),
            limited,
            0,
            FitMode::Fit,
        ),
        (
            "p010 1080p → 720p",
            Pixel::P010LE,
            (1920, 1080),
            limited,
            0,
            FitMode::Fit,
        ),
        (
            "yuv420p10 4:3 upscaled, pillarboxed",
            Pixel::YUV420P10LE,
            (640, 480),
            limited,
            0,
            FitMode::Fit,
        ),
        (
            "yuvj420p full range",
            Pixel::YUVJ420P,
            (1280, 720),
            ff::color::Range::JPEG,
            0,
            FitMode::Fit,
        ),
        (
            "nv12 rotated 90",
            Pixel::NV12,
            (640, 360),
            limited,
            90,
            FitMode::Fit,
        ),
        (
            "yuv420p fill crop",
            Pixel::YUV420P,
            (1000, 1000),
            limited,
            0,
            FitMode::Fill,
        ),
        (
            "yuv420p 4:3 rotated 270",
            Pixel::YUV420P,
            (640, 480),
            limited,
            270,
            FitMode::Fit,
        ),
    ];
    for (name, format, size, range, rotation, mode) in cases {
        let src = converted(&decoded, format, size, range);
        let (host, device, g) = both_ways(&src, rotation, mode);
        let (mean, p999) = diff_stats(&host, &device);
        eprintln!("{name}: mean {mean:.3}, p99.9 {p999}");
        assert!(
            mean < 0.5 && p999 <= 4,
            "{name}: mean {mean:.3}, p99.9 {p999}"
        );
        // The padding, row 0 (above a letterbox) or column 0 (left of a pillarbox), is black.
        let (px, py) = (g.placed.x as usize, g.placed.y as usize);
        if px > 0 {
            assert!((0..720).all(|y| device[y * 1280] == 16), "{name}: left bar");
        }
        if py > 0 {
            assert!(device[..1280].iter().all(|v| *v == 16), "{name}: top bar");
        }
    }
}

/// A format the device does not read (4:4:4) is normalized by swscale and only copied to the
/// device: the canvas is swscale's to the byte.
#[test]
fn other_formats_go_through_swscale_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let video = test_video(dir.path(), "src.mp4", "640x360", 1, "yuv444p");
    let src = first_frame(&video);
    assert_eq!(src.format(), Pixel::YUV444P);
    let (host, device, _) = both_ways(&src, 0, FitMode::Fit);
    assert_eq!(host, device);
}

/// Canvases are released when the last model stage drops them: none outlives a run.
#[test]
fn canvases_are_released() {
    let torch = Torch::get().expect("libtorch library built");
    let live = || {
        torch
            .call(&framepipe_proto::ops::CanvasLive {})
            .unwrap()
            .live
    };
    let src = converted(
        &{
            let dir = tempfile::tempdir().unwrap();
            let video = test_video(dir.path(), "src.mp4", "320x240", 1, "yuv420p");
            first_frame(&video)
        },
        Pixel::YUV420P,
        (320, 240),
        ff::color::Range::MPEG,
    );
    let g = Geometry::plan(320, 240, (1, 1), 0, (1280, 720), FitMode::Fit);
    let before = live();
    let mut n = DeviceNormalizer::new(
        torch,
        framepipe::device::Device::Cpu,
        g,
        FitMode::Fit,
        (1, 1),
    );
    let canvases: Vec<_> = (0..3).map(|_| n.normalize(&src).unwrap()).collect();
    assert_eq!(live(), before + 3);
    drop(canvases);
    assert_eq!(live(), before);
}

fn run_mode(dir: &Path, input: &Path, mode: &str) -> (std::path::PathBuf, serde_json::Value) {
    let cfg = pipeline(
        dir,
        &format!("{mode}.json"),
        &format!(
            r#"{{"clip": {{"model": {:?}, "labels": ["a", "b"], "sample": {{"every_n_frames": 3}}, "batch_size": 4}},
                "vae": {{"model": {:?}, "every_n_frames": 4, "batch_size": 3}},
                "runtime": {{"device_frames": "{mode}", "color_conversion": "device"}}, "device": "cpu"}}"#,
            clip_fixture(),
            vae_fixture()
        ),
    );
    let out = dir.join(format!("out-{mode}"));
    let o = run_pipeline(&cfg, &out, input);
    assert!(o.status.success(), "{}", stderr(&o));
    let stem = input.file_stem().unwrap().to_str().unwrap();
    (out.join(stem), report(&out, stem))
}

/// The whole pipeline with canvases on the device: CLIP embeddings and latents as with swscale
/// canvases (up to the resampling filters' difference), the same frames sampled, and the
/// report saying where the canvases were.
#[test]
fn a_pipeline_with_device_frames_matches_the_host_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = test_video(d, "in.mp4", "960x540", 25, "yuv420p");
    let (on, report_on) = run_mode(d, &input, "on");
    let (off, report_off) = run_mode(d, &input, "off");
    assert_eq!(report_on["stats"]["canvases_on"], "cpu");
    // Decoded on the CPU: every frame came through host memory.
    assert_eq!(report_on["stats"]["frames_in_gpu_memory"], 0);
    assert!(report_off["stats"]["canvases_on"].is_null());
    let embeds = |dir: &Path| {
        let path = dir.join("embeddings.safetensors");
        (
            frame_index(&path),
            read_tensor(&path, "image_embeds").unwrap(),
        )
    };
    let ((index_on, e_on), (index_off, e_off)) = (embeds(&on), embeds(&off));
    assert_eq!(index_on, index_off);
    assert_eq!(index_on, (0..25).step_by(3).collect::<Vec<i64>>());
    let dim = e_on.shape[1];
    for (a, b) in e_on.values.chunks(dim).zip(e_off.values.chunks(dim)) {
        assert!(cosine(a, b) > 0.999, "cosine {}", cosine(a, b));
    }
    let latents =
        |dir: &Path| read_tensor(&dir.join("latents/000000.safetensors"), "latents").unwrap();
    let (l_on, l_off) = (latents(&on), latents(&off));
    assert_eq!(l_on.shape, l_off.shape);
    assert_eq!(l_on.shape[0], 7);
    let dim = l_on.values.len() / 7;
    for (a, b) in l_on.values.chunks(dim).zip(l_off.values.chunks(dim)) {
        assert!(cosine(a, b) > 0.995, "latent cosine {}", cosine(a, b));
    }
}

/// `device_frames: "on"` where frames must reach host memory is a config error naming why;
/// `auto` without NVDEC keeps the CPU normalizer.
#[test]
fn device_frames_on_needs_model_stages_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = test_video(d, "in.mp4", "320x240", 10, "yuv420p");
    let cfg = pipeline(
        d,
        "scenes.json",
        &format!(
            r#"{{"scenes": {{}}, "clip": {{"model": {:?}, "labels": ["a"], "sample": {{"every_n_frames": 3}}}},
                "runtime": {{"device_frames": "on"}}, "device": "cpu"}}"#,
            clip_fixture()
        ),
    );
    let out = d.join("out");
    let o = run_pipeline(&cfg, &out, &input);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("runtime.device_frames") && e.contains("scenes"),
        "{e}"
    );
    assert_no_output(&out, "in");
    let (_, r) = run_mode(d, &input, "auto");
    assert!(
        r["stats"]["canvases_on"].is_null(),
        "auto without NVDEC: host canvases"
    );
}

/// Device frames without a loadable libtorch library: a non-zero exit before any frame is
/// decoded, naming the library and why, and no output left behind.
#[test]
fn device_frames_without_libtorch_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = test_video(d, "in.mp4", "320x240", 10, "yuv420p");
    let fake = d.join("libframepipe_torch.so");
    std::fs::write(&fake, b"not a library").unwrap();
    let cfg = pipeline(
        d,
        "on.json",
        &format!(
            r#"{{"clip": {{"model": {:?}, "labels": ["a"], "sample": {{"every_n_frames": 3}}}},
                "runtime": {{"device_frames": "on"}}, "device": "cpu"}}"#,
            clip_fixture()
        ),
    );
    let out = d.join("out");
    let o = framepipe()
        .args(["run", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .arg(&input)
        .env("FRAMEPIPE_TORCH_LIB", &fake)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("cannot load") && e.contains(fake.to_str().unwrap()),
        "{e}"
    );
    assert_no_output(&out, "in");
}
