//! Candidate pairs of near-duplicate clips without comparing all pairs: bit-sampling
//! locality-sensitive hashing over each clip's 64-bit keys ([`crate::clips::signature::keys`],
//! one per half of the clip).
//!
//! Each of [`TABLES`] tables looks at [`BITS_PER_TABLE`] fixed, pseudo-randomly chosen bits of
//! a key; clips with a key each that agree on all of a table's bits share a bucket there. Two
//! keys `d` bits apart share a bucket in one table with probability
//! `(1 - d/64)^BITS_PER_TABLE`, and in at least one table with `1 - (1 - that)^TABLES`:
//!
//! | key distance | 6 | 8 | 10 | 12 | 14 | 16 |
//! |---|---|---|---|---|---|---|
//! | found | 1.000 | 1.000 | 0.996 | 0.947 | 0.789 | 0.553 |
//!
//! (random keys are 32 ± 4 bits apart; a clip has two keys, so a pair has four chances). Pairs
//! sharing a bucket whose keys there are more than [`KEY_DISTANCE_MAX`] apart are dropped
//! before the full signatures are compared. The sizes are set for a million clips: 16 bits
//! keep a table's buckets at about 30 keys (2.4e9 key comparisons over all tables), and a
//! random pair of keys is within 16 bits with probability 3.9e-5 (within 18, 3.1e-4: 8x the
//! candidates to compare in full, most of the time at that scale). The tables
//! are a fixed function of the key, so the pairs found do not depend on the order or batching
//! of the clips: deduplicating A and then B against A finds what A and B at once find.
//! Tables are built one after another (sort by the sampled bits, walk the runs), two threads
//! sharing them, so memory is a table per thread (24 bytes a key) on top of the keys; a table
//! entry carries its key, so comparing inside a bucket reads memory in order.
use crate::clips::signature::{PHash, KEYS_PER_SIGNATURE};

/// Hash tables.
pub const TABLES: usize = 80;
/// Key bits each table samples.
pub const BITS_PER_TABLE: usize = 16;
/// Pairs whose keys differ in more bits are not candidates.
pub const KEY_DISTANCE_MAX: u32 = 16;

/// A clip's keys.
pub type Keys = [PHash; KEYS_PER_SIGNATURE];

/// The bits each table samples: [`BITS_PER_TABLE`] distinct positions out of 64 per table,
/// from a fixed xorshift sequence (changing it changes which pairs are found: it is part of
/// the index's signature version).
fn table_masks() -> [u64; TABLES] {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut masks = [0u64; TABLES];
    for mask in &mut masks {
        while mask.count_ones() < BITS_PER_TABLE as u32 {
            *mask |= 1 << (next() % 64);
        }
    }
    masks
}

/// The key's bits under `mask`, packed: keys agree on the mask exactly when these are equal.
fn sampled(key: u64, mask: u64) -> u64 {
    key & mask
}

/// Pairs `(i, j)`, `i < j`, of clips (`keys[i]`, `keys[j]`) with a key each that share a
/// bucket in some table and are at most [`KEY_DISTANCE_MAX`] apart, and with at least one
/// member at or after `new_from` (the clips of this batch; earlier ones were paired when they
/// came). Blank keys (halves without a picture) pair with nothing. Sorted, each pair once.
pub fn candidate_pairs(keys: &[Keys], new_from: usize) -> Vec<(u32, u32)> {
    let masks = table_masks();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(TABLES);
    let mut pairs: Vec<(u32, u32)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let masks = &masks;
                scope.spawn(move || {
                    let mut found = Vec::new();
                    let mut table: Vec<(u64, u32, u64)> =
                        Vec::with_capacity(keys.len() * KEYS_PER_SIGNATURE);
                    for mask in masks.iter().skip(w).step_by(workers) {
                        table.clear();
                        table.extend(keys.iter().enumerate().flat_map(|(i, clip)| {
                            clip.iter()
                                .filter(|k| !k.is_blank())
                                .map(move |k| (sampled(k.0, *mask), i as u32, k.0))
                        }));
                        table.sort_unstable();
                        bucket_pairs(&table, new_from as u32, &mut found);
                    }
                    found
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            let mut found = handle.join().expect("an LSH worker panicked");
            // Several tables of one worker find the same pair: once each before merging.
            found.sort_unstable();
            found.dedup();
            all.append(&mut found);
        }
        all
    });
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// The close pairs inside each run of equal sampled bits of a sorted table of
/// `(sampled bits, clip, key)`.
fn bucket_pairs(table: &[(u64, u32, u64)], new_from: u32, found: &mut Vec<(u32, u32)>) {
    for bucket in table.chunk_by(|a, b| a.0 == b.0) {
        for (n, &(_, a, key_a)) in bucket.iter().enumerate() {
            for &(_, b, key_b) in &bucket[n + 1..] {
                // Sorted by clip within a bucket: a <= b (a clip's own keys may meet).
                if a != b && b >= new_from && (key_a ^ key_b).count_ones() <= KEY_DISTANCE_MAX {
                    found.push((a, b));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_sample_the_stated_number_of_bits_and_differ() {
        let masks = table_masks();
        assert!(masks
            .iter()
            .all(|m| m.count_ones() == BITS_PER_TABLE as u32));
        let mut distinct = masks.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), TABLES);
        // Every bit is looked at by some table.
        assert_eq!(masks.iter().fold(0, |a, m| a | m), u64::MAX);
    }

    /// Fixed pseudo-random keys.
    fn keys(n: usize, seed: u64) -> Vec<Keys> {
        let mut s = seed;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            PHash(s ^ (s >> 29) | 1)
        };
        (0..n).map(|_| [next(), next()]).collect()
    }

    #[test]
    fn close_keys_are_found_and_far_ones_are_not() {
        let mut all = keys(2000, 7);
        // Plant copies whose second key is 4 bits from the original's first key.
        for i in 0..100 {
            let flipped = all[i][0].0 ^ (0b1011_0001 << (i % 50));
            all.push([PHash(!all[i][1].0), PHash(flipped)]);
        }
        let pairs = candidate_pairs(&all, 0);
        for i in 0..100 {
            assert!(
                pairs.contains(&(i as u32, 2000 + i as u32)),
                "planted pair {i}"
            );
        }
        let closest = |a: &Keys, b: &Keys| {
            a.iter()
                .flat_map(|x| b.iter().map(move |y| x.distance(*y)))
                .min()
                .unwrap()
        };
        assert!(pairs
            .iter()
            .all(|&(a, b)| closest(&all[a as usize], &all[b as usize]) <= KEY_DISTANCE_MAX));
    }

    #[test]
    fn batches_find_what_one_pass_finds() {
        let mut all = keys(500, 3);
        for i in 0..50 {
            all.push([PHash(all[i * 3][1].0 ^ (0b111 << i)), PHash(7 << i)]);
        }
        let at_once = candidate_pairs(&all, 0);
        let first = candidate_pairs(&all[..300], 0);
        let second = candidate_pairs(&all, 300);
        let mut both: Vec<_> = first.into_iter().chain(second).collect();
        both.sort_unstable();
        assert_eq!(both, at_once);
    }

    #[test]
    fn blank_keys_pair_with_nothing() {
        let b = PHash::BLANK;
        let all = vec![[b, b], [b, b], [PHash(5), b], [b, PHash(5)]];
        assert_eq!(candidate_pairs(&all, 0), [(2, 3)]);
    }
}
