//! The frames of each clip the encoder cuts, for the work done on clips as they close (their
//! burned-in text, their captions): no clip file is decoded again. While a clip is encoded, a
//! few of its frames are kept (shared references: nothing is copied on the encoder's thread);
//! when it closes, a [`ClosedClip`] gives the kept frames nearest any number of evenly spread
//! positions.
//!
//! A clip's length is only known when it closes, so its frames are kept at a stride that
//! doubles whenever more than [`KEPT`] are held (a frame at offset 0 always is; the last frame
//! is taken when the clip closes). A spread position is served by the kept frame nearest to
//! it: exact for the first and last frames, within 1/[`KEPT`] of the clip for the others.
//! Clips follow the encoder's roles exactly as `media::clip_mux::ClipCutter` cuts them: a clip
//! starts at a `ClipStart` frame and ends at a `ClipEnd` frame or before the next start; one
//! without an end when the video ends, or outside the cutter's length range, gets no file and
//! is not given out.
use std::sync::Arc;

use super::normalize::NormFrame;
use crate::clips::plan::spread;
use crate::media::clip_mux::FrameRole;

/// Most frames kept per open clip (a 1080p yuv420p frame is 3 MB).
const KEPT: usize = 16;

/// Follows the encoder's frames and roles; gives each clip that gets a file when it closes.
pub struct ClipFrameTap {
    /// The clip lengths (frames) the cutter writes.
    lengths: std::ops::RangeInclusive<u64>,
    open: Option<OpenClip>,
    /// The last frame given while a clip is open (the clip's last when the next one starts).
    previous: Option<Arc<NormFrame>>,
}

struct OpenClip {
    start: u64,
    stride: u64,
    /// (offset in the clip, frame), offsets ascending.
    kept: Vec<(u64, Arc<NormFrame>)>,
}

/// A clip that closed with a file.
pub struct ClosedClip {
    /// Its first output frame.
    pub start: u64,
    /// Its length in frames.
    pub frames: u64,
    kept: Vec<(u64, Arc<NormFrame>)>,
    last: Arc<NormFrame>,
}

impl ClosedClip {
    /// The frames nearest `count` positions spread from the first frame to the last (a frame
    /// serving two positions is given once), in time order.
    pub fn spread(&self, count: u32) -> Vec<Arc<NormFrame>> {
        let offsets: Vec<u64> = self.kept.iter().map(|(o, _)| *o).collect();
        choose(&offsets, self.frames, count)
            .into_iter()
            .map(|choice| match choice {
                Choice::Kept(i) => Arc::clone(&self.kept[i].1),
                Choice::Last => Arc::clone(&self.last),
            })
            .collect()
    }
}

impl ClipFrameTap {
    /// `(min_frames, max_frames)`: the lengths the cutter writes files for.
    pub fn new((min_frames, max_frames): (u64, u64)) -> ClipFrameTap {
        ClipFrameTap {
            lengths: min_frames..=max_frames,
            open: None,
            previous: None,
        }
    }

    /// The next output frame, coded as `role`; the clip it closed, if any.
    pub fn frame(&mut self, norm: &Arc<NormFrame>, role: FrameRole) -> Option<ClosedClip> {
        let mut closed = None;
        if role == FrameRole::ClipStart {
            if let Some(previous) = self.previous.take() {
                closed = self.close(&previous);
            }
            self.open = Some(OpenClip {
                start: norm.index,
                stride: 1,
                kept: Vec::new(),
            });
        }
        let open = self.open.as_mut()?;
        let offset = norm.index - open.start;
        if offset.is_multiple_of(open.stride) {
            keep(&mut open.kept, &mut open.stride, offset, Arc::clone(norm));
        }
        if role == FrameRole::ClipEnd {
            self.previous = None;
            return self.close(norm);
        }
        self.previous = Some(Arc::clone(norm));
        closed
    }

    /// Ends the open clip at `last`; it when it gets a file.
    fn close(&mut self, last: &Arc<NormFrame>) -> Option<ClosedClip> {
        let open = self.open.take()?;
        let frames = last.index - open.start + 1;
        self.lengths.contains(&frames).then(|| ClosedClip {
            start: open.start,
            frames,
            kept: open.kept,
            last: Arc::clone(last),
        })
    }
}

/// Keeps `item` at `offset` (a multiple of `stride`); past [`KEPT`] items, doubles the stride
/// and keeps only the items on it.
fn keep<T>(kept: &mut Vec<(u64, T)>, stride: &mut u64, offset: u64, item: T) {
    kept.push((offset, item));
    if kept.len() > KEPT {
        *stride *= 2;
        let s = *stride;
        kept.retain(|(o, _)| o.is_multiple_of(s));
    }
}

/// Which frame serves a spread position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// The kept frame at this index of the kept list.
    Kept(usize),
    /// The clip's last frame.
    Last,
}

/// The frames for a clip of `frames` frames, `count` spread positions: the last frame for the
/// last position, else the kept frame (`offsets`, ascending) nearest each; a frame serving two
/// positions is given once.
fn choose(offsets: &[u64], frames: u64, count: u32) -> Vec<Choice> {
    let mut out: Vec<Choice> = Vec::new();
    for position in spread(frames, count) {
        let choice = if position == frames - 1 {
            Choice::Last
        } else {
            match (0..offsets.len()).min_by_key(|&i| offsets[i].abs_diff(position)) {
                Some(i) => Choice::Kept(i),
                None => continue,
            }
        };
        if !out.contains(&choice) {
            out.push(choice);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept frames of a clip of `frames` frames, by offset.
    fn kept_offsets(frames: u64) -> Vec<u64> {
        let (mut kept, mut stride) = (Vec::new(), 1);
        for offset in 0..frames {
            if offset.is_multiple_of(stride) {
                keep(&mut kept, &mut stride, offset, ());
            }
        }
        kept.into_iter().map(|(o, ())| o).collect()
    }

    #[test]
    fn kept_frames_stay_few_and_spread_positions_are_met_closely() {
        for frames in [1, 2, 3, 16, 17, 90, 120, 300, 1000, 9000] {
            let kept = kept_offsets(frames);
            assert!(kept.len() <= KEPT, "{frames}: {kept:?}");
            assert_eq!(kept[0], 0);
            for count in 1..=5 {
                let positions = spread(frames, count);
                let chosen = choose(&kept, frames, count);
                for &p in &positions {
                    let served = chosen.iter().any(|c| match *c {
                        Choice::Last => p == frames - 1,
                        Choice::Kept(i) => kept[i].abs_diff(p) * KEPT as u64 <= frames,
                    });
                    assert!(
                        served,
                        "{frames} frames, position {p}: {chosen:?} of {kept:?}"
                    );
                }
            }
        }
        assert_eq!(choose(&kept_offsets(90), 90, 3).len(), 3);
        assert_eq!(choose(&[0], 1, 3), [Choice::Last]);
    }
}
