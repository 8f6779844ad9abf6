//! The pre-norm transformer stack both CLIP towers share (`*.encoder.layers.N.*`), built from
//! [`crate::nn`]'s `Linear` and `LayerNorm`.
//!
//! Every forward uses tch's fallible `f_*` calls, so a shape or device mistake comes back as an
//! error instead of a panic inside a pipeline thread.
//!
//! Reference (pinned): `CLIPAttention`, `CLIPMLP`, `CLIPEncoderLayer`, `CLIPEncoder` in
//! <https://github.com/huggingface/transformers/blob/v5.17.0/src/transformers/models/clip/modeling_clip.py>
use tch::{nn, TchError, Tensor};

use super::config::{Activation, EncoderShape};
use crate::nn::{LayerNorm, Linear};

/// Weights of every Linear: init only matters for tests that run random models, where small
/// normal weights keep activations finite through 24 layers.
pub(crate) const LINEAR_INIT: nn::Init = nn::Init::Randn {
    mean: 0.,
    stdev: 0.02,
};

/// `self_attn`: multi-head attention through libtorch's fused scaled-dot-product attention
/// (flash / memory-efficient kernels on CUDA), scale `head_dim^-0.5` as in CLIP.
#[derive(Debug)]
struct ClipAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    num_heads: i64,
    head_dim: i64,
}

impl ClipAttention {
    fn new(p: nn::Path, shape: &EncoderShape) -> Result<Self, TchError> {
        let d = shape.hidden_size;
        Ok(Self {
            q_proj: Linear::new(&p / "q_proj", d, d, true, LINEAR_INIT)?,
            k_proj: Linear::new(&p / "k_proj", d, d, true, LINEAR_INIT)?,
            v_proj: Linear::new(&p / "v_proj", d, d, true, LINEAR_INIT)?,
            out_proj: Linear::new(&p / "out_proj", d, d, true, LINEAR_INIT)?,
            num_heads: shape.num_attention_heads,
            head_dim: d / shape.num_attention_heads,
        })
    }

    /// `xs` [N, L, D]; `causal` for the text tower, whose pooled token must only see its prefix.
    fn forward(&self, xs: &Tensor, causal: bool) -> Result<Tensor, TchError> {
        let (n, l, d) = xs.size3()?;
        let heads = |t: Tensor| -> Result<Tensor, TchError> {
            t.f_view([n, l, self.num_heads, self.head_dim])?
                .f_transpose(1, 2)
        };
        let q = heads(self.q_proj.forward(xs)?)?;
        let k = heads(self.k_proj.forward(xs)?)?;
        let v = heads(self.v_proj.forward(xs)?)?;
        let scale = (self.head_dim as f64).powf(-0.5);
        let attn = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<Tensor>,
            0.0,
            causal,
            scale,
            false,
        )?;
        let attn = attn.f_transpose(1, 2)?.f_reshape([n, l, d])?;
        self.out_proj.forward(&attn)
    }
}

/// `mlp`: fc1, activation, fc2.
#[derive(Debug)]
struct ClipMlp {
    fc1: Linear,
    fc2: Linear,
    activation: Activation,
}

impl ClipMlp {
    fn new(p: nn::Path, shape: &EncoderShape) -> Result<Self, TchError> {
        let (d, wide) = (shape.hidden_size, shape.intermediate_size);
        Ok(Self {
            fc1: Linear::new(&p / "fc1", d, wide, true, LINEAR_INIT)?,
            fc2: Linear::new(&p / "fc2", wide, d, true, LINEAR_INIT)?,
            activation: shape.activation,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        let h = self.fc1.forward(xs)?;
        let h = match self.activation {
            Activation::QuickGelu => h.f_mul(&h.f_mul_scalar(1.702)?.f_sigmoid()?)?,
            Activation::Gelu => h.f_gelu("none")?,
            Activation::GeluTanh => h.f_gelu("tanh")?,
        };
        self.fc2.forward(&h)
    }
}

/// `encoder.layers.N`: pre-norm attention and MLP, each with a residual.
#[derive(Debug)]
struct ClipEncoderLayer {
    self_attn: ClipAttention,
    layer_norm1: LayerNorm,
    mlp: ClipMlp,
    layer_norm2: LayerNorm,
}

impl ClipEncoderLayer {
    fn new(p: nn::Path, shape: &EncoderShape) -> Result<Self, TchError> {
        let eps = shape.layer_norm_eps;
        Ok(Self {
            self_attn: ClipAttention::new(&p / "self_attn", shape)?,
            layer_norm1: LayerNorm::new(&p / "layer_norm1", shape.hidden_size, eps)?,
            mlp: ClipMlp::new(&p / "mlp", shape)?,
            layer_norm2: LayerNorm::new(&p / "layer_norm2", shape.hidden_size, eps)?,
        })
    }

    fn forward(&self, xs: &Tensor, causal: bool) -> Result<Tensor, TchError> {
        let h = self
            .self_attn
            .forward(&self.layer_norm1.forward(xs)?, causal)?;
        let xs = xs.f_add(&h)?;
        let h = self.mlp.forward(&self.layer_norm2.forward(&xs)?)?;
        xs.f_add(&h)
    }
}

/// `encoder`: `layers.0` .. `layers.{num_hidden_layers - 1}`.
#[derive(Debug)]
pub(crate) struct ClipEncoder {
    layers: Vec<ClipEncoderLayer>,
}

impl ClipEncoder {
    pub fn new(p: nn::Path, shape: &EncoderShape) -> Result<Self, TchError> {
        let p = &p / "layers";
        let layers = (0..shape.num_hidden_layers)
            .map(|i| ClipEncoderLayer::new(&p / i, shape))
            .collect::<Result<_, _>>()?;
        Ok(Self { layers })
    }

    pub fn forward(&self, xs: &Tensor, causal: bool) -> Result<Tensor, TchError> {
        let mut xs = xs.shallow_clone();
        for layer in &self.layers {
            xs = layer.forward(&xs, causal)?;
        }
        Ok(xs)
    }
}
