//! The JSON written next to each output (`<stem>.json`): every serde type of it, in one place.
//! `schema_version` changes whenever a field changes meaning or goes away.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::PipelineConfig;
use crate::device::DeviceInfo;
use crate::media::normalize::Rect;
use crate::media::probe::SourceInfo;
use crate::pipeline::scenes::Scene;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool_version: String,
    pub config_hash: String,
    pub config: PipelineConfig,
    pub source: SourceInfo,
    pub output: OutputInfo,
    pub scenes: Vec<Scene>,
    /// CLIP-embedded frames with their tags (CLIP runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<Vec<SampleReport>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip: Option<ClipReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latents: Option<LatentsReport>,
    pub stats: Stats,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct OutputInfo {
    /// File name of the re-encoded video inside the output folder (`null` without `encode`).
    pub video: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Where the picture is on the canvas (the rest is padding).
    pub content: Option<Rect>,
    pub frames: u64,
    pub duration: f64,
    pub fps: Option<f64>,
    pub has_audio: bool,
    /// `copy`, `aac` (re-encoded) or `none`.
    pub audio: String,
    pub chapters: usize,
}

#[derive(Debug, Serialize)]
pub struct Stats {
    /// Frames decoded from the source.
    pub frames: u64,
    pub wall_seconds: f64,
    /// Decoded frames per wall-clock second.
    pub fps: f64,
    /// Busy seconds per stage (time spent working, not waiting on neighbours).
    pub stages: BTreeMap<String, StageStats>,
    /// `cpu` or `nvdec` (`decode.hwaccel`).
    pub decoder: String,
    /// The model device the canvases were made and kept on (`runtime.device_frames`); `null`:
    /// made by swscale in host memory.
    pub canvases_on: Option<String>,
    pub device: DeviceInfo,
    /// Packets the demuxer could not read plus packets the decoder rejected.
    pub decode_errors: u64,
    /// Frames the decoder had to conceal.
    pub damaged_frames: u64,
    /// Decoded frames that stayed in GPU memory (NVDEC with `runtime.device_frames`): equal to
    /// `frames` when no frame crossed to the host.
    pub frames_in_gpu_memory: u64,
}

#[derive(Debug, Serialize)]
pub struct StageStats {
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct SampleReport {
    /// Output frame index.
    pub frame: u64,
    pub time: f64,
    /// Row in `embeddings.safetensors`.
    pub row: usize,
    pub tags: Vec<crate::tags::Tag>,
}

#[derive(Debug, Serialize)]
pub struct ClipReport {
    pub model: String,
    /// The model's fingerprint (`sha256:…`, see `model_id`): `search` refuses to mix rows of
    /// different models.
    pub model_hash: String,
    pub labels: Vec<String>,
    pub templates: Vec<String>,
    pub dim: usize,
    pub samples: usize,
    /// `image_embeds` [N, dim] f16 (L2-normalized), `frame_index` [N] i64.
    pub embeddings: String,
}

/// `latents/NNNNNN.safetensors` shards: `latents` [N, C, h, w] in `dtype`, `frame_index` [N].
#[derive(Debug, Serialize)]
pub struct LatentsReport {
    pub files: Vec<String>,
    pub shape_per_frame: Vec<i64>,
    pub dtype: String,
    pub scaling_factor: f64,
    pub shift_factor: Option<f64>,
    pub input_range: String,
    /// `mean`, or `sample, seed S + frame index`.
    pub posterior: String,
    pub tiling: bool,
    /// Frames per model call at the end (an `auto` size after any out-of-memory retries).
    pub batch_size: usize,
    pub frames: u64,
}
