//! The CLIP vision tower (`vision_model.*`): patch embedding, pre-norm ViT, class-token pooling.
//!
//! Reference (pinned): `CLIPVisionEmbeddings`, `CLIPVisionTransformer` in
//! <https://github.com/huggingface/transformers/blob/v5.17.0/src/transformers/models/clip/modeling_clip.py>
use tch::{nn, Kind, TchError, Tensor};

use super::config::ClipConfig;
use super::encoder::ClipEncoder;
use crate::nn::{Conv2d, LayerNorm};

/// `vision_model.embeddings`: a strided conv cuts the image into patches, a learned class token
/// is prepended, learned absolute positions are added.
#[derive(Debug)]
struct ClipVisionEmbeddings {
    class_embedding: Tensor,
    /// `patch_embedding.weight` [hidden, channels, patch, patch]; the conv (stride `patch`) has
    /// no bias.
    patch_embedding: Conv2d,
    /// `position_embedding.weight` [1 + patches, hidden].
    position_embedding: Tensor,
}

impl ClipVisionEmbeddings {
    fn new(p: nn::Path, cfg: &ClipConfig) -> Result<Self, TchError> {
        let v = &cfg.vision_config;
        let d = v.hidden_size;
        let patches = (v.image_size / v.patch_size).pow(2);
        let init = nn::Init::Randn {
            mean: 0.,
            stdev: 0.02,
        };
        Ok(Self {
            class_embedding: p.f_var("class_embedding", &[d], init)?,
            patch_embedding: Conv2d::new(
                &p / "patch_embedding",
                v.num_channels,
                d,
                v.patch_size,
                v.patch_size,
                0,
                false,
                init,
            )?,
            position_embedding: (&p / "position_embedding").f_var(
                "weight",
                &[patches + 1, d],
                init,
            )?,
        })
    }

    fn forward(&self, pixel_values: &Tensor) -> Result<Tensor, TchError> {
        let n = pixel_values.size()[0];
        let d = self.class_embedding.size()[0];
        let patches = self
            .patch_embedding
            .forward(pixel_values)?
            .f_flatten(2, -1)?
            .f_transpose(1, 2)?;
        let class = self.class_embedding.f_expand([n, 1, d], false)?;
        Tensor::f_cat(&[class, patches], 1)?.f_add(&self.position_embedding)
    }
}

/// `vision_model`: embeddings, `pre_layrnorm` (sic, the checkpoint's spelling), encoder, and
/// `post_layernorm` applied to the class token only, which is the pooled output.
#[derive(Debug)]
pub(crate) struct ClipVisionTransformer {
    embeddings: ClipVisionEmbeddings,
    pre_layrnorm: LayerNorm,
    encoder: ClipEncoder,
    post_layernorm: LayerNorm,
}

impl ClipVisionTransformer {
    pub fn new(p: nn::Path, cfg: &ClipConfig) -> Result<Self, TchError> {
        let shape = cfg.vision_encoder();
        let (d, eps) = (shape.hidden_size, shape.layer_norm_eps);
        Ok(Self {
            embeddings: ClipVisionEmbeddings::new(&p / "embeddings", cfg)?,
            pre_layrnorm: LayerNorm::new(&p / "pre_layrnorm", d, eps)?,
            encoder: ClipEncoder::new(&p / "encoder", &shape)?,
            post_layernorm: LayerNorm::new(&p / "post_layernorm", d, eps)?,
        })
    }

    /// `pixel_values` [N, C, S, S] in the model's kind; returns the pooled output [N, hidden].
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor, TchError> {
        let xs = self.embeddings.forward(pixel_values)?;
        let xs = self.pre_layrnorm.forward(&xs)?;
        let xs = self.encoder.forward(&xs, false)?;
        let class_token = xs.f_select(1, 0)?;
        self.post_layernorm.forward(&class_token)
    }

    pub fn kind(&self) -> Kind {
        self.embeddings.class_embedding.kind()
    }
}
