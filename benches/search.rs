//! `framepipe search` at scale: 1,000,000 synthetic 512-d rows in 100 output folders written in
//! the exact layout `run` writes (report + `embeddings.safetensors`). Measures, through the
//! library's own code path: loading the rows from the files (memory-mapped) and onto the device
//! (target <= 2 s), one query (target <= 100 ms), 1,000 queries in one pass (target <= 5 s);
//! and, as the baseline in the same script, numpy's brute-force fp32 `rows @ q` + argpartition
//! on a matrix of the same size. Run: `cargo bench --bench search` (needs ~6 GB of RAM, ~1 GB
//! of disk in target/tmp).
mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::*;
use framepipe::search::corpus::{Corpus, Rows};
use framepipe::search::SearchIndex;
use framepipe::torch::Torch;

const OUTPUTS: usize = 100;
const ROWS_PER_OUTPUT: usize = 10_000;
const DIM: usize = 512;

/// A small deterministic generator (xorshift64*): the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // Roughly normal: the sum of uniforms, centred.
        ((v >> 40) as f32 / (1u64 << 24) as f32) + ((v & 0xff_ffff) as f32 / (1u64 << 24) as f32)
            - 1.0
    }

    fn unit(&mut self) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIM).map(|_| self.next()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }
}

fn write_corpus(root: &Path) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for o in 0..OUTPUTS {
        let stem = format!("video{o:03}");
        let dir = root.join(&stem);
        std::fs::create_dir_all(&dir).unwrap();
        let mut values = Vec::with_capacity(ROWS_PER_OUTPUT * DIM * 2);
        for _ in 0..ROWS_PER_OUTPUT {
            for x in rng.unit() {
                values.extend(half::f16::from_f32(x).to_le_bytes());
            }
        }
        let frames: Vec<i64> = (0..ROWS_PER_OUTPUT as i64).map(|i| i * 5).collect();
        let index: Vec<u8> = frames.iter().flat_map(|f| f.to_le_bytes()).collect();
        let views = vec![
            (
                "image_embeds",
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F16,
                    vec![ROWS_PER_OUTPUT, DIM],
                    &values,
                )
                .unwrap(),
            ),
            (
                "frame_index",
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::I64,
                    vec![ROWS_PER_OUTPUT],
                    &index,
                )
                .unwrap(),
            ),
        ];
        std::fs::write(
            dir.join("embeddings.safetensors"),
            safetensors::serialize(views, None).unwrap(),
        )
        .unwrap();
        // Ten samples per 50-frame scene at 25 fps.
        let scenes = (0..ROWS_PER_OUTPUT / 10)
            .map(|s| framepipe::output::scene::Scene {
                index: s,
                start_frame: s as u64 * 50,
                end_frame: (s as u64 + 1) * 50,
                start_time: s as f64 * 2.0,
                end_time: (s + 1) as f64 * 2.0,
                transition_in: None,
                tags: None,
                reconstruction: None,
                thumbnails: None,
            })
            .collect();
        let samples = frames
            .iter()
            .enumerate()
            .map(|(row, &f)| framepipe::output::report::SampleReport {
                frame: f as u64,
                time: f as f64 / 25.0,
                row,
                tags: Vec::new(),
            })
            .collect();
        let report = synthetic_report(&stem, scenes, samples);
        std::fs::write(
            dir.join(format!("{stem}.json")),
            serde_json::to_string(&report).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join(framepipe::output::files::DONE_MARKER), "{}").unwrap();
    }
}

/// The report of a made-up output: a CLIP run's, through the report's own types.
fn synthetic_report(
    stem: &str,
    scenes: Vec<framepipe::output::scene::Scene>,
    samples: Vec<framepipe::output::report::SampleReport>,
) -> framepipe::output::report::Report {
    use framepipe::output::report::{OutputInfo, Report, Stats, TaggingReport, SCHEMA_VERSION};
    let frames = (ROWS_PER_OUTPUT * 5) as u64;
    Report {
        schema_version: SCHEMA_VERSION,
        tool_version: "bench".into(),
        config_hash: "synthetic".into(),
        config: framepipe::config::PipelineConfig::parse("{}").unwrap(),
        source: framepipe::media::probe::SourceInfo {
            path: format!("/videos/{stem}.mp4"),
            container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
            codec: "h264".into(),
            width: 1280,
            height: 720,
            sample_aspect_ratio: [1, 1],
            display_width: 1280,
            display_height: 720,
            pixel_format: "yuv420p".into(),
            bit_depth: 8,
            fps: 25.0,
            frames,
            duration: frames as f64 / 25.0,
            rotation: 0,
            has_audio: false,
            audio_codec: None,
            video_stream_index: 0,
            audio_stream_index: None,
        },
        output: OutputInfo {
            video: Some(format!("{stem}.mp4")),
            width: 1280,
            height: 720,
            content: None,
            frames,
            duration: frames as f64 / 25.0,
            fps: Some(25.0),
            has_audio: false,
            audio: "none".into(),
            chapters: 0,
        },
        scenes,
        samples: Some(samples),
        clip: Some(TaggingReport {
            model: "synthetic".into(),
            model_hash: "sha256:synthetic".into(),
            labels: Vec::new(),
            templates: vec!["a photo of {}.".into()],
            dim: DIM,
            samples: ROWS_PER_OUTPUT,
            embeddings: "embeddings.safetensors".into(),
        }),
        latents: None,
        transitions: None,
        clips: None,
        reconstruction: None,
        anomalies: None,
        stats: Stats {
            frames,
            wall_seconds: 1.0,
            fps: frames as f64,
            stages: Default::default(),
            decoder: "cpu".into(),
            canvases_on: None,
            device: framepipe::device::DeviceInfo {
                requested: "cpu".into(),
                name: framepipe::device::Device::Cpu,
                cuda_devices: None,
                used: true,
                precision: None,
            },
            decode_errors: 0,
            damaged_frames: 0,
            frames_in_gpu_memory: 0,
        },
        warnings: Vec::new(),
    }
}

fn numpy_baseline(queries: usize) -> Option<f64> {
    let script = format!(
        r#"
import numpy as np, time
rng = np.random.default_rng(0)
rows = rng.standard_normal(({n}, {d}), dtype=np.float32)
rows /= np.linalg.norm(rows, axis=1, keepdims=True)
q = rng.standard_normal(({queries}, {d}), dtype=np.float32)
q /= np.linalg.norm(q, axis=1, keepdims=True)
ts = []
for _ in range(3):
    t = time.perf_counter()
    for s in range(0, {queries}, 64):
        scores = q[s:s+64] @ rows.T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
    ts.append(time.perf_counter() - t)
print(sorted(ts)[1])
"#,
        n = OUTPUTS * ROWS_PER_OUTPUT,
        d = DIM
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = rounds(5);
    let root: PathBuf = media_dir().join("search-1M");
    if !root
        .join(format!("video{:03}", OUTPUTS - 1))
        .join(framepipe::output::files::DONE_MARKER)
        .exists()
    {
        eprintln!(
            "writing {} rows of {DIM} into {} ...",
            OUTPUTS * ROWS_PER_OUTPUT,
            root.display()
        );
        write_corpus(&root);
    }
    let torch = Torch::get().expect("libtorch library");
    // The files come from the page cache after the first load: time the warm case, as a
    // search service or a second query run sees it.
    let _ = Corpus::load(std::slice::from_ref(&root), Rows::Frames).unwrap();
    let mut load = Vec::new();
    let mut upload = Vec::new();
    let mut one = Vec::new();
    let mut thousand = Vec::new();
    let mut coarse = String::new();
    let mut rng = Rng(42);
    let queries: Vec<Vec<f32>> = (0..1000).map(|_| rng.unit()).collect();
    for _ in 0..rounds {
        let t = Instant::now();
        let corpus = Corpus::load(std::slice::from_ref(&root), Rows::Frames).unwrap();
        load.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let index = SearchIndex::load(
            torch,
            framepipe::device::Device::Cpu,
            corpus.units.len(),
            DIM,
            &corpus.rows,
        )
        .unwrap();
        upload.push(t.elapsed().as_secs_f64());
        coarse = index.coarse.clone();
        drop(corpus);
        for q in queries.iter().take(5) {
            let t = Instant::now();
            let hits = index.query(std::slice::from_ref(q), 10).unwrap();
            one.push(t.elapsed().as_secs_f64());
            assert_eq!(hits[0].len(), 10);
        }
        let t = Instant::now();
        let hits = index.query(&queries, 10).unwrap();
        thousand.push(t.elapsed().as_secs_f64());
        assert_eq!(hits.len(), 1000);
    }
    let t = Instant::now();
    let scenes = Corpus::load(std::slice::from_ref(&root), Rows::Scenes).unwrap();
    let scene_load = t.elapsed().as_secs_f64();
    let baseline = numpy_baseline(1000);
    let rows = OUTPUTS * ROWS_PER_OUTPUT;
    println!("search, {rows} rows x {DIM} (fp16 files, {OUTPUTS} outputs), CPU, candidates in {coarse}, medians of {rounds}:");
    println!(
        "  read rows from the files (mmap)   {:8.3} s",
        median(load.clone())
    );
    println!(
        "  matrix onto the device            {:8.3} s",
        median(upload.clone())
    );
    println!(
        "  load total                        {:8.3} s   (target <= 2 s)",
        median(load) + median(upload)
    );
    println!(
        "  one query, top 10                 {:8.1} ms  (target <= 100 ms)",
        median(one) * 1e3
    );
    let t1000 = median(thousand);
    println!(
        "  1,000 queries, top 10             {:8.3} s   (target <= 5 s)",
        t1000
    );
    println!(
        "  scene rows ({} scenes) from files {:8.3} s",
        scenes.units.len(),
        scene_load
    );
    if let Some(b) = baseline {
        println!(
            "  numpy fp32 brute force, 1,000 q   {:8.3} s   -> framepipe {:.2}x faster",
            b,
            b / t1000
        );
    }
}
