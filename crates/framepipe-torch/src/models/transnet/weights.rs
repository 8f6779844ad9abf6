//! A TransNetV2 folder as set-up writes it (`scripts/convert_transnetv2.py`): `config.json`
//! (the architecture's sizes) and `model.safetensors` (the reference's state dict, tensor
//! names unchanged). Every tensor is taken by name with the shape the architecture expects, so
//! a wrong or truncated checkpoint fails at load, naming the tensor.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::Tensor;

use super::TransNetError;

/// What the folder's `config.json` says. Only TransNetV2 as published (F=16, L=3, S=2,
/// D=1024, lookup windows of 101) is built; other sizes are refused rather than guessed at.
#[derive(Debug, Clone, Deserialize)]
pub struct TransNetConfig {
    pub architecture: String,
    #[serde(rename = "F")]
    pub filters: i64,
    #[serde(rename = "L")]
    pub layers: i64,
    #[serde(rename = "S")]
    pub blocks: i64,
    #[serde(rename = "D")]
    pub dense: i64,
    pub lookup_window: i64,
    pub similarity_dim: i64,
    pub window: u32,
    pub step: u32,
}

impl TransNetConfig {
    pub fn read(folder: &Path) -> Result<Self, TransNetError> {
        let path = folder.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TransNetError::Config {
            path: path.clone(),
            message: format!("cannot read it ({e})"),
        })?;
        let config: TransNetConfig =
            serde_json::from_str(&text).map_err(|e| TransNetError::Config {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let published = (16, 3, 2, 1024, 101, 128, 100, 50);
        let found = (
            config.filters,
            config.layers,
            config.blocks,
            config.dense,
            config.lookup_window,
            config.similarity_dim,
            config.window,
            config.step,
        );
        if config.architecture != "TransNetV2" || found != published {
            return Err(TransNetError::Config {
                path,
                message: format!(
                    "architecture {} with (F, L, S, D, lookup_window, similarity_dim, window, \
                     step) = {found:?}; only TransNetV2 as published, {published:?}, is built",
                    config.architecture
                ),
            });
        }
        Ok(config)
    }
}

/// The checkpoint's tensors, handed out by name and checked shape.
pub struct Checkpoint {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    pub fn read(folder: &Path) -> Result<Self, TransNetError> {
        let path = folder.join("model.safetensors");
        let tensors = Tensor::read_safetensors(&path).map_err(|e| TransNetError::Weights {
            path: path.clone(),
            message: format!("cannot read it ({e})"),
        })?;
        Ok(Checkpoint {
            path,
            tensors: tensors.into_iter().collect(),
        })
    }

    /// The tensor `name`, which must have `shape` (fp32 as the reference stores it).
    pub fn take(&mut self, name: &str, shape: &[i64]) -> Result<Tensor, TransNetError> {
        let tensor = self
            .tensors
            .remove(name)
            .ok_or_else(|| TransNetError::Weights {
                path: self.path.clone(),
                message: format!("tensor {name} is missing (expected shape {shape:?})"),
            })?;
        if tensor.size() != shape {
            return Err(TransNetError::Weights {
                path: self.path.clone(),
                message: format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    tensor.size()
                ),
            });
        }
        Ok(tensor.to_kind(tch::Kind::Float))
    }

    /// Refuses tensors no layer took (another model's checkpoint, or another version's), apart
    /// from BatchNorm's `num_batches_tracked` counters, which inference does not read.
    pub fn finish(self) -> Result<(), TransNetError> {
        let mut left: Vec<&String> = self
            .tensors
            .keys()
            .filter(|k| !k.ends_with(".num_batches_tracked"))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        left.sort();
        Err(TransNetError::Weights {
            path: self.path,
            message: format!(
                "{} tensors TransNetV2 does not have, e.g. {}",
                left.len(),
                left.iter()
                    .take(3)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}
