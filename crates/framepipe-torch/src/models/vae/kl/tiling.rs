//! The tiling loop behind [`super::AutoencoderKl::encode_tiled`] and
//! [`super::AutoencoderKl::decode_tiled`]: cut the input into overlapping tiles, run each
//! through the model, blend the overlaps linearly and stitch the result, as diffusers'
//! `_tiled_encode` / `tiled_decode` (with `blend_v` / `blend_h`) do.
//!
//! Reference (pinned):
//! https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/autoencoders/autoencoder_kl.py
use tch::Tensor;

use crate::models::vae::{Result, VaeError};

/// diffusers' tiling loop, shared by `_tiled_encode` and `tiled_decode`: `f` maps tiles of
/// `tile_in` input pixels, taken every `tile_in * (1 - overlap)`, to tiles of `tile_out`
/// output pixels, which overlap by `tile_out * overlap` and are blended there.
pub(super) fn run_tiled(
    x: &Tensor,
    tile_in: i64,
    tile_out: i64,
    overlap: f64,
    f: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let err = VaeError::torch;
    let (_, _, h, w) = x.size4().map_err(err("tiled input"))?;
    let step = (tile_in as f64 * (1.0 - overlap)) as i64;
    let blend = (tile_out as f64 * overlap) as i64;
    let row_limit = tile_out - blend;
    if step < 1 || row_limit < 1 {
        return Err(VaeError::Input(format!(
            "tiles of {tile_in} -> {tile_out} with overlap {overlap} leave no tile step"
        )));
    }
    let mut rows: Vec<Vec<Tensor>> = Vec::new();
    for i in (0..h).step_by(step as usize) {
        let mut row = Vec::new();
        for j in (0..w).step_by(step as usize) {
            let t = x
                .f_narrow(2, i, tile_in.min(h - i))
                .and_then(|t| t.f_narrow(3, j, tile_in.min(w - j)))
                .map_err(err("tile"))?;
            row.push(f(&t)?);
        }
        rows.push(row);
    }
    // diffusers blends in place, in this order, so a tile's blended edges feed the blend of
    // its right and lower neighbours; replacing each tile as we go keeps that.
    let mut out_rows = Vec::with_capacity(rows.len());
    for i in 0..rows.len() {
        let mut out_row = Vec::with_capacity(rows[i].len());
        for j in 0..rows[i].len() {
            if i > 0 {
                rows[i][j] = blend_edge(&rows[i - 1][j], &rows[i][j], blend, 2)?;
            }
            if j > 0 {
                rows[i][j] = blend_edge(&rows[i][j - 1], &rows[i][j], blend, 3)?;
            }
            let t = &rows[i][j];
            let (_, _, th, tw) = t.size4().map_err(err("tile"))?;
            out_row.push(
                t.f_narrow(2, 0, row_limit.min(th))
                    .and_then(|t| t.f_narrow(3, 0, row_limit.min(tw)))
                    .map_err(err("tile crop"))?,
            );
        }
        out_rows.push(Tensor::f_cat(&out_row, 3).map_err(err("tile row"))?);
    }
    Tensor::f_cat(&out_rows, 2).map_err(err("tile rows"))
}

/// diffusers' `blend_v` (dim 2) / `blend_h` (dim 3): the first `extent` rows (columns) of `b`
/// fade linearly from `a`'s last ones into `b`'s own.
fn blend_edge(a: &Tensor, b: &Tensor, extent: i64, dim: i64) -> Result<Tensor> {
    let err = VaeError::torch;
    let extent = extent
        .min(a.size()[dim as usize])
        .min(b.size()[dim as usize]);
    if extent <= 0 {
        return Ok(b.shallow_clone());
    }
    // The weights are computed in f64 and rounded once, as diffusers' Python floats are.
    let mut shape = [1i64, 1, 1, 1];
    shape[dim as usize] = extent;
    let wb: Vec<f64> = (0..extent).map(|y| y as f64 / extent as f64).collect();
    let wa: Vec<f64> = wb.iter().map(|w| 1.0 - w).collect();
    let to = |v: &[f64]| {
        Tensor::f_from_slice(v)
            .and_then(|t| t.f_to_kind(b.kind()))
            .and_then(|t| t.f_to_device(b.device()))
            .and_then(|t| t.f_reshape(shape))
    };
    let (wa, wb) = (
        to(&wa).map_err(err("blend"))?,
        to(&wb).map_err(err("blend"))?,
    );
    let a_len = a.size()[dim as usize];
    let b_len = b.size()[dim as usize];
    let a_tail = a
        .f_narrow(dim, a_len - extent, extent)
        .map_err(err("blend"))?;
    let b_head = b.f_narrow(dim, 0, extent).map_err(err("blend"))?;
    let b_rest = b
        .f_narrow(dim, extent, b_len - extent)
        .map_err(err("blend"))?;
    let head = a_tail
        .f_mul(&wa)
        .and_then(|x| b_head.f_mul(&wb).and_then(|y| x.f_add(&y)))
        .map_err(err("blend"))?;
    Tensor::f_cat(&[head, b_rest], dim).map_err(err("blend"))
}
