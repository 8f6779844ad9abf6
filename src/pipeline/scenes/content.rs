//! The `content` detector in the scenes stage: each decoded frame is shrunk to PySceneDetect's
//! analysis size (one swscale pass straight from the decoded frame, never from the full-size
//! canvas) and scored by [`ContentDetector`].
use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::FoundCuts;
use crate::config::ScenesConfig;
use crate::error::{Error, Result};
use crate::media::decode::SourceFrame;
use crate::media::probe::SourceInfo;
use crate::media::small::SmallFrames;
use crate::pipeline::stage::{BusyTimer, Cancel};
use crate::scenes::{processing_size, ContentDetector, ContentDetectorConfig};

pub struct ContentStage {
    detector: ContentDetector,
    small: SmallFrames,
    source_path: String,
}

impl ContentStage {
    pub fn new(cfg: &ScenesConfig, info: &SourceInfo) -> Result<Self> {
        let detector = ContentDetector::new(ContentDetectorConfig {
            threshold: cfg.threshold,
            min_scene_len: cfg.min_scene_frames,
            luma_only: cfg.luma_only,
            ..ContentDetectorConfig::default()
        })
        .map_err(|e| Error::input(&info.path, format!("scene detector settings: {e}")))?;
        let (w, h) = processing_size(info.width, info.height);
        Ok(ContentStage {
            detector,
            small: SmallFrames::new(w, h),
            source_path: info.path.clone(),
        })
    }

    /// Scores every frame; returns how many there were.
    pub fn run(
        mut self,
        rx: Receiver<Arc<SourceFrame>>,
        found: &mut FoundCuts,
        timer: &mut BusyTimer,
        cancel: &Cancel,
    ) -> Result<u64> {
        let mut frames = 0;
        let mut times = CutTimes::default();
        let mut grey = Vec::new();
        let (w, h) = self.small.size();
        for src in rx {
            cancel.check("scenes")?;
            frames += 1;
            let cut = timer.time(|| -> Result<Option<u64>> {
                let (bgr, stride) = self.small.convert(&src.frame).map_err(|e| {
                    Error::ffmpeg(
                        &self.source_path,
                        format!("shrinking frame {} for scene detection", src.index),
                        e,
                    )
                })?;
                let cut = self.detector.process_bgr(src.index, bgr, w, h, stride);
                if found.wants_motion() {
                    // The green channel of the small frame's rows (padding left out) is the
                    // frame-difference fallback's grey frame.
                    grey.clear();
                    grey.extend(
                        bgr.chunks(stride)
                            .take(h)
                            .flat_map(|row| row[..3 * w].iter().skip(1).step_by(3)),
                    );
                    found.frame_seen(&src, &grey).map_err(|e| {
                        Error::ffmpeg(
                            &self.source_path,
                            format!("shrinking frame {} for clip scores", src.index),
                            e,
                        )
                    })?;
                }
                Ok(cut)
            })?;
            times.record(src.index, src.time);
            if let Some(index) = cut {
                found.cut(index, times.time_of(index).unwrap_or(src.time), None);
            }
            let pending = self.detector.pending_cut_from(src.index + 1);
            found.known_until(pending, times.time_of(pending).unwrap_or(src.time));
        }
        if let Some(index) = self.detector.finish() {
            found.cut(index, times.time_of(index).unwrap_or(0.0), None);
        }
        Ok(frames)
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
