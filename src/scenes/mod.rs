//! Scene-cut detection that agrees with PySceneDetect 0.7.2's
//! `detect-content` (our reference for cut positions).
//!
//! The pieces, in pipeline order:
//! 1. [`processing_size`]: the resolution PySceneDetect analyses at (its
//!    auto-downscale rule); the caller resizes decoded BGR frames to it.
//! 2. [`hsv`]: bit-exact OpenCV BGR → HSV.
//! 3. [`content`]: frame scores and the flash/minimum-length filter.
//!
//! How PySceneDetect feeds frames (`SceneManager.detect_scenes`), which the
//! caller should mirror:
//! * every decoded frame is processed (no frame skipping by default), as
//!   BGR24 from OpenCV's FFmpeg backend;
//! * frames whose size differs from the first frame's are dropped;
//! * when [`downscale_factor`] is `> 1` each frame is resized to
//!   [`processing_size`] with `cv2.resize(..., interpolation=cv2.INTER_LINEAR)`:
//!   a 2-tap bilinear filter sampling at `src = (dst + 0.5) * scale - 0.5`
//!   (pixel centres aligned, edge pixels clamped), with **no** low-pass
//!   pre-filter even at large factors, computed in 11-bit fixed point per
//!   axis. When the factor is exactly 2 on both axes OpenCV switches to
//!   `INTER_AREA`, i.e. a 2x2 box average. FFmpeg swscale's `SWS_BILINEAR`
//!   widens its filter when shrinking (anti-aliasing), so it smooths more
//!   than OpenCV; `SWS_FAST_BILINEAR` keeps 2 taps like OpenCV, but its fast
//!   horizontal path starts sampling at the left edge instead of at pixel
//!   centres (about half an output pixel to the left at 7.5x). Either works
//!   for cut agreement, since the score averages over the whole frame, but
//!   neither is bit-exact; for that the frame must also reach BGR the way
//!   OpenCV's capture does (swscale `SWS_BICUBIC` to BGR24 at full size,
//!   default BT.601 matrix) before the INTER_LINEAR resize;
//! * a cut is reported as the frame number of the first frame of the new
//!   scene, `round(pts_seconds * fps)`, 0-based; for constant-frame-rate video
//!   that is the decode index. The `list-scenes` CLI prints
//!   `Start Frame` as that number **+ 1** (1-based) and timecodes from it.
//!
//! CLI defaults differ from the Python API in one place: `min_scene_len` is
//! 0.6 s (see [`content::ContentDetectorConfig::cli_defaults`]), not 15 frames.

pub mod content;
pub mod hsv;

pub use content::{
    min_scene_len_frames, ContentConfigError, ContentDetector, ContentDetectorConfig,
    FlashFilterMode, ScoreComponents,
};
pub use hsv::{bgr_pixel_to_hsv, bgr_to_hsv, HsvFrame};

/// PySceneDetect's `DEFAULT_MIN_WIDTH`: the longer side is scaled to this.
pub const DEFAULT_MIN_WIDTH: u32 = 256;

/// PySceneDetect 0.7.2's `compute_downscale_factor`, which its
/// `SceneManager` calls with **`max(width, height)`** (not the width, so
/// portrait video ends up 256 pixels tall). Since 0.7 the factor is a float
/// `max_dimension / 256`, or 1 (no resize) below 256 pixels; use
/// [`processing_size`] for the resulting frame size.
pub fn downscale_factor(max_dimension: u32) -> f64 {
    if max_dimension < DEFAULT_MIN_WIDTH {
        1.0
    } else {
        f64::from(max_dimension) / f64::from(DEFAULT_MIN_WIDTH)
    }
}

/// Size PySceneDetect analyses a `width` x `height` video at: each side is
/// `max(1, round(side / factor))` with Python's round-half-to-even, and the
/// input size when the factor is not above 1 (frames of at most 256 pixels on
/// their longer side are used as decoded). A crop, which we do not support,
/// would apply before this.
pub fn processing_size(width: u32, height: u32) -> (u32, u32) {
    let factor = downscale_factor(width.max(height));
    if factor <= 1.0 {
        return (width, height);
    }
    let scale = |side: u32| ((f64::from(side) / factor).round_ties_even() as u32).max(1);
    (scale(width), scale(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by PySceneDetect 0.7.2's `compute_downscale_factor` and
    /// the `cv2.resize` target size in `SceneManager._decode_thread`.
    #[test]
    fn processing_size_matches_pyscenedetect() {
        let cases = [
            ((1920, 1080), 7.5, (256, 144)),
            ((1280, 720), 5.0, (256, 144)),
            ((854, 480), 3.3359375, (256, 144)),
            ((3840, 2160), 15.0, (256, 144)),
            ((720, 576), 2.8125, (256, 205)),
            ((720, 480), 2.8125, (256, 171)),
            ((1080, 1920), 7.5, (144, 256)),
            ((256, 144), 1.0, (256, 144)),
            ((257, 145), 1.00390625, (256, 144)),
            ((255, 300), 1.171875, (218, 256)),
            ((200, 100), 1.0, (200, 100)),
            ((1440, 1080), 5.625, (256, 192)),
            ((4096, 2160), 16.0, (256, 135)),
            ((1000, 3), 3.90625, (256, 1)),
            ((352, 288), 1.375, (256, 209)),
            ((999, 555), 3.90234375, (256, 142)),
            // 144.5 and 145.5: Python rounds halves to even.
            ((512, 289), 2.0, (256, 144)),
            ((512, 291), 2.0, (256, 146)),
        ];
        for ((w, h), factor, size) in cases {
            assert_eq!(downscale_factor(w.max(h)), factor, "{w}x{h}");
            assert_eq!(processing_size(w, h), size, "{w}x{h}");
        }
    }
}
