//! The scenes stage: every decoded frame goes to the configured shot detector — `content`
//! ([`content`]: PySceneDetect's ContentDetector on small HSV frames) or `transnetv2`
//! ([`shots`]: the learned TransNetV2 on 48x27 RGB frames, through libtorch). Cuts are source
//! frame indices, mapped onto the output video at the end ([`scenes_on_output`]); TransNetV2's
//! cuts also name the gradual transition before them.
mod content;
pub mod shots;

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use crate::config::{SceneDetectorKind, ScenesConfig};
use crate::error::Result;
use crate::media::decode::SourceFrame;
use crate::media::probe::SourceInfo;
use crate::output::scene::{AddedBy, Scene, TransitionFrames};
use crate::pipeline::stage::{BusyTimer, Cancel};

/// A detected cut: the first source frame of a new scene.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SceneCut {
    pub source_index: u64,
    pub time: f64,
    /// The gradual transition that ends at this cut (TransNetV2 only).
    pub transition: Option<Transition>,
}

/// Source frames `start_index .. cut` are a gradual transition (dissolve, fade, wipe).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Transition {
    pub start_index: u64,
    pub start_time: f64,
    /// The second stage that added this cut (`scenes.colour_cuts`); `None` for the detector's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_by: Option<AddedBy>,
}

/// What the encoder hears from the scenes stage while both run (clips need IDR frames where
/// they start, so their boundaries must be known a little ahead of the encoder).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SceneEvent {
    /// A new scene starts.
    Cut(SceneCut),
    /// No cut found later starts, nor has its transition start, before this source frame (at
    /// or after `time` seconds).
    KnownUntil { source_index: u64, time: f64 },
}

/// The stage's result.
#[derive(Debug, Clone)]
pub struct SceneCuts {
    pub cuts: Vec<SceneCut>,
    pub frames: u64,
    pub seconds: f64,
    /// TransNetV2's per-frame probabilities (`transitions.safetensors`).
    pub probabilities: Option<shots::Probabilities>,
    /// Motion of every decoded frame (when the pipeline makes clips).
    pub motion: Option<crate::clips::motion::MotionSeries>,
}

/// The scenes stage: the configured detector, fed every decoded frame.
pub struct SceneStage {
    detector: Detector,
    /// Measure every frame's motion (the pipeline makes clips; their scores need it).
    motion: bool,
    cancel: Cancel,
}

enum Detector {
    Content(Box<content::ContentStage>),
    Shots(shots::ShotStage),
}

impl SceneStage {
    /// `motion`: measure every frame's motion, for clips' scores.
    pub fn new(
        cfg: &ScenesConfig,
        info: &SourceInfo,
        device: crate::device::Device,
        motion: bool,
        cancel: Cancel,
    ) -> Result<Self> {
        let detector = match cfg.detector {
            SceneDetectorKind::Content => {
                Detector::Content(Box::new(content::ContentStage::new(cfg, info)?))
            }
            SceneDetectorKind::Transnetv2 => {
                Detector::Shots(shots::ShotStage::new(cfg, info, device)?)
            }
        };
        Ok(SceneStage {
            detector,
            motion,
            cancel,
        })
    }

    /// `listeners`: one channel per stage that follows the cuts as they are found (the
    /// encoder for chapters and clip files, per-scene tagging, thumbnails). Each hears every
    /// cut, how far cuts are known, and at the end that every cut is known.
    pub fn run(
        self,
        rx: Receiver<Arc<SourceFrame>>,
        listeners: Vec<Sender<SceneEvent>>,
    ) -> Result<SceneCuts> {
        let mut found = FoundCuts {
            cuts: Vec::new(),
            listeners,
            motion: self.motion.then(crate::clips::motion::MotionMeter::default),
        };
        let mut timer = BusyTimer::default();
        let (frames, probabilities) = match self.detector {
            Detector::Content(stage) => {
                (stage.run(rx, &mut found, &mut timer, &self.cancel)?, None)
            }
            Detector::Shots(stage) => {
                let (frames, p) = stage.run(rx, &mut found, &mut timer, &self.cancel)?;
                (frames, Some(p))
            }
        };
        for tx in &found.listeners {
            // Every cut is known; the listener may have stopped (its error is reported).
            let _ = tx.send(SceneEvent::KnownUntil {
                source_index: u64::MAX,
                time: f64::INFINITY,
            });
        }
        Ok(SceneCuts {
            cuts: found.cuts,
            frames,
            seconds: timer.seconds(),
            probabilities,
            motion: found.motion.map(|m| m.finish()),
        })
    }
}

/// The cuts a detector finds, as it finds them: each goes to the listening stages at once.
pub struct FoundCuts {
    cuts: Vec<SceneCut>,
    /// The stages that follow the cuts as they are found.
    listeners: Vec<Sender<SceneEvent>>,
    motion: Option<crate::clips::motion::MotionMeter>,
}

impl FoundCuts {
    /// A new scene starts at source frame `index` (at `time` seconds), after the transition
    /// `transition` when it was gradual.
    pub fn cut(&mut self, index: u64, time: f64, transition: Option<Transition>) {
        let cut = SceneCut {
            source_index: index,
            time,
            transition,
        };
        self.cuts.push(cut);
        for tx in &self.listeners {
            // A listener may have stopped (its error is reported).
            let _ = tx.send(SceneEvent::Cut(cut));
        }
    }

    /// No later cut (or its transition) starts before source frame `index` (`time` seconds).
    pub fn known_until(&mut self, index: u64, time: f64) {
        for tx in &self.listeners {
            let _ = tx.send(SceneEvent::KnownUntil {
                source_index: index,
                time,
            });
        }
    }

    /// Whether the motion of each frame is wanted ([`FoundCuts::frame_seen`]).
    pub fn wants_motion(&self) -> bool {
        self.motion.is_some()
    }

    /// A decoded frame and the detector's small frame of it, for clips' motion, blank and
    /// frozen scores. Fails only when swscale cannot shrink the frame.
    pub fn frame_seen(
        &mut self,
        frame: &SourceFrame,
        small: &[u8],
    ) -> std::result::Result<(), ffmpeg_next::Error> {
        match &mut self.motion {
            Some(meter) => meter.frame(frame.time, &frame.frame, small),
            None => Ok(()),
        }
    }
}

/// Where source frame `index` (shown at `time` seconds) lands on the output: the same frame
/// without fps resampling; with it, the output tick round(time * fps), the first tick that shows
/// that frame or a later one. Returns the output frame and its time.
pub fn frame_on_output(index: u64, time: f64, fps: Option<f64>) -> (u64, f64) {
    match fps {
        None => (index, time),
        Some(fps) => {
            let tick = (time * fps).round().max(0.0) as u64;
            (tick, tick as f64 / fps)
        }
    }
}

/// Lays the cuts onto the output video of `frames` frames and `duration` seconds. Without fps
/// resampling output frames are source frames; with it, a cut at source time t starts at the
/// output tick round(t * fps), the first tick that shows that frame or a later one.
pub fn scenes_on_output(
    cuts: &[SceneCut],
    fps: Option<f64>,
    frames: u64,
    duration: f64,
) -> Vec<Scene> {
    let on_output = |index: u64, time: f64| frame_on_output(index, time, fps);
    // (start frame, start time, transition in)
    let mut starts: Vec<(u64, f64, Option<TransitionFrames>)> = vec![(0, 0.0, None)];
    for cut in cuts {
        let (frame, time) = on_output(cut.source_index, cut.time);
        let previous = starts.last().expect("has the first scene").0;
        if frame > previous && frame < frames {
            // The transition stays inside the scene before (a merged cut can make it reach
            // further back than that scene's start).
            let transition = cut.transition.and_then(|t| {
                let start = on_output(t.start_index, t.start_time).0.max(previous);
                (start < frame).then_some(TransitionFrames {
                    start_frame: start,
                    end_frame: frame,
                    added_by: t.added_by,
                })
            });
            starts.push((frame, time, transition));
        }
    }
    if frames == 0 {
        return Vec::new();
    }
    starts
        .iter()
        .enumerate()
        .map(|(index, &(start_frame, start_time, transition_in))| {
            let (end_frame, end_time) = starts
                .get(index + 1)
                .map_or((frames, duration), |&(f, t, _)| (f, t));
            Scene {
                index,
                start_frame,
                end_frame,
                start_time,
                end_time,
                transition_in,
                tags: None,
                reconstruction: None,
                thumbnails: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(source_index: u64, time: f64) -> SceneCut {
        SceneCut {
            source_index,
            time,
            transition: None,
        }
    }

    #[test]
    fn scenes_cover_the_video_without_gaps() {
        let scenes = scenes_on_output(&[cut(30, 1.0), cut(75, 2.5)], None, 100, 100.0 / 30.0);
        let bounds: Vec<(u64, u64)> = scenes
            .iter()
            .map(|s| (s.start_frame, s.end_frame))
            .collect();
        assert_eq!(bounds, [(0, 30), (30, 75), (75, 100)]);
        assert_eq!(scenes[2].end_time, 100.0 / 30.0);
        assert!(scenes_on_output(&[], None, 0, 0.0).is_empty());
        assert_eq!(scenes_on_output(&[], None, 10, 1.0).len(), 1);
    }

    #[test]
    fn resampled_cuts_land_on_ticks() {
        // 25 fps source cut at frame 50 (2.0 s) → 30 fps output tick 60.
        let scenes = scenes_on_output(&[cut(50, 2.0)], Some(30.0), 120, 4.0);
        assert_eq!((scenes[1].start_frame, scenes[1].start_time), (60, 2.0));
    }

    #[test]
    fn transitions_stay_in_the_scene_before() {
        let dissolve = SceneCut {
            transition: Some(Transition {
                start_index: 40,
                start_time: 40.0 / 25.0,
                added_by: None,
            }),
            ..cut(52, 52.0 / 25.0)
        };
        let scenes = scenes_on_output(&[cut(20, 0.8), dissolve], None, 100, 4.0);
        assert_eq!(scenes[1].end_frame, 52);
        assert_eq!(
            scenes[2].transition_in,
            Some(TransitionFrames {
                start_frame: 40,
                end_frame: 52,
                added_by: None,
            })
        );
        assert_eq!(scenes[1].transition_in, None, "a hard cut has none");
        // 25 fps source onto 50 fps output ticks.
        let scenes = scenes_on_output(&[dissolve], Some(50.0), 200, 4.0);
        assert_eq!(
            scenes[1].transition_in,
            Some(TransitionFrames {
                start_frame: 80,
                end_frame: 104,
                added_by: None,
            })
        );
    }
}
