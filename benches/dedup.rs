//! `framepipe dedup` at scale, through the library's own code (`framepipe::dedup`), on synthetic
//! clips with planted near-duplicates:
//!
//! - **hash, 1,000,000 clips**: writing the index part and reading it back, the LSH candidates
//!   and their full comparison (`match_signatures`), the groups; whole-process peak memory.
//!   Targets: ≤ 60 s and ≤ 2 GiB on this 2-core machine.
//! - **hash, 50,000 clips**: the same search against exact all-pairs comparison of the same
//!   signatures (time, and the recall the LSH keeps).
//! - **embeddings** (512-d; 200,000 clips unless `FRAMEPIPE_DEDUP_BENCH_EMBED` says more): the
//!   k-means training, each clip's probes, the clustered search; and on 50,000 the recall of
//!   exact all-pairs cosine it keeps (target ≥ 0.99).
//!
//! Each measurement runs in a child process of this binary (`--child KIND N`), so the peak
//! memory is that measurement's; the hash one runs `FRAMEPIPE_BENCH_ROUNDS` times (default 3)
//! and its median is quoted. Synthetic clips: 16 frame hashes from a random walk (each frame
//! 6 bits from the one before); a planted copy changes 0 to 12 bits the same way in every hash
//! (as a crop or a logo does) and 0 to 4 more frame by frame (re-encoding noise), and a third of
//! them start one frame later (a trim): similarities from about 0.75 up, the range the
//! ffmpeg-made copies of tests/dedup.rs measure. Embeddings: unit Gaussian rows; a planted copy adds noise of 0.1 to 0.3 of
//! the row's length (cosine 0.96 to 0.995). Run: `cargo bench --bench dedup`.
mod common;

use std::process::Command;
use std::time::Instant;

use common::*;
use framepipe::clips::signature::{similarity, PHash};
use framepipe::dedup::clusters::{self, Centroids};
use framepipe::dedup::groups::{groups, Measures};
use framepipe::dedup::index::{By, Entry, Index, Settings};
use framepipe::dedup::parallel::parallel_map;
use framepipe::dedup::{match_signatures, DEFAULT_EMBEDDING_THRESHOLD, DEFAULT_THRESHOLD};

const FRAMES: usize = 16;
const DIM: usize = 512;
/// One clip in this many is a planted copy of an earlier one.
const COPY_EVERY: usize = 10;

/// xorshift64*: the same clips on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `bits` distinct random bits.
    fn bits(&mut self, bits: u32) -> u64 {
        let mut m = 0u64;
        while m.count_ones() < bits {
            m |= 1 << self.below(64);
        }
        m
    }

    /// Roughly normal (a sum of uniforms, centred).
    fn normal(&mut self) -> f32 {
        let v = self.next();
        ((v >> 40) as f32 / (1u64 << 24) as f32) + ((v & 0xff_ffff) as f32 / (1u64 << 24) as f32)
            - 1.0
    }
}

/// `n` signatures, and the planted pairs `(original, copy)`.
fn signatures(n: usize) -> (Vec<Vec<PHash>>, Vec<(u32, u32)>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out: Vec<Vec<PHash>> = Vec::with_capacity(n);
    let mut planted = Vec::new();
    for i in 0..n {
        if i % COPY_EVERY == COPY_EVERY - 1 {
            let of = rng.below(i as u64) as usize;
            // The same bits changed in every frame (a crop, a logo: 0 to 12) and noise that
            // differs frame to frame (re-encoding: 0 to 4 bits).
            let changed = rng.below(13) as u32;
            let systematic = rng.bits(changed);
            let noise = rng.below(5) as u32;
            let shift = rng.below(3) == 0;
            let source = &out[of];
            let mut copy: Vec<PHash> = (0..FRAMES)
                .map(|f| {
                    let from = if shift { (f + 1).min(FRAMES - 1) } else { f };
                    PHash(source[from].0 ^ systematic ^ rng.bits(noise))
                })
                .collect();
            copy.iter_mut().for_each(|h| h.0 |= 1);
            out.push(copy);
            planted.push((of as u32, i as u32));
        } else {
            let mut h = rng.next() | 1;
            out.push(
                (0..FRAMES)
                    .map(|_| {
                        h ^= rng.bits(6);
                        PHash(h | 1)
                    })
                    .collect(),
            );
        }
    }
    (out, planted)
}

/// `n` unit rows of [`DIM`] (`[n, DIM]`), and the planted pairs.
fn embeddings(n: usize) -> (Vec<f32>, Vec<(u32, u32)>) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut out: Vec<f32> = Vec::with_capacity(n * DIM);
    let mut planted = Vec::new();
    for i in 0..n {
        let mut row: Vec<f32> = (0..DIM).map(|_| rng.normal()).collect();
        if i % COPY_EVERY == COPY_EVERY - 1 {
            let of = rng.below(i as u64) as usize;
            let scale = 0.1 + 0.2 * (rng.below(1000) as f32 / 1000.0);
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            let source = &out[of * DIM..(of + 1) * DIM];
            row = source
                .iter()
                .zip(&row)
                .map(|(s, r)| s + scale * r / norm)
                .collect();
            planted.push((of as u32, i as u32));
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        out.extend(row.iter().map(|x| x / norm));
    }
    (out, planted)
}

fn entries(signatures: &[Vec<PHash>]) -> Vec<Entry> {
    signatures
        .iter()
        .enumerate()
        .map(|(i, s)| Entry {
            id: format!("video{:05}_{:04}", i / 10, i % 10),
            output: format!("/data/out/video{:05}", i / 10),
            start_time: 0.0,
            end_time: 4.0 + (i % 7) as f64,
            motion: (i % 13) as f64 * 0.001,
            phash: s.clone(),
            probes: Vec::new(),
        })
        .collect()
}

fn fraction_found(planted: &[(u32, u32)], found: &[(u32, u32)]) -> f64 {
    let found: std::collections::HashSet<(u32, u32)> = found.iter().copied().collect();
    let hits = planted
        .iter()
        .filter(|&&(a, b)| found.contains(&(a.min(b), a.max(b))))
        .count();
    hits as f64 / planted.len().max(1) as f64
}

/// Child: the whole hash dedup of `n` clips, as `framepipe dedup` does it in one batch.
fn hash_child(n: usize) -> serde_json::Value {
    let (signatures, planted) = signatures(n);
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        by: By::Hash,
        threshold: DEFAULT_THRESHOLD,
        embedding_threshold: DEFAULT_EMBEDDING_THRESHOLD,
    };
    let t = Instant::now();
    let views: Vec<&[PHash]> = signatures.iter().map(Vec::as_slice).collect();
    let (candidates, pairs) = match_signatures(&views, 0, DEFAULT_THRESHOLD);
    let match_s = t.elapsed().as_secs_f64();
    let found: Vec<(u32, u32)> = pairs.iter().map(|p| (p.a, p.b)).collect();

    let t = Instant::now();
    let mut index = Index::open(dir.path(), settings).unwrap();
    index
        .append(entries(&signatures), Vec::new(), &pairs)
        .unwrap();
    drop(index);
    let write_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let index = Index::open(dir.path(), settings).unwrap();
    let read_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let measures = Measures {
        by: By::Hash,
        embeddings: &[],
        dim: 0,
    };
    let grouped = groups(&index.entries, &index.pairs, &measures);
    let group_s = t.elapsed().as_secs_f64();
    serde_json::json!({
        "clips": n,
        "match_s": match_s,
        "index_write_s": write_s,
        "index_read_s": read_s,
        "group_s": group_s,
        "candidates": candidates,
        "pairs": pairs.len(),
        "groups": grouped.len(),
        "planted": planted.len(),
        "planted_found": fraction_found(&planted, &found),
    })
}

/// Child: the LSH search against exact all-pairs comparison on `n` clips.
fn hash_exact_child(n: usize) -> serde_json::Value {
    let (signatures, planted) = signatures(n);
    let views: Vec<&[PHash]> = signatures.iter().map(Vec::as_slice).collect();
    let t = Instant::now();
    let (_, pairs) = match_signatures(&views, 0, DEFAULT_THRESHOLD);
    let lsh_s = t.elapsed().as_secs_f64();
    let lsh: Vec<(u32, u32)> = pairs.iter().map(|p| (p.a, p.b)).collect();
    let t = Instant::now();
    let rows: Vec<u32> = (0..n as u32).collect();
    let exact: Vec<(u32, u32)> = parallel_map(&rows, |&a| {
        ((a + 1)..n as u32)
            .filter(|&b| similarity(views[a as usize], views[b as usize]) >= DEFAULT_THRESHOLD)
            .map(|b| (a, b))
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect();
    let exact_s = t.elapsed().as_secs_f64();
    serde_json::json!({
        "clips": n,
        "lsh_s": lsh_s,
        "exact_s": exact_s,
        "exact_pairs": exact.len(),
        "lsh_pairs": lsh.len(),
        "recall_of_exact": fraction_found(&exact, &lsh),
        "planted_found_exact": fraction_found(&planted, &exact),
    })
}

/// Child: the clustered embedding search of `n` clips (and, with `exact`, all pairs too).
fn embedding_child(n: usize, exact: bool) -> serde_json::Value {
    let (vectors, planted) = embeddings(n);
    let threshold = DEFAULT_EMBEDDING_THRESHOLD as f32;
    let t = Instant::now();
    let centroids = Centroids::train(&vectors, DIM, clusters::cluster_count(n));
    let train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let probes = centroids.probes_all(&vectors);
    let probe_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let found: Vec<(u32, u32)> = clusters::candidate_pairs(&vectors, DIM, &probes, 0, threshold)
        .into_iter()
        .map(|(a, b, _)| (a, b))
        .collect();
    let search_s = t.elapsed().as_secs_f64();
    let mut out = serde_json::json!({
        "clips": n,
        "clusters": centroids.len(),
        "train_s": train_s,
        "probe_s": probe_s,
        "search_s": search_s,
        "pairs": found.len(),
        "planted_found": fraction_found(&planted, &found),
    });
    if exact {
        let t = Instant::now();
        let rows: Vec<u32> = (0..n as u32).collect();
        let row = |i: u32| &vectors[i as usize * DIM..(i as usize + 1) * DIM];
        let all: Vec<(u32, u32)> = parallel_map(&rows, |&a| {
            ((a + 1)..n as u32)
                .filter(|&b| clusters::dot(row(a), row(b)) >= threshold)
                .map(|b| (a, b))
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
        out["exact_s"] = (t.elapsed().as_secs_f64()).into();
        out["exact_pairs"] = all.len().into();
        out["recall_of_exact"] = fraction_found(&all, &found).into();
    }
    out
}

/// Runs `--child KIND N` in a child process under GNU time: its JSON line, peak RSS (MiB) and
/// wall seconds.
fn child(kind: &str, n: usize) -> (serde_json::Value, f64, f64) {
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(&exe)
        .args(["--child", kind, &n.to_string()])
        .output()
        .unwrap();
    let wall = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{kind} {n}: {stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kib: f64 = stderr.lines().last().unwrap().trim().parse().unwrap();
    (json, kib / 1024.0, wall)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let kind = args[at + 1].as_str();
        let n: usize = args[at + 2].parse().unwrap();
        let result = match kind {
            "hash" => hash_child(n),
            "hash-exact" => hash_exact_child(n),
            "embedding" => embedding_child(n, false),
            "embedding-exact" => embedding_child(n, true),
            other => panic!("unknown child {other}"),
        };
        println!("{result}");
        return;
    }
    println!("dedup at scale on {}", machine());
    let rounds = rounds(3);
    let mut walls = Vec::new();
    let mut rss = Vec::new();
    for round in 0..rounds {
        let (json, peak, wall) = child("hash", 1_000_000);
        eprintln!("  round {round}: {json}");
        walls.push(wall);
        rss.push(peak);
    }
    println!(
        "hash, 1,000,000 clips: median {:.1} s whole process (target <= 60), peak {:.0} MiB (target <= 2048), {rounds} rounds",
        median(walls),
        median(rss)
    );
    let (json, peak, wall) = child("hash-exact", 50_000);
    println!("hash, 50,000 clips, LSH vs exact all pairs: {json} ({wall:.1} s, {peak:.0} MiB)");
    let embed_n: usize = std::env::var("FRAMEPIPE_DEDUP_BENCH_EMBED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let (json, peak, wall) = child("embedding", embed_n);
    println!("embeddings, {embed_n} clips: {json} ({wall:.1} s, {peak:.0} MiB)");
    let (json, peak, wall) = child("embedding-exact", 50_000);
    println!(
        "embeddings, 50,000 clips, clusters vs exact all pairs (target recall >= 0.99): {json} ({wall:.1} s, {peak:.0} MiB)"
    );
}
