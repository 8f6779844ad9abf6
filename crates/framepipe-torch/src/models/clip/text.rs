//! The CLIP text tower (`text_model.*`): token + position embeddings, causal pre-norm
//! transformer, and pooling at the end-of-text token.
//!
//! Reference (pinned): `CLIPTextEmbeddings`, `CLIPTextTransformer` in
//! <https://github.com/huggingface/transformers/blob/v5.17.0/src/transformers/models/clip/modeling_clip.py>
use tch::{nn, Kind, TchError, Tensor};

use super::config::ClipConfig;
use super::encoder::ClipEncoder;
use crate::nn::LayerNorm;

/// `text_model.embeddings`.
#[derive(Debug)]
struct ClipTextEmbeddings {
    /// `token_embedding.weight` [vocab, hidden].
    token_embedding: Tensor,
    /// `position_embedding.weight` [max_positions, hidden].
    position_embedding: Tensor,
}

impl ClipTextEmbeddings {
    fn new(p: nn::Path, cfg: &ClipConfig) -> Result<Self, TchError> {
        let t = &cfg.text_config;
        let init = nn::Init::Randn {
            mean: 0.,
            stdev: 0.02,
        };
        Ok(Self {
            token_embedding: (&p / "token_embedding").f_var(
                "weight",
                &[t.vocab_size, t.hidden_size],
                init,
            )?,
            position_embedding: (&p / "position_embedding").f_var(
                "weight",
                &[t.max_position_embeddings, t.hidden_size],
                init,
            )?,
        })
    }

    fn forward(&self, input_ids: &Tensor) -> Result<Tensor, TchError> {
        let len = input_ids.size()[1];
        let tokens = Tensor::f_embedding(&self.token_embedding, input_ids, -1, false, false)?;
        tokens.f_add(&self.position_embedding.f_narrow(0, 0, len)?)
    }
}

/// `text_model`: embeddings, causal encoder, `final_layer_norm`, then the hidden state at the
/// end-of-text position of each sequence.
#[derive(Debug)]
pub(crate) struct ClipTextTransformer {
    embeddings: ClipTextEmbeddings,
    encoder: ClipEncoder,
    final_layer_norm: LayerNorm,
    eos_token_id: i64,
}

impl ClipTextTransformer {
    pub fn new(p: nn::Path, cfg: &ClipConfig) -> Result<Self, TchError> {
        let shape = cfg.text_encoder();
        Ok(Self {
            embeddings: ClipTextEmbeddings::new(&p / "embeddings", cfg)?,
            encoder: ClipEncoder::new(&p / "encoder", &shape)?,
            final_layer_norm: LayerNorm::new(
                &p / "final_layer_norm",
                shape.hidden_size,
                shape.layer_norm_eps,
            )?,
            eos_token_id: cfg.text_config.eos_token_id,
        })
    }

    /// `input_ids` [N, L] (int64, L <= max_position_embeddings); returns pooled [N, hidden].
    ///
    /// No padding mask is needed: with the causal mask the end-of-text position never attends
    /// to the padding after it, so its output equals transformers' with `attention_mask`.
    pub fn forward(&self, input_ids: &Tensor) -> Result<Tensor, TchError> {
        let xs = self.embeddings.forward(input_ids)?;
        let xs = self.encoder.forward(&xs, true)?;
        let xs = self.final_layer_norm.forward(&xs)?;
        let eos_position = self.eos_positions(input_ids)?;
        // Gather one row per sequence: [N, 1, hidden] index -> [N, hidden].
        let (n, _, d) = xs.size3()?;
        let index = eos_position.f_view([n, 1, 1])?.f_expand([n, 1, d], false)?;
        xs.f_gather(1, &index, false)?.f_squeeze_dim(1)
    }

    /// transformers' pooling rule: configs written before PR #24773 say `eos_token_id: 2`, and
    /// for them the position of the largest id (the end-of-text token is the last in the
    /// vocabulary) is used; otherwise the first position holding `eos_token_id` (padding may
    /// repeat that id, so "first" matters).
    fn eos_positions(&self, input_ids: &Tensor) -> Result<Tensor, TchError> {
        if self.eos_token_id == 2 {
            input_ids.f_argmax(-1, false)
        } else {
            input_ids
                .f_eq(self.eos_token_id)?
                .f_to_kind(Kind::Int)?
                .f_argmax(-1, false)
        }
    }
}
