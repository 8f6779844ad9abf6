//! The JSON written next to each output (`<stem>.json`): every serde type of it, in one place,
//! written by `run`/`batch` and read back through the same types (`search`, the tests), which
//! refuse fields they do not know. `schema_version` changes whenever a field changes meaning or
//! goes away.
use std::collections::BTreeMap;
use std::path::Path;

use framepipe_proto::ops::{InputRange, LatentDtype};
use serde::{Deserialize, Serialize};

use crate::device::Device;

use crate::config::PipelineConfig;
use crate::device::DeviceInfo;
use crate::media::normalize::Rect;
use crate::media::probe::SourceInfo;
use crate::output::scene::Scene;

pub const SCHEMA_VERSION: u32 = 1;

/// Why a report cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "report schema {found} (this framepipe reads {SCHEMA_VERSION}): made by another version"
    )]
    OtherSchema { found: u32 },
    #[error("{path}: not a framepipe report this version reads ({message})")]
    Invalid { path: String, message: String },
}

impl Report {
    /// Reads a report file: its schema version first (a report of another version is named as
    /// such, not as a parse error), then the whole report through these types.
    pub fn read(path: &Path) -> Result<Report, ReadError> {
        let text = std::fs::read(path).map_err(|source| ReadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Report::parse(&text).map_err(|e| match e {
            ReadError::Invalid { message, .. } => ReadError::Invalid {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// A report's JSON text (see [`Report::read`]). One pass on the happy path (search reads
    /// hundreds of reports of thousands of samples each); only a report that does not parse is
    /// read again, for its schema version and the JSON path of what is wrong.
    pub fn parse(text: &[u8]) -> Result<Report, ReadError> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let invalid = |message: String| ReadError::Invalid {
            path: "report".into(),
            message,
        };
        match serde_json::from_slice::<Report>(text) {
            Ok(report) if report.schema_version == SCHEMA_VERSION => Ok(report),
            Ok(report) => Err(ReadError::OtherSchema {
                found: report.schema_version,
            }),
            Err(e) => match serde_json::from_slice::<Version>(text) {
                Ok(v) if v.schema_version != SCHEMA_VERSION => Err(ReadError::OtherSchema {
                    found: v.schema_version,
                }),
                _ => {
                    let mut de = serde_json::Deserializer::from_slice(text);
                    Err(invalid(
                        serde_path_to_error::deserialize::<_, Report>(&mut de)
                            .err()
                            .map_or_else(|| e.to_string(), |p| p.to_string()),
                    ))
                }
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub schema_version: u32,
    pub tool_version: String,
    pub config_hash: String,
    pub config: PipelineConfig,
    pub source: SourceInfo,
    pub output: OutputInfo,
    pub scenes: Vec<Scene>,
    /// CLIP-embedded frames with their tags (CLIP runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<Vec<SampleReport>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<TaggingReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latents: Option<LatentsReport>,
    /// TransNetV2's per-frame probabilities (`scenes.detector = "transnetv2"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transitions: Option<TransitionsReport>,
    /// The clips cut from the scenes (`clips` only): `clips.jsonl` and what was left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clips: Option<super::clip_record::ClipsReport>,
    /// The VAE's reconstruction of its frames (`vae.reconstruction` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstruction: Option<ReconstructionReport>,
    /// Runs of frames reconstructed far below their scene's level: likely glitches
    /// (`vae.reconstruction` only; empty when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomalies: Option<Vec<crate::reconstruction::Anomaly>>,
    pub stats: Stats,
    pub warnings: Vec<String>,
}

/// Where TransNetV2's per-frame probabilities are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionsReport {
    /// `transitions.safetensors` in the output folder: `single` and `many_hot` [N] f16 (the
    /// single-frame and many-hot probabilities), `frame_index` [N] i64 (source frames in
    /// decode order) and `time` [N] f64 (their seconds).
    pub file: String,
    /// The TransNetV2 folder.
    pub model: String,
    /// What it computed in: `fp32`, or `bf16` (`runtime.precision` `auto` on a CPU with
    /// native bf16, or `bf16` set), `fp16` on CUDA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<framepipe_proto::Precision>,
    pub frames: u64,
    /// Frames whose single-frame probability is above `scenes.threshold`.
    pub transition_frames: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    pub canvases_on: Option<Device>,
    pub device: DeviceInfo,
    /// Packets the demuxer could not read plus packets the decoder rejected.
    pub decode_errors: u64,
    /// Frames the decoder had to conceal.
    pub damaged_frames: u64,
    /// Decoded frames that stayed in GPU memory (NVDEC with `runtime.device_frames`): equal to
    /// `frames` when no frame crossed to the host.
    pub frames_in_gpu_memory: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageStats {
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleReport {
    /// Output frame index.
    pub frame: u64,
    pub time: f64,
    /// Row in `embeddings.safetensors`.
    pub row: usize,
    pub tags: Vec<super::scene::Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaggingReport {
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentsReport {
    pub files: Vec<String>,
    pub shape_per_frame: Vec<i64>,
    pub dtype: LatentDtype,
    pub scaling_factor: f64,
    pub shift_factor: Option<f64>,
    pub input_range: InputRange,
    /// `mean`, or `sample, seed S + frame index`.
    pub posterior: String,
    pub tiling: bool,
    /// Frames per model call at the end (an `auto` size after any out-of-memory retries).
    pub batch_size: usize,
    pub frames: u64,
    /// Bytes of the shard files.
    pub bytes: u64,
    /// `bytes` over the raw RGB24 bytes of the same frames (canvas size).
    pub ratio_to_raw_rgb: f64,
    /// `bytes` over the size of the re-encoded MP4 (all frames); `null` without one.
    pub ratio_to_video: Option<f64>,
    /// Mean reconstruction PSNR (dB) of the frames reconstructed (`vae.reconstruction` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_psnr: Option<f64>,
}

/// Where the per-frame reconstruction PSNRs are, and how anomalies were judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconstructionReport {
    /// `reconstruction.safetensors`: `frame_index` [N] i64 (output frames), `psnr` [N] f32 (dB,
    /// 8-bit RGB over the picture, bars left out).
    pub file: String,
    pub frames: u64,
    pub mean_psnr: f64,
    pub sensitivity: f64,
    /// The smallest MAD a scene's baseline uses (dB).
    pub mad_floor_db: f64,
    /// Frames in `anomalies`.
    pub flagged_frames: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_of_other_schemas_and_shapes_are_named_as_such() {
        let other = Report::parse(br#"{"schema_version": 99, "anything": []}"#).unwrap_err();
        assert!(
            matches!(other, ReadError::OtherSchema { found: 99 }),
            "{other}"
        );
        assert!(other.to_string().contains("another version"), "{other}");
        let partial = Report::parse(br#"{"schema_version": 1}"#).unwrap_err();
        assert!(partial.to_string().contains("missing field"), "{partial}");
        let e = Report::parse(b"[1]").unwrap_err();
        assert!(matches!(e, ReadError::Invalid { .. }), "{e}");
    }
}
