//! CLIP (transformers `CLIPModel` layout) in tch: config, towers, tokenizer, preprocessing.
//!
//! [`ClipModel`] is built on a `VarStore` whose variable names are the checkpoint's tensor names
//! (`vision_model.encoder.layers.0.self_attn.q_proj.weight`, ...), then filled from the folder's
//! `model.safetensors` (or its sharded index) by [`crate::runtime::weights::load_into`], which rejects a
//! missing tensor or a wrong shape by name. What a user with `openai/clip-vit-base-patch32` on
//! disk loads is exactly what the parity fixture (tests/fixtures/make_clip_fixture.py) checks.
//!
//! Layout: [`config`] (config.json), `encoder` (the transformer stack both towers share),
//! [`vision`] / [`text`] (the towers), [`tokenizer`] (tokenizer.json to padded ids),
//! [`preprocess`] (CLIPImageProcessor on device tensors).
pub mod config;
mod encoder;
pub mod preprocess;
pub mod text;
pub mod tokenizer;
pub mod vision;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::{nn, Device, Kind, TchError, Tensor};

pub use config::{Activation, ClipConfig, ClipTextConfig, ClipVisionConfig};
pub use preprocess::ClipPreprocessor;
pub use tokenizer::ClipTokenizer;

use crate::nn::Linear;
use crate::runtime::weights::{self, WeightsError};
use encoder::LINEAR_INIT;
use text::ClipTextTransformer;
use vision::ClipVisionTransformer;

/// Everything that can go wrong loading or running CLIP; each names its subject.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("CLIP model folder {folder}: {message}")]
    Config { folder: PathBuf, message: String },
    #[error("CLIP model folder {folder}: {source}")]
    Weights {
        folder: PathBuf,
        #[source]
        source: WeightsError,
    },
    #[error("CLIP tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("CLIP input: {0}")]
    Input(String),
    #[error("CLIP forward failed in libtorch: {0}")]
    Torch(#[from] TchError),
}

/// transformers' `CLIPModel`: both towers, their projections and the learned temperature.
///
/// Reference (pinned): `CLIPModel` in
/// <https://github.com/huggingface/transformers/blob/v5.17.0/src/transformers/models/clip/modeling_clip.py>
#[derive(Debug)]
pub struct ClipModel {
    // Owns the variables the towers hold shallow handles to.
    vs: nn::VarStore,
    config: ClipConfig,
    vision_model: ClipVisionTransformer,
    text_model: ClipTextTransformer,
    /// `visual_projection.weight` [projection_dim, vision hidden], no bias.
    visual_projection: Linear,
    /// `text_projection.weight` [projection_dim, text hidden], no bias.
    text_projection: Linear,
    /// `logit_scale`: a 0-d parameter holding log(temperature).
    logit_scale: Tensor,
}

impl ClipModel {
    /// Loads `folder/config.json` and `folder/model.safetensors` (or the shards of
    /// `model.safetensors.index.json`) onto `device` in `kind` (Float on CPU, Half on CUDA).
    pub fn load(folder: &Path, device: Device, kind: Kind) -> Result<Self, ClipError> {
        let config = ClipConfig::from_folder(folder)?;
        let model = Self::build(config, device, kind).map_err(|message| ClipError::Config {
            folder: folder.to_path_buf(),
            message,
        })?;
        let weights_err = |source| ClipError::Weights {
            folder: folder.to_path_buf(),
            source,
        };
        let files = weights::safetensors_files(folder, "model").map_err(weights_err)?;
        let tensors = weights::read_tensors(&files).map_err(weights_err)?;
        // Extra tensors (e.g. `position_ids` buffers in old checkpoints) are harmless.
        weights::load_into(&model.vs, &tensors, folder).map_err(weights_err)?;
        Ok(model)
    }

    /// The model's variables (named as in transformers' checkpoints).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// A model of `config` with random weights: for tests and benchmarks of real shapes
    /// without weight files.
    pub fn random(config: ClipConfig, device: Device, kind: Kind) -> Result<Self, ClipError> {
        let in_memory = || PathBuf::from("<in memory>");
        config.validate().map_err(|message| ClipError::Config {
            folder: in_memory(),
            message,
        })?;
        Self::build(config, device, kind).map_err(|message| ClipError::Config {
            folder: in_memory(),
            message,
        })
    }

    /// Creates every variable. Variable creation fails on out of memory on the device or a kind
    /// the device lacks; that comes back as a message. A panic inside tch is caught and returned
    /// the same way.
    fn build(config: ClipConfig, device: Device, kind: Kind) -> Result<Self, String> {
        // The common case gets a plain message instead of libtorch's backtrace.
        if let Device::Cuda(index) = device {
            let count = if tch::Cuda::is_available() {
                tch::Cuda::device_count()
            } else {
                0
            };
            if index >= count as usize {
                return Err(format!(
                    "CUDA device {index} requested, libtorch sees {count} CUDA device(s)"
                ));
            }
        }
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut vs = nn::VarStore::new(device);
            // Set before building so every variable is created directly in `kind`.
            vs.set_kind(kind);
            let root = vs.root();
            let vision_model = ClipVisionTransformer::new(&root / "vision_model", &config)?;
            let text_model = ClipTextTransformer::new(&root / "text_model", &config)?;
            let p = config.projection_dim;
            let visual_projection = Linear::new(
                &root / "visual_projection",
                config.vision_config.hidden_size,
                p,
                false,
                LINEAR_INIT,
            )?;
            let text_projection = Linear::new(
                &root / "text_projection",
                config.text_config.hidden_size,
                p,
                false,
                LINEAR_INIT,
            )?;
            let logit_scale = root.f_var(
                "logit_scale",
                &[],
                nn::Init::Const(config.logit_scale_init_value),
            )?;
            // Inference only: no autograd graph behind any forward.
            vs.freeze();
            Ok::<_, TchError>((
                vs,
                vision_model,
                text_model,
                visual_projection,
                text_projection,
                logit_scale,
            ))
        }));
        let cannot_build = |why: &str| {
            // libtorch appends a C++ backtrace; its first line is the cause.
            let why = why.lines().next().unwrap_or_default();
            format!("cannot build the model on {device:?} in {kind:?}: {why}")
        };
        let (vs, vision_model, text_model, visual_projection, text_projection, logit_scale) = built
            .map_err(|panic| {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown cause".into());
                cannot_build(&why)
            })?
            .map_err(|e| cannot_build(&e.to_string()))?;
        Ok(Self {
            vs,
            config,
            vision_model,
            text_model,
            visual_projection,
            text_projection,
            logit_scale,
        })
    }

    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn kind(&self) -> Kind {
        self.vision_model.kind()
    }

    /// Every parameter's checkpoint name and shape: the layout a checkpoint must match.
    pub fn parameter_shapes(&self) -> BTreeMap<String, Vec<i64>> {
        self.vs
            .variables()
            .into_iter()
            .map(|(name, t)| (name, t.size()))
            .collect()
    }

    /// The square input side the vision tower expects (`vision_config.image_size`).
    pub fn image_size(&self) -> i64 {
        self.config.vision_config.image_size
    }

    /// The text context length (`text_config.max_position_embeddings`, 77 for CLIP).
    pub fn context_length(&self) -> i64 {
        self.config.text_config.max_position_embeddings
    }

    /// The stored `logit_scale` parameter (the log of the temperature).
    pub fn logit_scale(&self) -> f64 {
        self.logit_scale.double_value(&[])
    }

    /// The factor the logits use: `logit_scale.exp()`.
    pub fn logit_scale_exp(&self) -> f64 {
        self.logit_scale().exp()
    }

    /// `pixel_values` [N, channels, S, S] (preprocessed, any float kind, any device) to
    /// L2-normalized projected embeddings [N, projection_dim], fp32, on the model's device:
    /// what `CLIPModel` returns as `image_embeds`.
    pub fn image_embeds(&self, pixel_values: &Tensor) -> Result<Tensor, ClipError> {
        let v = &self.config.vision_config;
        let size = pixel_values.size();
        let expected = [v.num_channels, v.image_size, v.image_size];
        if size.len() != 4 || size[1..] != expected {
            return Err(ClipError::Input(format!(
                "pixel_values has shape {size:?}, expected [N, {}, {}, {}]",
                expected[0], expected[1], expected[2]
            )));
        }
        let _guard = tch::no_grad_guard();
        let xs = pixel_values
            .f_to_device(self.device())?
            .f_to_kind(self.kind())?;
        let pooled = self.vision_model.forward(&xs)?;
        let projected = self.visual_projection.forward(&pooled)?;
        Ok(l2_normalize(&projected)?)
    }

    /// `input_ids` [N, L] (integer, L <= context length, each row holding the end-of-text
    /// token as the tokenizer writes it) to L2-normalized projected embeddings
    /// [N, projection_dim], fp32: what `CLIPModel` returns as `text_embeds`.
    pub fn text_embeds(&self, input_ids: &Tensor) -> Result<Tensor, ClipError> {
        let size = input_ids.size();
        let t = &self.config.text_config;
        if size.len() != 2 || size[1] < 1 || size[1] > t.max_position_embeddings {
            return Err(ClipError::Input(format!(
                "input_ids has shape {size:?}, expected [N, L] with 1 <= L <= {}",
                t.max_position_embeddings
            )));
        }
        if !matches!(
            input_ids.kind(),
            Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Uint8 | Kind::Int8
        ) {
            return Err(ClipError::Input(format!(
                "input_ids has kind {:?}, expected an integer kind",
                input_ids.kind()
            )));
        }
        let _guard = tch::no_grad_guard();
        let ids = input_ids
            .f_to_device(self.device())?
            .f_to_kind(Kind::Int64)?;
        // An out-of-vocabulary id would be an index error deep in libtorch; name it here.
        if size[0] > 0 {
            let (lo, hi) = (ids.f_min()?.int64_value(&[]), ids.f_max()?.int64_value(&[]));
            if lo < 0 || hi >= t.vocab_size {
                return Err(ClipError::Input(format!(
                    "input_ids hold ids in [{lo}, {hi}], outside the vocabulary [0, {})",
                    t.vocab_size
                )));
            }
        }
        let pooled = self.text_model.forward(&ids)?;
        let projected = self.text_projection.forward(&pooled)?;
        Ok(l2_normalize(&projected)?)
    }

    /// `logits_per_image` [N_images, N_texts] from normalized embeddings: scaled cosine
    /// similarity, as `CLIPModel` computes it.
    pub fn logits_per_image(
        &self,
        image_embeds: &Tensor,
        text_embeds: &Tensor,
    ) -> Result<Tensor, ClipError> {
        let _guard = tch::no_grad_guard();
        let text = text_embeds
            .f_to_device(image_embeds.device())?
            .f_to_kind(image_embeds.kind())?;
        Ok(image_embeds
            .f_matmul(&text.f_tr()?)?
            .f_mul_scalar(self.logit_scale_exp())?)
    }
}

/// `x / ||x||_2` over the last dimension, computed in fp32 so fp16 models keep full precision
/// in the similarities.
fn l2_normalize(xs: &Tensor) -> Result<Tensor, TchError> {
    let xs = xs.f_to_kind(Kind::Float)?;
    let norm = xs
        .f_square()?
        .f_sum_dim_intlist(-1, true, None::<Kind>)?
        .f_sqrt()?;
    xs.f_div(&norm)
}
