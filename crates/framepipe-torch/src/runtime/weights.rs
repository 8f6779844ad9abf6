//! Loading checkpoint weights (safetensors, single file or sharded with an index JSON) into a
//! model built on a `tch::nn::VarStore` whose variable names are the checkpoint's tensor names.
//!
//! Every variable the model declares must be in the checkpoint with the same shape; a mismatch is
//! an error naming the tensor, the expected and the found shape. Dtypes are converted to the
//! variable's (fp16 checkpoints load into fp32 models and back).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{nn::VarStore, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: cannot read weights: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: tensor {name} is missing (model expects shape {expected:?})")]
    Missing {
        path: PathBuf,
        name: String,
        expected: Vec<i64>,
    },
    #[error("{path}: tensor {name} has shape {found:?}, model expects {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
}

/// The safetensors files of a model folder: `model.safetensors`-style single file, or the shards
/// listed by an `*.safetensors.index.json` (`weight_map`).
pub fn safetensors_files(folder: &Path, stem: &str) -> Result<Vec<PathBuf>, WeightsError> {
    let single = folder.join(format!("{stem}.safetensors"));
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = folder.join(format!("{stem}.safetensors.index.json"));
    let text = std::fs::read_to_string(&index).map_err(|e| WeightsError::Read {
        path: folder.to_path_buf(),
        message: format!("neither {stem}.safetensors nor {stem}.safetensors.index.json ({e})"),
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| WeightsError::Read {
        path: index.clone(),
        message: e.to_string(),
    })?;
    let map = json["weight_map"]
        .as_object()
        .ok_or_else(|| WeightsError::Read {
            path: index.clone(),
            message: "no weight_map".into(),
        })?;
    let mut files: Vec<PathBuf> = map
        .values()
        .filter_map(|v| v.as_str())
        .map(|f| folder.join(f))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// All tensors of `files`, by name.
pub fn read_tensors(files: &[PathBuf]) -> Result<HashMap<String, Tensor>, WeightsError> {
    let mut all = HashMap::new();
    for file in files {
        let tensors = Tensor::read_safetensors(file).map_err(|e| WeightsError::Read {
            path: file.clone(),
            message: e.to_string(),
        })?;
        all.extend(tensors);
    }
    Ok(all)
}

/// Copies `tensors` into every variable of `vs` (names must match exactly). `origin` names the
/// weights in error messages. Tensors the model does not use are ignored and returned by name, so
/// callers can decide whether extras matter.
pub fn load_into(
    vs: &VarStore,
    tensors: &HashMap<String, Tensor>,
    origin: &Path,
) -> Result<Vec<String>, WeightsError> {
    let variables = vs.variables();
    for (name, var) in &variables {
        let expected = var.size();
        let src = tensors.get(name).ok_or_else(|| WeightsError::Missing {
            path: origin.to_path_buf(),
            name: name.clone(),
            expected: expected.clone(),
        })?;
        if src.size() != expected {
            return Err(WeightsError::Shape {
                path: origin.to_path_buf(),
                name: name.clone(),
                expected,
                found: src.size(),
            });
        }
        tch::no_grad(|| {
            let mut var = var.shallow_clone();
            var.copy_(&src.to_kind(var.kind()).to_device(var.device()));
        });
    }
    let mut unused: Vec<String> = tensors
        .keys()
        .filter(|k| !variables.contains_key(*k))
        .cloned()
        .collect();
    unused.sort();
    Ok(unused)
}
