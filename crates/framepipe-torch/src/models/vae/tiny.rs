//! The TAESD family of tiny autoencoders (TAESD, TAESDXL, TAESD3, TAEF1, TAEF2) in tch.
//!
//! Two checkpoint layouts hold the same network, an `nn.Sequential` each for encoder and
//! decoder:
//! - TAESD's native files (`taesd_encoder.safetensors`, ...): tensor names are the Sequential's
//!   indices (`0.weight`, `1.conv.0.weight`, `1.skip.weight`, `12.pool.0.weight`). The latent
//!   channel count (4, 16 or 32) and the taef2 mid-block "pool" branch are read off the weights.
//! - diffusers' `AutoencoderTiny` folder (`encoder.layers.N...`, `decoder.layers.N...` plus a
//!   config.json). diffusers applies the decoder's input clamp outside its Sequential, so its
//!   decoder indices are the native ones minus one.
//!
//! Images go in and come out in [0, 1] (TAESD's convention, not the [-1, 1] of the KL VAE and
//! of diffusers' `AutoencoderTiny` boundary); the decoder output is not clamped.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::{nn, Device, Kind, Tensor};

use super::{check_images, conv2d, var_store, Conv2d, Forward, GroupNorm, Result, VaeError};
use crate::runtime::weights;

/// diffusers' `AutoencoderTiny` config.json (permissive; defaults as diffusers v0.36.0). The
/// native layout is described by the same struct: 64 channels, blocks (1,3,3,3)/(3,3,3,1).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TinyConfig {
    pub in_channels: i64,
    pub out_channels: i64,
    pub encoder_block_out_channels: Vec<i64>,
    pub decoder_block_out_channels: Vec<i64>,
    pub act_fn: String,
    pub upsample_fn: String,
    pub latent_channels: i64,
    pub upsampling_scaling_factor: i64,
    pub num_encoder_blocks: Vec<i64>,
    pub num_decoder_blocks: Vec<i64>,
    pub scaling_factor: f64,
    pub shift_factor: f64,
    /// taef2's GroupNorm "pool" branch in the blocks nearest the latent (not a diffusers key:
    /// set from the weights).
    #[serde(skip)]
    pub midblock_pool: bool,
}

impl Default for TinyConfig {
    fn default() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            encoder_block_out_channels: vec![64; 4],
            decoder_block_out_channels: vec![64; 4],
            act_fn: "relu".into(),
            upsample_fn: "nearest".into(),
            latent_channels: 4,
            upsampling_scaling_factor: 2,
            num_encoder_blocks: vec![1, 3, 3, 3],
            num_decoder_blocks: vec![3, 3, 3, 1],
            scaling_factor: 1.0,
            shift_factor: 0.0,
            midblock_pool: false,
        }
    }
}

impl TinyConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.encoder_block_out_channels.len() != self.num_encoder_blocks.len()
            || self.encoder_block_out_channels.is_empty()
        {
            return Err(format!(
                "encoder_block_out_channels {:?} and num_encoder_blocks {:?} must be non-empty and of equal length",
                self.encoder_block_out_channels, self.num_encoder_blocks
            ));
        }
        if self.decoder_block_out_channels.len() != self.num_decoder_blocks.len()
            || self.decoder_block_out_channels.is_empty()
        {
            return Err(format!(
                "decoder_block_out_channels {:?} and num_decoder_blocks {:?} must be non-empty and of equal length",
                self.decoder_block_out_channels, self.num_decoder_blocks
            ));
        }
        if self.upsample_fn != "nearest" {
            return Err(format!(
                "upsample_fn is {:?}, only \"nearest\" is supported",
                self.upsample_fn
            ));
        }
        Activation::parse(&self.act_fn)?;
        if self.scaling_factor == 0.0 {
            return Err("scaling_factor is 0".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Activation {
    Relu,
    Silu,
    Gelu,
}

impl Activation {
    fn parse(name: &str) -> std::result::Result<Self, String> {
        match name {
            "relu" => Ok(Self::Relu),
            "silu" | "swish" => Ok(Self::Silu),
            "gelu" => Ok(Self::Gelu),
            other => Err(format!(
                "act_fn is {other:?}, expected one of \"relu\", \"silu\", \"gelu\""
            )),
        }
    }

    fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Relu => x.f_relu(),
            Self::Silu => x.f_silu(),
            Self::Gelu => x.f_gelu("none"),
        }
        .map_err(VaeError::torch("activation"))
    }

    /// In place on a tensor the caller owns: no second full-size activation alive at once.
    fn forward_owned(self, mut x: Tensor) -> Result<Tensor> {
        // The in-place calls also return `x` (a second handle to it).
        let _same = match self {
            Self::Relu => x.f_relu_(),
            Self::Silu => x.f_silu_(),
            Self::Gelu => x.f_gelu_("none"),
        }
        .map_err(VaeError::torch("activation"))?;
        Ok(x)
    }
}

/// taef2's pool branch: `x + conv1x1(relu(GroupNorm(4)(conv1x1(x, n -> 4n))), 4n -> n)`, a
/// normalization over the whole frame that the FLUX.2 latent space needed to distil well.
#[derive(Debug)]
struct Pool {
    conv_in: Conv2d,
    norm: GroupNorm,
    conv_out: Conv2d,
}

impl Pool {
    fn new(p: nn::Path, channels: i64) -> Result<Self> {
        let wide = 4 * channels;
        Ok(Self {
            conv_in: conv2d(&p / 0, channels, wide, 1, 1, 0, false)?,
            // nn.GroupNorm's default eps.
            norm: GroupNorm::new(&p / 1, 4, wide, 1e-5)?,
            conv_out: conv2d(&p / 3, wide, channels, 1, 1, 0, false)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Reassigned, not shadowed: a shadowed tensor would stay alive to the end of the scope.
        let mut h = self.conv_in.run(x)?;
        h = Activation::Relu.forward_owned(self.norm.forward(&h)?)?;
        h = self.conv_out.run(&h)?;
        h.f_add_(x).map_err(VaeError::torch("pool residual"))
    }
}

/// TAESD's `Block` (diffusers' `AutoencoderTinyBlock`):
/// `relu(conv(act(conv(act(conv(x))))) + skip(x))`, after the optional pool branch.
/// Reference: https://github.com/madebyollin/taesd/blob/5cccb12dc72074a4be35680c3b108548a7c69978/taesd.py
#[derive(Debug)]
struct Block {
    conv: [Conv2d; 3],
    skip: Option<Conv2d>,
    pool: Option<Pool>,
    act: Activation,
}

impl Block {
    fn new(p: nn::Path, c_in: i64, c_out: i64, pool: bool, act: Activation) -> Result<Self> {
        let conv = &p / "conv";
        Ok(Self {
            // Sequential indices 1 and 3 are the activations.
            conv: [
                conv2d(&conv / 0, c_in, c_out, 3, 1, 1, true)?,
                conv2d(&conv / 2, c_out, c_out, 3, 1, 1, true)?,
                conv2d(&conv / 4, c_out, c_out, 3, 1, 1, true)?,
            ],
            skip: if c_in != c_out {
                Some(conv2d(&p / "skip", c_in, c_out, 1, 1, 0, false)?)
            } else {
                None
            },
            pool: if pool {
                Some(Pool::new(&p / "pool", c_in)?)
            } else {
                None
            },
            act,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = match &self.pool {
            Some(pool) => pool.forward(x)?,
            None => x.shallow_clone(),
        };
        // Reassigned, not shadowed, and activations in place: at most two full-size
        // activations of the batch are alive at once, as in PyTorch's eager reference.
        let mut h = self.act.forward_owned(self.conv[0].run(&x)?)?;
        h = self.act.forward_owned(self.conv[1].run(&h)?)?;
        h = self.conv[2].run(&h)?;
        let _same = match &self.skip {
            Some(s) => h.f_add_(&s.run(&x)?),
            None => h.f_add_(&x),
        }
        .map_err(VaeError::torch("block residual"))?;
        Activation::Relu.forward_owned(h)
    }
}

/// One entry of the encoder or decoder Sequential.
#[derive(Debug)]
enum Layer {
    Conv(Conv2d),
    // Boxed: a block is several hundred bytes, the other layers a few words.
    Block(Box<Block>),
    Act(Activation),
    Upsample(i64),
    /// `tanh(x / 3) * 3`: keeps out-of-range latents from blowing up the decoder.
    Clamp,
}

impl Layer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Conv(c) => c.run(x),
            Self::Block(b) => b.forward(x),
            Self::Act(a) => a.forward(x),
            Self::Upsample(s) => {
                let (_, _, h, w) = x.size4().map_err(VaeError::torch("upsample input"))?;
                x.f_upsample_nearest2d([h * s, w * s], *s as f64, *s as f64)
                    .map_err(VaeError::torch("upsample nearest"))
            }
            Self::Clamp => x
                .f_div_scalar(3.0)
                .and_then(|t| t.f_tanh())
                .and_then(|t| t.f_mul_scalar(3.0))
                .map_err(VaeError::torch("latent clamp")),
        }
    }
}

/// What to build, before naming: the two layouts differ only in names.
enum Spec {
    Conv {
        c_in: i64,
        c_out: i64,
        stride: i64,
        bias: bool,
    },
    Block {
        channels: i64,
        pool: bool,
    },
    Act,
    Upsample,
    Clamp,
}

fn encoder_specs(cfg: &TinyConfig) -> Vec<Spec> {
    let ch = &cfg.encoder_block_out_channels;
    let last_stage = ch.len() - 1;
    let mut specs = Vec::new();
    for (i, (&c, &n)) in ch.iter().zip(&cfg.num_encoder_blocks).enumerate() {
        specs.push(if i == 0 {
            Spec::Conv {
                c_in: cfg.in_channels,
                c_out: c,
                stride: 1,
                bias: true,
            }
        } else {
            // Downsampling convs have no bias (TAESD / EncoderTiny).
            Spec::Conv {
                c_in: c,
                c_out: c,
                stride: 2,
                bias: false,
            }
        });
        for _ in 0..n {
            specs.push(Spec::Block {
                channels: c,
                pool: cfg.midblock_pool && i == last_stage,
            });
        }
    }
    specs.push(Spec::Conv {
        c_in: ch[last_stage],
        c_out: cfg.latent_channels,
        stride: 1,
        bias: true,
    });
    specs
}

fn decoder_specs(cfg: &TinyConfig) -> Vec<Spec> {
    let ch = &cfg.decoder_block_out_channels;
    let mut specs = vec![
        Spec::Clamp,
        Spec::Conv {
            c_in: cfg.latent_channels,
            c_out: ch[0],
            stride: 1,
            bias: true,
        },
        Spec::Act,
    ];
    for (i, (&c, &n)) in ch.iter().zip(&cfg.num_decoder_blocks).enumerate() {
        let last = i + 1 == ch.len();
        for _ in 0..n {
            specs.push(Spec::Block {
                channels: c,
                pool: cfg.midblock_pool && i == 0,
            });
        }
        if !last {
            specs.push(Spec::Upsample);
        }
        specs.push(Spec::Conv {
            c_in: c,
            c_out: if last { cfg.out_channels } else { c },
            stride: 1,
            bias: last,
        });
    }
    specs
}

/// Builds a Sequential. `clamp_has_index`: the native layout counts the Clamp as layer 0,
/// diffusers' does not.
fn build(
    p: nn::Path,
    specs: Vec<Spec>,
    cfg: &TinyConfig,
    clamp_has_index: bool,
) -> Result<Vec<Layer>> {
    let act = Activation::parse(&cfg.act_fn).map_err(VaeError::Input)?;
    let mut layers = Vec::with_capacity(specs.len());
    let mut index = 0usize;
    for spec in specs {
        let here = &p / index;
        layers.push(match spec {
            Spec::Conv {
                c_in,
                c_out,
                stride,
                bias,
            } => Layer::Conv(conv2d(here, c_in, c_out, 3, stride, 1, bias)?),
            Spec::Block { channels, pool } => {
                Layer::Block(Box::new(Block::new(here, channels, channels, pool, act)?))
            }
            Spec::Act => Layer::Act(act),
            Spec::Upsample => Layer::Upsample(cfg.upsampling_scaling_factor),
            Spec::Clamp => {
                layers.push(Layer::Clamp);
                if clamp_has_index {
                    index += 1;
                }
                continue;
            }
        });
        index += 1;
    }
    Ok(layers)
}

fn run(layers: &[Layer], x: &Tensor) -> Result<Tensor> {
    let mut x = x.shallow_clone();
    for l in layers {
        x = l.forward(&x)?;
    }
    Ok(x)
}

/// TAESD-family encoder and decoder, each on a `VarStore` of its own: native checkpoints
/// are two files whose names both start at the Sequential's root (`0.weight`).
/// Reference: https://github.com/madebyollin/taesd/blob/5cccb12dc72074a4be35680c3b108548a7c69978/taesd.py
/// and https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/autoencoders/autoencoder_tiny.py
#[derive(Debug)]
pub struct TinyAutoencoder {
    config: TinyConfig,
    encoder_vs: nn::VarStore,
    decoder_vs: nn::VarStore,
    encoder: Vec<Layer>,
    decoder: Vec<Layer>,
    kind: Kind,
    has_decoder: bool,
}

impl TinyAutoencoder {
    /// Loads TAESD's native encoder and decoder files (`taef2_encoder.safetensors`, ...). The
    /// latent channels and the pool branch come from the weights, not the file names.
    pub fn load_native(
        encoder_file: &Path,
        decoder_file: &Path,
        device: Device,
        kind: Kind,
    ) -> Result<Self> {
        Self::load_native_parts(encoder_file, Some(decoder_file), device, kind)
    }

    /// [`Self::load_native`], where the decoder file may be missing (an encoder-only folder):
    /// such a model encodes, and [`Self::decode`] refuses with the reason.
    pub fn load_native_parts(
        encoder_file: &Path,
        decoder_file: Option<&Path>,
        device: Device,
        kind: Kind,
    ) -> Result<Self> {
        let enc = weights::read_tensors(&[encoder_file.to_path_buf()])?;
        let config = native_config(&enc, encoder_file)?;
        let mut model = Self::new(config, device, kind, true)?;
        check_unused(
            &weights::load_into(&model.encoder_vs, &enc, encoder_file)?,
            None,
            encoder_file,
        )?;
        match decoder_file {
            Some(decoder_file) => {
                let dec = weights::read_tensors(&[decoder_file.to_path_buf()])?;
                check_unused(
                    &weights::load_into(&model.decoder_vs, &dec, decoder_file)?,
                    None,
                    decoder_file,
                )?;
            }
            None => model.has_decoder = false,
        }
        Ok(model)
    }

    /// Whether decoder weights were loaded (always, except for an encoder-only native folder).
    pub fn has_decoder(&self) -> bool {
        self.has_decoder
    }

    /// Loads a diffusers `AutoencoderTiny` folder (`config.json`,
    /// `diffusion_pytorch_model.safetensors`).
    pub fn load_diffusers(folder: &Path, device: Device, kind: Kind) -> Result<Self> {
        let config_path = folder.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| VaeError::Config {
            path: config_path.clone(),
            message: e.to_string(),
        })?;
        let mut config: TinyConfig = serde_json::from_str(&text).map_err(|e| VaeError::Config {
            path: config_path.clone(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| VaeError::Config {
            path: config_path.clone(),
            message,
        })?;
        let files = weights::safetensors_files(folder, "diffusion_pytorch_model")?;
        let tensors = weights::read_tensors(&files)?;
        config.midblock_pool = tensors.keys().any(|k| k.contains(".pool."));
        let model = Self::new(config, device, kind, false)?;
        let unused_enc = weights::load_into(&model.encoder_vs, &tensors, folder)?;
        let unused_dec = weights::load_into(&model.decoder_vs, &tensors, folder)?;
        check_unused(&unused_enc, Some(&unused_dec), folder)?;
        Ok(model)
    }

    /// The model with placeholder (zero) weights for `config`; `native` picks TAESD's names
    /// (`0.weight` in each of two stores) over diffusers' (`encoder.layers.0.weight`, ...).
    pub fn new(config: TinyConfig, device: Device, kind: Kind, native: bool) -> Result<Self> {
        config.validate().map_err(VaeError::Input)?;
        let mut encoder_vs = var_store(device, kind)?;
        let mut decoder_vs = var_store(device, kind)?;
        let (enc, dec) = if native {
            (encoder_vs.root(), decoder_vs.root())
        } else {
            (
                encoder_vs.root() / "encoder" / "layers",
                decoder_vs.root() / "decoder" / "layers",
            )
        };
        let encoder = build(enc, encoder_specs(&config), &config, native)?;
        let decoder = build(dec, decoder_specs(&config), &config, native)?;
        encoder_vs.freeze();
        decoder_vs.freeze();
        Ok(Self {
            config,
            encoder_vs,
            decoder_vs,
            encoder,
            decoder,
            kind,
            has_decoder: true,
        })
    }

    pub fn config(&self) -> &TinyConfig {
        &self.config
    }

    /// The encoder's and the decoder's variables.
    pub fn var_stores(&self) -> [&nn::VarStore; 2] {
        [&self.encoder_vs, &self.decoder_vs]
    }

    pub fn device(&self) -> Device {
        self.encoder_vs.device()
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn latent_channels(&self) -> i64 {
        self.config.latent_channels
    }

    /// Latents `[N, C, H/8, W/8]` for images `[N, 3, H, W]` in [0, 1], as a pipeline stores them
    /// (`(z - shift_factor) * scaling_factor`; 0 and 1 for every released TAESD, whose latents
    /// are already in their diffusion model's scaled space).
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        check_images(x, self.config.in_channels, "TAESD encode")?;
        let x = x
            .f_to_device(self.device())
            .and_then(|t| t.f_to_kind(self.kind))
            .map_err(VaeError::torch("TAESD encode input"))?;
        let z = run(&self.encoder, &x)?;
        if self.config.scaling_factor == 1.0 && self.config.shift_factor == 0.0 {
            return Ok(z);
        }
        z.f_sub_scalar(self.config.shift_factor)
            .and_then(|t| t.f_mul_scalar(self.config.scaling_factor))
            .map_err(VaeError::torch("scale latents"))
    }

    /// Images in [0, 1] (unclamped) from latents as [`Self::encode`] returns them.
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        if !self.has_decoder {
            return Err(VaeError::Input(
                "this TAESD model has no decoder (its folder holds no *decoder*.safetensors)"
                    .into(),
            ));
        }
        let _guard = tch::no_grad_guard();
        check_images(latents, self.config.latent_channels, "TAESD decode")?;
        let z = latents
            .f_to_device(self.device())
            .and_then(|t| t.f_to_kind(self.kind))
            .and_then(|t| t.f_div_scalar(self.config.scaling_factor))
            .and_then(|t| t.f_add_scalar(self.config.shift_factor))
            .map_err(VaeError::torch("TAESD decode input"))?;
        run(&self.decoder, &z)
    }
}

/// Native checkpoints carry no config: the first conv gives the width, the last encoder conv
/// the latent channels, a `pool` tensor the taef2 variant.
fn native_config(enc: &HashMap<String, Tensor>, origin: &Path) -> Result<TinyConfig> {
    let mut config = TinyConfig::default();
    let shape = |name: &str| -> Result<Vec<i64>> {
        enc.get(name)
            .map(|t| t.size())
            .ok_or_else(|| VaeError::Config {
                path: origin.to_path_buf(),
                message: format!("tensor {name} is missing: not a TAESD encoder"),
            })
    };
    let width = shape("0.weight")?[0];
    config.encoder_block_out_channels = vec![width; 4];
    config.decoder_block_out_channels = vec![width; 4];
    let last = encoder_specs(&config).len() - 1;
    config.latent_channels = shape(&format!("{last}.weight"))?[0];
    config.midblock_pool = enc.keys().any(|k| k.contains(".pool."));
    Ok(config)
}

/// Fails on checkpoint tensors the model does not use: `a` and `b` are the names left unused
/// by the store(s) the tensors were offered to; with two stores, unused means unused by both.
fn check_unused(a: &[String], b: Option<&[String]>, origin: &Path) -> Result<()> {
    let unused: Vec<&String> = match b {
        None => a.iter().collect(),
        Some(b) => a.iter().filter(|n| b.contains(n)).collect(),
    };
    if unused.is_empty() {
        return Ok(());
    }
    Err(VaeError::Config {
        path: PathBuf::from(origin),
        message: format!(
            "{} checkpoint tensors are not part of the TAESD model built for it, e.g. {:?}",
            unused.len(),
            &unused[..unused.len().min(3)]
        ),
    })
}
