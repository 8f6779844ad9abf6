//! Which decoded frames become thumbnails, and when to seek instead of decoding through: the
//! decision logic of [`super::thumbnails`], free of FFmpeg so that it can be driven by a
//! simulated decoder in tests.
//!
//! A wanted frame is "the last frame starting at or before `limit` seconds" (a [`Target`]). The
//! caller feeds every decoded frame in decode-output order to [`Picker::on_frame`], which hands
//! back the frames to keep and says whether to go on, stop, or seek ahead. A seek lands on the
//! keyframe before its target, which may lie *before* the frames already decoded (a long shot
//! with one keyframe at its start): such a seek did not move the read position forward, so
//! seeking is switched off for the rest of the video and it is decoded through. That bounds the
//! work: every packet is decoded at most twice (seek targets only grow, so landings only grow),
//! and the number of seeks is at most the number of targets.

/// Seconds of video between two wanted frames beyond which seeking beats decoding through.
pub const SEEK_GAP: f64 = 4.0;

/// One wanted frame: the last frame starting at or before `limit` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub limit: f64,
    pub scene: usize,
    /// 0 first, 1 middle, 2 last.
    pub which: usize,
}

/// The first, middle and last frame of each scene (`(start_time, end_time)` in seconds), sorted
/// by time. `fps` sets the tolerance: a quarter frame on each side.
pub fn scene_targets(scenes: impl IntoIterator<Item = (f64, f64)>, fps: f64) -> Vec<Target> {
    let tolerance = 0.25 / fps;
    let mut targets = Vec::new();
    for (scene, (start, end)) in scenes.into_iter().enumerate() {
        let middle = 0.5 * (start + end);
        let limits = [
            start + tolerance,
            middle + tolerance,
            (end - tolerance).max(start + tolerance),
        ];
        for (which, limit) in limits.into_iter().enumerate() {
            targets.push(Target {
                limit,
                scene,
                which,
            });
        }
    }
    targets.sort_by(|a, b| a.limit.total_cmp(&b.limit));
    targets
}

/// What the decoding loop does after a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Decode the next frame.
    Continue,
    /// Every target has its frame.
    Stop,
    /// Seek to the keyframe before this time (seconds), then decode on.
    Seek(f64),
}

/// The picking state over one video. `F` is the caller's frame (an FFmpeg frame, or an index in
/// tests); a frame is identified by a serial number so that one wanted twice is reported as the
/// same frame.
pub struct Picker<F> {
    targets: Vec<Target>,
    next: usize,
    serial: u64,
    prev: Option<(u64, F)>,
    /// Cleared once a seek failed to move the read position forward.
    seeking: bool,
    /// Set by a seek: the time of the last frame decoded before it, checked against the first
    /// frame after it.
    seeked_from: Option<f64>,
    seeks: usize,
}

impl<F> Picker<F> {
    /// `targets` sorted by `limit` (as [`scene_targets`] makes them).
    pub fn new(targets: Vec<Target>) -> Picker<F> {
        debug_assert!(targets.windows(2).all(|w| w[0].limit <= w[1].limit));
        Picker {
            targets,
            next: 0,
            serial: 0,
            prev: None,
            seeking: true,
            seeked_from: None,
            seeks: 0,
        }
    }

    /// Whether every target has its frame.
    pub fn finished(&self) -> bool {
        self.next >= self.targets.len()
    }

    /// Seeks asked for so far.
    pub fn seeks(&self) -> usize {
        self.seeks
    }

    /// One decoded frame starting at `time` seconds: `keep(frame, serial, target)` is called for
    /// each target it settles (with the frame before it, the one on screen at the target's
    /// time). Returns what to do next; after [`Step::Seek`] the caller seeks and goes on feeding
    /// frames from where the seek landed.
    pub fn on_frame<E>(
        &mut self,
        time: f64,
        frame: F,
        keep: &mut dyn FnMut(&F, u64, &Target) -> Result<(), E>,
    ) -> Result<Step, E> {
        self.serial += 1;
        if let Some(from) = self.seeked_from.take() {
            // The seek landed at or before where decoding already was: seeking again would
            // land there again (there is no keyframe in between), so decode through.
            if time <= from {
                self.seeking = false;
            }
        }
        while let Some(t) = self.targets.get(self.next).filter(|t| time > t.limit) {
            // Right after a seek there is no earlier frame: the first one is the nearest (a
            // seek lands at or before its target, so this happens only for the target sought
            // when the landing frame itself starts after it).
            match &self.prev {
                Some((id, prev)) => keep(prev, *id, t)?,
                None => keep(&frame, self.serial, t)?,
            }
            self.next += 1;
        }
        self.prev = Some((self.serial, frame));
        let Some(t) = self.targets.get(self.next) else {
            return Ok(Step::Stop);
        };
        if self.seeking && t.limit > time + SEEK_GAP {
            self.seeked_from = Some(time);
            self.prev = None;
            self.seeks += 1;
            return Ok(Step::Seek(t.limit));
        }
        Ok(Step::Continue)
    }

    /// The end of the video: what is still wanted gets its last frame.
    pub fn finish<E>(
        &mut self,
        keep: &mut dyn FnMut(&F, u64, &Target) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some((id, frame)) = &self.prev {
            while let Some(t) = self.targets.get(self.next) {
                keep(frame, *id, t)?;
                self.next += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A simulated video: frame start times (strictly increasing) and which frames are
    /// keyframes (frame 0 always is).
    #[derive(Debug, Clone)]
    struct Video {
        times: Vec<f64>,
        keyframe: Vec<bool>,
    }

    impl Video {
        /// The frame a seek to `time` lands on: the last keyframe starting at or before it (as
        /// FFmpeg's backward seek does), else the first frame.
        fn landing(&self, time: f64) -> usize {
            (0..self.times.len())
                .rev()
                .find(|&i| self.keyframe[i] && self.times[i] <= time)
                .unwrap_or(0)
        }
    }

    /// The thumbnails' frames by the picker driven as `thumbnails::make` drives it (seeking a
    /// frame interval before the target), and how often each frame was decoded.
    fn pick_with_seeks(video: &Video, targets: &[Target], fps: f64) -> (Vec<usize>, Vec<u32>) {
        let mut picked = vec![usize::MAX; targets.len()];
        let mut decoded = vec![0u32; video.times.len()];
        let mut picker = Picker::<usize>::new(targets.to_vec());
        let mut keep = |f: &usize, _: u64, t: &Target| -> Result<(), ()> {
            let i = targets.iter().position(|x| x == t).unwrap();
            picked[i] = *f;
            Ok(())
        };
        // The read position; a seek moves it to where it lands.
        let mut i = 0;
        let mut seeks = 0;
        while i < video.times.len() {
            decoded[i] += 1;
            match picker.on_frame(video.times[i], i, &mut keep).unwrap() {
                Step::Continue => i += 1,
                Step::Stop => break,
                Step::Seek(time) => {
                    seeks += 1;
                    assert!(seeks <= targets.len(), "more seeks than targets");
                    i = video.landing((time - 1.0 / fps).max(0.0));
                }
            }
        }
        picker.finish(&mut keep).unwrap();
        (picked, decoded)
    }

    /// The reference: every frame decoded, each target's frame the last one starting at or
    /// before its limit (the first frame when none does).
    fn pick_plainly(video: &Video, targets: &[Target]) -> Vec<usize> {
        targets
            .iter()
            .map(|t| {
                video
                    .times
                    .iter()
                    .rposition(|&time| time <= t.limit)
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Frame times at `fps`, or jittered/dropped (VFR) when `vfr` holds per-frame gaps.
    fn times(n: usize, fps: f64, vfr: Option<&[u8]>) -> Vec<f64> {
        match vfr {
            None => (0..n).map(|i| i as f64 / fps).collect(),
            Some(gaps) => {
                let mut t = 0.0;
                (0..n)
                    .map(|i| {
                        let now = t;
                        // 1 to 4 frame intervals: dropped frames and uneven cadence.
                        t += f64::from(1 + gaps[i % gaps.len()] % 4) / fps;
                        now
                    })
                    .collect()
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Layout {
        EveryFrame,
        SceneStarts,
        Interval(usize),
    }

    fn case() -> impl Strategy<Value = (Video, Vec<Target>, f64)> {
        (
            prop::sample::select(vec![10.0, 23.976, 25.0, 30.0, 60.0, 1000.0]),
            1usize..1500,
            prop::option::of(prop::collection::vec(any::<u8>(), 1..16)),
            prop_oneof![
                Just(Layout::EveryFrame),
                Just(Layout::SceneStarts),
                (1usize..=300).prop_map(Layout::Interval),
            ],
            prop::collection::vec(1usize..700, 1..12),
        )
            .prop_map(|(fps, n, vfr, layout, scene_lengths)| {
                let times = times(n, fps, vfr.as_deref());
                // Scenes: consecutive frame ranges covering the video.
                let mut starts = vec![0usize];
                for len in scene_lengths {
                    let s = starts.last().unwrap() + len;
                    if s >= n {
                        break;
                    }
                    starts.push(s);
                }
                let keyframe = (0..n)
                    .map(|i| match layout {
                        Layout::EveryFrame => true,
                        Layout::SceneStarts => starts.contains(&i),
                        Layout::Interval(k) => i % k == 0,
                    })
                    .collect();
                let end_time = times[n - 1] + 1.0 / fps;
                let scenes: Vec<(f64, f64)> = starts
                    .iter()
                    .enumerate()
                    .map(|(k, &s)| {
                        let end = starts.get(k + 1).map(|&e| times[e]).unwrap_or(end_time);
                        (times[s], end)
                    })
                    .collect();
                (Video { times, keyframe }, scene_targets(scenes, fps), fps)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn seeking_ends_decodes_each_packet_at_most_twice_and_picks_like_a_plain_decode(
            (video, targets, fps) in case()
        ) {
            let (picked, decoded) = pick_with_seeks(&video, &targets, fps);
            prop_assert_eq!(&picked, &pick_plainly(&video, &targets));
            prop_assert!(decoded.iter().all(|&d| d <= 2), "decoded {:?}", decoded);
        }
    }

    /// The reported hang: a 12 s single shot whose only keyframe is its first frame. The old
    /// loop sought back to frame 0 forever; now the one seek that did not move forward switches
    /// seeking off.
    #[test]
    fn a_long_shot_with_one_keyframe_is_decoded_through_after_one_seek() {
        let fps = 25.0;
        let n = 300;
        let video = Video {
            times: times(n, fps, None),
            keyframe: (0..n).map(|i| i == 0).collect(),
        };
        let targets = scene_targets([(0.0, 12.0)], fps);
        let (picked, decoded) = pick_with_seeks(&video, &targets, fps);
        assert_eq!(picked, vec![0, 150, 299]);
        // The seek was asked at frame 1 and landed on frame 0: those two twice, no more.
        assert_eq!(decoded[..2], [2, 2]);
        assert!(decoded[2..].iter().all(|&d| d == 1));
    }

    /// Keyframes at every 2 s of a long scene: seeks skip the stretch between targets.
    #[test]
    fn seeks_skip_frames_when_keyframes_allow() {
        let fps = 25.0;
        let n = 1000; // 40 s, one scene
        let video = Video {
            times: times(n, fps, None),
            keyframe: (0..n).map(|i| i % 50 == 0).collect(),
        };
        let targets = scene_targets([(0.0, 40.0)], fps);
        let (picked, decoded) = pick_with_seeks(&video, &targets, fps);
        assert_eq!(picked, pick_plainly(&video, &targets));
        let total: u32 = decoded.iter().sum();
        assert!(total < 200, "decoded {total} frames of {n}");
    }
}
