//! `framepipe bench`: how fast each stage of a pipeline runs on this machine and input, so users
//! can size their jobs. The pipeline runs for real (the same code path as `run`, output in a
//! scratch folder); each stage's busy time gives its own frames/s, the busiest stage is the
//! bottleneck, and on CUDA `nvidia-smi` is sampled for GPU utilization and memory meanwhile.
pub mod models;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::output::report::Report;

/// One stage: its busy seconds, the frames it handled, and the rate that gives.
#[derive(Debug, Clone, Serialize)]
pub struct StageRate {
    pub stage: String,
    pub busy_seconds: f64,
    pub frames: u64,
    /// Frames per busy second: what the stage alone could sustain.
    pub fps: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GpuUsage {
    pub samples: usize,
    pub mean_utilization_pct: f64,
    pub max_utilization_pct: f64,
    pub max_memory_mib: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub input: String,
    pub device: crate::device::Device,
    pub precision: Option<crate::device::Precision>,
    pub frames: u64,
    pub wall_seconds: f64,
    /// End to end, decoded frames per wall second.
    pub fps: f64,
    pub stages: Vec<StageRate>,
    /// The stage with the most busy time: the one that bounds the pipeline.
    pub slowest: String,
    /// `null` off CUDA or without `nvidia-smi`.
    pub gpu: Option<GpuUsage>,
    /// The same input through decode → normalize → x264 only (`--encode-baseline`), frames/s.
    pub encode_alone_fps: Option<f64>,
    /// Frames per VAE call the run ended with (`auto`: measured against free GPU memory).
    pub vae_batch_size: Option<usize>,
    /// `cpu` or `nvdec`.
    pub decoder: String,
    /// The device the canvases were made and kept on (`runtime.device_frames`); `null`: swscale
    /// in host memory.
    pub canvases_on: Option<crate::device::Device>,
}

/// Frames each stage handled, from a finished report.
fn stage_frames(report: &Report, stage: &str) -> u64 {
    match stage {
        "clip" => report.clip.as_ref().map_or(0, |c| c.samples as u64),
        "vae" => report.latents.as_ref().map_or(0, |l| l.frames),
        "encode" => report.output.frames,
        _ => report.stats.frames,
    }
}

/// The per-stage rates of a finished run.
pub fn rates(report: &Report) -> Vec<StageRate> {
    report
        .stats
        .stages
        .iter()
        .map(|(stage, s)| {
            let frames = stage_frames(report, stage);
            StageRate {
                stage: stage.clone(),
                busy_seconds: s.seconds,
                frames,
                fps: frames as f64 / s.seconds.max(1e-9),
            }
        })
        .collect()
}

/// Summarizes a finished run (and optionally the encode-only baseline's report).
pub fn summarize(
    report: &Report,
    gpu: Option<GpuUsage>,
    encode_alone: Option<&Report>,
) -> BenchReport {
    let stages = rates(report);
    let slowest = stages
        .iter()
        .max_by(|a, b| a.busy_seconds.total_cmp(&b.busy_seconds))
        .map(|s| s.stage.clone())
        .unwrap_or_default();
    BenchReport {
        input: report.source.path.clone(),
        device: report.stats.device.name,
        precision: report.stats.device.precision,
        frames: report.stats.frames,
        wall_seconds: report.stats.wall_seconds,
        fps: report.stats.fps,
        stages,
        slowest,
        gpu,
        encode_alone_fps: encode_alone.map(|r| r.stats.fps),
        vae_batch_size: report.latents.as_ref().map(|l| l.batch_size),
        decoder: report.stats.decoder.clone(),
        canvases_on: report.stats.canvases_on,
    }
}

/// Samples `nvidia-smi` for one GPU every half second until stopped.
pub struct GpuSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(f64, f64)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GpuSampler {
    /// Starts sampling GPU `index`; `None` when `nvidia-smi` cannot be run.
    pub fn start(index: u32) -> Option<GpuSampler> {
        let query = move || -> Option<(f64, f64)> {
            let out = Command::new("nvidia-smi")
                .args([
                    "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits",
                    "-i",
                    &index.to_string(),
                ])
                .output()
                .ok()
                .filter(|o| o.status.success())?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut parts = text.trim().split(',').map(|p| p.trim().parse::<f64>());
            Some((parts.next()?.ok()?, parts.next()?.ok()?))
        };
        query()?;
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop2, samples2) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                if let Some(s) = query() {
                    samples2.lock().expect("samples").push(s);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Some(GpuSampler {
            stop,
            samples,
            thread: Some(thread),
        })
    }

    pub fn finish(mut self) -> Option<GpuUsage> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let samples = self.samples.lock().ok()?.clone();
        if samples.is_empty() {
            return None;
        }
        let n = samples.len() as f64;
        Some(GpuUsage {
            samples: samples.len(),
            mean_utilization_pct: samples.iter().map(|s| s.0).sum::<f64>() / n,
            max_utilization_pct: samples.iter().map(|s| s.0).fold(0.0, f64::max),
            max_memory_mib: samples.iter().map(|s| s.1).fold(0.0, f64::max),
        })
    }
}

/// Aligned text for people.
pub fn text(b: &BenchReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} frames in {:.2} s = {:.1} frames/s end to end on {}{}",
        b.input,
        b.frames,
        b.wall_seconds,
        b.fps,
        b.device,
        b.precision
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "{:<10} {:>10} {:>8} {:>12}",
        "stage", "busy s", "frames", "frames/s"
    );
    for s in &b.stages {
        let mark = if s.stage == b.slowest {
            "  <- slowest"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:<10} {:>10.3} {:>8} {:>12.1}{mark}",
            s.stage, s.busy_seconds, s.frames, s.fps
        );
    }
    match &b.gpu {
        Some(g) => {
            let _ = writeln!(
                out,
                "GPU: {:.0}% mean / {:.0}% max utilization, {:.0} MiB max memory ({} samples)",
                g.mean_utilization_pct, g.max_utilization_pct, g.max_memory_mib, g.samples
            );
        }
        None => {
            let _ = writeln!(out, "GPU: not sampled (CPU run or no nvidia-smi)");
        }
    }
    let _ = writeln!(
        out,
        "decoder: {}; canvases: {}",
        b.decoder,
        b.canvases_on
            .as_ref()
            .map(|d| format!("made and kept on {d}"))
            .unwrap_or_else(|| "swscale, host memory".into())
    );
    if let Some(n) = b.vae_batch_size {
        let _ = writeln!(out, "VAE batch size: {n} frames per call");
    }
    if let Some(fps) = b.encode_alone_fps {
        let _ = writeln!(
            out,
            "decode + normalize + x264 alone: {fps:.1} frames/s (the ceiling when models keep up)"
        );
    }
    out
}
