//! A clip's perceptual signature, for finding the same footage again after it was re-encoded,
//! scaled, cropped a little, letterboxed, brightened or sped up: the 64-bit DCT pHash of
//! [`SIGNATURE_FRAMES`] frames spread evenly over the clip, each hashed from the small grey copy
//! of the decoded frame that the looks already use (`super::looks`, 160x90) with dark borders
//! (letterbox and pillarbox bars) cut off first and the corners, where logos sit, left out.
//!
//! The hash is built like the common pHash (Python's `imagehash.phash`), with area averaging
//! as the reduction: the picture scaled to 32x32, its 2-D DCT-II, the 8x8 lowest frequencies,
//! one bit per coefficient above their median. Two clips are compared by [`similarity`]: each hash is
//! matched with the nearest of the other clip's hashes at about the same place in the clip
//! ([`ALIGN_SLACK`] positions either way, which absorbs a trimmed start or a changed speed), and the
//! similarity is one minus the mean matched Hamming distance over 64 bits.
use serde::{Deserialize, Serialize};

/// Hashes per clip signature.
pub const SIGNATURE_FRAMES: u32 = 16;

/// A row or column (from the edge inward) is a bar when its mean luma is at most this…
const BAR_LUMA_MAX: f64 = 24.0;
/// …and at most one pixel in [`BAR_OUTLIERS`] is brighter than this (a dark picture's rows have
/// bright details; a bar's only outliers are compression noise at its edge).
const BAR_PIXEL_MAX: u8 = 40;
const BAR_OUTLIERS: usize = 50;

/// Side of the picture the DCT is taken of.
const DCT_SIDE: usize = 32;
/// Side of the square at each corner of the [`DCT_SIDE`]² picture that is left out: where
/// channel logos, timestamps and watermarks sit (about 22% of each side). A bright logo on a
/// low-contrast picture would otherwise move the low frequencies more than the footage does,
/// parting a copy from its source and joining distinct clips that carry the same logo.
const CORNER_SIDE: usize = 7;
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
    /// Stands in a signature for a blank (black or flat) frame, whose bits would be noise; no
    /// picture hashes to it (a picture's hash has the half of its coefficients above their
    /// median set, 32 bits; only a flat one has none).
    pub const BLANK: PHash = PHash(0);

    pub fn is_blank(self) -> bool {
        self == Self::BLANK
    }

    /// Bits that differ.
    pub fn distance(self, other: PHash) -> u32 {
        (self.0 ^ other.0).count_ones()
    }
}

/// The pHash of a `width` x `height` grey picture (tightly packed), bars cut off.
pub fn frame_hash(gray: &[u8], width: usize, height: usize) -> PHash {
    let (x0, y0, x1, y1) = picture_area(gray, width, height);
    let mut small = area_resize(gray, width, (x0, y0, x1, y1));
    blank_corners(&mut small);
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
    let is_bar = |pixels: &mut dyn Iterator<Item = u8>, len: usize| {
        let (mut sum, mut bright) = (0u64, 0usize);
        for v in pixels {
            sum += u64::from(v);
            bright += usize::from(v > BAR_PIXEL_MAX);
        }
        sum as f64 / len as f64 <= BAR_LUMA_MAX && bright * BAR_OUTLIERS <= len
    };
    let row = |y: usize| is_bar(&mut gray[y * width..(y + 1) * width].iter().copied(), width);
    let column = |x: usize| is_bar(&mut (0..height).map(|y| gray[y * width + x]), height);
    let (max_rows, max_columns) = (height / 3, width / 3);
    let top = (0..max_rows).take_while(|&y| row(y)).count();
    let bottom = (0..max_rows).take_while(|&i| row(height - 1 - i)).count();
    let left = (0..max_columns).take_while(|&x| column(x)).count();
    let right = (0..max_columns)
        .take_while(|&i| column(width - 1 - i))
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

/// Sets the corner squares ([`CORNER_SIDE`]) of a [`DCT_SIDE`]² picture to the mean of the
/// rest, so that they carry no pattern.
fn blank_corners(picture: &mut [f64]) {
    let in_corner = |i: usize| {
        let (y, x) = (i / DCT_SIDE, i % DCT_SIDE);
        let edge = |v: usize| !(CORNER_SIDE..DCT_SIDE - CORNER_SIDE).contains(&v);
        edge(y) && edge(x)
    };
    let (sum, count) = (0..picture.len())
        .filter(|&i| !in_corner(i))
        .fold((0.0, 0usize), |(s, n), i| (s + picture[i], n + 1));
    let mean = sum / count as f64;
    for (i, v) in picture.iter_mut().enumerate() {
        if in_corner(i) {
            *v = mean;
        }
    }
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

/// The signature of frames `from..to` of a video, given each frame's hash and whether it is
/// blank: the hashes of [`SIGNATURE_FRAMES`] frames spread evenly over them (fewer for a
/// shorter range), a blank frame's replaced by [`PHash::BLANK`] (its bits are noise that
/// compression alone flips). Spread over all frames, not the non-blank ones, so that frames
/// judged blank in one copy and not in another (a logo on a nearly black picture) leave the
/// other positions where they were.
pub fn sample(hashes: &[PHash], blank: &[bool], from: usize, to: usize) -> Vec<PHash> {
    let to = to.min(hashes.len()).min(blank.len()).max(from);
    super::plan::spread((to - from) as u64, SIGNATURE_FRAMES)
        .into_iter()
        .map(|i| from + i as usize)
        .map(|i| if blank[i] { PHash::BLANK } else { hashes[i] })
        .collect()
}

/// How many positions either way a hash is matched over.
const ALIGN_SLACK: usize = 2;

/// How alike two signatures are, 0 to 1 (1: every hash matched exactly): each hash of either
/// signature against the closest of the other's hashes within [`ALIGN_SLACK`] positions of the
/// same place (positions scaled to the other's length), averaged over both ways. Blank hashes
/// take no part; 0 when no hash of either found a partner.
pub fn similarity(a: &[PHash], b: &[PHash]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    // (sum of matched distances, hashes matched) from `a` to `b`.
    let one_way = |a: &[PHash], b: &[PHash]| -> (u32, u32) {
        let mut total = (0, 0);
        for (i, &h) in a.iter().enumerate().filter(|(_, h)| !h.is_blank()) {
            let at = if a.len() == 1 {
                0
            } else {
                (i * (b.len() - 1) + (a.len() - 1) / 2) / (a.len() - 1)
            };
            let nearest = (at.saturating_sub(ALIGN_SLACK)..=(at + ALIGN_SLACK).min(b.len() - 1))
                .filter(|&j| !b[j].is_blank())
                .map(|j| h.distance(b[j]))
                .min();
            if let Some(d) = nearest {
                total = (total.0 + d, total.1 + 1);
            }
        }
        total
    };
    let (ab, ba) = (one_way(a, b), one_way(b, a));
    let matched = ab.1 + ba.1;
    if matched == 0 {
        return 0.0;
    }
    1.0 - f64::from(ab.0 + ba.0) / (f64::from(matched) * 64.0)
}

/// How many keys stand for a signature ([`keys`]).
pub const KEYS_PER_SIGNATURE: usize = 2;

/// 64-bit hashes standing for a signature, for bucketing: the [`majority`] of its first half
/// and of its second half. One key for the whole clip moves too much for footage that changes
/// slowly all along (a bit set in half the frames flips when a trim takes some of them away);
/// halves keep the bits of each part of the clip. On tests/dedup.rs's set, the closest keys of
/// a copy and its source are at most 14 bits apart, those of distinct clips at least 16.
pub fn keys(hashes: &[PHash]) -> [PHash; KEYS_PER_SIGNATURE] {
    let half = hashes.len().div_ceil(2);
    [
        majority(&hashes[..half]),
        majority(&hashes[hashes.len() / 2..]),
    ]
}

/// One 64-bit hash standing for several: each bit set when it is set in more than half of
/// them (ties: the first one's bit). Re-encoding noise flips bits in some frames only, so this
/// moves less than any one frame's hash. Blank hashes take no part; [`PHash::BLANK`] when all
/// are blank.
pub fn majority(hashes: &[PHash]) -> PHash {
    let hashes: Vec<PHash> = hashes.iter().copied().filter(|h| !h.is_blank()).collect();
    let Some(first) = hashes.first() else {
        return PHash::BLANK;
    };
    let mut bits = 0u64;
    for bit in 0..64 {
        let set = hashes.iter().filter(|h| h.0 >> bit & 1 == 1).count();
        let on = match (2 * set).cmp(&hashes.len()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => first.0 >> bit & 1 == 1,
        };
        if on {
            bits |= 1 << bit;
        }
    }
    PHash(bits)
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
        // Blank hashes are left out, on either side.
        let mut with_blanks = a.clone();
        with_blanks[3] = PHash::BLANK;
        assert!(similarity(&a, &with_blanks) > 0.99);
        assert_eq!(similarity(&[PHash::BLANK; 4], &[PHash::BLANK; 4]), 0.0);
    }

    #[test]
    fn keys_take_each_bit_by_majority_over_each_half() {
        let hashes = [PHash(0b0111), PHash(0b0011), PHash(0b1001), PHash::BLANK];
        assert_eq!(majority(&hashes), PHash(0b0011));
        // A tie takes the first hash's bit.
        assert_eq!(majority(&[PHash(0b10), PHash(0b01)]), PHash(0b10));
        assert_eq!(majority(&[PHash::BLANK]), PHash::BLANK);
        let five = [PHash(1), PHash(1), PHash(3), PHash(2), PHash(2)];
        assert_eq!(keys(&five), [PHash(1), PHash(2)]);
        assert_eq!(keys(&[PHash(4)]), [PHash(4), PHash(4)]);
        assert_eq!(keys(&[]), [PHash::BLANK, PHash::BLANK]);
    }
}
