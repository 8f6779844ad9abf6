//! Scene-cut detection that agrees with PySceneDetect 0.7.2's
//! `detect-content` (our reference for cut positions).
//!
//! The pieces, in pipeline order:
//! 1. [`processing_size`]: the resolution PySceneDetect analyses at (its
//!    auto-downscale rule); the caller resizes decoded BGR frames to it, e.g.
//!    with [`BgrLinearResizer`].
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
//!   axis. (At exactly 2x on both axes OpenCV switches to `INTER_AREA`, a
//!   2x2 box average, which yields the same bytes.) FFmpeg swscale's
//!   `SWS_BILINEAR` widens its filter when shrinking (anti-aliasing), so it
//!   smooths more than OpenCV; `SWS_FAST_BILINEAR` should be closer (2 taps),
//!   though we have not checked its sample positions against OpenCV's.
//!   Either is likely fine for cut agreement, since the score averages over
//!   the whole frame, but neither is bit-exact. [`BgrLinearResizer`] is a
//!   bit-exact port of that `cv2.resize` for when the full-size BGR frame is
//!   at hand (OpenCV's capture makes it with swscale `SWS_BICUBIC` to BGR24
//!   at full size, default BT.601 matrix, then resizes);
//! * a cut is reported as the frame number of the first frame of the new
//!   scene, `round(pts_seconds * fps)`, 0-based; for constant-frame-rate video
//!   that is the decode index. The `list-scenes` CLI prints
//!   `Start Frame` as that number **+ 1** (1-based) and timecodes from it.
//!
//! CLI defaults differ from the Python API in one place: `min_scene_len` is
//! 0.6 s (see [`content::ContentDetectorConfig::cli_defaults`]), not 15 frames.

pub mod colour_cuts;
pub mod content;
pub mod hsv;
pub mod transnet;

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

/// Bit-exact port of OpenCV's `cv2.resize(bgr, (dst_w, dst_h),
/// interpolation=cv2.INTER_LINEAR)` for 8-bit BGR, which is how PySceneDetect
/// shrinks frames. Coefficients are computed once per geometry and the row
/// buffers are reused, so resizing a stream does not allocate.
///
/// OpenCV rounds the vertical pass the way its SIMD kernel does (pre-shifted
/// 16-bit multiplies), not like its scalar fallback; we follow the SIMD
/// kernel, which is what the x86 builds run (verified against `cv2` 5.0 for
/// odd sizes, 2x, portrait and one-row frames).
#[derive(Debug, Clone)]
pub struct BgrLinearResizer {
    src_w: usize,
    src_h: usize,
    dst_w: usize,
    dst_h: usize,
    x_taps: Vec<Tap>,
    y_taps: Vec<Tap>,
    /// Horizontally filtered source rows (`dst_w * 3` values, 11-bit fixed
    /// point) and which source row each holds.
    rows: [(Option<usize>, Vec<i32>); 2],
}

/// Two-tap filter: `p[i0] * w0 + p[i1] * w1`, weights summing to 2048.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    w0: i32,
    w1: i32,
}

const RESIZE_COEF_SCALE: f32 = 2048.0;

impl BgrLinearResizer {
    /// # Panics
    /// If any dimension is zero.
    pub fn new(src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> Self {
        assert!(
            src_w > 0 && src_h > 0 && dst_w > 0 && dst_h > 0,
            "resize {src_w}x{src_h} -> {dst_w}x{dst_h}: sizes must be non-zero"
        );
        Self {
            src_w,
            src_h,
            dst_w,
            dst_h,
            x_taps: axis_taps(src_w, dst_w),
            y_taps: axis_taps(src_h, dst_h),
            rows: [(None, vec![0; dst_w * 3]), (None, vec![0; dst_w * 3])],
        }
    }

    /// Resizer from a decoded `width` x `height` frame to [`processing_size`].
    pub fn for_pyscenedetect(width: u32, height: u32) -> Self {
        let (w, h) = processing_size(width, height);
        Self::new(width as usize, height as usize, w as usize, h as usize)
    }

    /// `(width, height)` of the frames [`BgrLinearResizer::resize`] writes.
    pub fn output_size(&self) -> (usize, usize) {
        (self.dst_w, self.dst_h)
    }

    /// Resizes BGR24 rows `src_stride` bytes apart into `dst`, which becomes
    /// a tightly packed `dst_w * dst_h * 3` image.
    ///
    /// # Panics
    /// If `src` is too small for the source geometry.
    pub fn resize(&mut self, src: &[u8], src_stride: usize, dst: &mut Vec<u8>) {
        let row_bytes = self.src_w * 3;
        assert!(
            src_stride >= row_bytes && src.len() >= (self.src_h - 1) * src_stride + row_bytes,
            "source buffer of {} bytes too small for {}x{} BGR (stride {src_stride})",
            src.len(),
            self.src_w,
            self.src_h
        );
        dst.resize(self.dst_w * self.dst_h * 3, 0);
        // Rows cached from a previous frame are stale.
        self.rows[0].0 = None;
        self.rows[1].0 = None;
        for (ty, out) in self.y_taps.iter().zip(dst.chunks_exact_mut(self.dst_w * 3)) {
            // Shrinking usually moves the previous i1 row into the i0 slot.
            if self.rows[0].0 != Some(ty.i0) && self.rows[1].0 == Some(ty.i0) {
                self.rows.swap(0, 1);
            }
            for (slot, sy) in [(0, ty.i0), (1, ty.i1)] {
                if self.rows[slot].0 != Some(sy) {
                    let line = &src[sy * src_stride..][..row_bytes];
                    horizontal_pass(line, &self.x_taps, &mut self.rows[slot].1);
                    self.rows[slot].0 = Some(sy);
                }
            }
            let (r0, r1) = (&self.rows[0].1, &self.rows[1].1);
            for ((o, &s0), &s1) in out.iter_mut().zip(r0).zip(r1) {
                // OpenCV's SIMD rounding: each product is taken in 16-bit
                // halves (`v_mul_hi`) before the final +2 >> 2.
                let v = (((s0 >> 4) * ty.w0) >> 16) + (((s1 >> 4) * ty.w1) >> 16);
                *o = ((v + 2) >> 2).clamp(0, 255) as u8;
            }
        }
    }
}

fn horizontal_pass(line: &[u8], taps: &[Tap], out: &mut [i32]) {
    for (tap, o) in taps.iter().zip(out.chunks_exact_mut(3)) {
        let p0 = &line[tap.i0 * 3..][..3];
        let p1 = &line[tap.i1 * 3..][..3];
        for c in 0..3 {
            o[c] = i32::from(p0[c]) * tap.w0 + i32::from(p1[c]) * tap.w1;
        }
    }
}

/// OpenCV's coordinate mapping, kept in its precision: the source position is
/// computed in `f64`, stored as `f32`, and the weights are rounded from `f32`.
fn axis_taps(src: usize, dst: usize) -> Vec<Tap> {
    let scale = 1.0 / (dst as f64 / src as f64);
    let last = src as i64 - 1;
    (0..dst)
        .map(|d| {
            let mut f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            f -= s as f32;
            if s < 0 {
                (s, f) = (0, 0.0);
            }
            if s >= last {
                (s, f) = (last, 0.0);
            }
            Tap {
                i0: s as usize,
                i1: (s + 1).min(last) as usize,
                w0: ((1.0 - f) * RESIZE_COEF_SCALE).round_ties_even() as i32,
                w1: (f * RESIZE_COEF_SCALE).round_ties_even() as i32,
            }
        })
        .collect()
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

    fn pattern(w: usize, h: usize) -> Vec<u8> {
        (0..w * h * 3)
            .map(|i| ((i as u64 * 2_654_435_761) as u32 >> 24) as u8)
            .collect()
    }

    fn checksum(bytes: &[u8]) -> u64 {
        bytes.iter().enumerate().fold(0u64, |acc, (i, &b)| {
            let w = (i as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(1);
            acc.wrapping_add(u64::from(b).wrapping_mul(w))
        })
    }

    /// Checksums (same formula as `checksum`) of `cv2.resize(pattern,
    /// processing_size, interpolation=cv2.INTER_LINEAR)` from cv2 5.0, where
    /// `pattern` is byte `i` = `(i * 2654435761 mod 2^32) >> 24`.
    #[test]
    fn resizer_matches_cv2_inter_linear() {
        #[rustfmt::skip]
        let cases = [
            ((640, 360), (256, 144), 0xe3fb_ced2_f931_7db0_u64, [139, 57, 152], [160, 78, 221]),
            ((1920, 1080), (256, 144), 0xb52f_3509_d1eb_4a3c, [47, 189, 91], [200, 119, 21]),
            ((720, 576), (256, 205), 0x67eb_87d7_63e9_652c, [208, 113, 16], [123, 50, 184]),
            ((255, 300), (218, 256), 0x360d_e704_69f3_1f15, [34, 150, 54], [208, 151, 53]),
            ((999, 555), (256, 142), 0xd60c_174f_43fe_3a1b, [101, 196, 98], [142, 108, 203]),
            ((512, 288), (256, 144), 0x646f_8148_b49f_10ae, [83, 178, 80], [135, 101, 195]),
            ((300, 1), (256, 1), 0x4235_e9d3_baa0_229a, [19, 155, 57], [99, 235, 159]),
            ((257, 145), (256, 144), 0x5afa_3661_7994_1516, [1, 157, 60], [65, 222, 125]),
        ];
        let mut out = Vec::new();
        for ((sw, sh), size, sum, first, last) in cases {
            let mut resizer = BgrLinearResizer::for_pyscenedetect(sw, sh);
            assert_eq!(resizer.output_size(), size);
            let src = pattern(sw as usize, sh as usize);
            resizer.resize(&src, sw as usize * 3, &mut out);
            assert_eq!(out[..3], first, "{sw}x{sh}");
            assert_eq!(out[out.len() - 3..], last, "{sw}x{sh}");
            assert_eq!(checksum(&out), sum, "{sw}x{sh}");
            // A second frame through the same resizer must not see stale rows.
            resizer.resize(&src, sw as usize * 3, &mut out);
            assert_eq!(checksum(&out), sum, "{sw}x{sh} (reused)");
        }
    }
}
