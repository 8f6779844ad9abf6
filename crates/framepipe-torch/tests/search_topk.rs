//! The search matrix's top-k is exact: equal to brute force over the fp16 rows in fp32, also
//! when hundreds of rows score within the reduced-precision error of each other (the candidate
//! set must widen then).
use framepipe_proto::ops::{SearchFree, SearchLoad, SearchQuery};
use framepipe_proto::Device;
use framepipe_torch::ops::search;
use half::f16;

fn load(rows: usize, dim: usize) -> SearchLoad {
    SearchLoad {
        device: Device::Cpu,
        rows: rows as u64,
        dim: dim as u64,
    }
}

fn query(handle: u64, queries: usize, k: usize) -> SearchQuery {
    SearchQuery {
        handle,
        queries: queries as u64,
        k: k as u64,
    }
}

fn lcg(state: &mut u64) -> f32 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// Brute force: indices of the k best rows by fp32 dot product of the fp16 rows with `q`.
fn brute(rows: &[Vec<f16>], q: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut s: Vec<(usize, f32)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r.iter().zip(q).map(|(a, b)| a.to_f32() * b).sum()))
        .collect();
    s.sort_by(|a, b| b.1.total_cmp(&a.1));
    s.truncate(k);
    s
}

#[test]
fn top_k_equals_brute_force_even_among_near_ties() {
    let dim = 64;
    let mut state = 7u64;
    let base = unit((0..dim).map(|_| lcg(&mut state)).collect());
    let mut rows: Vec<Vec<f16>> = Vec::new();
    for i in 0..6000 {
        let v: Vec<f32> = if i % 20 == 0 {
            // 300 near-duplicates of `base`: their scores differ by ~1e-3, below bf16's error.
            base.iter().map(|x| x + 2e-3 * lcg(&mut state)).collect()
        } else {
            (0..dim).map(|_| lcg(&mut state)).collect()
        };
        rows.push(unit(v).into_iter().map(f16::from_f32).collect());
    }
    let bits: Vec<u16> = rows.iter().flatten().map(|x| x.to_bits()).collect();
    let loaded = search::load(&load(rows.len(), dim), &bits).unwrap();
    let handle = loaded.handle;
    let queries: Vec<Vec<f32>> = vec![
        base.clone(),
        unit((0..dim).map(|_| lcg(&mut state)).collect()),
        unit((0..dim).map(|_| lcg(&mut state)).collect()),
    ];
    let k = 10;
    let flat: Vec<f32> = queries.iter().flatten().copied().collect();
    let mut index = vec![0i64; queries.len() * k];
    let mut score = vec![0f32; queries.len() * k];
    let reply = search::query(
        &query(handle, queries.len(), k),
        &flat,
        &mut index,
        &mut score,
    )
    .unwrap();
    for (qi, q) in queries.iter().enumerate() {
        let want = brute(&rows, q, k);
        for j in 0..k {
            let got_score = score[qi * k + j];
            assert!(
                (got_score - want[j].1).abs() < 1e-5,
                "query {qi} rank {j}: {got_score} vs {}",
                want[j].1
            );
            // The row returned really has that score (ties of equal score may swap rows).
            let row = &rows[index[qi * k + j] as usize];
            let s: f32 = row.iter().zip(q).map(|(a, b)| a.to_f32() * b).sum();
            assert!((s - got_score).abs() < 1e-5);
        }
    }
    eprintln!("coarse {} , widened {}", loaded.coarse, reply.widened);
    if loaded.coarse == "bf16" {
        assert!(
            reply.widened > 0,
            "the near-tie cluster must have needed a wider candidate set"
        );
    }
    // k beyond the rows: all rows, then -1.
    assert!(search::free(&SearchFree { handle }).freed);
    assert!(search::query(&query(handle, 1, 1), &flat[..dim], &mut index, &mut score).is_err());
}

#[test]
fn more_results_than_rows_pad_with_minus_one() {
    let rows: Vec<u16> = [1.0f32, 0.0, 0.0, 1.0]
        .iter()
        .map(|&x| f16::from_f32(x).to_bits())
        .collect();
    let loaded = search::load(&load(2, 2), &rows).unwrap();
    let mut index = vec![0i64; 3];
    let mut score = vec![0f32; 3];
    search::query(
        &query(loaded.handle, 1, 3),
        &[0.0, 2.0],
        &mut index,
        &mut score,
    )
    .unwrap();
    assert_eq!(index, [1, 0, -1]);
    assert!((score[0] - 1.0).abs() < 1e-6 && score[1].abs() < 1e-6 && score[2].is_nan());
    assert!(search::load(&load(3, 2), &rows).is_err());
}
