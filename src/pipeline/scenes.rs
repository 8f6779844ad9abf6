//! The scenes stage: each decoded frame is shrunk to PySceneDetect's analysis size (one swscale
//! pass straight from the decoded frame, never from the full-size canvas) and scored by the
//! content detector; cuts are source frame indices, mapped onto the output video at the end.
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use super::{BusyTimer, Cancel};
use crate::config::ScenesConfig;
use crate::error::{Error, Result};
use crate::media::decode::SourceFrame;
use crate::media::probe::SourceInfo;
use crate::media::small::SmallFrames;
use crate::scenes::{processing_size, ContentDetector, ContentDetectorConfig};

/// A detected cut: the first source frame of a new scene.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SceneCut {
    pub source_index: u64,
    pub time: f64,
}

/// The stage's result.
#[derive(Debug, Clone)]
pub struct SceneCuts {
    pub cuts: Vec<SceneCut>,
    pub frames: u64,
    pub seconds: f64,
}

/// A scene of the output video (end exclusive).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    pub index: usize,
    pub start_frame: u64,
    pub end_frame: u64,
    pub start_time: f64,
    pub end_time: f64,
    /// Zero-shot labels of the scene (CLIP runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<crate::clip_labels::Tag>>,
}

pub struct SceneStage {
    detector: ContentDetector,
    small: SmallFrames,
    source_path: String,
    cancel: Cancel,
}

impl SceneStage {
    pub fn new(cfg: &ScenesConfig, info: &SourceInfo, cancel: Cancel) -> Result<Self> {
        let detector = ContentDetector::new(ContentDetectorConfig {
            threshold: cfg.threshold,
            min_scene_len: cfg.min_scene_frames,
            luma_only: cfg.luma_only,
            ..ContentDetectorConfig::default()
        })
        .map_err(|e| Error::input(&info.path, format!("scene detector settings: {e}")))?;
        let (w, h) = processing_size(info.width, info.height);
        Ok(SceneStage {
            detector,
            small: SmallFrames::new(w, h),
            source_path: info.path.clone(),
            cancel,
        })
    }

    pub fn run(
        mut self,
        rx: Receiver<Arc<SourceFrame>>,
        cuts_tx: Option<Sender<Vec<SceneCut>>>,
        live_tx: Option<Sender<u64>>,
    ) -> Result<SceneCuts> {
        let mut timer = BusyTimer::default();
        let mut cuts = Vec::new();
        let mut times = CutTimes::default();
        let mut frames = 0;
        let (w, h) = self.small.size();
        for src in rx {
            self.cancel.check("scenes")?;
            frames += 1;
            let cut = timer.time(|| -> Result<Option<u64>> {
                let (bgr, stride) = self.small.convert(&src.frame).map_err(|e| {
                    Error::ffmpeg(
                        &self.source_path,
                        format!("shrinking frame {} for scene detection", src.index),
                        e,
                    )
                })?;
                Ok(self.detector.process_bgr(src.index, bgr, w, h, stride))
            })?;
            times.record(src.index, src.time);
            if let Some(index) = cut {
                cuts.push(SceneCut {
                    source_index: index,
                    time: times.time_of(index).unwrap_or(src.time),
                });
                if let Some(tx) = &live_tx {
                    // The clip stage may have stopped (its error is reported).
                    let _ = tx.send(index);
                }
            }
        }
        if let Some(index) = self.detector.finish() {
            cuts.push(SceneCut {
                source_index: index,
                time: times.time_of(index).unwrap_or(0.0),
            });
        }
        if let Some(tx) = cuts_tx {
            // The encode stage may have stopped already (its error is reported); nothing to do.
            let _ = tx.send(cuts.clone());
        }
        Ok(SceneCuts {
            cuts,
            frames,
            seconds: timer.seconds(),
        })
    }
}

/// Recent frame times, so a cut the detector reports late (its merge filter can name an earlier
/// frame) still gets its own frame's time. Bounded: a merge never reaches further back than this.
#[derive(Default)]
struct CutTimes {
    recent: std::collections::VecDeque<(u64, f64)>,
}

impl CutTimes {
    const KEEP: usize = 4096;

    fn record(&mut self, index: u64, time: f64) {
        if self.recent.len() == Self::KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back((index, time));
    }

    fn time_of(&self, index: u64) -> Option<f64> {
        self.recent
            .iter()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|&(_, t)| t)
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
    let mut starts: Vec<(u64, f64)> = vec![(0, 0.0)];
    for cut in cuts {
        let (frame, time) = match fps {
            None => (cut.source_index, cut.time),
            Some(fps) => {
                let tick = (cut.time * fps).round().max(0.0) as u64;
                (tick, tick as f64 / fps)
            }
        };
        if frame > starts.last().expect("has the first scene").0 && frame < frames {
            starts.push((frame, time));
        }
    }
    if frames == 0 {
        return Vec::new();
    }
    starts
        .iter()
        .enumerate()
        .map(|(index, &(start_frame, start_time))| {
            let (end_frame, end_time) =
                starts.get(index + 1).copied().unwrap_or((frames, duration));
            Scene {
                index,
                start_frame,
                end_frame,
                start_time,
                end_time,
                tags: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(source_index: u64, time: f64) -> SceneCut {
        SceneCut { source_index, time }
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
}
