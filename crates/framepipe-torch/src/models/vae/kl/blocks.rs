//! The VAE's encoder and decoder and the blocks they are made of: the down/up samplers, the
//! down (encoder) and up (decoder) blocks of ResNet blocks, and the mid block (resnet,
//! attention, resnet).
//!
//! References (pinned):
//! https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/downsampling.py (Downsample2D),
//! https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/upsampling.py (Upsample2D),
//! https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/unets/unet_2d_blocks.py
//! (DownEncoderBlock2D, UpDecoderBlock2D, UNetMidBlock2D),
//! https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/autoencoders/vae.py
//! (Encoder, Decoder).
use tch::{nn, Tensor};

use super::attention::Attention;
use super::resnet::ResnetBlock2D;
use super::{KlConfig, NORM_EPS};
use crate::models::vae::{conv2d, Conv2d, Forward, GroupNorm, Result, VaeError};

// Reference for the samplers below (pinned):
// https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/downsampling.py (Downsample2D),
// https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/upsampling.py (Upsample2D)

/// Downsampling by a stride-2 3x3 conv after padding one zero row/column on the bottom/right
/// only (`Downsample2D(padding=0)`): LDM's asymmetric padding, which the weights were trained
/// with, so a symmetric `padding=1` conv would shift every latent by half a pixel.
#[derive(Debug)]
pub(super) struct Downsample2D {
    conv: Conv2d,
}

impl Downsample2D {
    pub(super) fn new(p: nn::Path, channels: i64) -> Result<Self> {
        Ok(Self {
            conv: conv2d(&p / "conv", channels, channels, 3, 2, 0, true)?,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let padded = x
            .f_constant_pad_nd([0, 1, 0, 1])
            .map_err(VaeError::torch("downsample pad"))?;
        self.conv.run(&padded)
    }
}

/// Nearest x2 upsampling then a 3x3 conv (`Upsample2D(use_conv=True)`).
#[derive(Debug)]
pub(super) struct Upsample2D {
    conv: Conv2d,
}

impl Upsample2D {
    pub(super) fn new(p: nn::Path, channels: i64) -> Result<Self> {
        Ok(Self {
            conv: conv2d(&p / "conv", channels, channels, 3, 1, 1, true)?,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.size4().map_err(VaeError::torch("upsample input"))?;
        let up = x
            .f_upsample_nearest2d([h * 2, w * 2], 2.0, 2.0)
            .map_err(VaeError::torch("upsample nearest"))?;
        self.conv.run(&up)
    }
}

// Reference for the blocks below (pinned):
// https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/unets/unet_2d_blocks.py
// (DownEncoderBlock2D, UpDecoderBlock2D, UNetMidBlock2D)

#[derive(Debug)]
pub(super) struct DownEncoderBlock2D {
    resnets: Vec<ResnetBlock2D>,
    downsampler: Option<Downsample2D>,
}

impl DownEncoderBlock2D {
    pub(super) fn new(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        cfg: &KlConfig,
        downsample: bool,
    ) -> Result<Self> {
        let resnets = (0..cfg.layers_per_block)
            .map(|i| {
                let c = if i == 0 { c_in } else { c_out };
                ResnetBlock2D::new(&p / "resnets" / i, c, c_out, cfg.norm_num_groups)
            })
            .collect::<Result<_>>()?;
        let downsampler = if downsample {
            Some(Downsample2D::new(&p / "downsamplers" / 0, c_out)?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            downsampler,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.shallow_clone();
        for r in &self.resnets {
            x = r.forward(&x)?;
        }
        match &self.downsampler {
            Some(d) => d.forward(&x),
            None => Ok(x),
        }
    }
}

#[derive(Debug)]
pub(super) struct UpDecoderBlock2D {
    resnets: Vec<ResnetBlock2D>,
    upsampler: Option<Upsample2D>,
}

impl UpDecoderBlock2D {
    pub(super) fn new(
        p: nn::Path,
        c_in: i64,
        c_out: i64,
        cfg: &KlConfig,
        upsample: bool,
    ) -> Result<Self> {
        // The decoder has one resnet more per block than the encoder (diffusers' Decoder
        // passes `layers_per_block + 1`).
        let resnets = (0..cfg.layers_per_block + 1)
            .map(|i| {
                let c = if i == 0 { c_in } else { c_out };
                ResnetBlock2D::new(&p / "resnets" / i, c, c_out, cfg.norm_num_groups)
            })
            .collect::<Result<_>>()?;
        let upsampler = if upsample {
            Some(Upsample2D::new(&p / "upsamplers" / 0, c_out)?)
        } else {
            None
        };
        Ok(Self { resnets, upsampler })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.shallow_clone();
        for r in &self.resnets {
            x = r.forward(&x)?;
        }
        match &self.upsampler {
            Some(u) => u.forward(&x),
            None => Ok(x),
        }
    }
}

/// resnet, attention, resnet.
#[derive(Debug)]
pub(super) struct UNetMidBlock2D {
    resnets: Vec<ResnetBlock2D>,
    attentions: Option<Attention>,
}

impl UNetMidBlock2D {
    pub(super) fn new(p: nn::Path, channels: i64, cfg: &KlConfig) -> Result<Self> {
        let g = cfg.norm_num_groups;
        Ok(Self {
            resnets: vec![
                ResnetBlock2D::new(&p / "resnets" / 0, channels, channels, g)?,
                ResnetBlock2D::new(&p / "resnets" / 1, channels, channels, g)?,
            ],
            attentions: if cfg.mid_block_add_attention {
                Some(Attention::new(&p / "attentions" / 0, channels, g)?)
            } else {
                None
            },
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.resnets[0].forward(x)?;
        if let Some(a) = &self.attentions {
            x = a.forward(&x)?;
        }
        self.resnets[1].forward(&x)
    }
}

/// Reference: https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/autoencoders/vae.py
/// (`Encoder`, `double_z=True`: the output holds the posterior mean and log-variance).
#[derive(Debug)]
pub(super) struct Encoder {
    conv_in: Conv2d,
    down_blocks: Vec<DownEncoderBlock2D>,
    mid_block: UNetMidBlock2D,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Encoder {
    pub(super) fn new(p: nn::Path, cfg: &KlConfig) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let last = *ch.last().expect("validated non-empty");
        let conv_in = conv2d(&p / "conv_in", cfg.in_channels, ch[0], 3, 1, 1, true)?;
        let mut down_blocks = Vec::with_capacity(ch.len());
        let mut c_in = ch[0];
        for (i, &c_out) in ch.iter().enumerate() {
            let downsample = i + 1 < ch.len();
            down_blocks.push(DownEncoderBlock2D::new(
                &p / "down_blocks" / i,
                c_in,
                c_out,
                cfg,
                downsample,
            )?);
            c_in = c_out;
        }
        Ok(Self {
            conv_in,
            down_blocks,
            mid_block: UNetMidBlock2D::new(&p / "mid_block", last, cfg)?,
            conv_norm_out: GroupNorm::new(
                &p / "conv_norm_out",
                cfg.norm_num_groups,
                last,
                NORM_EPS,
            )?,
            conv_out: conv2d(
                &p / "conv_out",
                last,
                2 * cfg.latent_channels,
                3,
                1,
                1,
                true,
            )?,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.conv_in.run(x)?;
        for b in &self.down_blocks {
            x = b.forward(&x)?;
        }
        x = self.mid_block.forward(&x)?;
        x = self.conv_norm_out.forward_silu(&x)?;
        self.conv_out.run(&x)
    }
}

/// Reference: https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/autoencoders/vae.py
/// (`Decoder`).
#[derive(Debug)]
pub(super) struct Decoder {
    conv_in: Conv2d,
    mid_block: UNetMidBlock2D,
    up_blocks: Vec<UpDecoderBlock2D>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Decoder {
    pub(super) fn new(p: nn::Path, cfg: &KlConfig) -> Result<Self> {
        let reversed: Vec<i64> = cfg.block_out_channels.iter().rev().copied().collect();
        let conv_in = conv2d(
            &p / "conv_in",
            cfg.latent_channels,
            reversed[0],
            3,
            1,
            1,
            true,
        )?;
        let mid_block = UNetMidBlock2D::new(&p / "mid_block", reversed[0], cfg)?;
        let mut up_blocks = Vec::with_capacity(reversed.len());
        let mut c_in = reversed[0];
        for (i, &c_out) in reversed.iter().enumerate() {
            let upsample = i + 1 < reversed.len();
            up_blocks.push(UpDecoderBlock2D::new(
                &p / "up_blocks" / i,
                c_in,
                c_out,
                cfg,
                upsample,
            )?);
            c_in = c_out;
        }
        let first = cfg.block_out_channels[0];
        Ok(Self {
            conv_in,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNorm::new(
                &p / "conv_norm_out",
                cfg.norm_num_groups,
                first,
                NORM_EPS,
            )?,
            conv_out: conv2d(&p / "conv_out", first, cfg.out_channels, 3, 1, 1, true)?,
        })
    }

    pub(super) fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut x = self.conv_in.run(z)?;
        x = self.mid_block.forward(&x)?;
        for b in &self.up_blocks {
            x = b.forward(&x)?;
        }
        x = self.conv_norm_out.forward_silu(&x)?;
        self.conv_out.run(&x)
    }
}
