//! Candidate pairs of clips with close CLIP embeddings without comparing all pairs: spherical
//! k-means centroids (trained once, on the first batch with embeddings, and kept in the
//! index), each clip filed under its nearest centroid (its home) and probing its [`PROBES`]
//! nearest; two clips are compared when either one's home is among the other's probes, the
//! way Cosmos-Curate and NeMo Curator compare clips inside clusters. Closer than the threshold
//! is decided by the exact cosine; what the clustering can miss is a close pair filed far apart,
//! measured against exact search in `framepipe bench dedup`.
use std::collections::HashMap;

use super::parallel::parallel_map;

/// Nearest centroids each clip is compared through.
pub const PROBES: usize = 4;
/// Lloyd iterations of the training.
const ITERATIONS: usize = 12;
/// Clips the centroids are trained on, at most (spread evenly over the batch).
const TRAINING_SAMPLE: usize = 65_536;

/// Clusters for `n` clips: about √n (about √n clips each), from 1 to 4096.
pub fn cluster_count(n: usize) -> usize {
    ((n as f64).sqrt().round() as usize).clamp(1, 4096)
}

/// The dot product of two rows (8 running sums, which the compiler vectorizes).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

fn normalize(row: &mut [f32]) {
    let norm = dot(row, row).sqrt();
    if norm > 0.0 {
        row.iter_mut().for_each(|v| *v /= norm);
    }
}

/// Unit-length centroids, row-major `[k, dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Centroids {
    pub dim: usize,
    pub rows: Vec<f32>,
}

impl Centroids {
    pub fn len(&self) -> usize {
        self.rows.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn row(&self, c: usize) -> &[f32] {
        &self.rows[c * self.dim..(c + 1) * self.dim]
    }

    /// Spherical k-means over `vectors` (unit rows, `[n, dim]`; zero rows are clips without an
    /// embedding and are left out), deterministic: seeded with evenly spaced rows; a cluster left
    /// empty takes the row its centroid fits worst.
    pub fn train(vectors: &[f32], dim: usize, k: usize) -> Centroids {
        let rows: Vec<&[f32]> = vectors
            .chunks_exact(dim)
            .filter(|r| r.iter().any(|&v| v != 0.0))
            .collect();
        let step = rows.len().div_ceil(TRAINING_SAMPLE).max(1);
        let sample: Vec<&[f32]> = rows.iter().step_by(step).copied().collect();
        let k = k.clamp(1, sample.len().max(1));
        let mut centroids = Centroids {
            dim,
            rows: (0..k)
                .flat_map(|c| {
                    sample
                        .get(c * sample.len() / k)
                        .map_or(vec![0.0; dim], |r| r.to_vec())
                })
                .collect(),
        };
        if sample.is_empty() {
            return centroids;
        }
        for _ in 0..ITERATIONS {
            let assigned: Vec<(u32, f32)> = parallel_map(&sample, |r| centroids.nearest(r));
            let mut sums = vec![0f32; k * dim];
            let mut counts = vec![0usize; k];
            for (r, &(c, _)) in sample.iter().zip(&assigned) {
                counts[c as usize] += 1;
                for (s, v) in sums[c as usize * dim..(c as usize + 1) * dim]
                    .iter_mut()
                    .zip(r.iter())
                {
                    *s += v;
                }
            }
            // Empty clusters take the worst-fitting rows, one each.
            let mut worst: Vec<usize> = (0..sample.len()).collect();
            worst.sort_by(|&a, &b| assigned[a].1.total_cmp(&assigned[b].1));
            let mut spare = worst.into_iter();
            for c in 0..k {
                let sum = &mut sums[c * dim..(c + 1) * dim];
                if counts[c] == 0 {
                    if let Some(r) = spare.next() {
                        sum.copy_from_slice(sample[r]);
                    }
                }
                normalize(sum);
            }
            centroids.rows = sums;
        }
        centroids
    }

    /// The nearest centroid and its dot product.
    fn nearest(&self, v: &[f32]) -> (u32, f32) {
        (0..self.len())
            .map(|c| (c as u32, dot(v, self.row(c))))
            .fold(
                (0, f32::NEG_INFINITY),
                |best, x| if x.1 > best.1 { x } else { best },
            )
    }

    /// [`Centroids::probes`] of each row of `vectors` (`[n, dim]`), on every core.
    pub fn probes_all(&self, vectors: &[f32]) -> Vec<Vec<u32>> {
        let rows: Vec<&[f32]> = vectors.chunks_exact(self.dim).collect();
        parallel_map(&rows, |r| self.probes(r))
    }

    /// The [`PROBES`] nearest centroids of `v`, nearest first (ties: the lower number); empty
    /// for a zero row.
    pub fn probes(&self, v: &[f32]) -> Vec<u32> {
        if v.iter().all(|&x| x == 0.0) {
            return Vec::new();
        }
        let mut scored: Vec<(u32, f32)> = (0..self.len())
            .map(|c| (c as u32, dot(v, self.row(c))))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.into_iter().take(PROBES).map(|(c, _)| c).collect()
    }
}

/// Pairs `(a, b, cosine)`, `a < b`, with cosine at least `threshold`, at least one of them at or
/// after `new_from`, compared when `b`'s home (first probe) is among `a`'s probes or the other
/// way round. `vectors` are unit rows `[n, dim]`; `probes[i]` empty: no embedding. Sorted.
pub fn candidate_pairs(
    vectors: &[f32],
    dim: usize,
    probes: &[Vec<u32>],
    new_from: usize,
    threshold: f32,
) -> Vec<(u32, u32, f32)> {
    // Members by home cluster: all of them, and this batch's alone.
    let mut members: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut new_members: HashMap<u32, Vec<u32>> = HashMap::new();
    for (i, p) in probes.iter().enumerate() {
        if let Some(&home) = p.first() {
            members.entry(home).or_default().push(i as u32);
            if i >= new_from {
                new_members.entry(home).or_default().push(i as u32);
            }
        }
    }
    let row = |i: u32| &vectors[i as usize * dim..(i as usize + 1) * dim];
    let indexes: Vec<u32> = (0..probes.len() as u32).collect();
    let mut pairs: Vec<(u32, u32, f32)> = parallel_map(&indexes, |&a| {
        // An indexed clip only meets this batch's; a new one meets everyone.
        let pool = if (a as usize) < new_from {
            &new_members
        } else {
            &members
        };
        let mut found = Vec::new();
        for c in &probes[a as usize] {
            for &b in pool.get(c).map_or(&[][..], Vec::as_slice) {
                if b != a {
                    let cosine = dot(row(a), row(b));
                    if cosine >= threshold {
                        found.push((a.min(b), a.max(b), cosine));
                    }
                }
            }
        }
        found
    })
    .into_iter()
    .flatten()
    .collect();
    pairs.sort_by_key(|x| (x.0, x.1));
    pairs.dedup_by(|x, y| (x.0, x.1) == (y.0, y.1));
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` unit rows of `dim` from a fixed sequence, with `planted` near copies at the end.
    fn rows(n: usize, dim: usize, planted: usize) -> Vec<f32> {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let mut out: Vec<f32> = (0..n * dim).map(|_| next()).collect();
        for i in 0..planted {
            let copy: Vec<f32> = out[i * dim..(i + 1) * dim]
                .iter()
                .map(|v| v + 0.05 * next())
                .collect();
            out.extend(copy);
        }
        out.chunks_exact_mut(dim).for_each(normalize);
        out
    }

    #[test]
    fn clustered_search_finds_the_planted_copies_exact_search_finds() {
        let (n, dim, planted) = (3000, 32, 50);
        let vectors = rows(n, dim, planted);
        let centroids = Centroids::train(&vectors, dim, cluster_count(n + planted));
        assert_eq!(centroids.len(), cluster_count(n + planted));
        let probes: Vec<Vec<u32>> = vectors
            .chunks_exact(dim)
            .map(|r| centroids.probes(r))
            .collect();
        let found = candidate_pairs(&vectors, dim, &probes, 0, 0.9);
        for i in 0..planted as u32 {
            assert!(
                found.iter().any(|p| (p.0, p.1) == (i, n as u32 + i)),
                "planted {i}"
            );
        }
        assert!(found.iter().all(|p| p.2 >= 0.9));
        // A batch after an indexed part finds what one pass finds.
        let first = candidate_pairs(&vectors, dim, &probes[..2000], 0, 0.9);
        let second = candidate_pairs(&vectors, dim, &probes, 2000, 0.9);
        let mut both: Vec<_> = first.into_iter().chain(second).collect();
        both.sort_by_key(|x| (x.0, x.1));
        assert_eq!(both, found);
    }

    #[test]
    fn rows_without_an_embedding_take_no_part() {
        let centroids = Centroids::train(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0], 2, 2);
        assert_eq!(centroids.len(), 2);
        assert!(centroids.probes(&[0.0, 0.0]).is_empty());
        assert_eq!(centroids.probes(&[0.0, 1.0])[0], 1);
    }

    #[test]
    fn dot_matches_a_plain_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-4);
    }
}
