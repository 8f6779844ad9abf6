//! Text to CLIP `input_ids`: the model folder's `tokenizer.json` through the `tokenizers` crate,
//! padded and truncated to the context length the way transformers' `CLIPTokenizer` does with
//! `padding="max_length", truncation=True, max_length=77`.
//!
//! The tokenizer.json's post-processor adds `<|startoftext|>` / `<|endoftext|>`; truncation keeps
//! both (the content is cut to 75 tokens), padding appends the pad token. The pad token comes from
//! the folder's `tokenizer_config.json` (`<|endoftext|>` for OpenAI's models, `!` for some LAION
//! ones), then tokenizer.json's own padding section, then `<|endoftext|>`.
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use super::ClipError;

/// The end-of-text token of the CLIP vocabulary, the pad token when nothing else is configured.
const END_OF_TEXT: &str = "<|endoftext|>";

/// A CLIP tokenizer producing fixed-length id rows.
pub struct ClipTokenizer {
    tokenizer: Tokenizer,
    /// The tokenizer.json it was read from, for error messages.
    path: PathBuf,
    context_length: usize,
    pad_id: u32,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("context_length", &self.context_length)
            .field("pad_id", &self.pad_id)
            .finish()
    }
}

impl ClipTokenizer {
    /// Reads `folder/tokenizer.json` (and `tokenizer_config.json` when present); rows are
    /// `context_length` ids long (the model's `max_position_embeddings`).
    pub fn from_folder(folder: &Path, context_length: usize) -> Result<Self, ClipError> {
        let path = folder.join("tokenizer.json");
        let err = |message: String| ClipError::Tokenizer {
            path: path.clone(),
            message,
        };
        if context_length < 2 {
            return Err(err(format!(
                "context length {context_length} leaves no room for start and end tokens"
            )));
        }
        let mut tokenizer =
            Tokenizer::from_file(&path).map_err(|e| err(format!("cannot load: {e}")))?;
        let pad_token = configured_pad_token(folder)
            .or_else(|| tokenizer.get_padding().map(|p| p.pad_token.clone()))
            .unwrap_or_else(|| END_OF_TEXT.to_owned());
        let pad_id = tokenizer
            .token_to_id(&pad_token)
            .ok_or_else(|| err(format!("pad token {pad_token:?} is not in the vocabulary")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: context_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| err(format!("cannot truncate to {context_length}: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(context_length),
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token,
        }));
        Ok(Self {
            tokenizer,
            path,
            context_length,
            pad_id,
        })
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The id rows of `texts`, each exactly `context_length` long.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<i64>>, ClipError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ClipError::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        Ok(encodings
            .iter()
            .map(|e| e.get_ids().iter().map(|&id| i64::from(id)).collect())
            .collect())
    }

    /// `input_ids` [N, context_length] int64 on `device`.
    pub fn input_ids(&self, texts: &[&str], device: Device) -> Result<Tensor, ClipError> {
        let rows = self.encode(texts)?;
        let flat: Vec<i64> = rows.concat();
        let ids =
            Tensor::from_slice(&flat).f_view([texts.len() as i64, self.context_length as i64])?;
        Ok(ids.f_to_kind(Kind::Int64)?.f_to_device(device)?)
    }
}

/// `pad_token` of `tokenizer_config.json`: a string, or an added-token object with `content`.
fn configured_pad_token(folder: &Path) -> Option<String> {
    let text = std::fs::read_to_string(folder.join("tokenizer_config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    match &json["pad_token"] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}
