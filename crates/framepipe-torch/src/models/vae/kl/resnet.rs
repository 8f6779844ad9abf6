//! The VAE's ResNet block: diffusers' `ResnetBlock2D` without a time embedding, two
//! GroupNorm+SiLU+3x3-conv stages and a residual (through a 1x1 conv when the channel count
//! changes).
//!
//! Reference (pinned):
//! https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/resnet.py (ResnetBlock2D)
use tch::{nn, Tensor};

use super::NORM_EPS;
use crate::models::vae::{conv2d, Conv2d, Forward, GroupNorm, Result, VaeError};

/// `ResnetBlock2D` without time embedding, as the VAE uses it.
#[derive(Debug)]
pub(super) struct ResnetBlock2D {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
}

impl ResnetBlock2D {
    pub(super) fn new(p: nn::Path, c_in: i64, c_out: i64, groups: i64) -> Result<Self> {
        Ok(Self {
            norm1: GroupNorm::new(&p / "norm1", groups, c_in, NORM_EPS)?,
            conv1: conv2d(&p / "conv1", c_in, c_out, 3, 1, 1, true)?,
            norm2: GroupNorm::new(&p / "norm2", groups, c_out, NORM_EPS)?,
            conv2: conv2d(&p / "conv2", c_out, c_out, 3, 1, 1, true)?,
            conv_shortcut: if c_in != c_out {
                Some(conv2d(&p / "conv_shortcut", c_in, c_out, 1, 1, 0, true)?)
            } else {
                None
            },
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Reassigned, not shadowed: a shadowed tensor stays alive to the end of the scope, which
        // would hold four full-size activations of the batch where PyTorch holds two.
        let mut h = self.norm1.forward_silu(x)?;
        h = self.conv1.run(&h)?;
        h = self.norm2.forward_silu(&h)?;
        h = self.conv2.run(&h)?;
        // In place: `h` is this block's own tensor, and at full resolution one more activation
        // of the batch is what decides whether a 1080p batch fits on the GPU.
        match &self.conv_shortcut {
            Some(c) => h.f_add_(&c.run(x)?),
            None => h.f_add_(x),
        }
        .map_err(VaeError::torch("resnet residual"))
    }
}
