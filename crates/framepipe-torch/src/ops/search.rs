//! Embedding search on the device: a matrix of stored (L2-normalized) CLIP rows, loaded once,
//! and top-k cosine scores for batches of query embeddings, one matrix product per batch.
//!
//! Speed without losing exactness: the matrix product runs in a reduced precision where the
//! hardware is fast at it (fp16 on CUDA, bf16 on CPUs with AVX-512 BF16/AMX, else fp32), and
//! only picks candidates; the candidates are then rescored in fp32 from the stored fp16 rows.
//! The reduced-precision error of a dot product of unit vectors is bounded (Cauchy–Schwarz:
//! |err| <= 2 * unit roundoff), so the candidate set is widened until no row outside it can
//! beat the k-th exact score: the result is the exact top-k of the fp16 rows on every device.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use framepipe_proto::ops::{
    SearchAnswered, SearchFree, SearchFreed, SearchLoad, SearchLoaded, SearchQuery,
};
use framepipe_proto::TorchError;
use tch::{Device, Kind, Tensor};

use crate::runtime::frames::torch_error;
use crate::runtime::models::tch_device;

/// Query embeddings per matrix product: bounds the score matrix to 64 x rows floats.
const QUERY_BATCH: i64 = 64;
/// Extra candidates beyond k before the exactness check asks for more.
const CANDIDATE_MARGIN: i64 = 64;

struct Index {
    /// The rows as stored: fp16 [N, D] on the device.
    exact: Tensor,
    /// The rows in the candidate-scoring precision.
    coarse: Tensor,
    /// Bound on |coarse score - exact score| for unit vectors.
    coarse_error: f64,
    device: Device,
    rows: i64,
    dim: i64,
}

static INDEXES: Mutex<Option<HashMap<u64, Index>>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Whether this CPU multiplies bf16 matrices in hardware (oneDNN uses AMX / AVX-512 BF16).
fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Loads `op.rows` x `op.dim` fp16 values (bit patterns) as a search matrix.
pub fn load(op: &SearchLoad, rows: &[u16]) -> Result<SearchLoaded, TorchError> {
    let device = tch_device(op.device);
    let (n, dim) = (op.rows as i64, op.dim as i64);
    if n < 1 || dim < 1 || (n * dim) as usize != rows.len() {
        return Err(TorchError::bad_input(format!(
            "{} values for {n} rows of {dim}: the sizes disagree",
            rows.len()
        )));
    }
    let _guard = tch::no_grad_guard();
    // SAFETY-free path: u16 bit patterns reinterpreted as fp16 by viewing the bytes.
    let bytes: &[u8] = bytemuck_u16(rows);
    let exact = Tensor::f_from_data_size(bytes, &[n, dim], Kind::Half)
        .and_then(|t| t.f_to_device(device))
        .map_err(torch_error)?;
    let (coarse, kind_name, unit_roundoff) = match device {
        Device::Cuda(_) => (exact.shallow_clone(), "f16", 2f64.powi(-11)),
        _ if cpu_has_bf16() => (
            exact.f_to_kind(Kind::BFloat16).map_err(torch_error)?,
            "bf16",
            2f64.powi(-8),
        ),
        _ => (
            exact.f_to_kind(Kind::Float).map_err(torch_error)?,
            "f32",
            2f64.powi(-24),
        ),
    };
    // Rows and queries both rounded: 2u per product term, plus fp32 accumulation over D terms.
    let coarse_error = 2.0 * unit_roundoff + dim as f64 * 2f64.powi(-24) + 1e-6;
    let handle = NEXT.fetch_add(1, Ordering::Relaxed);
    registry().get_or_insert_with(HashMap::new).insert(
        handle,
        Index {
            exact,
            coarse,
            coarse_error,
            device,
            rows: n,
            dim,
        },
    );
    Ok(SearchLoaded {
        handle,
        coarse: kind_name.into(),
        rows: op.rows,
        dim: op.dim,
    })
}

fn registry() -> std::sync::MutexGuard<'static, Option<HashMap<u64, Index>>> {
    // The map holds plain tensors; a panic elsewhere while it was locked left it consistent.
    INDEXES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn bytemuck_u16(v: &[u16]) -> &[u8] {
    // SAFETY: u16 has no padding and any byte pattern is a valid u8; the length is exact.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// The top `op.k` rows per query of `queries` (`op.queries` x D f32 values), best first, in
/// `out_index`/`out_score` (Q*k each; -1 / NaN past the end when k > rows).
pub fn query(
    op: &SearchQuery,
    queries: &[f32],
    out_index: &mut [i64],
    out_score: &mut [f32],
) -> Result<SearchAnswered, TorchError> {
    let handle = op.handle;
    let (q, k) = (op.queries as i64, (op.k as i64).max(1));
    let guard = registry();
    let index = guard
        .as_ref()
        .and_then(|m| m.get(&handle))
        .ok_or_else(|| TorchError::bad_input(format!("no search index {handle}")))?;
    if (q * index.dim) as usize != queries.len() {
        return Err(TorchError::bad_input(format!(
            "{} values for {q} queries of {}",
            queries.len(),
            index.dim
        )));
    }
    let need = (q * k) as usize;
    if out_index.len() < need || out_score.len() < need {
        return Err(TorchError::bad_input(format!(
            "output buffers hold fewer than {need} results"
        )));
    }
    let _guard = tch::no_grad_guard();
    let k_eff = k.min(index.rows);
    let all = Tensor::f_from_slice(queries)
        .and_then(|t| t.f_view([q, index.dim]))
        .and_then(|t| t.f_to_device(index.device))
        .map_err(torch_error)?;
    // Unit queries: the scores are cosines.
    let all = &all
        / all
            .f_norm_scalaropt_dim(2, [1].as_slice(), true)
            .map_err(torch_error)?
            .clamp_min(1e-12);
    let mut widened = 0;
    for start in (0..q).step_by(QUERY_BATCH as usize) {
        let len = QUERY_BATCH.min(q - start);
        let batch = all.narrow(0, start, len);
        let (idx, score, w) = top_k(index, &batch, k_eff).map_err(torch_error)?;
        widened += w;
        let idx =
            Vec::<i64>::try_from(idx.to_device(Device::Cpu).flatten(0, -1)).map_err(torch_error)?;
        let score = Vec::<f32>::try_from(score.to_device(Device::Cpu).flatten(0, -1))
            .map_err(torch_error)?;
        for row in 0..len as usize {
            for j in 0..k as usize {
                let at = (start as usize + row) * k as usize + j;
                if (j as i64) < k_eff {
                    out_index[at] = idx[row * k_eff as usize + j];
                    out_score[at] = score[row * k_eff as usize + j];
                } else {
                    out_index[at] = -1;
                    out_score[at] = f32::NAN;
                }
            }
        }
    }
    Ok(SearchAnswered {
        queries: op.queries,
        k: k_eff as u64,
        widened: widened as u64,
    })
}

/// Exact top-k (fp32 scores of the fp16 rows) of unit queries `[B, D]`: coarse candidates for
/// the whole batch, exact rescoring, and a wider candidate set for the queries whose bound is
/// not met (rare: their k-th and (k+64)-th coarse scores lie within the error bound).
/// Returns (row indices [B, k], scores [B, k], how many candidate sets were widened).
fn top_k(
    index: &Index,
    queries: &Tensor,
    k: i64,
) -> Result<(Tensor, Tensor, usize), tch::TchError> {
    let coarse_scores = queries
        .f_to_kind(index.coarse.kind())?
        .f_matmul(&index.coarse.f_tr()?)?;
    let exact_q = queries.f_to_kind(Kind::Float)?;
    let b = queries.size()[0];
    let c = (k + CANDIDATE_MARGIN).min(index.rows);
    let (idx, score, settled) = candidates(index, &coarse_scores, &exact_q, k, c)?;
    let settled = Vec::<bool>::try_from(settled.f_to_device(Device::Cpu)?)?;
    let mut widened = 0;
    let (mut idx_rows, mut score_rows) = (Vec::new(), Vec::new());
    for i in 0..b {
        let (mut row_idx, mut row_score) = (idx.get(i), score.get(i));
        let mut c = c;
        let mut done = settled[i as usize];
        while !done {
            c = (c * 4).min(index.rows);
            widened += 1;
            let (ri, rs, ok) = candidates(
                index,
                &coarse_scores.narrow(0, i, 1),
                &exact_q.narrow(0, i, 1),
                k,
                c,
            )?;
            row_idx = ri.get(0);
            row_score = rs.get(0);
            done = ok.f_int64_value(&[0])? != 0;
        }
        idx_rows.push(row_idx);
        score_rows.push(row_score);
    }
    Ok((
        Tensor::f_stack(&idx_rows, 0)?,
        Tensor::f_stack(&score_rows, 0)?,
        widened,
    ))
}

/// The best `c` rows by coarse score, rescored exactly: (top-k indices [B, k], exact scores
/// [B, k], whether that top-k is provably exact [B]).
fn candidates(
    index: &Index,
    coarse_scores: &Tensor,
    exact_q: &Tensor,
    k: i64,
    c: i64,
) -> Result<(Tensor, Tensor, Tensor), tch::TchError> {
    let b = coarse_scores.size()[0];
    let (coarse_top, cand) = coarse_scores.f_topk(c, 1, true, true)?;
    let rows = index
        .exact
        .f_index_select(0, &cand.f_flatten(0, -1)?)?
        .f_to_kind(Kind::Float)?
        .f_view([b, c, index.dim])?;
    let exact = rows.f_bmm(&exact_q.f_unsqueeze(2)?)?.f_squeeze_dim(2)?;
    let (best, order) = exact.f_topk(k, 1, true, true)?;
    let kth = best.f_narrow(1, k - 1, 1)?.f_squeeze_dim(1)?;
    let cth = coarse_top
        .f_narrow(1, c - 1, 1)?
        .f_squeeze_dim(1)?
        .f_to_kind(Kind::Float)?;
    // A row outside the candidates scores at most cth + error exactly.
    let settled = if c == index.rows {
        Tensor::f_ones([b], (Kind::Bool, kth.device()))?
    } else {
        (cth + index.coarse_error).f_lt_tensor(&kth)?
    };
    Ok((cand.f_gather(1, &order, false)?, best, settled))
}

/// Releases an index.
pub fn free(op: &SearchFree) -> SearchFreed {
    let freed = registry()
        .as_mut()
        .and_then(|m| m.remove(&op.handle))
        .is_some();
    SearchFreed { freed }
}
