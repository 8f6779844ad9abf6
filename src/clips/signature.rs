//! A clip's perceptual signature, for finding the same footage again after it was re-encoded,
//! scaled, cropped a little, letterboxed, brightened or sped up: the 64-bit DCT pHash of
//! [`SIGNATURE_FRAMES`] frames spread evenly over the clip, each hashed from the small grey copy
//! of the decoded frame that the looks already use (`super::looks`, 160x90) with dark borders
//! (letterbox and pillarbox bars) cut off first.
//!
//! The hash is built like the common pHash (Python's `imagehash.phash`), with area averaging
//! as the reduction: the picture scaled to 32x32, its 2-D DCT-II, the 8x8 lowest frequencies,
//! one bit per coefficient above their median. Two clips are compared by [`similarity`]: each hash is
//! matched with the nearest of the other clip's hashes at about the same place in the clip
//! (one position either way, which absorbs a trimmed start or a changed speed), and the
//! similarity is one minus the mean matched Hamming distance over 64 bits.
use serde::{Deserialize, Serialize};

/// Hashes per clip signature.
pub const SIGNATURE_FRAMES: u32 = 8;

/// A row or column (from the edge inward) whose mean luma is at most this is a bar.
const BAR_LUMA_MAX: f64 = 24.0;

/// Side of the picture the DCT is taken of.
const DCT_SIDE: usize = 32;
/// Side of the low-frequency block the bits come from.
const HASH_SIDE: usize = 8;

/// One frame's 64-bit pHash; written as 16 hexadecimal digits (JSON numbers lose bits past 2^53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PHash(pub u64);

impl Serialize for PHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:016x}", self.0))
    }
}

impl<'de> Deserialize<'de> for PHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() != 16 {
            return Err(serde::de::Error::custom(format!(
                "a pHash is 16 hexadecimal digits, got {text:?}"
            )));
        }
        u64::from_str_radix(&text, 16)
            .map(PHash)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not hexadecimal")))
    }
}

impl PHash {
    /// Bits that differ.
    pub fn distance(self, other: PHash) -> u32 {
        (self.0 ^ other.0).count_ones()
    }
}

/// The pHash of a `width` x `height` grey picture (tightly packed), bars cut off.
pub fn frame_hash(gray: &[u8], width: usize, height: usize) -> PHash {
    let (x0, y0, x1, y1) = picture_area(gray, width, height);
    let small = area_resize(gray, width, (x0, y0, x1, y1));
    let low = low_frequencies(&small);
    let mut sorted = low;
    sorted.sort_by(f64::total_cmp);
    // The median of 64 values: the mean of the two middle ones.
    let median = (sorted[31] + sorted[32]) / 2.0;
    let bits = low
        .iter()
        .enumerate()
        .fold(0u64, |h, (i, &c)| if c > median { h | 1 << i } else { h });
    PHash(bits)
}

/// The part of the picture inside its dark border bars: `(x0, y0, x1, y1)`, end exclusive. No
/// side loses more than a third, so a dark picture keeps its middle.
fn picture_area(gray: &[u8], width: usize, height: usize) -> (usize, usize, usize, usize) {
    let row_mean = |y: usize| {
        gray[y * width..(y + 1) * width]
            .iter()
            .map(|&v| f64::from(v))
            .sum::<f64>()
            / width as f64
    };
    let column_mean = |x: usize| {
        (0..height)
            .map(|y| f64::from(gray[y * width + x]))
            .sum::<f64>()
            / height as f64
    };
    let (max_rows, max_columns) = (height / 3, width / 3);
    let top = (0..max_rows)
        .take_while(|&y| row_mean(y) <= BAR_LUMA_MAX)
        .count();
    let bottom = (0..max_rows)
        .take_while(|&i| row_mean(height - 1 - i) <= BAR_LUMA_MAX)
        .count();
    let left = (0..max_columns)
        .take_while(|&x| column_mean(x) <= BAR_LUMA_MAX)
        .count();
    let right = (0..max_columns)
        .take_while(|&i| column_mean(width - 1 - i) <= BAR_LUMA_MAX)
        .count();
    (left, top, width - right, height - bottom)
}

/// The area `(x0, y0, x1, y1)` of the picture averaged into [`DCT_SIDE`] x [`DCT_SIDE`]
/// cells (each cell the mean of the source pixels it covers, fractions weighted).
fn area_resize(
    gray: &[u8],
    width: usize,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
) -> Vec<f64> {
    let weights = |from: usize, to: usize| -> Vec<Vec<(usize, f64)>> {
        let scale = (to - from) as f64 / DCT_SIDE as f64;
        (0..DCT_SIDE)
            .map(|cell| {
                let (a, b) = (
                    from as f64 + cell as f64 * scale,
                    from as f64 + (cell + 1) as f64 * scale,
                );
                (a.floor() as usize..(b.ceil() as usize).min(to))
                    .map(|p| {
                        let covered = (b.min(p as f64 + 1.0) - a.max(p as f64)).max(0.0);
                        (p, covered / scale)
                    })
                    .collect()
            })
            .collect()
    };
    let (columns, rows) = (weights(x0, x1), weights(y0, y1));
    let mut out = Vec::with_capacity(DCT_SIDE * DCT_SIDE);
    for row in &rows {
        for column in &columns {
            let mut v = 0.0;
            for &(y, wy) in row {
                for &(x, wx) in column {
                    v += f64::from(gray[y * width + x]) * wy * wx;
                }
            }
            out.push(v);
        }
    }
    out
}

/// The [`HASH_SIDE`]² lowest-frequency coefficients of the 2-D DCT-II (unnormalised, as
/// `scipy.fftpack.dct` along both axes) of a [`DCT_SIDE`]² picture, row-major.
fn low_frequencies(picture: &[f64]) -> [f64; HASH_SIDE * HASH_SIDE] {
    let n = DCT_SIDE as f64;
    let basis = |k: usize, i: usize| {
        2.0 * (std::f64::consts::PI * k as f64 * (2.0 * i as f64 + 1.0) / (2.0 * n)).cos()
    };
    // Along the rows first (each row's low frequencies), then down the columns.
    let mut rows = vec![0.0; DCT_SIDE * HASH_SIDE];
    for y in 0..DCT_SIDE {
        for k in 0..HASH_SIDE {
            rows[y * HASH_SIDE + k] = (0..DCT_SIDE)
                .map(|x| picture[y * DCT_SIDE + x] * basis(k, x))
                .sum();
        }
    }
    let mut out = [0.0; HASH_SIDE * HASH_SIDE];
    for ky in 0..HASH_SIDE {
        for kx in 0..HASH_SIDE {
            out[ky * HASH_SIDE + kx] = (0..DCT_SIDE)
                .map(|y| rows[y * HASH_SIDE + kx] * basis(ky, y))
                .sum();
        }
    }
    out
}

/// How alike two signatures are, 0 to 1 (1: every hash matched exactly): each hash of either
/// signature against the closest of the other's hashes within one position of the same place
/// (positions scaled to the other's length), averaged both ways. 0 when either is empty.
pub fn similarity(a: &[PHash], b: &[PHash]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let one_way = |a: &[PHash], b: &[PHash]| -> f64 {
        let total: u32 = a
            .iter()
            .enumerate()
            .map(|(i, &h)| {
                let at = if a.len() == 1 {
                    0
                } else {
                    (i * (b.len() - 1) + (a.len() - 1) / 2) / (a.len() - 1)
                };
                (at.saturating_sub(1)..=(at + 1).min(b.len() - 1))
                    .map(|j| h.distance(b[j]))
                    .min()
                    .expect("a non-empty window")
            })
            .sum();
        f64::from(total) / (a.len() as f64 * 64.0)
    };
    1.0 - (one_way(a, b) + one_way(b, a)) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 160x90 test picture: a diagonal gradient with a bright disc, shifted by `dx`.
    fn picture(dx: f64, brightness: f64) -> Vec<u8> {
        let (w, h) = (160usize, 90usize);
        let mut out = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f64 + dx, y as f64);
                let disc = if (fx - 60.0).powi(2) + (fy - 40.0).powi(2) < 400.0 {
                    90.0
                } else {
                    0.0
                };
                let v = 40.0 + fx * 0.6 + fy * 0.8 + disc + brightness;
                out.push(v.clamp(0.0, 255.0) as u8);
            }
        }
        out
    }

    #[test]
    fn hashes_survive_brightness_and_letterbox_but_tell_pictures_apart() {
        let base = frame_hash(&picture(0.0, 0.0), 160, 90);
        assert!(base.distance(frame_hash(&picture(0.0, 25.0), 160, 90)) <= 4);
        // The same picture squeezed between black bars (rows 0-11 and 78-89 black).
        let squeezed: Vec<u8> = {
            let src = picture(0.0, 0.0);
            let mut out = vec![0u8; 160 * 90];
            for y in 12..78 {
                let sy = ((y - 12) as f64 * 90.0 / 66.0) as usize;
                out[y * 160..(y + 1) * 160].copy_from_slice(&src[sy * 160..(sy + 1) * 160]);
            }
            out
        };
        assert!(base.distance(frame_hash(&squeezed, 160, 90)) <= 8);
        // Another picture: the disc elsewhere and the gradient the other way.
        let other: Vec<u8> = picture(0.0, 0.0).iter().rev().copied().collect();
        assert!(base.distance(frame_hash(&other, 160, 90)) >= 20);
    }

    #[test]
    fn a_dark_picture_keeps_its_middle() {
        let dark = vec![10u8; 160 * 90];
        assert_eq!(picture_area(&dark, 160, 90), (53, 30, 107, 60));
        let _ = frame_hash(&dark, 160, 90);
    }

    #[test]
    fn hashes_round_trip_as_hex() {
        let h = PHash(0x0123_4567_89ab_cdef);
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(text, "\"0123456789abcdef\"");
        assert_eq!(serde_json::from_str::<PHash>(&text).unwrap(), h);
        assert!(serde_json::from_str::<PHash>("\"12\"").is_err());
    }

    #[test]
    fn similarity_matches_neighbours_and_is_symmetric() {
        let a: Vec<PHash> = (0..8).map(|i| PHash(1u64 << (i * 8))).collect();
        assert_eq!(similarity(&a, &a), 1.0);
        // Shifted by one position (a trimmed start): still matched exactly inside.
        let shifted: Vec<PHash> = a[1..].iter().copied().chain([PHash(u64::MAX)]).collect();
        assert!(similarity(&a, &shifted) > 0.9);
        assert_eq!(similarity(&a, &shifted), similarity(&shifted, &a));
        let far: Vec<PHash> = a.iter().map(|h| PHash(!h.0)).collect();
        assert!(similarity(&a, &far) < 0.1);
        assert_eq!(similarity(&a, &[]), 0.0);
    }
}
