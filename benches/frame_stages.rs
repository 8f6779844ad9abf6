//! Per-frame cost of the CPU hot paths (criterion): normalizing a 1080p frame to the 720p canvas
//! (direct, and the rotated + pillarboxed path), and the scene detector's per-frame work
//! (1080p → 256x144 BGR, HSV, score). Run: `cargo bench --bench frame_stages`.
use criterion::{criterion_group, criterion_main, Criterion};
use ffmpeg_next as ff;
use framepipe::config::FitMode;
use framepipe::media::normalize::{Geometry, Normalizer};
use framepipe::media::small::SmallFrames;
use framepipe::scenes::{processing_size, ContentDetector, ContentDetectorConfig};

/// A 1080p yuv420p frame with structure in every plane (so nothing is trivially compressible).
fn frame_1080p(seed: u8) -> ff::frame::Video {
    let mut f = ff::frame::Video::new(ff::format::Pixel::YUV420P, 1920, 1080);
    for plane in 0..3 {
        let stride = f.stride(plane);
        let (w, h) = (
            f.plane_width(plane) as usize,
            f.plane_height(plane) as usize,
        );
        let data = f.data_mut(plane);
        for y in 0..h {
            for x in 0..w {
                data[y * stride + x] = ((x * 7 + y * 3 + plane * 50) as u8).wrapping_add(seed);
            }
        }
    }
    f
}

fn normalize(c: &mut Criterion) {
    framepipe::media::init();
    let src = frame_1080p(0);
    let mut direct = Normalizer::new(
        Geometry::plan(1920, 1080, (1, 1), 0, (1280, 720), FitMode::Fit),
        FitMode::Fit,
        (1, 1),
    );
    c.bench_function("normalize 1080p -> 720p fit (direct)", |b| {
        b.iter(|| direct.normalize(&src).unwrap())
    });
    let mut rotated = Normalizer::new(
        Geometry::plan(1920, 1080, (1, 1), 90, (1280, 720), FitMode::Fit),
        FitMode::Fit,
        (1, 1),
    );
    c.bench_function("normalize 1080p rotated 90 -> 720p pillarbox", |b| {
        b.iter(|| rotated.normalize(&src).unwrap())
    });
}

fn scenes(c: &mut Criterion) {
    framepipe::media::init();
    let frames = [frame_1080p(0), frame_1080p(90)];
    let (w, h) = processing_size(1920, 1080);
    let mut small = SmallFrames::new(w, h);
    let mut detector = ContentDetector::new(ContentDetectorConfig::default()).unwrap();
    let mut i = 0u64;
    c.bench_function(
        "scene detector per 1080p frame (shrink + HSV + score)",
        |b| {
            b.iter(|| {
                let (bgr, stride) = small.convert(&frames[(i % 2) as usize]).unwrap();
                let cut = detector.process_bgr(i, bgr, w as usize, h as usize, stride);
                i += 1;
                cut
            })
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = normalize, scenes
}
criterion_main!(benches);
