//! A scene as the report lists it (`scenes[]` of `<stem>.json`): its frames and times, the
//! transition into it (and whether a second stage added that boundary), its tags, how well the VAE reconstructs it, its thumbnails.
use serde::{Deserialize, Serialize};

use crate::reconstruction::SceneReconstruction;

/// A scene of the output video (end exclusive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    pub index: usize,
    pub start_frame: u64,
    pub end_frame: u64,
    pub start_time: f64,
    pub end_time: f64,
    /// The gradual transition from the scene before into this one (TransNetV2), absent after
    /// a hard cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition_in: Option<TransitionFrames>,
    /// Zero-shot labels of the scene (CLIP runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    /// How well the VAE reconstructs the scene (`vae.reconstruction` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstruction: Option<SceneReconstruction>,
    /// The scene's first, middle and last frame as JPEGs made during the run (output frames,
    /// and paths relative to the output folder; `scenes.thumbnails`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<Thumbnails>,
}

/// Frames `start_frame .. end_frame` of the output (end exclusive) are the transition into a
/// scene: they stay at the end of the scene before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionFrames {
    pub start_frame: u64,
    pub end_frame: u64,
    /// The second stage that found this boundary, which the detector itself did not; absent
    /// for the detector's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_by: Option<AddedBy>,
}

/// A second stage of the scenes stage that adds cuts to the detector's (`scenes.colour_cuts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddedBy {
    /// `scenes.colour_cuts`: the colours before and after the transition differ far more than
    /// the shots' own motion explains, where TransNetV2 saw no transition.
    ColourCuts,
}

/// A zero-shot label of a scene or clip and its score.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    pub label: String,
    pub score: f64,
}

/// A scene's thumbnails as the report lists them (`scenes[].thumbnails`): the output frames
/// shown (first, middle, last) and their files, relative to the output folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thumbnails {
    pub frames: [u64; 3],
    pub files: [String; 3],
}
