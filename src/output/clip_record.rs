//! One line of `OUT/<stem>/clips.jsonl`: a training sample cut from one scene. Written by `run`
//! (the clips stage), read back by `export` through this same type, which refuses fields it does
//! not know.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::scene::Tag;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipRecord {
    /// `<output id>_<NNNN>`: the output folder's name and the clip's number within it (from 0,
    /// in frame order); the same for every rerun of the same input and config.
    pub id: String,
    /// The clip's MP4, relative to the output folder (`clips/<id>.mp4`); absent without `encode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Index of the scene it was cut from (the report's `scenes[]`).
    pub scene: usize,
    /// Frames `start_frame .. end_frame` of the normalized output (end exclusive).
    pub start_frame: u64,
    pub end_frame: u64,
    /// Seconds of the output video: the first frame's time and the end of the last frame.
    pub start_time: f64,
    pub end_time: f64,
    pub frames: u64,
    /// Mean motion per frame, relative to the frame size (see [`MotionSource`]).
    pub motion: f64,
    pub motion_source: MotionSource,
    /// Zero-shot labels over the CLIP samples inside the clip (CLIP runs only; absent when no
    /// sample falls inside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    /// The mean of the clip's CLIP image embeddings, L2-normalized (CLIP runs only; absent when
    /// no sample falls inside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    /// Latent frames inside the clip (VAE runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latents: Option<ClipLatents>,
    /// The fraction of the clip's source frames that are black or one flat colour
    /// (`crate::clips::looks`; absent in outputs of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blank: Option<f64>,
    /// The fraction of the clip's source frames that repeat the frame before (not counting
    /// blank ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<f64>,
    /// The clip's perceptual signature (`crate::clips::signature`): the pHash of 16 frames
    /// spread over its frames that are not blank, for finding the same footage again (absent in outputs of older
    /// versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phash: Vec<crate::clips::signature::PHash>,
    /// Burned-in text read from the clip's file (`clips.text`; absent without it, or for a clip
    /// without a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextScore>,
    /// Each `clips.heads` model's score of the clip's embedding, by head name (absent without
    /// heads, or when the clip has no embedding).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub heads: BTreeMap<String, f64>,
    /// Why the clip is out (`clips.filters` it failed, e.g. `"blank 0.62 > 0.5"`); empty when
    /// it is kept. A dropped clip has no file and is not exported unless asked for.
    #[serde(default)]
    pub dropped: Vec<String>,
    /// What the `caption` server said the clip shows (absent without `caption`, or when no
    /// caption could be made: then `caption_error` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// The model that wrote `caption`, as the server named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption_model: Option<String>,
    /// The id of the settings `caption` was asked with (model, prompt, frames, size,
    /// max_tokens, temperature: `CaptionConfig::settings_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption_settings: Option<String>,
    /// Why the clip has no caption (`caption.on_error: skip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption_error: Option<String>,
}

/// What Tesseract read on a clip's frames (`clips.text.frames` of them, spread from its first
/// to its last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextScore {
    /// The largest fraction of the picture that word boxes cover on one read frame (0..1).
    pub area: f64,
    /// The most words read on one frame.
    pub words: u32,
    /// The words read, frame after frame (a frame's text once even when several frames show
    /// it), cut to 200 characters.
    pub text: String,
    /// Frames Tesseract gave up on at its deadline (1 s a frame; fine texture such as foliage
    /// can take it a minute): nothing of them is in `area`, `words` or `text`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unread: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ClipRecord {
    /// Whether the clip passed every filter.
    pub fn kept(&self) -> bool {
        self.dropped.is_empty()
    }
}

/// Where a clip's motion score comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MotionSource {
    /// The decoder's motion vectors (FFmpeg `export_mvs`): the mean vector length per frame over
    /// the frame's diagonal, averaged over the clip's frames that have vectors.
    MotionVectors,
    /// The codec exports no vectors (intra-only, some AV1/HEVC): the mean absolute difference of
    /// consecutive small grey frames, 0..1.
    FrameDifference,
}

impl MotionSource {
    /// The name `clips.jsonl` uses (serde's), for writers of other formats.
    pub fn name(self) -> &'static str {
        match self {
            MotionSource::MotionVectors => "motion_vectors",
            MotionSource::FrameDifference => "frame_difference",
        }
    }
}

/// The latent frames of a clip: rows of the run's latent shards whose `frame_index` lies in
/// `start_frame .. end_frame`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipLatents {
    /// The shards that hold them, relative to the output folder (`latents/NNNNNN.safetensors`).
    pub files: Vec<String>,
    /// How many latent frames (the vae stage's sampling decides which frames have one).
    pub frames: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn motion_source_names_are_serdes() {
        for m in [MotionSource::MotionVectors, MotionSource::FrameDifference] {
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.name())
            );
        }
    }
}

/// The report's summary of an input's clips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipsReport {
    /// `clips.jsonl` in the output folder.
    pub file: String,
    pub count: usize,
    pub frames: u64,
    pub seconds: f64,
    /// Seconds of the video left out of clips, by reason.
    pub dropped: DroppedSeconds,
    /// Clips listed without a file because the encoder could not start or close them on their
    /// frames (it had to encode them before their boundaries were known).
    pub without_file: usize,
    /// Clips that failed a `clips.filters` bound: listed in `clips.jsonl` with their reasons,
    /// without a file, and not in `count`, `frames` or `seconds`.
    #[serde(default)]
    pub filtered: usize,
    /// Those clips by reason (`blank`, `frozen`, `motion`, `heads.<name>`); a clip that failed
    /// several bounds counts under each.
    #[serde(default)]
    pub filtered_by: BTreeMap<String, usize>,
    /// How the clips' captions were made (`caption` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captions: Option<CaptionCounts>,
}

/// The report's account of a run's captions: clips captioned (from the server or from the
/// cache), clips without one, and the requests it took.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptionCounts {
    pub captioned: usize,
    /// Captioned from `captions.jsonl`, no request sent.
    pub from_cache: usize,
    /// Clips with `caption_error` instead.
    pub failed: usize,
    /// Requests sent, retries included.
    pub requests: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DroppedSeconds {
    pub transitions: f64,
    pub trims: f64,
    pub too_short: f64,
    pub truncated: f64,
    /// Clips whose motion score was below `min_motion`.
    pub low_motion: f64,
}
