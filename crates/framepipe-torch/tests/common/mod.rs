//! What the VAE parity tests share: the fixture folders, their diffusers reference tensors, and
//! a reported max abs difference.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `tests/fixtures/<folder>/reference.safetensors`, by tensor name.
pub fn reference(folder: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(fixture(folder).join("reference.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

/// Max |got - want|, after checking the shapes agree; printed with the reference's scale.
pub fn max_abs_diff(what: &str, got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let d = (got.to_kind(Kind::Float) - want)
        .abs()
        .max()
        .double_value(&[]);
    let scale = want.abs().max().double_value(&[]);
    eprintln!("{what}: max abs diff {d:.3e} (reference max |x| {scale:.3})");
    d
}
