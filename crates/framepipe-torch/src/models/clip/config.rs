//! The CLIP model configuration, read from a Hugging Face folder's `config.json`.
//!
//! Parsing is deliberately permissive (every field has transformers' default) because real
//! `config.json` files carry many keys we do not need and omit ones that are at their default.
//! Only what changes the computation is kept. Presets for the common OpenAI shapes let tests
//! build full-size models without files.
//!
//! Defaults follow transformers 5.17.0 `configuration_clip.py`:
//! <https://github.com/huggingface/transformers/blob/v5.17.0/src/transformers/models/clip/configuration_clip.py>
use std::path::Path;

use serde::Deserialize;

use super::ClipError;

/// The activation inside each MLP block (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`: what the OpenAI checkpoints were trained with.
    QuickGelu,
    /// Exact (erf) GELU, transformers' `"gelu"`.
    Gelu,
    /// Tanh-approximated GELU, transformers' `"gelu_new"` / `"gelu_pytorch_tanh"`.
    GeluTanh,
}

impl Activation {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "quick_gelu" => Some(Self::QuickGelu),
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            _ => None,
        }
    }
}

/// `text_config` of a `CLIPConfig`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub max_position_embeddings: i64,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    pub pad_token_id: Option<i64>,
    pub bos_token_id: Option<i64>,
    /// Decides the pooling rule: 2 (the value in configs written before transformers PR #24773)
    /// means "the position of the largest id", anything else "the first position of this id".
    pub eos_token_id: i64,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            pad_token_id: Some(1),
            bos_token_id: Some(49406),
            eos_token_id: 49407,
        }
    }
}

/// `vision_config` of a `CLIPConfig`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClipVisionConfig {
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub num_channels: i64,
    pub image_size: i64,
    pub patch_size: i64,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

/// A `CLIPConfig` (`model_type: "clip"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClipConfig {
    pub model_type: Option<String>,
    pub architectures: Option<Vec<String>>,
    pub projection_dim: i64,
    pub logit_scale_init_value: f64,
    pub text_config: ClipTextConfig,
    pub vision_config: ClipVisionConfig,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            model_type: Some("clip".into()),
            architectures: Some(vec!["CLIPModel".into()]),
            projection_dim: 512,
            logit_scale_init_value: 2.6592,
            text_config: ClipTextConfig::default(),
            vision_config: ClipVisionConfig::default(),
        }
    }
}

/// The shared shape of a transformer stack, as the encoder needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncoderShape {
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub layer_norm_eps: f64,
    pub activation: Activation,
}

impl ClipConfig {
    /// Reads and validates `folder/config.json`.
    pub fn from_folder(folder: &Path) -> Result<Self, ClipError> {
        let path = folder.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ClipError::Config {
            folder: folder.to_path_buf(),
            message: format!("cannot read config.json: {e}"),
        })?;
        Self::from_json(&text).map_err(|message| ClipError::Config {
            folder: folder.to_path_buf(),
            message,
        })
    }

    /// Parses and validates a `config.json` text.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let cfg: Self = serde_json::from_str(text)
            .map_err(|e| format!("config.json is not a CLIP config: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what the model build relies on; messages name the value found and what was expected.
    pub fn validate(&self) -> Result<(), String> {
        match self.model_type.as_deref() {
            Some("clip") | None => {}
            Some(other) => {
                return Err(format!(
                    "unsupported model_type {other:?} (expected \"clip\"; only transformers' CLIPModel is implemented)"
                ))
            }
        }
        if let Some(archs) = &self.architectures {
            if !archs.is_empty() && !archs.iter().any(|a| a == "CLIPModel") {
                return Err(format!(
                    "unsupported architectures {archs:?} (expected [\"CLIPModel\"])"
                ));
            }
        }
        let t = &self.text_config;
        let v = &self.vision_config;
        for (what, act) in [
            ("text_config", &t.hidden_act),
            ("vision_config", &v.hidden_act),
        ] {
            if Activation::parse(act).is_none() {
                return Err(format!(
                    "{what}.hidden_act {act:?} is not supported (expected quick_gelu, gelu, gelu_new or gelu_pytorch_tanh)"
                ));
            }
        }
        for (what, hidden, heads) in [
            ("text_config", t.hidden_size, t.num_attention_heads),
            ("vision_config", v.hidden_size, v.num_attention_heads),
        ] {
            if heads <= 0 || hidden <= 0 || hidden % heads != 0 {
                return Err(format!(
                    "{what}.hidden_size {hidden} is not a positive multiple of num_attention_heads {heads}"
                ));
            }
        }
        if v.patch_size <= 0 || v.image_size <= 0 || v.image_size % v.patch_size != 0 {
            return Err(format!(
                "vision_config.image_size {} is not a positive multiple of patch_size {}",
                v.image_size, v.patch_size
            ));
        }
        if self.projection_dim <= 0 || t.max_position_embeddings <= 0 || t.vocab_size <= 0 {
            return Err(format!(
                "projection_dim {}, text max_position_embeddings {} and vocab_size {} must be positive",
                self.projection_dim, t.max_position_embeddings, t.vocab_size
            ));
        }
        Ok(())
    }

    pub(crate) fn text_encoder(&self) -> EncoderShape {
        let t = &self.text_config;
        EncoderShape {
            hidden_size: t.hidden_size,
            intermediate_size: t.intermediate_size,
            num_hidden_layers: t.num_hidden_layers,
            num_attention_heads: t.num_attention_heads,
            layer_norm_eps: t.layer_norm_eps,
            activation: Activation::parse(&t.hidden_act).unwrap_or(Activation::QuickGelu),
        }
    }

    pub(crate) fn vision_encoder(&self) -> EncoderShape {
        let v = &self.vision_config;
        EncoderShape {
            hidden_size: v.hidden_size,
            intermediate_size: v.intermediate_size,
            num_hidden_layers: v.num_hidden_layers,
            num_attention_heads: v.num_attention_heads,
            layer_norm_eps: v.layer_norm_eps,
            activation: Activation::parse(&v.hidden_act).unwrap_or(Activation::QuickGelu),
        }
    }

    /// `openai/clip-vit-base-patch32`.
    pub fn vit_base_patch32() -> Self {
        Self::default()
    }

    /// `openai/clip-vit-base-patch16`.
    pub fn vit_base_patch16() -> Self {
        let mut c = Self::default();
        c.vision_config.patch_size = 16;
        c
    }

    /// `openai/clip-vit-large-patch14`.
    pub fn vit_large_patch14() -> Self {
        Self {
            projection_dim: 768,
            text_config: ClipTextConfig {
                hidden_size: 768,
                intermediate_size: 3072,
                num_attention_heads: 12,
                ..ClipTextConfig::default()
            },
            vision_config: ClipVisionConfig {
                hidden_size: 1024,
                intermediate_size: 4096,
                num_hidden_layers: 24,
                num_attention_heads: 16,
                patch_size: 14,
                ..ClipVisionConfig::default()
            },
            ..Self::default()
        }
    }

    /// `openai/clip-vit-large-patch14-336`.
    pub fn vit_large_patch14_336() -> Self {
        let mut c = Self::vit_large_patch14();
        c.vision_config.image_size = 336;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_style_config_parses_with_defaults() {
        // The shape of openai/clip-vit-base-patch32's config.json, trimmed: legacy eos id 2.
        let cfg = ClipConfig::from_json(
            r#"{"architectures":["CLIPModel"],"model_type":"clip","projection_dim":512,
                "text_config":{"eos_token_id":2,"bos_token_id":0,"pad_token_id":1,"unused":true},
                "vision_config":{"patch_size":32}}"#,
        )
        .unwrap();
        assert_eq!(cfg.text_config.eos_token_id, 2);
        assert_eq!(cfg.text_config.max_position_embeddings, 77);
        assert_eq!(cfg.vision_config.hidden_size, 768);
        assert_eq!(cfg.vision_encoder().activation, Activation::QuickGelu);
    }

    #[test]
    fn unsupported_models_are_named() {
        let e = ClipConfig::from_json(r#"{"model_type":"siglip"}"#).unwrap_err();
        assert!(e.contains("siglip"), "{e}");
        let e = ClipConfig::from_json(r#"{"architectures":["CLIPVisionModel"]}"#).unwrap_err();
        assert!(e.contains("CLIPVisionModel"), "{e}");
        let e = ClipConfig::from_json(r#"{"vision_config":{"hidden_act":"relu"}}"#).unwrap_err();
        assert!(e.contains("relu"), "{e}");
    }
}
