//! The mid-block self-attention of the VAE's encoder and decoder: GroupNorm, then one head
//! over all `H*W` positions through libtorch's fused scaled-dot-product attention, and a
//! residual.
//!
//! Reference (pinned):
//! https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/attention_processor.py
//! (`Attention` with `AttnProcessor2_0`)
use tch::{nn, Tensor};

use super::NORM_EPS;
use crate::models::vae::{linear, Forward, GroupNorm, Linear, Result, VaeError};

/// The mid-block self-attention: one head over all `H*W` positions (`attention_head_dim` is
/// the channel count in the VAE).
/// Reference: https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/attention_processor.py
/// (`Attention` with `AttnProcessor2_0`, residual connection, rescale 1).
#[derive(Debug)]
pub(super) struct Attention {
    group_norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
}

impl Attention {
    pub(super) fn new(p: nn::Path, channels: i64, groups: i64) -> Result<Self> {
        Ok(Self {
            group_norm: GroupNorm::new(&p / "group_norm", groups, channels, NORM_EPS)?,
            to_q: linear(&p / "to_q", channels, channels)?,
            to_k: linear(&p / "to_k", channels, channels)?,
            to_v: linear(&p / "to_v", channels, channels)?,
            to_out: linear(&p / "to_out" / 0, channels, channels)?,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let err = VaeError::torch;
        let (n, c, h, w) = x.size4().map_err(err("attention input"))?;
        let tokens = self
            .group_norm
            .forward(x)?
            .f_view([n, c, h * w])
            .and_then(|t| t.f_transpose(1, 2))
            .map_err(err("attention tokens"))?;
        // [N, 1 head, HW, C]: scaled_dot_product_attention picks a fused kernel (flash /
        // memory-efficient), so the HW x HW matrix (14,400^2 at 720p) is never materialized.
        let heads = |t: Tensor| t.f_unsqueeze(1).map_err(err("attention heads"));
        let q = heads(self.to_q.run(&tokens)?)?;
        let k = heads(self.to_k.run(&tokens)?)?;
        let v = heads(self.to_v.run(&tokens)?)?;
        let out = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<Tensor>,
            0.0,
            false,
            None,
            false,
        )
        .and_then(|t| t.f_squeeze_dim(1))
        .map_err(err("attention scaled_dot_product_attention"))?;
        self.to_out
            .run(&out)?
            .f_transpose(1, 2)
            .and_then(|t| t.f_reshape([n, c, h, w]))
            .and_then(|t| t.f_add(x))
            .map_err(err("attention output"))
    }
}
