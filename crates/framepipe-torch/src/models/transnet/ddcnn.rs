//! The convolutional body: three `StackedDDCNNV2` of two `DilatedDCNNV2` blocks each, computed
//! as the reference defines them but laid out for speed (the results agree to float rounding).
//!
//! The reference runs each block as four `Conv3d` branches, a (1,3,3) spatial convolution then
//! a (3,1,1) temporal one at dilation 1, 2, 4 or 8, concatenated, then `BatchNorm3d`. Here:
//! - the four spatial convolutions read the same input with the same kernel shape, so they are
//!   one 2D convolution over all frames with their four weights stacked (4x the output
//!   channels, one large GEMM instead of four);
//! - activations stay channels-last (`[frames, H, W, C]` memory), the layout oneDNN convolves
//!   fastest in: the largest block's merged spatial convolution took 0.14 s channels-last
//!   against 0.18 s as the reference's four Conv3d (PyTorch 2.11 prototype, 2-core EPYC, a
//!   loaded box: indicative only);
//! - a temporal convolution is a 2D convolution over `[windows, C, T, H*W]`, which is the
//!   same channels-last memory seen another way (no copy);
//! - inference BatchNorm is a per-channel affine map, folded into the temporal convolutions'
//!   weights and biases at load.
use tch::{Kind, Tensor};

use super::weights::Checkpoint;
use super::TransNetError;

const DILATIONS: [i64; 4] = [1, 2, 4, 8];
const BATCH_NORM_EPS: f64 = 1e-3;

/// Activations between layers: `[windows * frames, C, H, W]` with channels-last strides.
pub struct Activations {
    pub x: Tensor,
    pub windows: i64,
    pub frames: i64,
}

/// One `DilatedDCNNV2`.
struct DilatedBlock {
    /// `[4 * 2F, C_in, 3, 3]`, channels-last: the four branches' spatial kernels.
    spatial: Tensor,
    /// Per branch: `[F, 2F, 3, 1]` with BatchNorm's scale folded in, BatchNorm's shift, the
    /// dilation.
    temporal: Vec<(Tensor, Tensor, i64)>,
    relu: bool,
}

impl DilatedBlock {
    fn load(
        ck: &mut Checkpoint,
        prefix: &str,
        c_in: i64,
        filters: i64,
        relu: bool,
        kind: Kind,
        device: tch::Device,
    ) -> Result<Self, TransNetError> {
        let mid = 2 * filters;
        let bn = |ck: &mut Checkpoint, name: &str| {
            ck.take(&format!("{prefix}.bn.{name}"), &[4 * filters])
        };
        let (gamma, beta) = (bn(ck, "weight")?, bn(ck, "bias")?);
        let (mean, var) = (bn(ck, "running_mean")?, bn(ck, "running_var")?);
        // y = (x - mean) / sqrt(var + eps) * gamma + beta = x * scale + shift
        let scale = gamma.f_div(&var.f_add_scalar(BATCH_NORM_EPS)?.f_sqrt()?)?;
        let shift = beta.f_sub(&mean.f_mul(&scale)?)?;
        let mut spatial = Vec::with_capacity(4);
        let mut temporal = Vec::with_capacity(4);
        for (i, d) in DILATIONS.iter().enumerate() {
            let branch = format!("{prefix}.Conv3D_{d}.layers");
            let s = ck.take(&format!("{branch}.0.weight"), &[mid, c_in, 1, 3, 3])?;
            spatial.push(s.squeeze_dim(2));
            let t = ck.take(&format!("{branch}.1.weight"), &[filters, mid, 3, 1, 1])?;
            let range = i as i64 * filters;
            let branch_scale = scale.narrow(0, range, filters);
            // [F, 2F, 3, 1, 1] → [F, 2F, 3, 1]: a (3, 1) kernel over (T, H*W).
            let t = t
                .f_squeeze_dim(4)?
                .f_mul(&branch_scale.f_view([filters, 1, 1, 1])?)?;
            temporal.push((
                channels_last(&t).to_kind(kind).to_device(device),
                shift
                    .narrow(0, range, filters)
                    .to_kind(kind)
                    .to_device(device),
                *d,
            ));
        }
        Ok(DilatedBlock {
            spatial: channels_last(&Tensor::cat(&spatial, 0))
                .to_kind(kind)
                .to_device(device),
            temporal,
            relu,
        })
    }

    fn forward(&self, a: &Activations) -> Result<Tensor, TransNetError> {
        let y =
            a.x.f_conv2d(&self.spatial, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1)?;
        let (c, h, w) = (y.size()[1], y.size()[2], y.size()[3]);
        // [W*T, C, H, W] channels-last is [W, T, H*W, C] memory: seen as [W, C, T, H*W].
        let by_time = y
            .f_permute([0, 2, 3, 1])?
            .f_reshape([a.windows, a.frames, h * w, c])?
            .f_permute([0, 3, 1, 2])?;
        let mid = c / 4;
        let mut branches = Vec::with_capacity(4);
        for (i, (weight, bias, d)) in self.temporal.iter().enumerate() {
            let input = by_time.f_narrow(1, i as i64 * mid, mid)?;
            branches.push(input.f_conv2d(weight, Some(bias), [1, 1], [*d, 0], [*d, 1], 1)?);
        }
        let mut z = Tensor::f_cat(&branches, 1)?;
        if self.relu {
            z = z.f_relu()?;
        }
        let out_c = z.size()[1];
        Ok(z.f_permute([0, 2, 3, 1])?
            .f_reshape([a.windows * a.frames, h, w, out_c])?
            .f_permute([0, 3, 1, 2])?)
    }
}

/// One `StackedDDCNNV2`: two blocks (the last without ReLU), ReLU, the first block's output
/// added back, 2x2 spatial average pooling.
pub struct StackedBlocks {
    blocks: Vec<DilatedBlock>,
}

impl StackedBlocks {
    pub fn load(
        ck: &mut Checkpoint,
        index: usize,
        c_in: i64,
        filters: i64,
        kind: Kind,
        device: tch::Device,
    ) -> Result<Self, TransNetError> {
        let first = DilatedBlock::load(
            ck,
            &format!("SDDCNN.{index}.DDCNN.0"),
            c_in,
            filters,
            true,
            kind,
            device,
        )?;
        let second = DilatedBlock::load(
            ck,
            &format!("SDDCNN.{index}.DDCNN.1"),
            4 * filters,
            filters,
            false,
            kind,
            device,
        )?;
        Ok(StackedBlocks {
            blocks: vec![first, second],
        })
    }

    pub fn forward(&self, a: &Activations) -> Result<Activations, TransNetError> {
        let shortcut = self.blocks[0].forward(a)?;
        let step = Activations {
            x: shortcut.shallow_clone(),
            windows: a.windows,
            frames: a.frames,
        };
        let x = self.blocks[1].forward(&step)?.f_relu()?.f_add(&shortcut)?;
        Ok(Activations {
            x: x.f_avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None)?,
            windows: a.windows,
            frames: a.frames,
        })
    }
}

/// `t` (4D) with channels-last strides, the same values.
pub fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}
