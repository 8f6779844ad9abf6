//! What a frame looks like, for curation: blank (black, or one flat colour) and frozen (the same
//! picture as the frame before), measured on a small grey copy of the decoded frame. `check`'s
//! `black` and `frozen` rules use the same tests with their own thresholds; clips' `blank` and
//! `frozen` scores are the fractions of their frames that pass them with these defaults.

/// Grey analysis size: enough pixels for ratios and means, cheap to compare.
pub const GRAY_W: u32 = 160;
pub const GRAY_H: u32 = 90;
/// Black: at least this fraction of the picture's pixels at or under [`BLACK_LUMA_MAX`]
/// (FFmpeg's `blackdetect` defaults, pixel threshold 0.10 of the range and 98% of the picture).
pub const BLACK_LUMA_MAX: u8 = 38;
pub const BLACK_PICTURE_RATIO: f64 = 0.98;
/// Flat: the grey picture's standard deviation at or under this (luma levels of 0..255). A colour
/// card after H.264 measures under 1.5; fog, sky or a blurred wall still show gradients above 4.
pub const FLAT_MAX_DEVIATION: f64 = 3.0;
/// Frozen: the mean absolute difference from the frame before at or under this (luma levels).
pub const FROZEN_MAX_DIFFERENCE: f64 = 0.5;

/// Whether at least `picture_ratio` of `gray`'s pixels are at or under `luma_max`.
pub fn is_dark(gray: &[u8], luma_max: u8, picture_ratio: f64) -> bool {
    let dark = gray.iter().filter(|&&v| v <= luma_max).count();
    !gray.is_empty() && dark as f64 >= picture_ratio * gray.len() as f64
}

/// Whether `gray` is one flat tone: its standard deviation is at most [`FLAT_MAX_DEVIATION`].
pub fn is_flat(gray: &[u8]) -> bool {
    if gray.is_empty() {
        return false;
    }
    let n = gray.len() as f64;
    let (sum, squares) = gray.iter().fold((0u64, 0u64), |(s, q), &v| {
        (s + u64::from(v), q + u64::from(v) * u64::from(v))
    });
    let mean = sum as f64 / n;
    let variance = (squares as f64 / n - mean * mean).max(0.0);
    variance.sqrt() <= FLAT_MAX_DEVIATION
}

/// The mean absolute difference of two grey pictures of one size; `None` when the sizes differ
/// (the first frame, or a size change).
pub fn mean_difference(previous: &[u8], current: &[u8]) -> Option<f64> {
    if previous.is_empty() || previous.len() != current.len() {
        return None;
    }
    let diff: u64 = current
        .iter()
        .zip(previous)
        .map(|(&a, &b)| u64::from(a.abs_diff(b)))
        .sum();
    Some(diff as f64 / current.len() as f64)
}

/// One frame's looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLooks {
    /// Black or flat.
    pub blank: bool,
    /// The same picture as the frame before, and not blank (a black stretch is blank, not frozen).
    pub frozen: bool,
}

/// Judges grey frames one after another.
#[derive(Default)]
pub struct LooksJudge {
    previous: Vec<u8>,
}

impl LooksJudge {
    pub fn judge(&mut self, gray: &[u8]) -> FrameLooks {
        let blank = is_dark(gray, BLACK_LUMA_MAX, BLACK_PICTURE_RATIO) || is_flat(gray);
        let same =
            mean_difference(&self.previous, gray).is_some_and(|d| d <= FROZEN_MAX_DIFFERENCE);
        self.previous.clear();
        self.previous.extend_from_slice(gray);
        FrameLooks {
            blank,
            frozen: same && !blank,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_flat_and_frozen_frames() {
        let black = vec![10u8; 100];
        let card = vec![120u8; 100];
        let busy: Vec<u8> = (0..100u32).map(|i| (i * 37 % 256) as u8).collect();
        let mut judge = LooksJudge::default();
        assert_eq!(
            judge.judge(&busy),
            FrameLooks {
                blank: false,
                frozen: false
            }
        );
        assert_eq!(
            judge.judge(&busy),
            FrameLooks {
                blank: false,
                frozen: true
            }
        );
        assert!(judge.judge(&black).blank);
        let card_looks = judge.judge(&card);
        assert!(card_looks.blank && !card_looks.frozen);
        assert!(judge.judge(&card).blank && !judge.judge(&card).frozen);
        // 97% dark is not black.
        let mut almost = vec![0u8; 100];
        almost[..3].iter_mut().for_each(|v| *v = 200);
        assert!(!is_dark(&almost, BLACK_LUMA_MAX, BLACK_PICTURE_RATIO));
        assert!(!is_flat(&almost));
        assert_eq!(mean_difference(&[0, 10], &[10, 10]), Some(5.0));
        assert_eq!(mean_difference(&[], &[10, 10]), None);
    }
}
