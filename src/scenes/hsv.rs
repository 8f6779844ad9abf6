//! BGR → HSV conversion that is bit-exact with OpenCV's 8-bit
//! `cv2.cvtColor(img, cv2.COLOR_BGR2HSV)` (hue in `0..180`), which is what
//! PySceneDetect's content detector scores frames with.
//!
//! Exactness matters more than elegance here: a frame score is a mean of
//! per-pixel differences, so a systematic off-by-one in a channel would shift
//! every score and move cuts that sit near the threshold. OpenCV avoids
//! per-pixel division by multiplying with two 12-bit fixed-point reciprocal
//! tables; we build the same tables at compile time and use the same rounding,
//! so every one of the 2^24 colours maps to the same bytes (checked
//! exhaustively in the tests against a checksum taken from cv2).

/// Fixed-point precision OpenCV uses for its reciprocal tables.
const HSV_SHIFT: u32 = 12;
const HALF: i32 = 1 << (HSV_SHIFT - 1);

/// `round((255 << 12) / i)`: turns `diff * SDIV[v] >> 12` into `255 * diff / v`.
/// Plain round-half-up is identical to OpenCV's `cvRound` (half-to-even) here
/// because no entry lands on an exact `.5` (that would need `i` divisible by 2^13).
static SDIV: [i32; 256] = build_table(255 << HSV_SHIFT, 1);
/// `round((180 << 12) / (6 * i))`: scales a hue sector offset by `30 / diff`.
static HDIV: [i32; 256] = build_table(180 << HSV_SHIFT, 6);

const fn build_table(numerator: i32, scale: i32) -> [i32; 256] {
    let mut table = [0i32; 256];
    let mut i = 1;
    while i < 256 {
        let den = scale * i as i32;
        table[i] = (2 * numerator + den) / (2 * den);
        i += 1;
    }
    table
}

/// Converts one pixel; returns `[h, s, v]` with `h` in `0..180`.
#[inline(always)]
pub fn bgr_pixel_to_hsv(b: u8, g: u8, r: u8) -> [u8; 3] {
    let (b, g, r) = (i32::from(b), i32::from(g), i32::from(r));
    let v = b.max(g).max(r);
    let diff = v - b.min(g).min(r);
    let s = (diff * SDIV[v as usize] + HALF) >> HSV_SHIFT;
    // OpenCV's tie order: red wins over green, green over blue. (OpenCV
    // writes this with masks; plain branches compile to faster code here.)
    let sector = if v == r {
        g - b
    } else if v == g {
        b - r + 2 * diff
    } else {
        r - g + 4 * diff
    };
    let mut h = (sector * HDIV[diff as usize] + HALF) >> HSV_SHIFT;
    if h < 0 {
        h += 180;
    }
    // h <= 179 and s <= 255 by construction (verified over all inputs).
    [h as u8, s as u8, v as u8]
}

/// Planar HSV image, reused across frames so the steady state does not allocate.
///
/// A frame converted with [`HsvFrame::fill_luma_from_bgr`] carries only the V
/// plane (`hue()`/`sat()` are empty); that is all PySceneDetect's `luma_only`
/// mode looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HsvFrame {
    width: usize,
    height: usize,
    h: Vec<u8>,
    s: Vec<u8>,
    v: Vec<u8>,
}

impl HsvFrame {
    /// An empty frame; buffers grow on first fill.
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts a tightly packed BGR24 image (`width * 3` bytes per row).
    pub fn from_bgr(bgr: &[u8], width: usize, height: usize) -> Self {
        let mut frame = Self::new();
        frame.fill_from_bgr(bgr, width, height, width * 3);
        frame
    }

    /// Converts BGR24 rows spaced `stride` bytes apart (FFmpeg frames are often
    /// padded), overwriting this frame and reusing its buffers.
    ///
    /// # Panics
    /// If `stride < width * 3` or `bgr` is too short for `height` rows.
    pub fn fill_from_bgr(&mut self, bgr: &[u8], width: usize, height: usize, stride: usize) {
        check_layout(bgr, width, height, stride);
        let n = width * height;
        self.width = width;
        self.height = height;
        resize_plane(&mut self.h, n);
        resize_plane(&mut self.s, n);
        resize_plane(&mut self.v, n);
        if n == 0 {
            return;
        }
        let rows = bgr.chunks(stride).take(height);
        let planes = self
            .h
            .chunks_exact_mut(width)
            .zip(self.s.chunks_exact_mut(width))
            .zip(self.v.chunks_exact_mut(width));
        for (row, ((h, s), v)) in rows.zip(planes) {
            convert_row(&row[..width * 3], h, s, v);
        }
    }

    /// Fills only the V plane (`max(b, g, r)`, identical to OpenCV's V) and
    /// empties H and S: enough for luma-only scoring at a fraction of the cost.
    ///
    /// # Panics
    /// Same conditions as [`HsvFrame::fill_from_bgr`].
    pub fn fill_luma_from_bgr(&mut self, bgr: &[u8], width: usize, height: usize, stride: usize) {
        check_layout(bgr, width, height, stride);
        let n = width * height;
        self.width = width;
        self.height = height;
        self.h.clear();
        self.s.clear();
        resize_plane(&mut self.v, n);
        if n == 0 {
            return;
        }
        for (row, v) in bgr.chunks(stride).zip(self.v.chunks_exact_mut(width)) {
            for (px, out) in row[..width * 3].chunks_exact(3).zip(v.iter_mut()) {
                *out = px[0].max(px[1]).max(px[2]);
            }
        }
    }

    /// Makes `self` a copy of `other`, reusing `self`'s allocations.
    pub fn copy_from(&mut self, other: &HsvFrame) {
        self.width = other.width;
        self.height = other.height;
        copy_plane(&mut self.h, &other.h);
        copy_plane(&mut self.s, &other.s);
        copy_plane(&mut self.v, &other.v);
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Hue plane (`0..180`), row-major; empty for luma-only frames.
    pub fn hue(&self) -> &[u8] {
        &self.h
    }

    /// Saturation plane, row-major; empty for luma-only frames.
    pub fn sat(&self) -> &[u8] {
        &self.s
    }

    /// Value plane (`max(b, g, r)`), row-major.
    pub fn val(&self) -> &[u8] {
        &self.v
    }

    /// Whether H and S were computed (false after a luma-only fill).
    pub fn has_chroma(&self) -> bool {
        self.h.len() == self.v.len() && self.s.len() == self.v.len()
    }
}

/// Free-function form: converts tightly packed BGR24 into the three planes,
/// resizing (not reallocating, once warm) the output vectors.
pub fn bgr_to_hsv(
    bgr: &[u8],
    width: usize,
    height: usize,
    h: &mut Vec<u8>,
    s: &mut Vec<u8>,
    v: &mut Vec<u8>,
) {
    let stride = width * 3;
    check_layout(bgr, width, height, stride);
    let n = width * height;
    resize_plane(h, n);
    resize_plane(s, n);
    resize_plane(v, n);
    convert_row(&bgr[..n * 3], h, s, v);
}

fn convert_row(bgr: &[u8], h: &mut [u8], s: &mut [u8], v: &mut [u8]) {
    let outs = h.iter_mut().zip(s.iter_mut()).zip(v.iter_mut());
    for (px, ((h, s), v)) in bgr.chunks_exact(3).zip(outs) {
        let [hh, ss, vv] = bgr_pixel_to_hsv(px[0], px[1], px[2]);
        *h = hh;
        *s = ss;
        *v = vv;
    }
}

fn check_layout(bgr: &[u8], width: usize, height: usize, stride: usize) {
    assert!(
        stride >= width * 3,
        "BGR stride {stride} < 3 * width {width}"
    );
    let needed = if height == 0 {
        0
    } else {
        (height - 1) * stride + width * 3
    };
    assert!(
        bgr.len() >= needed,
        "BGR buffer of {} bytes too small for {width}x{height} (stride {stride})",
        bgr.len()
    );
}

/// Every byte gets overwritten by the caller, so only the length matters;
/// `resize` keeps the capacity and allocates only when a frame grows.
fn resize_plane(plane: &mut Vec<u8>, n: usize) {
    plane.resize(n, 0);
}

fn copy_plane(dst: &mut Vec<u8>, src: &[u8]) {
    dst.clear();
    dst.extend_from_slice(src);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Same weighting as `hsv_checksum` in the Python snippet below, so one
    /// number pins down the conversion of all 2^24 colours.
    ///
    /// ```python
    /// i = np.arange(1 << 24, dtype=np.uint32)   # b = i & 255, g = i >> 8 & 255, r = i >> 16
    /// bgr = np.stack([i & 255, i >> 8 & 255, i >> 16], -1).astype(np.uint8).reshape(4096, 4096, 3)
    /// hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.uint64)
    /// word = hsv[:, 0] << 16 | hsv[:, 1] << 8 | hsv[:, 2]
    /// w = i.astype(np.uint64) * 0x9E3779B97F4A7C15 + 1
    /// np.sum(word * w, dtype=np.uint64)
    /// ```
    const CV2_ALL_COLOURS_CHECKSUM: u64 = 0xf05c_b641_e60d_1fc0;

    #[test]
    fn all_colours_match_cv2_checksum() {
        // Convert through the planar path, one 4096-pixel "row" per red/green
        // pair, exactly like the 4096x4096 image handed to cv2.
        let mut bgr = vec![0u8; 4096 * 3];
        let (mut h, mut s, mut v) = (Vec::new(), Vec::new(), Vec::new());
        let mut sum = 0u64;
        for row in 0..4096u32 {
            for (k, px) in bgr.chunks_exact_mut(3).enumerate() {
                let i = row * 4096 + k as u32;
                px[0] = (i & 255) as u8;
                px[1] = ((i >> 8) & 255) as u8;
                px[2] = (i >> 16) as u8;
            }
            bgr_to_hsv(&bgr, 4096, 1, &mut h, &mut s, &mut v);
            for k in 0..4096usize {
                let i = u64::from(row) * 4096 + k as u64;
                let word = u64::from(h[k]) << 16 | u64::from(s[k]) << 8 | u64::from(v[k]);
                let w = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
                sum = sum.wrapping_add(word.wrapping_mul(w));
            }
        }
        assert_eq!(sum, CV2_ALL_COLOURS_CHECKSUM);
    }

    /// Spot values printed by `cv2.cvtColor(np.uint8([[[b, g, r]]]), cv2.COLOR_BGR2HSV)`,
    /// chosen around the branch and rounding edges (grey, ties between
    /// channels, negative hue wrap, tiny diffs).
    #[test]
    fn spot_values_match_cv2() {
        #[rustfmt::skip]
        const CASES: [([u8; 3], [u8; 3]); 18] = [
            ([0, 0, 0], [0, 0, 0]),
            ([255, 255, 255], [0, 0, 255]),
            ([128, 128, 128], [0, 0, 128]),
            ([0, 0, 255], [0, 255, 255]),
            ([0, 255, 0], [60, 255, 255]),
            ([255, 0, 0], [120, 255, 255]),
            ([0, 255, 255], [30, 255, 255]),
            ([255, 0, 255], [150, 255, 255]),
            ([255, 255, 0], [90, 255, 255]),
            ([1, 0, 255], [0, 255, 255]),
            ([60, 0, 255], [173, 255, 255]),
            ([200, 10, 201], [150, 242, 201]),
            ([10, 11, 12], [15, 43, 12]),
            ([12, 11, 10], [105, 43, 12]),
            ([37, 200, 99], [49, 208, 200]),
            ([250, 3, 251], [150, 252, 251]),
            ([255, 1, 254], [150, 254, 255]),
            ([0, 1, 1], [30, 255, 1]),
        ];
        for (bgr, want) in CASES {
            assert_eq!(
                bgr_pixel_to_hsv(bgr[0], bgr[1], bgr[2]),
                want,
                "bgr {bgr:?}"
            );
        }
    }

    #[test]
    fn strided_and_luma_paths_agree_with_packed() {
        let (w, h, stride) = (7usize, 5usize, 7 * 3 + 5);
        let mut padded = vec![0xAAu8; stride * h];
        let mut packed = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let px = [
                    (x * 37 + y * 11) as u8,
                    (x * 5 + y * 71) as u8,
                    (x * y * 13) as u8,
                ];
                padded[y * stride + x * 3..][..3].copy_from_slice(&px);
                packed.extend_from_slice(&px);
            }
        }
        let reference = HsvFrame::from_bgr(&packed, w, h);
        let mut frame = HsvFrame::new();
        frame.fill_from_bgr(&padded, w, h, stride);
        assert_eq!(frame, reference);
        assert!(frame.has_chroma());

        frame.fill_luma_from_bgr(&padded, w, h, stride);
        assert_eq!(frame.val(), reference.val());
        assert!(!frame.has_chroma());
        assert!(frame.hue().is_empty() && frame.sat().is_empty());
    }
}
