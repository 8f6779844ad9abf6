//! VAEs in tch: diffusers `AutoencoderKL` ([`kl`]) and the TAESD family ([`tiny`]).
//!
//! Both build their layer tree on a `VarStore` whose variable names are the checkpoint's tensor
//! names, then copy the weights in with [`crate::runtime::weights::load_into`], so a missing or misshapen
//! tensor is reported by name with both shapes. The plain layers (Conv2d, Linear) are
//! [`crate::nn`]'s, created here with zero weights (`conv2d`, `linear`) and run through
//! `Forward::run`, which makes their errors `VaeError`s naming the layer; GroupNorm, with its
//! choice between libtorch's kernel and a split form, is the VAEs' own and lives here. Forwards
//! use tch's fallible `f_*` calls: a stage must turn a bad frame size or an out-of-memory into an
//! error that names the layer, never into an abort.
//!
//! Batch-first everywhere (`[N, C, H, W]`); the dtype is the model's (`kind` at load time), so
//! the same code runs fp32 on CPU and fp16 on CUDA.
pub mod kl;
pub mod tiny;

use std::path::PathBuf;

use tch::{nn, Kind, TchError, Tensor};

pub use kl::{AutoencoderKl, KlConfig, Tiling};
pub use tiny::{TinyAutoencoder, TinyConfig};

pub(crate) use crate::nn::{Conv2d, Linear};
use crate::runtime::weights::WeightsError;

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

/// A [`Conv2d`] with zero weights (the loader overwrites them), its creation error named by
/// the layer.
pub(crate) fn conv2d(
    p: nn::Path,
    c_in: i64,
    c_out: i64,
    kernel: i64,
    stride: i64,
    padding: i64,
    bias: bool,
) -> Result<Conv2d> {
    let name = p.path("weight");
    Conv2d::new(
        p,
        c_in,
        c_out,
        kernel,
        stride,
        padding,
        bias,
        nn::Init::Const(0.),
    )
    .map_err(VaeError::torch(name))
}

/// A [`Linear`] with a bias and zero weights (the loader overwrites them), its creation error
/// named by the layer.
pub(crate) fn linear(p: nn::Path, d_in: i64, d_out: i64) -> Result<Linear> {
    let name = p.path("weight");
    Linear::new(p, d_in, d_out, true, nn::Init::Const(0.)).map_err(VaeError::torch(name))
}

/// The shared layers' forward ([`crate::nn`]) as the VAEs call it: a libtorch error becomes a
/// [`VaeError`] that names the layer.
pub(crate) trait Forward {
    fn run(&self, x: &Tensor) -> Result<Tensor>;
}

impl Forward for Conv2d {
    fn run(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x).map_err(VaeError::torch(self.name()))
    }
}

impl Forward for Linear {
    fn run(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x).map_err(VaeError::torch(self.name()))
    }
}

/// `torch.nn.GroupNorm` with affine parameters.
#[derive(Debug)]
pub struct GroupNorm {
    name: String,
    groups: i64,
    eps: f64,
    weight: Tensor,
    bias: Tensor,
}

impl GroupNorm {
    /// A GroupNorm outside any model (benches): `weight` and `bias` hold one value per channel.
    pub fn from_parts(groups: i64, weight: Tensor, bias: Tensor, eps: f64) -> Result<Self> {
        if bias.size() != weight.size() {
            return Err(VaeError::Input(format!(
                "group_norm: bias {:?} for weight {:?}",
                bias.size(),
                weight.size()
            )));
        }
        check_groups(
            "group_norm",
            groups,
            weight.size().first().copied().unwrap_or(0),
        )?;
        Ok(Self {
            name: "group_norm".into(),
            groups,
            eps,
            weight,
            bias,
        })
    }

    pub(crate) fn new(p: nn::Path, groups: i64, channels: i64, eps: f64) -> Result<Self> {
        check_groups(&p.path("weight"), groups, channels)?;
        Ok(Self {
            name: p.path("weight").trim_end_matches(".weight").to_string(),
            groups,
            eps,
            weight: var(&p, "weight", &[channels])?,
            bias: var(&p, "bias", &[channels])?,
        })
    }

    /// `group_norm(x)`, by the path [`GroupNormPath::for_input`] picks for `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match GroupNormPath::for_input(x) {
            GroupNormPath::Native => self.native(x),
            GroupNormPath::Split => self.split(x, false),
        }
    }

    /// `silu(group_norm(x))`, what every ResNet block and both `conv_norm_out`s compute, the
    /// SiLU in place.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        match GroupNormPath::for_input(x) {
            GroupNormPath::Native => self
                .native(x)?
                .f_silu_()
                .map_err(VaeError::torch(format!("{} silu", self.name))),
            GroupNormPath::Split => self.split(x, true),
        }
    }

    fn native(&self, x: &Tensor) -> Result<Tensor> {
        x.f_group_norm(
            self.groups,
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )
        .map_err(VaeError::torch(&self.name))
    }

    /// GroupNorm as statistics per (frame, group) plus one fused multiply-add per element (and
    /// SiLU in place when `silu`). Statistics and the per-channel scale and shift are fp32
    /// whatever `x`'s dtype (as libtorch's kernels keep them); only the output is stored in
    /// `x`'s dtype. Why it exists: see [`GroupNormPath::for_input`].
    fn split(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        // `out=` kernels refuse autograd; these models only ever run inference.
        tch::no_grad(|| self.split_no_grad(x, silu))
    }

    fn split_no_grad(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        let err = || VaeError::torch(format!("{} (split)", self.name));
        let size = x.size();
        let (n, c) = (size[0], size[1]);
        let g = self.groups;
        let out = x.f_empty_like().map_err(err())?;
        // Per-channel sums of x and x^2 over H and W, accumulated in fp32 whatever x's dtype.
        // Reductions that keep the channel axis are the fast ones in both layouts (on the CPU a
        // channels-last reduction over [C/G, H, W], or Welford's var_mean in any layout, ran
        // 4x slower than libtorch's whole GroupNorm); the groups are combined afterwards.
        let hw = [2i64, 3];
        let sum = x
            .f_sum_dim_intlist(hw.as_slice(), false, Kind::Float)
            .map_err(err())?;
        let sum_squares = if x.device().is_cuda() {
            // No fp32 copy of x on the GPU: the norm reads x once.
            x.f_norm_scalaropt_dim_dtype(2, hw.as_slice(), false, Kind::Float)
                .map_err(err())?
                .square()
        } else {
            // The CPU's channels-last norm is slow; x^2 goes through `out` (overwritten below).
            x.f_square_out(&out)
                .and_then(|sq| sq.f_sum_dim_intlist(hw.as_slice(), false, Kind::Float))
                .map_err(err())?
        };
        // Group moments in fp64 from the [N, C] sums: E[x] and E[x^2] - E[x]^2 over each group.
        let count = (x.numel() as i64 / (n * g)) as f64;
        let moment = |t: Tensor| {
            t.to_kind(Kind::Double).view([n, g, c / g]).sum_dim_intlist(
                [2i64].as_slice(),
                false,
                Kind::Double,
            ) / count
        };
        let mean = moment(sum);
        let var = (moment(sum_squares) - mean.square()).clamp_min(0.0);
        let (mean, var) = (mean.to_kind(Kind::Float), var.to_kind(Kind::Float));
        let rstd = (var + self.eps).rsqrt().view([n, g, 1]);
        let weight = self.weight.to_kind(Kind::Float).view([1, g, c / g]);
        let bias = self.bias.to_kind(Kind::Float).view([1, g, c / g]);
        let scale = &rstd * weight;
        let shift = bias - mean.view([n, g, 1]) * &scale;
        let (scale, shift) = (scale.view([n, c, 1, 1]), shift.view([n, c, 1, 1]));
        // One pass over `x`: out = shift + x * scale, computed in fp32 and stored in x's dtype.
        let mut out = shift.f_addcmul_out(&out, x, &scale).map_err(err())?;
        if silu {
            out.f_silu_().map_err(err())
        } else {
            Ok(out)
        }
    }
}

/// `channels` must split into `groups` equal groups.
fn check_groups(name: &str, groups: i64, channels: i64) -> Result<()> {
    if groups <= 0 || channels % groups != 0 {
        return Err(VaeError::Input(format!(
            "{name}: {channels} channels cannot form {groups} groups"
        )));
    }
    Ok(())
}

/// How [`GroupNorm`] computes: libtorch's `group_norm` or the split form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupNormPath {
    Native,
    Split,
}

/// 0: not forced yet decided by the environment, 1: native, 2: split, 3: neither forced.
static FORCED_PATH: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

impl GroupNormPath {
    /// The path for an input `x`:
    /// - CUDA: split. libtorch's CUDA kernel reduces each (frame, group) in one thread block,
    ///   32 blocks for a 720p frame, so it reads 128x720x1280 values at a fraction of the
    ///   card's bandwidth (3.3 ms on the H100, ../shared/docs/gpu.md); the split form's
    ///   reductions are spread over the whole GPU.
    /// - CPU, fp32 channels-last `x` (what RGB24 frames give, and convolutions keep): split.
    ///   libtorch's channels-last CPU kernel loses precision over large groups: 1.2e-3 max abs
    ///   error on a unit-scale GroupNorm output against fp64 where the split form stays at
    ///   1.4e-6 (tests below), 2e-3 to 3.4e-3 on 720p latents of magnitude 0.7. The SD VAE
    ///   encoder costs the same either way (`benches/group_norm.rs`: 1.001).
    /// - CPU otherwise: native. NCHW fp32 is accurate there and one pass (the split form costs
    ///   1.35x on a GroupNorm alone); in bf16 the output's own rounding (4e-3) hides the
    ///   channels-last error, and the split form's bf16 reductions are 5-6x slower.
    ///
    /// The environment variable `FRAMEPIPE_GROUP_NORM=native|split` overrides all of it, so the
    /// GPU check can time one against the other in the same build; [`GroupNormPath::force`]
    /// does the same for benches and tests.
    pub fn for_input(x: &Tensor) -> Self {
        Self::choose(x.device(), x.kind(), x.is_contiguous())
    }

    /// [`GroupNormPath::for_input`] from an input's device, dtype and whether it is
    /// NCHW-contiguous.
    pub fn choose(device: tch::Device, kind: Kind, contiguous: bool) -> Self {
        match Self::forced() {
            Some(path) => path,
            None if device.is_cuda() => GroupNormPath::Split,
            None if kind == Kind::Float && !contiguous => GroupNormPath::Split,
            None => GroupNormPath::Native,
        }
    }

    /// The path set by [`GroupNormPath::force`] or the environment, if any.
    fn forced() -> Option<Self> {
        use std::sync::atomic::Ordering;
        let mut forced = FORCED_PATH.load(Ordering::Relaxed);
        if forced == 0 {
            forced = match std::env::var("FRAMEPIPE_GROUP_NORM").ok().as_deref() {
                Some("native") => 1,
                Some("split") => 2,
                _ => 3,
            };
            // A `force` that ran meanwhile wins.
            let _ = FORCED_PATH.compare_exchange(0, forced, Ordering::Relaxed, Ordering::Relaxed);
            forced = FORCED_PATH.load(Ordering::Relaxed);
        }
        match forced {
            1 => Some(GroupNormPath::Native),
            2 => Some(GroupNormPath::Split),
            _ => None,
        }
    }

    /// Makes every later [`GroupNorm`] forward in the process take `path` (`None`: the defaults
    /// of [`GroupNormPath::for_input`] again, ignoring the environment).
    pub fn force(path: Option<GroupNormPath>) {
        let code = match path {
            Some(GroupNormPath::Native) => 1,
            Some(GroupNormPath::Split) => 2,
            None => 3,
        };
        FORCED_PATH.store(code, std::sync::atomic::Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// A GroupNorm with non-trivial affine parameters, and activations whose groups have
    /// different means and spreads (mean up to 8x the spread, where E[x^2] - E[x]^2 loses the
    /// most).
    fn norm_and_input(kind: Kind) -> (GroupNorm, Tensor) {
        tch::manual_seed(7);
        let (n, c, h, w, groups) = (2, 64, 24, 40, 32);
        let vs = var_store(Device::Cpu, kind).unwrap();
        let mut norm = GroupNorm::new(vs.root() / "norm", groups, c, 1e-6).unwrap();
        tch::no_grad(|| {
            norm.weight
                .copy_(&(Tensor::randn([c], (Kind::Float, Device::Cpu)) * 0.5 + 1.0));
            norm.bias
                .copy_(&(Tensor::randn([c], (Kind::Float, Device::Cpu)) * 0.3));
        });
        let spread = Tensor::rand([n, c, 1, 1], (Kind::Float, Device::Cpu)) * 2.0 + 0.1;
        let offset = (Tensor::rand([n, c, 1, 1], (Kind::Float, Device::Cpu)) - 0.5) * 8.0 * &spread;
        let x = Tensor::randn([n, c, h, w], (Kind::Float, Device::Cpu)) * spread + offset;
        (norm, x.to_kind(kind))
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a.to_kind(Kind::Float) - b.to_kind(Kind::Float))
            .abs()
            .max()
            .double_value(&[])
    }

    #[test]
    fn split_group_norm_silu_equals_libtorch_in_fp32() {
        let (norm, x) = norm_and_input(Kind::Float);
        let native = norm.forward(&x).unwrap().silu();
        let split = norm.split(&x, true).unwrap();
        assert_eq!(split.kind(), Kind::Float);
        assert_eq!(split.size(), x.size());
        let d = max_diff(&native, &split);
        assert!(d < 2e-5, "max abs diff {d}");
    }

    /// With bf16 activations (the CUDA path runs fp16 the same way), the split form is as close
    /// to an fp32 computation on the same inputs as libtorch's own bf16 GroupNorm is.
    #[test]
    fn split_group_norm_silu_in_bf16_is_as_accurate_as_libtorchs() {
        let (norm, x) = norm_and_input(Kind::BFloat16);
        let vs = var_store(Device::Cpu, Kind::Float).unwrap();
        let mut exact_norm = GroupNorm::new(vs.root() / "norm", norm.groups, 64, norm.eps).unwrap();
        tch::no_grad(|| {
            exact_norm.weight.copy_(&norm.weight);
            exact_norm.bias.copy_(&norm.bias);
        });
        let exact = exact_norm.forward(&x.to_kind(Kind::Float)).unwrap().silu();
        let native = norm.forward(&x).unwrap().silu();
        let split = norm.split(&x, true).unwrap();
        assert_eq!(split.kind(), Kind::BFloat16);
        let (d_native, d_split) = (max_diff(&exact, &native), max_diff(&exact, &split));
        // bf16 keeps 8 bits: outputs of magnitude ~4 round by up to 1.6e-2.
        assert!(
            d_split <= d_native.max(2e-2) * 1.5,
            "split {d_split} vs libtorch {d_native}"
        );
    }

    #[test]
    fn the_path_follows_device_and_layout() {
        if std::env::var_os("FRAMEPIPE_GROUP_NORM").is_some() {
            return; // forced for a measurement
        }
        let nchw = Tensor::zeros([1, 8, 4, 4], (Kind::Float, Device::Cpu));
        assert_eq!(GroupNormPath::for_input(&nchw), GroupNormPath::Native);
        let channels_last =
            Tensor::zeros([1, 4, 4, 8], (Kind::Float, Device::Cpu)).permute([0, 3, 1, 2]);
        assert_eq!(
            GroupNormPath::for_input(&channels_last),
            GroupNormPath::Split
        );
        assert_eq!(
            GroupNormPath::for_input(&channels_last.to_kind(Kind::BFloat16)),
            GroupNormPath::Native
        );
        assert_eq!(
            GroupNormPath::choose(Device::Cuda(0), Kind::Half, true),
            GroupNormPath::Split
        );
    }

    /// Channels-last activations (RGB24 frames through the convolutions) with large groups:
    /// both `forward` and `forward_silu` stay within fp32 rounding of an fp64 computation.
    /// libtorch's own channels-last CPU kernel printed for comparison (it is what the split form
    /// replaces there).
    #[test]
    fn channels_last_group_norm_is_accurate() {
        if std::env::var_os("FRAMEPIPE_GROUP_NORM").is_some() {
            return;
        }
        let (norm, x) = norm_and_input(Kind::Float);
        let (n, c) = (2, 64);
        let big = x.repeat([1, 1, 8, 8]); // 64 channels of 192x320, 2 channels per group
        let channels_last = big.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        assert!(!channels_last.is_contiguous());
        let vs = var_store(Device::Cpu, Kind::Double).unwrap();
        let mut exact = GroupNorm::new(vs.root() / "norm", norm.groups, c, norm.eps).unwrap();
        tch::no_grad(|| {
            exact.weight.copy_(&norm.weight);
            exact.bias.copy_(&norm.bias);
        });
        let want = exact.native(&big.to_kind(Kind::Double)).unwrap();
        let got = norm.forward(&channels_last).unwrap();
        let got_silu = norm.forward_silu(&channels_last).unwrap();
        let libtorch = norm.native(&channels_last).unwrap();
        let (d, d_silu, d_libtorch) = (
            max_diff(&want, &got),
            max_diff(&want.silu(), &got_silu),
            max_diff(&want, &libtorch),
        );
        eprintln!("channels-last GroupNorm vs fp64: ours {d:.2e} (with SiLU {d_silu:.2e}), libtorch's kernel {d_libtorch:.2e}; {n}x{c} frames");
        assert!(d < 2e-5 && d_silu < 2e-5, "{d} {d_silu}");
    }
}
