//! The plain layers the models share: [`Linear`], [`LayerNorm`], [`Conv2d`], in the layout of
//! their `torch.nn` namesakes.
//!
//! Each layer creates its variables on an `nn::Path` under the checkpoint's names (`weight`,
//! `bias`), so a model built from them loads a checkpoint with
//! [`crate::runtime::weights::load_into`] as is. Construction and forward are fallible: they
//! return libtorch's error (out of memory on the device, a shape mismatch) instead of panicking,
//! and each model turns it into its own error type ([`Linear::name`] and friends give the layer's
//! variable path for the message).
//!
//! The weight's initial value is the caller's choice (`init`): the VAEs create zeros that the
//! loader overwrites, CLIP small random weights for its random-model tests and benches. Biases
//! start at zero, LayerNorm's scale at one.
//!
//! The norm that needs more than one libtorch call, the VAEs' GroupNorm with its
//! NCHW/split path choice, lives with the VAEs (`models::vae`).
use tch::nn::{Init, Path};
use tch::{TchError, Tensor};

/// The layer's name for messages: its variables' path without the variable (`encoder.conv_in`
/// for `encoder.conv_in.weight`).
fn layer_name(p: &Path) -> String {
    p.path("weight").trim_end_matches(".weight").to_string()
}

/// `torch.nn.Linear` over the last dimension: `weight` [out, in] and an optional `bias` [out].
#[derive(Debug)]
pub struct Linear {
    name: String,
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// `weight` from `init`, then (with `bias`) a zero `bias`, created in that order.
    pub fn new(p: Path, d_in: i64, d_out: i64, bias: bool, init: Init) -> Result<Self, TchError> {
        let weight = p.f_var("weight", &[d_out, d_in], init)?;
        let bias = zero_bias(&p, d_out, bias)?;
        Ok(Self {
            name: layer_name(&p),
            weight,
            bias,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_linear(&self.weight, self.bias.as_ref())
    }

    /// The variables' path (`mid_block.attentions.0.to_q`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `torch.nn.LayerNorm` over the last dimension: `weight` and `bias` [dim], created as one and
/// zero.
#[derive(Debug)]
pub struct LayerNorm {
    name: String,
    weight: Tensor,
    bias: Tensor,
    dim: i64,
    eps: f64,
}

impl LayerNorm {
    pub fn new(p: Path, dim: i64, eps: f64) -> Result<Self, TchError> {
        Ok(Self {
            weight: p.f_var("weight", &[dim], Init::Const(1.))?,
            bias: p.f_var("bias", &[dim], Init::Const(0.))?,
            name: layer_name(&p),
            dim,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_layer_norm(
            [self.dim],
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )
    }

    /// The variables' path (`text_model.final_layer_norm`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `torch.nn.Conv2d` with a square kernel, the same stride and zero padding on both axes, no
/// dilation or groups: `weight` [out, in, kernel, kernel] and an optional `bias` [out].
#[derive(Debug)]
pub struct Conv2d {
    name: String,
    weight: Tensor,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
}

impl Conv2d {
    /// `weight` from `init`, then (with `bias`) a zero `bias`, created in that order.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: Path,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
        bias: bool,
        init: Init,
    ) -> Result<Self, TchError> {
        let weight = p.f_var("weight", &[c_out, c_in, kernel, kernel], init)?;
        let bias = zero_bias(&p, c_out, bias)?;
        Ok(Self {
            name: layer_name(&p),
            weight,
            bias,
            stride,
            padding,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_conv2d(
            &self.weight,
            self.bias.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }

    /// The variables' path (`encoder.down_blocks.0.resnets.0.conv1`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A zero `bias` of `n` values when the layer has one (created after its weight, as the
/// checkpoints' variable order has it).
fn zero_bias(p: &Path, n: i64, bias: bool) -> Result<Option<Tensor>, TchError> {
    bias.then(|| p.f_var("bias", &[n], Init::Const(0.)))
        .transpose()
}
