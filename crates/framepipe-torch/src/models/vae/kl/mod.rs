//! diffusers' `AutoencoderKL` (the Stable Diffusion / SDXL / FLUX.1 VAE family) in tch.
//!
//! Module tree and variable names mirror the diffusers checkpoint (`encoder.down_blocks.0.
//! resnets.0.conv1.weight`, ...), so a Hugging Face folder loads as is. Checkpoints converted
//! before diffusers 0.14 name the mid-block attention `query/key/value/proj_attn`; those are
//! renamed on load (and LDM's 1x1-conv shaped attention weights squeezed) the way diffusers'
//! own loader does, so both spellings give the same model.
//!
//! Latents are what a training pipeline stores: `(z - shift_factor) * scaling_factor`, with `z`
//! the posterior mean, or a sample drawn from a seeded generator when asked.
//!
//! Layout (as candle's `stable_diffusion::vae`): this file holds the config ([`KlConfig`]), the
//! model's entry points ([`AutoencoderKl`]: load, encode, decode, tiled variants, sampling),
//! [`Tiling`] and [`rename_legacy_attention`]; `resnet` the ResNet block, `attention` the
//! mid-block attention, `blocks` the down/up/mid blocks and the Encoder and Decoder, `tiling`
//! the tile-and-blend loop.
mod attention;
mod blocks;
mod resnet;
mod tiling;

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use tch::{nn, Device, Kind, Tensor};

use super::{check_images, conv2d, var_store, Conv2d, Forward, Result, VaeError};
use crate::runtime::weights;
use blocks::{Decoder, Encoder};
use tiling::run_tiled;

/// GroupNorm epsilon of every norm in diffusers' VAE encoder and decoder.
const NORM_EPS: f64 = 1e-6;

/// diffusers' `AutoencoderKL` config.json. Permissive: unknown keys are ignored and missing ones
/// take diffusers' defaults, as `from_pretrained` does.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct KlConfig {
    pub in_channels: i64,
    pub out_channels: i64,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    pub block_out_channels: Vec<i64>,
    pub layers_per_block: i64,
    pub act_fn: String,
    pub latent_channels: i64,
    pub norm_num_groups: i64,
    /// An int, or `[h, w]` in some configs; only tiling uses it.
    pub sample_size: serde_json::Value,
    pub scaling_factor: f64,
    pub shift_factor: Option<f64>,
    pub force_upcast: bool,
    pub use_quant_conv: bool,
    pub use_post_quant_conv: bool,
    pub mid_block_add_attention: bool,
}

impl Default for KlConfig {
    /// diffusers' `AutoencoderKL.__init__` defaults (v0.36.0).
    fn default() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            down_block_types: vec!["DownEncoderBlock2D".into()],
            up_block_types: vec!["UpDecoderBlock2D".into()],
            block_out_channels: vec![64],
            layers_per_block: 1,
            act_fn: "silu".into(),
            latent_channels: 4,
            norm_num_groups: 32,
            sample_size: serde_json::json!(32),
            scaling_factor: 0.18215,
            shift_factor: None,
            force_upcast: true,
            use_quant_conv: true,
            use_post_quant_conv: true,
            mid_block_add_attention: true,
        }
    }
}

impl KlConfig {
    /// The Stable Diffusion 1.x/2.x VAE shape (`stabilityai/sd-vae-ft-mse`).
    pub fn stable_diffusion() -> Self {
        let blocks = 4;
        Self {
            down_block_types: vec!["DownEncoderBlock2D".into(); blocks],
            up_block_types: vec!["UpDecoderBlock2D".into(); blocks],
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            sample_size: serde_json::json!(512),
            ..Self::default()
        }
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| VaeError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|e| VaeError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| VaeError::Config {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// What this port supports, with the actual and expected values in the message.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.block_out_channels.is_empty() {
            return Err("block_out_channels is empty".into());
        }
        if self.act_fn != "silu" {
            return Err(format!(
                "act_fn is {:?}, only \"silu\" is supported",
                self.act_fn
            ));
        }
        let n = self.block_out_channels.len();
        if self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(format!(
                "{} down and {} up block types for {n} block_out_channels",
                self.down_block_types.len(),
                self.up_block_types.len()
            ));
        }
        if let Some(t) = self
            .down_block_types
            .iter()
            .find(|t| *t != "DownEncoderBlock2D")
        {
            return Err(format!(
                "down block type {t:?}, expected \"DownEncoderBlock2D\""
            ));
        }
        if let Some(t) = self
            .up_block_types
            .iter()
            .find(|t| *t != "UpDecoderBlock2D")
        {
            return Err(format!(
                "up block type {t:?}, expected \"UpDecoderBlock2D\""
            ));
        }
        if let Some(c) = self
            .block_out_channels
            .iter()
            .find(|c| **c % self.norm_num_groups != 0)
        {
            return Err(format!(
                "block_out_channels {c} is not a multiple of norm_num_groups {}",
                self.norm_num_groups
            ));
        }
        if self.layers_per_block < 1 || self.latent_channels < 1 {
            return Err(format!(
                "layers_per_block {} and latent_channels {} must be at least 1",
                self.layers_per_block, self.latent_channels
            ));
        }
        if self.scaling_factor == 0.0 {
            return Err("scaling_factor is 0".into());
        }
        Ok(())
    }

    /// Spatial downsampling factor of the encoder (8 for SD).
    pub fn downsampling(&self) -> i64 {
        1 << (self.block_out_channels.len() - 1)
    }

    /// diffusers' `tile_sample_min_size`: the config's `sample_size` (its height when a pair).
    pub fn tile_sample_size(&self) -> i64 {
        match &self.sample_size {
            serde_json::Value::Array(a) => a.first().and_then(|v| v.as_i64()).unwrap_or(32),
            v => v.as_i64().unwrap_or(32),
        }
    }
}

/// Tiled encoding and decoding as diffusers' `_tiled_encode` / `tiled_decode`: encoder tiles
/// of `tile_sample_size` pixels every `tile_sample_size * (1 - overlap)`, blended linearly over
/// `tile_latent_size * overlap` latent rows and columns (decoding the other way round). Results
/// match diffusers with the same sizes; they differ slightly from untiled ones (each tile sees
/// only its own GroupNorm statistics and attention context).
#[derive(Debug, Clone, Copy)]
pub struct Tiling {
    pub tile_sample_size: i64,
    pub tile_latent_size: i64,
    pub overlap: f64,
}

impl Tiling {
    /// diffusers' defaults for a config: tiles of `sample_size`, overlap 0.25.
    pub fn for_config(config: &KlConfig) -> Self {
        let tile_sample_size = config.tile_sample_size();
        Self {
            tile_sample_size,
            tile_latent_size: tile_sample_size / config.downsampling(),
            overlap: 0.25,
        }
    }
}

/// diffusers' `AutoencoderKL`.
/// Reference: https://github.com/huggingface/diffusers/blob/v0.36.0/src/diffusers/models/autoencoders/autoencoder_kl.py
#[derive(Debug)]
pub struct AutoencoderKl {
    config: KlConfig,
    vs: nn::VarStore,
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    kind: Kind,
}

impl AutoencoderKl {
    /// Loads a diffusers folder: `config.json` and `diffusion_pytorch_model.safetensors` (or its
    /// sharded index). `kind` is the compute dtype (fp16 on CUDA unless `force_upcast` asks for
    /// fp32: the caller decides).
    pub fn load(folder: &Path, device: Device, kind: Kind) -> Result<Self> {
        let config = KlConfig::from_file(&folder.join("config.json"))?;
        let files = weights::safetensors_files(folder, "diffusion_pytorch_model")?;
        let tensors = weights::read_tensors(&files)?;
        Self::from_tensors(config, tensors, folder, device, kind)
    }

    /// Builds the model for `config` and fills it from `tensors` (diffusers names, current or
    /// legacy attention names). A checkpoint tensor the config does not account for is an
    /// error: it means the config describes another model.
    pub fn from_tensors(
        config: KlConfig,
        mut tensors: HashMap<String, Tensor>,
        origin: &Path,
        device: Device,
        kind: Kind,
    ) -> Result<Self> {
        rename_legacy_attention(&mut tensors)?;
        let model = Self::new(config, device, kind)?;
        let unused = weights::load_into(&model.vs, &tensors, origin)?;
        if !unused.is_empty() {
            return Err(VaeError::Config {
                path: origin.to_path_buf(),
                message: format!(
                    "{} checkpoint tensors are not part of the model the config describes, e.g. {:?}",
                    unused.len(),
                    &unused[..unused.len().min(3)]
                ),
            });
        }
        Ok(model)
    }

    /// The model with placeholder weights (every variable zero): for loading by hand, or for
    /// shape and speed checks after filling [`Self::var_store`] with random values.
    pub fn new(config: KlConfig, device: Device, kind: Kind) -> Result<Self> {
        config.validate().map_err(VaeError::Input)?;
        let mut vs = var_store(device, kind)?;
        let root = vs.root();
        let encoder = Encoder::new(&root / "encoder", &config)?;
        let decoder = Decoder::new(&root / "decoder", &config)?;
        let l2 = 2 * config.latent_channels;
        let l = config.latent_channels;
        let quant_conv = if config.use_quant_conv {
            Some(conv2d(&root / "quant_conv", l2, l2, 1, 1, 0, true)?)
        } else {
            None
        };
        let post_quant_conv = if config.use_post_quant_conv {
            Some(conv2d(&root / "post_quant_conv", l, l, 1, 1, 0, true)?)
        } else {
            None
        };
        // Inference only: no autograd bookkeeping on the weights.
        vs.freeze();
        Ok(Self {
            config,
            vs,
            encoder,
            decoder,
            quant_conv,
            post_quant_conv,
            kind,
        })
    }

    pub fn config(&self) -> &KlConfig {
        &self.config
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The posterior's `(mean, logvar)` for images `x` `[N, in_channels, H, W]` in [-1, 1].
    pub fn encode_moments(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let _guard = tch::no_grad_guard();
        let x = self.prepare(x, "AutoencoderKL encode")?;
        split_moments(&self.moments(&x)?)
    }

    /// Latents as a pipeline stores them, `(z - shift_factor) * scaling_factor`, in the model's
    /// kind on its device: `z` is the posterior mean, or with `sample_seed` a sample drawn like
    /// diffusers' `latent_dist.sample(torch.Generator().manual_seed(seed))` (the noise is drawn
    /// on the CPU, as with a CPU generator, so it does not depend on the device). The seed goes
    /// through libtorch's global CPU generator: do not sample from several threads at once.
    /// Noise is drawn for the whole batch, so a seed gives the same latents only for the same
    /// batch split (a stage should seed per batch deliberately).
    pub fn encode(&self, x: &Tensor, sample_seed: Option<u64>) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let x = self.prepare(x, "AutoencoderKL encode")?;
        let moments = self.moments(&x)?;
        self.latents_from_moments(&moments, sample_seed)
    }

    /// [`Self::encode`] through overlapping tiles (diffusers' `_tiled_encode`): memory follows
    /// the tile size, not the frame size. Frames no larger than one tile are encoded whole, as
    /// diffusers does.
    pub fn encode_tiled(
        &self,
        x: &Tensor,
        tiling: Tiling,
        sample_seed: Option<u64>,
    ) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let x = self.prepare(x, "AutoencoderKL tiled encode")?;
        let moments = self.moments_tiled(&x, tiling)?;
        self.latents_from_moments(&moments, sample_seed)
    }

    /// The encoder's moments through overlapping tiles; frames no larger than one tile whole.
    fn moments_tiled(&self, x: &Tensor, tiling: Tiling) -> Result<Tensor> {
        let (_, _, h, w) = x.size4().map_err(VaeError::torch("tiled encode input"))?;
        if h > tiling.tile_sample_size || w > tiling.tile_sample_size {
            run_tiled(
                x,
                tiling.tile_sample_size,
                tiling.tile_latent_size,
                tiling.overlap,
                |t| self.moments(t),
            )
        } else {
            self.moments(x)
        }
    }

    /// Images in [-1, 1] (not clamped, as diffusers) from latents scaled as [`Self::encode`]
    /// returns them.
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let z = self.unscale(latents)?;
        self.decode_unscaled(&z)
    }

    /// [`Self::decode`] through overlapping latent tiles (diffusers' `tiled_decode`). Latents no
    /// larger than one tile are decoded whole, as diffusers does.
    pub fn decode_tiled(&self, latents: &Tensor, tiling: Tiling) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let z = self.unscale(latents)?;
        let (_, _, h, w) = z.size4().map_err(VaeError::torch("tiled decode input"))?;
        if h > tiling.tile_latent_size || w > tiling.tile_latent_size {
            run_tiled(
                &z,
                tiling.tile_latent_size,
                tiling.tile_sample_size,
                tiling.overlap,
                |t| self.decode_unscaled(t),
            )
        } else {
            self.decode_unscaled(&z)
        }
    }

    /// `latents / scaling_factor + shift_factor`, on the model's device and kind.
    fn unscale(&self, latents: &Tensor) -> Result<Tensor> {
        check_images(latents, self.config.latent_channels, "AutoencoderKL decode")?;
        let shift = self.config.shift_factor.unwrap_or(0.0);
        latents
            .f_to_device(self.device())
            .and_then(|t| t.f_to_kind(self.kind))
            .and_then(|t| t.f_div_scalar(self.config.scaling_factor))
            .and_then(|t| t.f_add_scalar(shift))
            .map_err(VaeError::torch("unscale latents"))
    }

    /// post_quant_conv then the decoder.
    fn decode_unscaled(&self, z: &Tensor) -> Result<Tensor> {
        match &self.post_quant_conv {
            Some(c) => self.decoder.forward(&c.run(z)?),
            None => self.decoder.forward(z),
        }
    }

    fn prepare(&self, x: &Tensor, what: &str) -> Result<Tensor> {
        check_images(x, self.config.in_channels, what)?;
        x.f_to_device(self.device())
            .and_then(|t| t.f_to_kind(self.kind))
            .map_err(VaeError::torch(what))
    }

    /// Encoder then quant_conv: `[N, 2 * latent_channels, h, w]`.
    fn moments(&self, x: &Tensor) -> Result<Tensor> {
        let m = self.encoder.forward(x)?;
        match &self.quant_conv {
            Some(c) => c.run(&m),
            None => Ok(m),
        }
    }

    fn latents_from_moments(&self, moments: &Tensor, sample_seed: Option<u64>) -> Result<Tensor> {
        let (mean, logvar) = split_moments(moments)?;
        let z = match sample_seed {
            None => mean,
            Some(seed) => {
                tch::manual_seed(seed as i64);
                let noise = Tensor::f_randn(mean.size(), (self.kind, Device::Cpu))
                    .map_err(VaeError::torch("posterior noise"))?;
                self.sample(&mean, &logvar, &noise)?
            }
        };
        self.scale(&z)
    }

    /// Latents as [`Self::encode`] or [`Self::encode_tiled`] stores them, each frame sampled
    /// with its own seed: row `i` equals diffusers' `latent_dist.sample(generator)` for that
    /// frame encoded alone with `torch.Generator().manual_seed(seeds[i])`, so a frame's latent
    /// does not depend on how frames were batched.
    pub fn encode_sampled_per_frame(
        &self,
        x: &Tensor,
        tiling: Option<Tiling>,
        seeds: &[u64],
    ) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let x = self.prepare(x, "AutoencoderKL encode")?;
        let moments = match tiling {
            Some(t) => self.moments_tiled(&x, t)?,
            None => self.moments(&x)?,
        };
        let (mean, logvar) = split_moments(&moments)?;
        let size = mean.size();
        if size.first().copied() != Some(seeds.len() as i64) {
            return Err(VaeError::Input(format!(
                "{} seeds for a batch of {:?}",
                seeds.len(),
                size.first()
            )));
        }
        let noise = seeds
            .iter()
            .map(|&seed| {
                tch::manual_seed(seed as i64);
                Tensor::f_randn(&size[1..], (self.kind, Device::Cpu))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .and_then(|rows| Tensor::f_stack(&rows, 0))
            .map_err(VaeError::torch("posterior noise"))?;
        let z = self.sample(&mean, &logvar, &noise)?;
        self.scale(&z)
    }

    /// `mean + std * noise` (DiagonalGaussianDistribution: logvar clamped to [-30, 20]);
    /// `noise` is drawn on the CPU and moved here.
    fn sample(&self, mean: &Tensor, logvar: &Tensor, noise: &Tensor) -> Result<Tensor> {
        let err = VaeError::torch;
        let std = logvar
            .f_clamp(-30.0, 20.0)
            .and_then(|t| t.f_mul_scalar(0.5))
            .and_then(|t| t.f_exp())
            .map_err(err("posterior std"))?;
        let noise = noise
            .f_to_device(self.device())
            .map_err(err("posterior noise"))?;
        mean.f_add(&std.f_mul(&noise).map_err(err("posterior sample"))?)
            .map_err(err("posterior sample"))
    }

    /// `(z - shift_factor) * scaling_factor`.
    fn scale(&self, z: &Tensor) -> Result<Tensor> {
        let shift = self.config.shift_factor.unwrap_or(0.0);
        z.f_sub_scalar(shift)
            .and_then(|t| t.f_mul_scalar(self.config.scaling_factor))
            .map_err(VaeError::torch("scale latents"))
    }
}

fn split_moments(moments: &Tensor) -> Result<(Tensor, Tensor)> {
    let mut parts = moments
        .f_chunk(2, 1)
        .map_err(VaeError::torch("posterior moments"))?;
    let logvar = parts.pop();
    let mean = parts.pop();
    match (mean, logvar) {
        (Some(m), Some(l)) => Ok((m, l)),
        _ => Err(VaeError::Input(
            "posterior moments do not split in two".into(),
        )),
    }
}

/// Renames pre-0.14 attention tensors (`query/key/value/proj_attn`) to the current names, and
/// squeezes LDM's 1x1-conv shaped projections (`[C, C, 1, 1]`) to linear ones, as diffusers'
/// `_convert_deprecated_attention_blocks` does. Returns how many tensors were renamed.
pub fn rename_legacy_attention(tensors: &mut HashMap<String, Tensor>) -> Result<usize> {
    const RENAMES: [(&str, &str); 4] = [
        (".query.", ".to_q."),
        (".key.", ".to_k."),
        (".value.", ".to_v."),
        (".proj_attn.", ".to_out.0."),
    ];
    let legacy: Vec<String> = tensors
        .keys()
        .filter(|k| k.contains(".attentions.") && RENAMES.iter().any(|(old, _)| k.contains(old)))
        .cloned()
        .collect();
    for old_name in &legacy {
        let (old, new) = RENAMES
            .iter()
            .find(|(old, _)| old_name.contains(old))
            .expect("filtered above");
        let new_name = old_name.replacen(old, new, 1);
        let mut t = tensors.remove(old_name).expect("listed above");
        if t.dim() == 4 && t.size()[2..] == [1, 1] {
            t = t
                .f_flatten(1, 3)
                .map_err(VaeError::torch(format!("squeeze {old_name}")))?;
        }
        tensors.insert(new_name, t);
    }
    Ok(legacy.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_permissive_like_from_pretrained() {
        let c: KlConfig = serde_json::from_str(
            r#"{"_class_name": "AutoencoderKL", "block_out_channels": [128, 256, 512, 512],
                "shift_factor": null, "sample_size": [768, 1024], "some_future_key": 1}"#,
        )
        .unwrap();
        assert_eq!(c.shift_factor, None);
        assert_eq!(c.latent_channels, 4);
        assert_eq!(c.scaling_factor, 0.18215);
        assert_eq!(c.tile_sample_size(), 768);
        assert_eq!(c.downsampling(), 8);
        // Four channels but the default single block type: refused with both counts.
        let msg = c.validate().unwrap_err();
        assert!(msg.contains("1 down and 1 up block types for 4"), "{msg}");
        assert!(KlConfig::stable_diffusion().validate().is_ok());
    }

    #[test]
    fn flux_style_config_keeps_its_shift() {
        let c: KlConfig =
            serde_json::from_str(r#"{"scaling_factor": 0.3611, "shift_factor": 0.1159}"#).unwrap();
        assert_eq!(c.shift_factor, Some(0.1159));
        let t = Tiling::for_config(&c);
        assert_eq!((t.tile_sample_size, t.tile_latent_size), (32, 32));
    }
}
