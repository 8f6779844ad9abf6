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
    pub device: DeviceInfo,
    /// Packets the demuxer could not read plus packets the decoder rejected.
    pub decode_errors: u64,
    /// Frames the decoder had to conceal.
    pub damaged_frames: u64,
}

#[derive(Debug, Serialize)]
pub struct StageStats {
    pub seconds: f64,
}
