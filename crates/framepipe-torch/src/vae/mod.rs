//! VAEs in tch: diffusers `AutoencoderKL` ([`kl`]) and the TAESD family ([`tiny`]).
//!
//! Both build their layer tree on a `VarStore` whose variable names are the checkpoint's tensor
//! names, then copy the weights in with [`crate::weights::load_into`], so a missing or misshapen
//! tensor is reported by name with both shapes. The layers here are the few primitives both
//! models share. Forwards use tch's fallible `f_*` calls: a stage must turn a bad frame size or
//! an out-of-memory into an error that names the layer, never into an abort.
//!
//! Batch-first everywhere (`[N, C, H, W]`); the dtype is the model's (`kind` at load time), so
//! the same code runs fp32 on CPU and fp16 on CUDA.
pub mod kl;
pub mod tiny;

use std::path::PathBuf;

use tch::{nn, Kind, TchError, Tensor};

pub use kl::{AutoencoderKl, KlConfig, Tiling};
pub use tiny::{TinyAutoencoder, TinyConfig};

use crate::weights::WeightsError;

#[derive(Debug, thiserror::Error)]
pub enum VaeError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("{what}: {source}")]
    Torch {
        what: String,
        #[source]
        source: TchError,
    },
    #[error("{0}")]
    Input(String),
}

impl VaeError {
    pub(crate) fn torch(what: impl Into<String>) -> impl FnOnce(TchError) -> VaeError {
        let what = what.into();
        move |source| VaeError::Torch { what, source }
    }
}

pub type Result<T> = std::result::Result<T, VaeError>;

/// Checks that `x` is a batch of images `[N, channels, H, W]` (shape errors from deep inside a
/// convolution are much harder to read than this one).
pub(crate) fn check_images(x: &Tensor, channels: i64, what: &str) -> Result<()> {
    let size = x.size();
    if size.len() != 4 || size[1] != channels {
        return Err(VaeError::Input(format!(
            "{what}: expected a batch [N, {channels}, H, W], got shape {size:?}"
        )));
    }
    Ok(())
}

/// Creates a variable to be filled by the weight loader; the value does not matter, the
/// loader overwrites every variable or fails.
fn var(p: &nn::Path, name: &str, dims: &[i64]) -> Result<Tensor> {
    p.f_var(name, dims, nn::Init::Const(0.))
        .map_err(VaeError::torch(p.path(name)))
}

/// `torch.nn.Conv2d` (square kernel, zero padding).
#[derive(Debug)]
pub(crate) struct Conv2d {
    name: String,
    weight: Tensor,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
}

impl Conv2d {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
        bias: bool,
    ) -> Result<Self> {
        let weight = var(&p, "weight", &[c_out, c_in, kernel, kernel])?;
        let bias = if bias {
            Some(var(&p, "bias", &[c_out])?)
        } else {
            None
        };
        Ok(Self {
            name: p.path("weight").trim_end_matches(".weight").to_string(),
            weight,
            bias,
            stride,
            padding,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.f_conv2d(
            &self.weight,
            self.bias.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
        .map_err(VaeError::torch(&self.name))
    }
}

/// `torch.nn.GroupNorm` with affine parameters.
#[derive(Debug)]
pub(crate) struct GroupNorm {
    name: String,
    groups: i64,
    eps: f64,
    weight: Tensor,
    bias: Tensor,
}

impl GroupNorm {
    pub(crate) fn new(p: nn::Path, groups: i64, channels: i64, eps: f64) -> Result<Self> {
        if groups <= 0 || channels % groups != 0 {
            return Err(VaeError::Input(format!(
                "{}: {channels} channels cannot form {groups} groups",
                p.path("weight")
            )));
        }
        Ok(Self {
            name: p.path("weight").trim_end_matches(".weight").to_string(),
            groups,
            eps,
            weight: var(&p, "weight", &[channels])?,
            bias: var(&p, "bias", &[channels])?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.f_group_norm(
            self.groups,
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )
        .map_err(VaeError::torch(&self.name))
    }
}

/// `torch.nn.Linear` over the last dimension.
#[derive(Debug)]
pub(crate) struct Linear {
    name: String,
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    pub(crate) fn new(p: nn::Path, d_in: i64, d_out: i64) -> Result<Self> {
        Ok(Self {
            name: p.path("weight").trim_end_matches(".weight").to_string(),
            weight: var(&p, "weight", &[d_out, d_in])?,
            bias: var(&p, "bias", &[d_out])?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.f_linear(&self.weight, Some(&self.bias))
            .map_err(VaeError::torch(&self.name))
    }
}

/// A fresh, empty `VarStore` whose new variables get `kind`: the model is built directly in
/// its compute dtype (no fp32 copy of an fp16 model on the GPU).
pub(crate) fn var_store(device: tch::Device, kind: Kind) -> Result<nn::VarStore> {
    if !matches!(
        kind,
        Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double
    ) {
        return Err(VaeError::Input(format!(
            "VAE weights must be a floating-point kind, got {kind:?}"
        )));
    }
    let mut vs = nn::VarStore::new(device);
    vs.set_kind(kind);
    Ok(vs)
}
