//! Scoring heads: small MLPs that turn one CLIP image embedding into one score (an aesthetic
//! rating like the LAION improved-aesthetic-predictor's, an NSFW probability, ...).
//!
//! A head is a safetensors file of weights plus a small JSON config that says how to read it:
//!
//! ```json
//! {"input_dim": 768, "normalize_input": true,
//!  "layers": [{"name": "layers.0", "out": 1024}, {"name": "layers.2", "out": 128},
//!             {"name": "layers.4", "out": 64}, {"name": "layers.6", "out": 16},
//!             {"name": "layers.7", "out": 1}],
//!  "activation": "identity", "output": "identity"}
//! ```
//!
//! Each layer is `<name>.weight` `[out, in]` and `<name>.bias` `[out]` (PyTorch's `Linear`; a
//! layer with `"bias": false` has no bias, and the file must not hold one), where `in` is the
//! previous layer's `out` (the first layer's is `input_dim`). The layers run in order with
//! `activation` (`identity`, `relu`, `gelu` — the exact erf form, PyTorch's default —,
//! `sigmoid` or `tanh`) between them, not after the last; the last layer's `out` must be 1 and
//! `output` (`identity` or `sigmoid`) is applied to its value. With `normalize_input` the
//! embedding is L2-normalised first (a zero vector stays zero), as the LAION predictor expects of
//! CLIP ViT-L/14 embeddings. Weights may be stored as F32, F16 or BF16; they are held as f32 and
//! every dot product is accumulated in f64, so scores agree with PyTorch's fp32 to about 1e-6.
//!
//! Pure Rust on slices: no libtorch, no ffmpeg. Every error names the head and the file it is
//! about.
use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

/// How many of a file's tensor names a missing-tensor error lists.
const LISTED_NAMES: usize = 12;

/// What went wrong loading or running a head; each names the head and, where there is one, the
/// file.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("head `{head}`: cannot read {}: {source}", path.display())]
    Read {
        head: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("head `{head}`: config {}: {message}", path.display())]
    Config {
        head: String,
        path: PathBuf,
        message: String,
    },
    #[error("head `{head}`: {} is not a readable safetensors file: {message}", path.display())]
    Safetensors {
        head: String,
        path: PathBuf,
        message: String,
    },
    #[error(transparent)]
    MissingTensor(Box<MissingTensor>),
    #[error(transparent)]
    Shape(Box<ShapeMismatch>),
    #[error("head `{head}`: {tensor} in {} is {dtype}; a head's weights must be F32, F16 or BF16", path.display())]
    Dtype {
        head: String,
        path: PathBuf,
        tensor: String,
        dtype: Dtype,
    },
    #[error("head `{head}`: {} holds {tensor}, but config {} says layer `{}` has no bias (\"bias\": false); drop the tensor or the setting", path.display(), config.display(), tensor.strip_suffix(".bias").unwrap_or(tensor))]
    UnexpectedBias {
        head: String,
        path: PathBuf,
        config: PathBuf,
        tensor: String,
    },
    #[error("head `{head}` ({}): the embedding has {found} values, the head takes {expected} (input_dim)", weights.display())]
    EmbeddingLength {
        head: String,
        weights: PathBuf,
        found: usize,
        expected: usize,
    },
    #[error("head `{head}` ({}): the embedding's value {index} is {value}, not a finite number", weights.display())]
    NonFinite {
        head: String,
        weights: PathBuf,
        index: usize,
        value: f32,
    },
}

/// A tensor the config names is not in the weights file (boxed in [`HeadError::MissingTensor`]).
#[derive(Debug, thiserror::Error)]
#[error("head `{head}`: {} has no tensor {tensor} (config {} names layer `{layer}`; the file has: {available})", path.display(), config.display())]
pub struct MissingTensor {
    pub head: String,
    pub path: PathBuf,
    pub config: PathBuf,
    pub tensor: String,
    pub layer: String,
    /// The file's tensor names, sorted, the first few of them.
    pub available: String,
}

/// A tensor whose shape is not the one the config implies (boxed in [`HeadError::Shape`]).
#[derive(Debug, thiserror::Error)]
#[error("head `{head}`: {tensor} in {} is {}, expected {} ({why})", path.display(), Shape(found), Shape(expected))]
pub struct ShapeMismatch {
    pub head: String,
    pub path: PathBuf,
    pub tensor: String,
    pub found: Vec<usize>,
    pub expected: Vec<usize>,
    /// Where the expected shape comes from (which config layer, input_dim or the previous out).
    pub why: String,
}

/// A shape written as PyTorch prints it: `[128, 1024]`.
struct Shape<'a>(&'a [usize]);

impl fmt::Display for Shape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A head's JSON config (see the module docs). Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    /// Length of the embeddings the head takes.
    pub input_dim: usize,
    /// L2-normalise the embedding before the first layer. Required: a head trained on normalised
    /// embeddings silently gives wrong scores on raw ones, so the config must say which.
    pub normalize_input: bool,
    /// The linear layers, in the order they run.
    pub layers: Vec<LayerConfig>,
    /// Between layers (not after the last).
    #[serde(default)]
    pub activation: Activation,
    /// On the final value.
    #[serde(default)]
    pub output: Output,
}

/// One linear layer: tensors `<name>.weight` `[out, in]` and (unless `bias` is false)
/// `<name>.bias` `[out]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    pub name: String,
    pub out: usize,
    #[serde(default = "yes")]
    pub bias: bool,
}

fn yes() -> bool {
    true
}

/// The function between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Identity,
    Relu,
    /// `x · Φ(x)` with the exact normal CDF (erf), as `torch.nn.GELU()` by default.
    Gelu,
    Sigmoid,
    Tanh,
}

impl Activation {
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Gelu => 0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2)),
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => x.tanh(),
        }
    }
}

/// The function on the final value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    #[default]
    Identity,
    Sigmoid,
}

impl Output {
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Output::Identity => x,
            Output::Sigmoid => sigmoid(x),
        }
    }
}

/// A loaded layer: row-major `[out, in]` weights.
#[derive(Debug, Clone)]
struct Layer {
    inputs: usize,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
}

/// A loaded scoring head, ready to score embeddings.
#[derive(Debug, Clone)]
pub struct Head {
    name: String,
    weights_path: PathBuf,
    config: HeadConfig,
    layers: Vec<Layer>,
}

impl Head {
    /// Reads the head called `name` (used in messages) from its weights and config files,
    /// checking every tensor's presence, shape and dtype against the config.
    pub fn load(name: &str, weights: &Path, config: &Path) -> Result<Head, HeadError> {
        let config_text = std::fs::read_to_string(config).map_err(|source| HeadError::Read {
            head: name.into(),
            path: config.into(),
            source,
        })?;
        let parsed: HeadConfig =
            crate::strict_json::parse(&config_text).map_err(|message| HeadError::Config {
                head: name.into(),
                path: config.into(),
                message,
            })?;
        let bytes = std::fs::read(weights).map_err(|source| HeadError::Read {
            head: name.into(),
            path: weights.into(),
            source,
        })?;
        Head::from_parts(name, parsed, config, weights, &bytes)
    }

    /// A head from an already parsed config and the weight file's bytes; `config_path` and
    /// `weights_path` are only named in messages.
    pub fn from_parts(
        name: &str,
        config: HeadConfig,
        config_path: &Path,
        weights_path: &Path,
        weights: &[u8],
    ) -> Result<Head, HeadError> {
        let config_error = |message: String| HeadError::Config {
            head: name.into(),
            path: config_path.into(),
            message,
        };
        validate(&config).map_err(config_error)?;
        let st = SafeTensors::deserialize(weights).map_err(|e| HeadError::Safetensors {
            head: name.into(),
            path: weights_path.into(),
            message: e.to_string(),
        })?;
        let mut layers = Vec::with_capacity(config.layers.len());
        let mut inputs = config.input_dim;
        for (i, layer) in config.layers.iter().enumerate() {
            let from = if i == 0 {
                format!("in {inputs} = input_dim")
            } else {
                format!("in {inputs} = {}'s out", config.layers[i - 1].name)
            };
            let tensor = |suffix: &str, expected: Vec<usize>, why: String| {
                read_tensor(
                    &st,
                    name,
                    weights_path,
                    config_path,
                    &layer.name,
                    suffix,
                    expected,
                    why,
                )
            };
            let weight = tensor(
                "weight",
                vec![layer.out, inputs],
                format!("out {} from the config's layers[{i}], {from}", layer.out),
            )?;
            let bias_name = format!("{}.bias", layer.name);
            let bias = if layer.bias {
                Some(tensor(
                    "bias",
                    vec![layer.out],
                    format!("out {} from the config's layers[{i}]", layer.out),
                )?)
            } else if st.tensor(&bias_name).is_ok() {
                return Err(HeadError::UnexpectedBias {
                    head: name.into(),
                    path: weights_path.into(),
                    config: config_path.into(),
                    tensor: bias_name,
                });
            } else {
                None
            };
            layers.push(Layer {
                inputs,
                weight,
                bias,
            });
            inputs = layer.out;
        }
        Ok(Head {
            name: name.into(),
            weights_path: weights_path.into(),
            config,
            layers,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Length of the embeddings [`Head::score`] takes.
    pub fn input_dim(&self) -> usize {
        self.config.input_dim
    }

    pub fn config(&self) -> &HeadConfig {
        &self.config
    }

    /// The head's score for one embedding (of exactly [`Head::input_dim`] finite values).
    pub fn score(&self, embedding: &[f32]) -> Result<f64, HeadError> {
        if embedding.len() != self.config.input_dim {
            return Err(HeadError::EmbeddingLength {
                head: self.name.clone(),
                weights: self.weights_path.clone(),
                found: embedding.len(),
                expected: self.config.input_dim,
            });
        }
        if let Some((index, &value)) = embedding.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(HeadError::NonFinite {
                head: self.name.clone(),
                weights: self.weights_path.clone(),
                index,
                value,
            });
        }
        let mut x: Vec<f64> = embedding.iter().map(|&v| f64::from(v)).collect();
        if self.config.normalize_input {
            l2_normalize(&mut x);
        }
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let mut y = layer.forward(&x);
            if i != last {
                for v in &mut y {
                    *v = self.config.activation.apply(*v);
                }
            }
            x = y;
        }
        Ok(self.config.output.apply(x[0]))
    }
}

impl Layer {
    fn forward(&self, x: &[f64]) -> Vec<f64> {
        debug_assert_eq!(x.len(), self.inputs);
        self.weight
            .chunks_exact(self.inputs)
            .enumerate()
            .map(|(o, row)| {
                let dot: f64 = row.iter().zip(x).map(|(&w, &v)| f64::from(w) * v).sum();
                dot + self.bias.as_ref().map_or(0.0, |b| f64::from(b[o]))
            })
            .collect()
    }
}

/// What a config must satisfy beyond its types: at least one layer, no zero sizes, a last layer
/// of one output, no layer named twice.
fn validate(config: &HeadConfig) -> Result<(), String> {
    if config.input_dim == 0 {
        return Err("input_dim: must be at least 1".into());
    }
    let Some(last) = config.layers.last() else {
        return Err("layers: a head needs at least one layer".into());
    };
    for (i, layer) in config.layers.iter().enumerate() {
        if layer.name.is_empty() {
            return Err(format!("layers[{i}].name: must not be empty"));
        }
        if layer.out == 0 {
            return Err(format!("layers[{i}].out: must be at least 1"));
        }
        if let Some(j) = config.layers[..i].iter().position(|l| l.name == layer.name) {
            return Err(format!(
                "layers[{i}].name: `{}` is already layers[{j}]'s",
                layer.name
            ));
        }
    }
    if last.out != 1 {
        return Err(format!(
            "layers[{}].out: the last layer (`{}`) must have out 1 (a head gives one score), not {}",
            config.layers.len() - 1,
            last.name,
            last.out
        ));
    }
    Ok(())
}

/// `<layer>.<suffix>` of `st` as f32, after checking its dtype and shape.
#[allow(clippy::too_many_arguments)]
fn read_tensor(
    st: &SafeTensors<'_>,
    head: &str,
    path: &Path,
    config: &Path,
    layer: &str,
    suffix: &str,
    expected: Vec<usize>,
    why: String,
) -> Result<Vec<f32>, HeadError> {
    let tensor = format!("{layer}.{suffix}");
    let view = st.tensor(&tensor).map_err(|_| {
        HeadError::MissingTensor(Box::new(MissingTensor {
            head: head.into(),
            path: path.into(),
            config: config.into(),
            tensor: tensor.clone(),
            layer: layer.into(),
            available: listed_names(st),
        }))
    })?;
    if view.shape() != expected.as_slice() {
        return Err(HeadError::Shape(Box::new(ShapeMismatch {
            head: head.into(),
            path: path.into(),
            tensor,
            found: view.shape().to_vec(),
            expected,
            why,
        })));
    }
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        dtype => {
            return Err(HeadError::Dtype {
                head: head.into(),
                path: path.into(),
                tensor,
                dtype,
            })
        }
    })
}

/// The file's tensor names, sorted, at most [`LISTED_NAMES`] of them.
fn listed_names(st: &SafeTensors<'_>) -> String {
    let mut names = st.names();
    if names.is_empty() {
        return "no tensors".into();
    }
    names.sort_unstable();
    let more = names.len().saturating_sub(LISTED_NAMES);
    let mut text = names[..names.len().min(LISTED_NAMES)].join(", ");
    if more > 0 {
        text.push_str(&format!(", and {more} more"));
    }
    text
}

/// Divides `x` by its L2 norm; a zero vector stays zero (as the LAION predictor's `normalized`).
fn l2_normalize(x: &mut [f64]) {
    let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm > 0.0 {
        for v in x {
            *v /= norm;
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The error function to about 1e-13: its Maclaurin series below |x| = 3 (alternating terms no
/// larger than ~1e3, so cancellation costs at most three of f64's digits), and 1 - erfc(x) from
/// erfc's continued fraction above (erfc(3) ≈ 2.2e-5, so its relative error hardly matters).
fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let value = if a < 3.0 {
        // erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))
        let x2 = a * a;
        let mut term = a; // (-1)^n x^(2n+1) / n!
        let mut sum = a;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -x2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() <= 1e-17 * sum.abs() {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else if a < 6.0 {
        1.0 - erfc_continued_fraction(a)
    } else {
        1.0 // erfc(6) ≈ 2e-17: below f64's resolution near 1
    };
    value.copysign(x)
}

/// erfc(x) for x ≥ 3 by the continued fraction
/// erfc(x) = e^(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), evaluated from the
/// tail (60 levels converge far past f64 precision for x ≥ 3).
fn erfc_continued_fraction(x: f64) -> f64 {
    let mut tail = x;
    for k in (1..=60).rev() {
        tail = x + f64::from(k) / 2.0 / tail;
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / tail
}

#[cfg(test)]
mod tests {
    use super::*;

    const AESTHETIC: &str = r#"{"input_dim": 768, "normalize_input": true,
        "layers": [{"name": "layers.0", "out": 1024}, {"name": "layers.2", "out": 128},
                   {"name": "layers.4", "out": 64}, {"name": "layers.6", "out": 16},
                   {"name": "layers.7", "out": 1}],
        "activation": "identity", "output": "identity"}"#;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// A safetensors file of F32 tensors `(name, shape, values)`.
    fn file(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(n, s, v)| (n.to_string(), s.clone(), f32_bytes(v)))
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
            .iter()
            .map(|(n, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    fn config(json: &str) -> HeadConfig {
        crate::strict_json::parse(json).unwrap()
    }

    /// 3 → 2 → 1 with known weights.
    fn tiny(activation: &str, output: &str, normalize: bool) -> Head {
        let cfg = config(&format!(
            r#"{{"input_dim": 3, "normalize_input": {normalize},
                "layers": [{{"name": "a", "out": 2}}, {{"name": "b", "out": 1}}],
                "activation": "{activation}", "output": "{output}"}}"#
        ));
        let bytes = file(&[
            ("a.weight", vec![2, 3], vec![1.0, 2.0, 3.0, -1.0, 0.5, 0.0]),
            ("a.bias", vec![2], vec![0.5, -0.25]),
            ("b.weight", vec![1, 2], vec![2.0, -3.0]),
            ("b.bias", vec![1], vec![0.125]),
        ]);
        Head::from_parts(
            "tiny",
            cfg,
            Path::new("/c/tiny.json"),
            Path::new("/w/tiny.safetensors"),
            &bytes,
        )
        .unwrap()
    }

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (2.9, 0.9999589021219005),
            (3.5, 0.9999992569016276),
            (-1.0, -0.8427007929497149),
            (7.0, 1.0),
        ] {
            assert!((erf(x) - want).abs() < 1e-13, "erf({x}) = {}", erf(x));
        }
        for (x, want) in [(3.0, 2.209049699858544e-05), (4.0, 1.541725790028002e-08)] {
            let got = erfc_continued_fraction(x);
            assert!(((got - want) / want).abs() < 1e-12, "erfc({x}) = {got}");
        }
    }

    #[test]
    fn activations_are_torchs() {
        let gelu = |x| Activation::Gelu.apply(x);
        // torch.nn.functional.gelu(torch.tensor([...], dtype=torch.float64))
        assert!((gelu(1.0) - 0.841344746068543).abs() < 1e-14);
        assert!((gelu(-1.0) - -0.15865525393145702).abs() < 1e-14);
        assert!((gelu(5.0) - 4.999998566742141).abs() < 1e-13);
        assert_eq!(gelu(0.0), 0.0);
        assert_eq!(Activation::Relu.apply(-2.0), 0.0);
        assert_eq!(Activation::Relu.apply(2.0), 2.0);
        assert_eq!(Activation::Identity.apply(-2.5), -2.5);
        assert!((Activation::Sigmoid.apply(1.0) - 0.7310585786300049).abs() < 1e-15);
        assert!((Activation::Sigmoid.apply(-800.0)).abs() < 1e-300);
        assert_eq!(Activation::Sigmoid.apply(800.0), 1.0);
        assert!((Activation::Tanh.apply(0.5) - 0.46211715726000974).abs() < 1e-15);
        assert_eq!(Output::Sigmoid.apply(0.0), 0.5);
        assert_eq!(Output::Identity.apply(3.0), 3.0);
    }

    #[test]
    fn normalisation_is_l2_and_leaves_zero_alone() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = vec![0.0; 3];
        l2_normalize(&mut z);
        assert_eq!(z, [0.0; 3]);
    }

    #[test]
    fn scores_a_known_mlp() {
        // a = W·x + b = [1+4+9+0.5, -1+1+0-0.25] = [14.5, -0.25]
        let x = [1.0, 2.0, 3.0];
        let plain = tiny("identity", "identity", false);
        assert_eq!(plain.score(&x).unwrap(), 2.0 * 14.5 - 3.0 * -0.25 + 0.125);
        let relu = tiny("relu", "identity", false);
        assert_eq!(relu.score(&x).unwrap(), 2.0 * 14.5 + 0.125);
        let sig = tiny("relu", "sigmoid", false);
        assert_eq!(sig.score(&x).unwrap(), sigmoid(29.125));
        // Normalising scales x, not the bias: a = W·x/|x| + b.
        let norm = tiny("identity", "identity", true);
        let n = 14f64.sqrt();
        let want = 2.0 * (14.0 / n + 0.5) - 3.0 * (0.0 / n - 0.25) + 0.125;
        assert!((norm.score(&x).unwrap() - want).abs() < 1e-12);
        // Doubling the embedding changes nothing once it is normalised.
        let doubled = norm.score(&[2.0, 4.0, 6.0]).unwrap();
        assert!((doubled - want).abs() < 1e-12);
        assert_eq!(norm.name(), "tiny");
        assert_eq!(norm.input_dim(), 3);
    }

    #[test]
    fn wrong_embeddings_are_refused_by_name() {
        let head = tiny("identity", "identity", false);
        let e = head.score(&[1.0; 4]).unwrap_err().to_string();
        assert_eq!(
            e,
            "head `tiny` (/w/tiny.safetensors): the embedding has 4 values, the head takes 3 \
             (input_dim)"
        );
        let e = head.score(&[1.0, f32::NAN, 0.0]).unwrap_err().to_string();
        assert!(e.contains("value 1 is NaN"), "{e}");
    }

    #[test]
    fn the_example_config_parses_and_strays_are_refused() {
        let c = config(AESTHETIC);
        assert_eq!(c.layers.len(), 5);
        assert!(c.layers.iter().all(|l| l.bias));
        assert_eq!(c.activation, Activation::Identity);
        let e = crate::strict_json::parse::<HeadConfig>(
            r#"{"input_dim": 4, "normalize_input": true, "layers": [{"name": "a", "out": 1, "biass": false}]}"#,
        )
        .unwrap_err();
        assert!(
            e.starts_with("layers[0].biass: unknown field `biass`"),
            "{e}"
        );
        let e = crate::strict_json::parse::<HeadConfig>(
            r#"{"input_dim": 4, "normalize_input": true, "layers": [], "activation": "swish"}"#,
        )
        .unwrap_err();
        assert!(e.starts_with("activation: unknown variant `swish`"), "{e}");
        let e = crate::strict_json::parse::<HeadConfig>(r#"{"input_dim": 4, "layers": []}"#)
            .unwrap_err();
        assert!(e.contains("missing field `normalize_input`"), "{e}");
    }

    #[test]
    fn configs_that_cannot_be_a_head_are_refused() {
        let load = |json: &str| {
            Head::from_parts(
                "h",
                config(json),
                Path::new("/c/h.json"),
                Path::new("/w/h.safetensors"),
                &file(&[]),
            )
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            load(
                r#"{"input_dim": 4, "normalize_input": false, "layers": [{"name": "a", "out": 2}]}"#
            ),
            "head `h`: config /c/h.json: layers[0].out: the last layer (`a`) must have out 1 (a \
             head gives one score), not 2"
        );
        assert!(
            load(r#"{"input_dim": 4, "normalize_input": false, "layers": []}"#)
                .ends_with("layers: a head needs at least one layer")
        );
        assert!(load(
            r#"{"input_dim": 4, "normalize_input": false,
                "layers": [{"name": "a", "out": 2}, {"name": "a", "out": 1}]}"#
        )
        .ends_with("layers[1].name: `a` is already layers[0]'s"));
        assert!(load(
            r#"{"input_dim": 0, "normalize_input": false, "layers": [{"name": "a", "out": 1}]}"#
        )
        .ends_with("input_dim: must be at least 1"));
    }

    #[test]
    fn tensor_errors_name_the_tensor_and_the_shapes() {
        let cfg = || {
            config(
                r#"{"input_dim": 3, "normalize_input": false,
                    "layers": [{"name": "a", "out": 2}, {"name": "b", "out": 1, "bias": false}]}"#,
            )
        };
        let load = |bytes: Vec<u8>| {
            Head::from_parts(
                "h",
                cfg(),
                Path::new("/c/h.json"),
                Path::new("/w/h.safetensors"),
                &bytes,
            )
            .map(|_| ())
            .unwrap_err()
            .to_string()
        };
        let a_w = ("a.weight", vec![2, 3], vec![0.0; 6]);
        let a_b = ("a.bias", vec![2], vec![0.0; 2]);
        // The chain: b's input is a's out (2), not 3.
        let e = load(file(&[
            a_w.clone(),
            a_b.clone(),
            ("b.weight", vec![1, 3], vec![0.0; 3]),
        ]));
        assert_eq!(
            e,
            "head `h`: b.weight in /w/h.safetensors is [1, 3], expected [1, 2] (out 1 from the \
             config's layers[1], in 2 = a's out)"
        );
        let e = load(file(&[a_w.clone(), ("b.weight", vec![1, 2], vec![0.0; 2])]));
        assert_eq!(
            e,
            "head `h`: /w/h.safetensors has no tensor a.bias (config /c/h.json names layer `a`; \
             the file has: a.weight, b.weight)"
        );
        let e = load(file(&[
            a_w.clone(),
            a_b.clone(),
            ("b.weight", vec![1, 2], vec![0.0; 2]),
            ("b.bias", vec![1], vec![0.0]),
        ]));
        assert!(e.contains("holds b.bias, but config /c/h.json says layer `b` has no bias"));
        let e = load(b"not safetensors".to_vec());
        assert!(
            e.starts_with("head `h`: /w/h.safetensors is not a readable safetensors file: "),
            "{e}"
        );
        // The wrong dtype.
        let ints = [0u8; 6 * 8];
        let views = vec![(
            "a.weight",
            safetensors::tensor::TensorView::new(Dtype::I64, vec![2, 3], &ints).unwrap(),
        )];
        let e = load(safetensors::serialize(views, None).unwrap());
        assert_eq!(
            e,
            "head `h`: a.weight in /w/h.safetensors is I64; a head's weights must be F32, F16 or \
             BF16"
        );
    }

    #[test]
    fn missing_files_are_named() {
        let e = Head::load(
            "aesthetic",
            Path::new("/nonexistent/a.safetensors"),
            Path::new("/nonexistent/a.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("head `aesthetic`: cannot read /nonexistent/a.json: "),
            "{e}"
        );
    }
}
