//! Motion scores. Per decoded frame: the mean length of the decoder's motion vectors (FFmpeg
//! `export_side_data=mvs`, the `AV_FRAME_DATA_MOTION_VECTORS` side data Cosmos-Curate's motion
//! filter reads), weighted by block area, over the frame's diagonal; and, for codecs that export
//! none (intra-only, AV1, some HEVC), the mean absolute difference between consecutive small
//! frames the scene detector already made, on 0..1. A clip's score is the mean over its frames.
use ffmpeg_next as ff;
use serde::Serialize;

use super::looks::{LooksJudge, GRAY_H, GRAY_W};
use super::signature::{frame_hash, PHash};
use crate::media::small::SmallGray;
use crate::output::clip_record::MotionSource;

/// The mean motion-vector length of `frame` over its diagonal, weighted by block area; `None`
/// when the decoder exported no vectors for it (intra frames, codecs without them).
pub fn vector_motion(frame: &ff::frame::Video) -> Option<f32> {
    let side = frame.side_data(ff::frame::side_data::Type::MotionVectors)?;
    let bytes = side.data();
    let size = std::mem::size_of::<ff::ffi::AVMotionVector>();
    let (mut weighted, mut area) = (0f64, 0f64);
    for chunk in bytes.chunks_exact(size) {
        // SAFETY: the side data is an array of AVMotionVector; read_unaligned copes with any
        // alignment of the buffer.
        let mv: ff::ffi::AVMotionVector =
            unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) };
        let scale = f64::from(mv.motion_scale.max(1));
        let (dx, dy) = (
            f64::from(mv.motion_x) / scale,
            f64::from(mv.motion_y) / scale,
        );
        let block = f64::from(mv.w) * f64::from(mv.h);
        weighted += dx.hypot(dy) * block;
        area += block;
    }
    if area == 0.0 {
        return None;
    }
    let diagonal = f64::from(frame.width())
        .hypot(f64::from(frame.height()))
        .max(1.0);
    Some((weighted / area / diagonal) as f32)
}

/// The mean absolute difference of two equally sized small frames, on 0..1.
pub fn frame_difference(a: &[u8], b: &[u8]) -> f32 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    (sum as f64 / a.len() as f64 / 255.0) as f32
}

/// Both motion measures of every decoded frame, in decode order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MotionSeries {
    /// Seconds of each source frame.
    pub time: Vec<f64>,
    /// [`vector_motion`]; NaN for a frame without vectors.
    pub vectors: Vec<f32>,
    /// [`frame_difference`] against the frame before (0 for the first).
    pub difference: Vec<f32>,
    /// Each frame's [`super::looks::FrameLooks`]: black or flat, and frozen.
    pub blank: Vec<bool>,
    pub frozen: Vec<bool>,
    /// Each frame's pHash ([`super::signature::frame_hash`] of the same grey copy).
    pub phash: Vec<PHash>,
}

impl MotionSeries {
    /// The score of the source frames shown from `start` to `end` seconds: the mean vector
    /// motion of the frames that have vectors, or, when none has, the mean frame difference.
    pub fn score(&self, start: f64, end: f64) -> (f64, MotionSource) {
        let (from, to) = self.frames_shown(start, end);
        let mean = |v: &[f32]| {
            let (sum, n) = v
                .iter()
                .filter(|x| !x.is_nan())
                .fold((0f64, 0u64), |(s, n), &x| (s + f64::from(x), n + 1));
            (n > 0).then(|| sum / n as f64)
        };
        match mean(&self.vectors[from..to]) {
            Some(m) => (m, MotionSource::MotionVectors),
            None => (
                mean(&self.difference[from..to]).unwrap_or(0.0),
                MotionSource::FrameDifference,
            ),
        }
    }

    /// The fractions of the source frames shown from `start` to `end` seconds that are blank
    /// and frozen ([`super::looks::FrameLooks`]); 0 for a range without frames.
    pub fn looks(&self, start: f64, end: f64) -> (f64, f64) {
        let (from, to) = self.frames_shown(start, end);
        let fraction = |v: &[bool]| {
            let v = &v[from.min(v.len())..to.min(v.len())];
            if v.is_empty() {
                0.0
            } else {
                v.iter().filter(|&&x| x).count() as f64 / v.len() as f64
            }
        };
        (fraction(&self.blank), fraction(&self.frozen))
    }

    /// The signature ([`super::signature::sample`]) of the source frames shown from `start`
    /// to `end` seconds.
    pub fn signature(&self, start: f64, end: f64) -> Vec<PHash> {
        let (from, to) = self.frames_shown(start, end);
        super::signature::sample(&self.phash, &self.blank, from, to)
    }

    /// The indexes of the source frames shown from `start` to `end` seconds.
    fn frames_shown(&self, start: f64, end: f64) -> (usize, usize) {
        let from = self.time.partition_point(|&t| t < start - 1e-9);
        let to = self.time.partition_point(|&t| t < end - 1e-9).max(from);
        (from, to)
    }
}

/// Fills a [`MotionSeries`] frame by frame.
pub struct MotionMeter {
    previous: Vec<u8>,
    gray: SmallGray,
    looks: LooksJudge,
    series: MotionSeries,
}

impl Default for MotionMeter {
    fn default() -> Self {
        MotionMeter {
            previous: Vec::new(),
            gray: SmallGray::new(GRAY_W, GRAY_H),
            looks: LooksJudge::default(),
            series: MotionSeries::default(),
        }
    }
}

impl MotionMeter {
    /// One decoded frame (at `time` seconds) and the small frame the detector made of it.
    pub fn frame(
        &mut self,
        time: f64,
        frame: &ff::frame::Video,
        small: &[u8],
    ) -> Result<(), ff::Error> {
        let gray = self.gray.convert(frame)?;
        self.series
            .phash
            .push(frame_hash(gray, GRAY_W as usize, GRAY_H as usize));
        let looks = self.looks.judge(gray);
        self.series.blank.push(looks.blank);
        self.series.frozen.push(looks.frozen);
        self.series.time.push(time);
        self.series
            .vectors
            .push(vector_motion(frame).unwrap_or(f32::NAN));
        let difference = if self.previous.is_empty() {
            0.0
        } else {
            frame_difference(&self.previous, small)
        };
        self.series.difference.push(difference);
        self.previous.clear();
        self.previous.extend_from_slice(small);
        Ok(())
    }

    pub fn finish(self) -> MotionSeries {
        self.series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_prefer_vectors_and_fall_back_to_differences() {
        let series = MotionSeries {
            time: vec![0.0, 0.1, 0.2, 0.3, 0.4],
            vectors: vec![f32::NAN, 0.02, 0.04, f32::NAN, f32::NAN],
            difference: vec![0.0, 0.5, 0.5, 0.25, 0.75],
            blank: vec![true, true, false, false, false],
            frozen: vec![false, false, true, false, false],
            phash: (0..5).map(PHash).collect(),
        };
        // Frames 0 and 1 are blank.
        assert_eq!(
            series.signature(0.1, 0.45),
            [PHash::BLANK, PHash(2), PHash(3), PHash(4)]
        );
        assert_eq!(series.signature(0.0, 0.15), [PHash::BLANK, PHash::BLANK]);
        assert!(series.signature(0.45, 0.5).is_empty());
        assert_eq!(series.looks(0.0, 0.4), (0.5, 0.25));
        assert_eq!(series.looks(0.45, 0.5), (0.0, 0.0));
        let (m, source) = series.score(0.0, 0.3);
        assert!((m - 0.03).abs() < 1e-7 && source == MotionSource::MotionVectors);
        let (m, source) = series.score(0.3, 0.5);
        assert!((m - 0.5).abs() < 1e-7 && source == MotionSource::FrameDifference);
        assert_eq!(frame_difference(&[0, 255], &[255, 255]), 0.5);
    }
}
