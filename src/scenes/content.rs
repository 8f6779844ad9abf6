//! Fast-cut detection by frame-to-frame content change, reproducing
//! PySceneDetect 0.7.2's `ContentDetector` (the `detect-content` command)
//! including its `FlashFilter` minimum-scene-length logic.
//!
//! Score of frame `t` = weighted mean over the H, S and V planes of
//! `mean(|plane_t - plane_{t-1}|)`; a frame whose score is `>= threshold` is a
//! candidate cut, i.e. the candidate is the *first frame of the new scene*.
//! Candidates then pass through the flash filter, which is where most of the
//! behavioural subtleties live (see [`FlashFilterMode`]).
//!
//! Frame indices are whatever the caller passes; PySceneDetect uses the
//! frame's presentation time converted to a frame number
//! (`round(pts_seconds * fps)`), which for constant-frame-rate video equals
//! the 0-based decode index. Gaps between indices count as frames when
//! enforcing `min_scene_len`, exactly as PySceneDetect's timecode arithmetic
//! does.

use std::fmt;

use super::hsv::HsvFrame;

/// `[delta_hue, delta_sat, delta_lum, delta_edges]`, PySceneDetect's
/// `ContentDetector.DEFAULT_COMPONENT_WEIGHTS`.
pub const DEFAULT_WEIGHTS: [f64; 4] = [1.0, 1.0, 1.0, 0.0];

/// Weights `luma_only = true` substitutes for whatever was configured.
pub const LUMA_ONLY_WEIGHTS: [f64; 4] = [0.0, 0.0, 1.0, 0.0];

/// The `scenedetect` CLI's global `-m/--min-scene-len` default. Only the
/// Python API defaults to 15 frames; the CLI converts this to frames with
/// [`min_scene_len_frames`] at the video's frame rate.
pub const CLI_MIN_SCENE_LEN_SECS: f64 = 0.6;

/// How candidate cuts closer than `min_scene_len` to the previous one are
/// handled (PySceneDetect's `FlashFilter.Mode`).
///
/// Shared by both modes: the reference point for the first cut is the first
/// frame ever processed, so no cut is reported in the first `min_scene_len`
/// frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlashFilterMode {
    /// Default. A candidate is emitted when it is at least `min_scene_len`
    /// after the *last above-threshold frame* (emitted or not). Once a cut has
    /// been emitted, a too-close candidate starts a merge: all further
    /// candidates are swallowed until the score stays below the threshold for
    /// `min_scene_len` frames after the latest candidate, and that latest
    /// candidate ended up at least `min_scene_len` after the merge began; the
    /// latest candidate is then emitted, late (so [`ContentDetector::process`]
    /// can return an index from the past). A merge that never meets those
    /// conditions is dropped, including one still open at the end of the
    /// video. Before the first emitted cut, too-close candidates are dropped
    /// but still push the reference point forward.
    #[default]
    Merge,
    /// A candidate is emitted iff it is at least `min_scene_len` after the
    /// last *emitted* cut (or the first frame); others are dropped.
    Suppress,
}

/// Settings of [`ContentDetector`]; `Default` is the PySceneDetect 0.7.2
/// Python-API default (`ContentDetector()`), see
/// [`ContentDetectorConfig::cli_defaults`] for what `scenedetect detect-content`
/// uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContentDetectorConfig {
    /// A frame whose score is `>=` this is a candidate cut.
    pub threshold: f64,
    /// Minimum scene length in frames; 0 disables the flash filter.
    pub min_scene_len: u32,
    /// `[delta_hue, delta_sat, delta_lum, delta_edges]`. A positive edge
    /// weight needs Canny edge maps, which are not implemented
    /// ([`ContentDetectorConfig::validate`] rejects it); a negative one only
    /// enlarges the divisor, as in PySceneDetect without a stats file.
    pub weights: [f64; 4],
    /// Score on V only; overrides `weights` with [`LUMA_ONLY_WEIGHTS`].
    pub luma_only: bool,
    pub filter_mode: FlashFilterMode,
}

impl Default for ContentDetectorConfig {
    fn default() -> Self {
        Self {
            threshold: 27.0,
            min_scene_len: 15,
            weights: DEFAULT_WEIGHTS,
            luma_only: false,
            filter_mode: FlashFilterMode::Merge,
        }
    }
}

impl ContentDetectorConfig {
    /// What `scenedetect -i VIDEO detect-content` runs with: the API defaults
    /// except `min_scene_len`, which is 0.6 s converted at `fps` (the
    /// container's average frame rate, as OpenCV's `CAP_PROP_FPS` reports it).
    pub fn cli_defaults(fps: f64) -> Self {
        Self {
            min_scene_len: min_scene_len_frames(CLI_MIN_SCENE_LEN_SECS, fps),
            ..Self::default()
        }
    }

    /// The weights actually used, after `luma_only` is applied.
    pub fn effective_weights(&self) -> [f64; 4] {
        if self.luma_only {
            LUMA_ONLY_WEIGHTS
        } else {
            self.weights
        }
    }

    /// Rejects settings this port cannot reproduce or that would make
    /// PySceneDetect fail (division by a zero weight sum).
    pub fn validate(&self) -> Result<(), ContentConfigError> {
        if !self.threshold.is_finite() {
            return Err(ContentConfigError::InvalidThreshold(self.threshold));
        }
        let weights = self.effective_weights();
        if weights.iter().any(|w| !w.is_finite()) {
            return Err(ContentConfigError::InvalidWeights(weights));
        }
        if weights[3] > 0.0 {
            return Err(ContentConfigError::EdgesUnsupported(weights[3]));
        }
        if weights.iter().all(|&w| w == 0.0) {
            return Err(ContentConfigError::InvalidWeights(weights));
        }
        Ok(())
    }
}

/// Converts a duration to frames the way the PySceneDetect CLI does for
/// `--min-scene-len 0.6s`: `round(seconds * rate)` with ties to even
/// (Python's `round`), where `rate` is `fps` as PySceneDetect's
/// `framerate_to_fraction` stores it: integral rates as is, rates within 1e-3
/// of `N * 1000/1001` snapped to that NTSC rational, anything else replaced by
/// its best rational approximation with a denominator of at most 10000
/// (`Fraction(fps).limit_denominator(10000)`, which turns e.g. 12.49999 into
/// 25/2 and so changes the result).
pub fn min_scene_len_frames(seconds: f64, fps: f64) -> u32 {
    let frames = (seconds * pyscenedetect_rate(fps)).round_ties_even();
    if frames.is_finite() && frames > 0.0 {
        frames.min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

/// `float(framerate_to_fraction(fps))`.
fn pyscenedetect_rate(fps: f64) -> f64 {
    if !fps.is_finite() || fps <= 0.0 || fps == fps.trunc() {
        return fps;
    }
    let base = (fps * 1001.0 / 1000.0).round_ties_even();
    let ntsc = base * 1000.0 / 1001.0;
    if base > 0.0 && (ntsc - fps).abs() < 1e-3 {
        return ntsc;
    }
    match limit_denominator(fps, 10_000) {
        // Both parts are far below 2^53, so this division rounds exactly like
        // Python's `float(Fraction)`.
        Some((p, q)) => p as f64 / q as f64,
        None => fps,
    }
}

/// Python's `Fraction(x).limit_denominator(max_den)` for a positive,
/// non-integral `x`: the closest fraction with denominator `<= max_den`
/// (ties to the convergent). `None` if `x` is too small to represent exactly
/// in `i128`.
fn limit_denominator(x: f64, max_den: i128) -> Option<(i128, i128)> {
    // Exact value of x as mantissa / 2^shift, reduced.
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let (mut mant, mut shift) = if exp == 0 {
        (bits & ((1 << 52) - 1), 1074)
    } else {
        ((bits & ((1 << 52) - 1)) | (1 << 52), 1075 - exp)
    };
    if shift <= 0 {
        return None; // integral, handled by the caller
    }
    while shift > 0 && mant & 1 == 0 {
        mant >>= 1;
        shift -= 1;
    }
    if shift > 120 {
        return None;
    }
    let (num, den) = (i128::from(mant), 1i128 << shift);
    if den <= max_den {
        return Some((num, den));
    }
    let (mut p0, mut q0, mut p1, mut q1) = (0i128, 1i128, 1i128, 0i128);
    let (mut n, mut d) = (num, den);
    loop {
        let a = n / d;
        let q2 = q0 + a * q1;
        if q2 > max_den {
            break;
        }
        (p0, q0, p1, q1) = (p1, q1, p0 + a * p1, q2);
        (n, d) = (d, n - a * d);
    }
    let k = (max_den - q0) / q1;
    if 2 * d * (q0 + k * q1) <= den {
        Some((p1, q1))
    } else {
        Some((p0 + k * p1, q0 + k * q1))
    }
}

/// Why a [`ContentDetectorConfig`] was rejected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ContentConfigError {
    /// A positive `delta_edges` weight (the value given) needs Canny edge
    /// maps plus dilation, which this port does not implement.
    EdgesUnsupported(f64),
    /// NaN or infinite threshold.
    InvalidThreshold(f64),
    /// Non-finite weights, or all weights zero.
    InvalidWeights([f64; 4]),
}

impl fmt::Display for ContentConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EdgesUnsupported(w) => write!(
                f,
                "content detector: delta_edges weight is {w}, expected 0 or less \
                 (edge detection is not supported)"
            ),
            Self::InvalidThreshold(t) => write!(
                f,
                "content detector: threshold is {t}, expected a finite number"
            ),
            Self::InvalidWeights(w) => write!(
                f,
                "content detector: weights are {w:?}, expected finite values, not all zero"
            ),
        }
    }
}

impl std::error::Error for ContentConfigError {}

/// Per-component differences behind a frame score (PySceneDetect's stats
/// file columns). Components with zero weight are not computed and read 0.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScoreComponents {
    pub delta_hue: f64,
    pub delta_sat: f64,
    pub delta_lum: f64,
    /// Always 0: edge maps are not computed.
    pub delta_edges: f64,
}

/// Streaming content detector: feed frames in order, collect returned cuts.
///
/// Reference: PySceneDetect 0.7.2 (PyPI), `scenedetect/detectors/content_detector.py`
/// (`ContentDetector`) and `scenedetect/detector.py` (`FlashFilter`).
#[derive(Debug, Clone)]
pub struct ContentDetector {
    config: ContentDetectorConfig,
    weights: [f64; 4],
    weight_sum: f64,
    /// Previous frame's planes; swapped with `scratch` rather than reallocated.
    prev: HsvFrame,
    scratch: HsvFrame,
    has_prev: bool,
    last_score: Option<f64>,
    last_components: Option<ScoreComponents>,
    filter: FlashFilter,
}

impl ContentDetector {
    pub fn new(config: ContentDetectorConfig) -> Result<Self, ContentConfigError> {
        config.validate()?;
        let weights = config.effective_weights();
        // Same summation order as Python's `sum(abs(w) for w in weights)`, so
        // the divisor is bit-identical.
        let weight_sum = weights.iter().fold(0.0, |acc, w| acc + w.abs());
        Ok(Self {
            config,
            weights,
            weight_sum,
            prev: HsvFrame::new(),
            scratch: HsvFrame::new(),
            has_prev: false,
            last_score: None,
            last_components: None,
            filter: FlashFilter::new(config.filter_mode, u64::from(config.min_scene_len)),
        })
    }

    pub fn config(&self) -> &ContentDetectorConfig {
        &self.config
    }

    /// Whether frames must carry H and S (false for luma-only weights, where
    /// [`HsvFrame::fill_luma_from_bgr`] is enough).
    pub fn needs_chroma(&self) -> bool {
        self.weights[0] != 0.0 || self.weights[1] != 0.0
    }

    /// Scores `frame` against the previous one and runs the flash filter.
    /// Returns a cut as the index of the first frame of the new scene; in
    /// [`FlashFilterMode::Merge`] that can be an earlier frame than
    /// `frame_index`.
    ///
    /// The first frame scores 0.0 and only seeds the comparison. A frame whose
    /// dimensions differ from the previous frame's is ignored entirely
    /// (PySceneDetect's `SceneManager` skips wrongly sized frames before they
    /// reach the detector).
    ///
    /// # Panics
    /// If [`ContentDetector::needs_chroma`] and `frame` was filled luma-only.
    pub fn process(&mut self, frame_index: u64, frame: &HsvFrame) -> Option<u64> {
        if !self.accepts(frame) {
            return None;
        }
        let components = self.components_against_prev(frame);
        self.prev.copy_from(frame);
        self.advance(frame_index, components)
    }

    /// Converts a BGR24 frame (rows `stride` bytes apart) into the detector's
    /// own buffers, then behaves like [`ContentDetector::process`]. This is the
    /// allocation-free path: the two plane sets are swapped, never copied, and
    /// only V is computed when the weights ignore hue and saturation.
    pub fn process_bgr(
        &mut self,
        frame_index: u64,
        bgr: &[u8],
        width: usize,
        height: usize,
        stride: usize,
    ) -> Option<u64> {
        let mut current = std::mem::take(&mut self.scratch);
        if self.needs_chroma() {
            current.fill_from_bgr(bgr, width, height, stride);
        } else {
            current.fill_luma_from_bgr(bgr, width, height, stride);
        }
        let cut = if self.accepts(&current) {
            let components = self.components_against_prev(&current);
            std::mem::swap(&mut self.prev, &mut current);
            self.advance(frame_index, components)
        } else {
            None
        };
        self.scratch = current;
        cut
    }

    /// No cut reported later names a frame before this one, `next` being the next frame's
    /// index: an open merge can still name its start (or a later frame), else cuts are new.
    pub fn pending_cut_from(&self, next: u64) -> u64 {
        self.filter.pending_from(next)
    }

    /// Call after the last frame. Always `None`: PySceneDetect 0.7.2 has no
    /// end-of-video flush, so a cut held back by an open merge is discarded.
    /// Kept so callers are ready should that change; it also resets nothing.
    pub fn finish(&mut self) -> Option<u64> {
        None
    }

    /// Score of the most recent accepted frame (`content_val`); `Some(0.0)`
    /// after the first frame, `None` before any.
    pub fn last_score(&self) -> Option<f64> {
        self.last_score
    }

    /// Components of [`ContentDetector::last_score`]; `None` until a second
    /// frame has been compared.
    pub fn last_components(&self) -> Option<ScoreComponents> {
        self.last_components
    }

    /// Forgets all frames and filter state, keeping buffers and settings.
    pub fn reset(&mut self) {
        self.has_prev = false;
        self.last_score = None;
        self.last_components = None;
        self.filter = FlashFilter::new(self.config.filter_mode, self.filter.length);
    }

    fn accepts(&self, frame: &HsvFrame) -> bool {
        if self.needs_chroma() {
            assert!(
                frame.has_chroma(),
                "content detector weights need hue/saturation but the frame is luma-only"
            );
        }
        !self.has_prev
            || (frame.width() == self.prev.width() && frame.height() == self.prev.height())
    }

    fn components_against_prev(&self, frame: &HsvFrame) -> Option<ScoreComponents> {
        if !self.has_prev {
            return None;
        }
        let diff = |weight: f64, cur: &[u8], prev: &[u8]| {
            // A zero weight multiplies a finite mean to exactly 0, so skipping
            // the plane cannot change the score.
            if weight == 0.0 {
                0.0
            } else {
                mean_abs_diff(cur, prev)
            }
        };
        Some(ScoreComponents {
            delta_hue: diff(self.weights[0], frame.hue(), self.prev.hue()),
            delta_sat: diff(self.weights[1], frame.sat(), self.prev.sat()),
            delta_lum: diff(self.weights[2], frame.val(), self.prev.val()),
            delta_edges: 0.0,
        })
    }

    fn advance(&mut self, frame_index: u64, components: Option<ScoreComponents>) -> Option<u64> {
        self.has_prev = true;
        let score = match components {
            Some(c) => {
                let w = self.weights;
                // Left-to-right, like Python's `sum(generator)`, for
                // bit-identical scores at the threshold.
                let weighted = 0.0
                    + c.delta_hue * w[0]
                    + c.delta_sat * w[1]
                    + c.delta_lum * w[2]
                    + c.delta_edges * w[3];
                weighted / self.weight_sum
            }
            None => 0.0,
        };
        self.last_score = Some(score);
        self.last_components = components;
        self.filter
            .filter(frame_index, score >= self.config.threshold)
    }
}

/// `sum(|a - b|) / len` with an exact integer sum, as numpy computes it.
fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    if a.is_empty() {
        // numpy would produce NaN (0 / 0.0); an empty frame has no content change.
        return 0.0;
    }
    // u32 partial sums let the compiler vectorise; 2^16 * 255 cannot overflow.
    const CHUNK: usize = 1 << 16;
    let mut total = 0u64;
    for (ca, cb) in a.chunks(CHUNK).zip(b.chunks(CHUNK)) {
        let part: u32 = ca
            .iter()
            .zip(cb)
            .map(|(&x, &y)| u32::from(x.abs_diff(y)))
            .sum();
        total += u64::from(part);
    }
    total as f64 / a.len() as f64
}

/// PySceneDetect's `FlashFilter` with an integer frame length.
#[derive(Debug, Clone)]
struct FlashFilter {
    mode: FlashFilterMode,
    length: u64,
    /// Last above-threshold frame (Merge) / last emitted cut (Suppress);
    /// seeded with the first frame seen.
    last_above: Option<u64>,
    /// Merging only starts once a cut has been emitted.
    merge_enabled: bool,
    merge_triggered: bool,
    merge_start: u64,
}

impl FlashFilter {
    fn new(mode: FlashFilterMode, length: u64) -> Self {
        Self {
            mode,
            length,
            last_above: None,
            merge_enabled: false,
            merge_triggered: false,
            merge_start: 0,
        }
    }

    /// See [`ContentDetector::pending_cut_from`]: a triggered merge ends by naming its last
    /// above-threshold frame, never one before the merge started.
    fn pending_from(&self, next: u64) -> u64 {
        match self.mode {
            FlashFilterMode::Merge if self.merge_triggered => self.merge_start.min(next),
            _ => next,
        }
    }

    /// Timecode subtraction in PySceneDetect clamps at zero.
    fn met(&self, from: u64, to: u64) -> bool {
        to.saturating_sub(from) >= self.length
    }

    fn filter(&mut self, t: u64, above: bool) -> Option<u64> {
        if self.length == 0 {
            return above.then_some(t);
        }
        let last_above = *self.last_above.get_or_insert(t);
        let met = self.met(last_above, t);
        match self.mode {
            FlashFilterMode::Suppress => {
                if above && met {
                    self.last_above = Some(t);
                    Some(t)
                } else {
                    None
                }
            }
            FlashFilterMode::Merge => {
                if above {
                    self.last_above = Some(t);
                }
                let last_above = self.last_above.unwrap_or(t);
                if self.merge_triggered {
                    if met && !above && self.met(self.merge_start, last_above) {
                        self.merge_triggered = false;
                        return Some(last_above);
                    }
                    return None;
                }
                if !above {
                    return None;
                }
                if met {
                    self.merge_enabled = true;
                    return Some(t);
                }
                if self.merge_enabled {
                    self.merge_triggered = true;
                    self.merge_start = t;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 16;
    const H: usize = 9;

    fn flat(bgr: [u8; 3]) -> Vec<u8> {
        bgr.repeat(W * H)
    }

    /// Frames built from `(first_frame, colour)` segments, as in the Python
    /// reference runs.
    fn segments(segs: &[(u64, [u8; 3])], n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let colour = segs.iter().rev().find(|(s, _)| *s <= i).unwrap().1;
                flat(colour)
            })
            .collect()
    }

    fn run(frames: &[Vec<u8>], w: usize, h: usize, config: ContentDetectorConfig) -> Vec<u64> {
        let mut det = ContentDetector::new(config).unwrap();
        let mut cuts: Vec<u64> = frames
            .iter()
            .enumerate()
            .filter_map(|(i, f)| det.process_bgr(i as u64, f, w, h, w * 3))
            .collect();
        cuts.extend(det.finish());
        cuts
    }

    fn cfg(f: impl FnOnce(&mut ContentDetectorConfig)) -> ContentDetectorConfig {
        let mut c = ContentDetectorConfig::default();
        f(&mut c);
        c
    }

    const SEQ_A: [(u64, [u8; 3]); 10] = [
        (0, [10, 20, 30]),
        (20, [200, 50, 50]),
        (40, [50, 200, 50]),
        (45, [30, 30, 200]),
        (70, [255, 255, 255]),
        (72, [30, 30, 200]),
        (80, [0, 0, 0]),
        (83, [255, 255, 255]),
        (86, [0, 0, 0]),
        (98, [90, 90, 90]),
    ];

    /// Expected cuts are what PySceneDetect 0.7.2's
    /// `ContentDetector(**kw).process_frame(FrameTimecode(i, fps=30), frame)`
    /// returned (plus `post_process`) for the same 16x9 frames.
    #[test]
    fn flat_segments_match_pyscenedetect() {
        let frames = segments(&SEQ_A, 100);
        let cases: [(ContentDetectorConfig, &[u64]); 6] = [
            (cfg(|_| {}), &[20, 45, 70]),
            (
                cfg(|c| c.filter_mode = FlashFilterMode::Suppress),
                &[20, 45, 70, 86],
            ),
            (
                cfg(|c| c.min_scene_len = 0),
                &[20, 45, 70, 72, 80, 83, 86, 98],
            ),
            (cfg(|c| c.min_scene_len = 5), &[20, 45, 70, 86, 98]),
            (cfg(|c| c.luma_only = true), &[20, 70]),
            (
                cfg(|c| {
                    c.weights = [0.5, 2.0, 1.0, 0.0];
                    c.threshold = 40.0;
                }),
                &[20, 70],
            ),
        ];
        for (config, want) in cases {
            assert_eq!(run(&frames, W, H, config), want, "{config:?}");
        }
    }

    #[test]
    fn flat_scores_are_bit_identical() {
        let frames = segments(&SEQ_A, 100);
        let mut det = ContentDetector::new(ContentDetectorConfig::default()).unwrap();
        assert_eq!(det.last_score(), None);
        let want: [(usize, f64); 9] = [
            (20, 98.666_666_666_666_67),
            (40, 20.0),
            (45, 28.666_666_666_666_668),
            (70, 90.666_666_666_666_67),
            (72, 90.666_666_666_666_67),
            (80, 139.0),
            (83, 85.0),
            (86, 85.0),
            (98, 30.0),
        ];
        for (i, f) in frames.iter().enumerate() {
            det.process_bgr(i as u64, f, W, H, W * 3);
            let expected = want.iter().find(|(k, _)| *k == i).map_or(0.0, |w| w.1);
            assert_eq!(det.last_score(), Some(expected), "frame {i}");
        }
    }

    /// Candidates before `min_scene_len` are dropped yet still move the
    /// reference point (Merge), or are measured from the last emitted cut
    /// (Suppress); a merge still open at the end is lost.
    #[test]
    fn early_candidates_and_open_merge() {
        let segs = [
            (0, [0, 0, 0]),
            (5, [255, 255, 255]),
            (18, [0, 0, 0]),
            (30, [255, 255, 255]),
            (38, [0, 0, 0]),
            (41, [255, 255, 255]),
        ];
        let frames = segments(&segs, 50);
        assert_eq!(run(&frames, W, H, cfg(|_| {})), Vec::<u64>::new());
        let suppress = cfg(|c| c.filter_mode = FlashFilterMode::Suppress);
        assert_eq!(run(&frames, W, H, suppress), [18, 38]);
        let mut extended = frames[..46].to_vec();
        extended.extend(std::iter::repeat_n(frames[45].clone(), 20));
        assert_eq!(run(&extended, W, H, cfg(|_| {})), Vec::<u64>::new());
    }

    /// A flash shortly after a cut opens a merge; the later real cut (46) is
    /// released only at frame 61, once 15 quiet frames have passed.
    #[test]
    fn merge_releases_late_cut() {
        let segs = [
            (0, [0, 0, 0]),
            (20, [0, 0, 255]),
            (30, [255, 255, 255]),
            (32, [0, 0, 255]),
            (46, [255, 0, 0]),
        ];
        let frames = segments(&segs, 80);
        for (mode, want) in [
            (FlashFilterMode::Merge, [(20, 20), (61, 46)]),
            (FlashFilterMode::Suppress, [(20, 20), (46, 46)]),
        ] {
            let mut det = ContentDetector::new(cfg(|c| c.filter_mode = mode)).unwrap();
            let got: Vec<(u64, u64)> = frames
                .iter()
                .enumerate()
                .filter_map(|(i, f)| {
                    det.process_bgr(i as u64, f, W, H, W * 3)
                        .map(|cut| (i as u64, cut))
                })
                .collect();
            assert_eq!(got, want, "{mode:?}");
        }
    }

    /// Deterministic moving textures (40x24) switching "scene" on [25, 60).
    fn texture(t: u64, scene: bool) -> Vec<u8> {
        let (w, h) = (40u64, 24u64);
        let mut out = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let px = if scene {
                    [x * x + y * 3 + t, 255 + 512 - x * 5 - t * 2, y * 17 + t * 7]
                } else {
                    [x * 7 + y * 13 + t * 3, x * y + t, x ^ y ^ (t * 5)]
                };
                out.extend(px.map(|c| (c % 256) as u8));
            }
        }
        out
    }

    #[test]
    fn textured_frames_match_pyscenedetect() {
        let frames: Vec<Vec<u8>> = (0..80).map(|t| texture(t, (25..60).contains(&t))).collect();
        // (config, cuts, first six scores, scores at frames 25 and 60)
        type Case = (ContentDetectorConfig, &'static [u64], [f64; 6], [f64; 2]);
        let cases: [Case; 3] = [
            (
                cfg(|_| {}),
                &[25, 60],
                [
                    0.0,
                    4.181_944_444_444_444_5,
                    6.085_069_444_444_444,
                    4.173_263_888_888_889,
                    10.609_027_777_777_778,
                    5.899_652_777_777_778,
                ],
                [61.134_027_777_777_78, 59.283_333_333_333_33],
            ),
            (
                cfg(|c| c.luma_only = true),
                &[25, 60],
                [
                    0.0,
                    3.975,
                    3.978_125,
                    4.219_791_666_666_667,
                    4.871_875,
                    4.086_458_333_333_334,
                ],
                [61.597_916_666_666_67, 64.9375],
            ),
            (
                cfg(|c| c.threshold = 10.0),
                &[54],
                [
                    0.0,
                    4.181_944_444_444_444_5,
                    6.085_069_444_444_444,
                    4.173_263_888_888_889,
                    10.609_027_777_777_778,
                    5.899_652_777_777_778,
                ],
                [61.134_027_777_777_78, 59.283_333_333_333_33],
            ),
        ];
        for (config, want_cuts, want_first, want_at_cuts) in cases {
            assert_eq!(run(&frames, 40, 24, config), want_cuts, "{config:?}");
            let mut det = ContentDetector::new(config).unwrap();
            let mut scores = Vec::new();
            for (i, f) in frames.iter().enumerate() {
                det.process_bgr(i as u64, f, 40, 24, 120);
                scores.push(det.last_score().unwrap());
            }
            assert_eq!(scores[..6], want_first, "{config:?}");
            assert_eq!([scores[25], scores[60]], want_at_cuts, "{config:?}");
        }
    }

    #[test]
    fn hsv_frame_path_matches_bgr_path() {
        let frames: Vec<Vec<u8>> = (0..80).map(|t| texture(t, (25..60).contains(&t))).collect();
        let mut by_bgr = ContentDetector::new(ContentDetectorConfig::default()).unwrap();
        let mut by_hsv = ContentDetector::new(ContentDetectorConfig::default()).unwrap();
        let mut hsv = HsvFrame::new();
        for (i, f) in frames.iter().enumerate() {
            hsv.fill_from_bgr(f, 40, 24, 120);
            let a = by_bgr.process_bgr(i as u64, f, 40, 24, 120);
            let b = by_hsv.process(i as u64, &hsv);
            assert_eq!(a, b);
            assert_eq!(by_bgr.last_score(), by_hsv.last_score());
            assert_eq!(by_bgr.last_components(), by_hsv.last_components());
        }
    }

    #[test]
    fn wrongly_sized_frames_are_ignored() {
        let mut det = ContentDetector::new(cfg(|c| c.min_scene_len = 0)).unwrap();
        let black = flat([0, 0, 0]);
        let white = flat([255, 255, 255]);
        assert_eq!(det.process_bgr(0, &black, W, H, W * 3), None);
        assert_eq!(det.process_bgr(1, &white[..W * 3], W, 1, W * 3), None);
        assert_eq!(det.last_score(), Some(0.0));
        assert_eq!(det.process_bgr(2, &white, W, H, W * 3), Some(2));
        assert_eq!(det.last_score(), Some(85.0));
    }

    #[test]
    fn validate_rejects_unsupported_settings() {
        assert_eq!(
            cfg(|c| c.weights = [1.0, 1.0, 1.0, 1.0]).validate(),
            Err(ContentConfigError::EdgesUnsupported(1.0))
        );
        // luma_only replaces the weights, so the edge weight no longer matters.
        assert!(cfg(|c| {
            c.weights = [1.0, 1.0, 1.0, 1.0];
            c.luma_only = true;
        })
        .validate()
        .is_ok());
        assert!(cfg(|c| c.weights = [0.0; 4]).validate().is_err());
        assert!(cfg(|c| c.threshold = f64::NAN).validate().is_err());
        assert!(ContentDetector::new(ContentDetectorConfig::default()).is_ok());
    }

    /// `FrameTimecode("0.6s", fps).frame_num` in PySceneDetect 0.7.2.
    #[test]
    fn cli_min_scene_len_matches_pyscenedetect() {
        let cases = [
            (24.0, 14),
            (25.0, 15),
            (30.0, 18),
            (50.0, 30),
            (60.0, 36),
            (23.976, 14),
            (24000.0 / 1001.0, 14),
            (29.97, 18),
            (30000.0 / 1001.0, 18),
            (59.94, 36),
            (12.5, 8),
            (7.5, 4),
            (15.0, 9),
            (12.49999, 8),
            (8.333333, 5),
            (41.6666666, 25),
        ];
        for (fps, want) in cases {
            assert_eq!(
                ContentDetectorConfig::cli_defaults(fps).min_scene_len,
                want,
                "fps {fps}"
            );
        }
    }
}
