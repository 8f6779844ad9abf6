//! Every request the binary makes of the libtorch library, and its reply.
//!
//! A request is a struct implementing [`Op`] (its `Reply` type). The requests of the generic
//! entry point ([`crate::abi::EntryPoints::call`]) also implement [`CallOp`] and are the
//! variants of [`Request`], tagged by `op` on the wire; the others go through entry points of
//! their own because bulk data travels with them by pointer (frames in, embeddings or latents
//! out; canvas planes; search rows). Every struct refuses fields it does not know: a request of
//! another shape is an error, never a silently defaulted field.
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::device::{Device, Precision};
use crate::frames::FrameLayout;

/// A request and the type of its reply.
pub trait Op: Serialize {
    type Reply: Serialize + DeserializeOwned;
}

/// A request of the generic entry point: its `op` name on the wire.
pub trait CallOp: Op {
    const NAME: &'static str;
}

/// Declares the generic entry point's requests: the [`Request`] enum (tag `op`), and each
/// struct's [`CallOp`] name, in one list so the two cannot disagree.
macro_rules! call_ops {
    ($($name:literal => $op:ident,)*) => {
        /// A request of the generic entry point, as the library dispatches it.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "op")]
        pub enum Request {
            $(#[serde(rename = $name)] $op($op),)*
        }

        $(impl CallOp for $op {
            const NAME: &'static str = $name;
        })*

        /// The `op` names, in declaration order.
        pub const CALL_OP_NAMES: &[&str] = &[$($name),*];
    };
}

call_ops! {
    "devices" => Devices,
    "configure" => Configure,
    "clip" => ClipRun,
    "clip_texts" => ClipTexts,
    "vae_encode" => VaeEncodeImages,
    "vae_info" => VaeInfo,
    "vae_plan_batch" => VaePlanBatch,
    "bench_model" => BenchModel,
    "search_free" => SearchFree,
    "canvas_free" => CanvasFree,
    "canvas_live" => CanvasLive,
    "init_random" => InitRandom,
    "shots_info" => ShotsInfo,
}

macro_rules! op {
    ($op:ident => $reply:ty) => {
        impl Op for $op {
            type Reply = $reply;
        }
    };
}

/// The model folder and device every model request names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOn {
    pub model: PathBuf,
    pub device: Device,
}

// ---- The generic entry point ---------------------------------------------------------------

/// What libtorch sees on this machine.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {}
op!(Devices => DevicesReply);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesReply {
    pub cuda_available: bool,
    pub cuda_devices: u32,
    pub cudnn_available: bool,
    pub threads: i32,
    /// Why model stages do not run on CUDA streams of their own; `None` where they do.
    pub stage_streams_off: Option<String>,
}

/// Process-wide settings, sent before any model loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Configure {
    pub precision: Precision,
    /// cuDNN's autotuning of convolution kernels (pipeline shapes repeat for every batch).
    pub cudnn_benchmark: bool,
}
op!(Configure => ConfigureReply);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigureReply {
    pub precision: Precision,
}

/// `framepipe clip`: embeds image files and texts and scores every image against every text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipRun {
    #[serde(flatten)]
    pub on: ModelOn,
    pub images: Vec<PathBuf>,
    pub texts: Vec<String>,
}
op!(ClipRun => ClipRunReply);

/// transformers' `image_embeds`, `text_embeds` and `softmax(logit_scale.exp() * cos)` over the
/// texts (one row per image).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipRunReply {
    pub model: PathBuf,
    pub device: Device,
    pub images: Vec<ImageEmbedding>,
    pub texts: Vec<TextEmbedding>,
    pub probs: Vec<Vec<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEmbedding {
    pub path: PathBuf,
    pub embedding: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextEmbedding {
    pub text: String,
    pub embedding: Vec<f64>,
}

/// The model's facts and one normalized embedding per text (label embeddings, text queries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipTexts {
    #[serde(flatten)]
    pub on: ModelOn,
    pub texts: Vec<String>,
}
op!(ClipTexts => ClipTextsReply);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipTextsReply {
    /// The projection size: the length of every embedding.
    pub dim: u32,
    pub logit_scale_exp: f64,
    pub image_size: i64,
    pub embeddings: Vec<Vec<f32>>,
}

/// The stored dtype of latents written by [`VaeEncodeImages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatentDtype {
    F32,
    F16,
}

/// `framepipe vae encode IMAGES`: latents of same-size images into one safetensors file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeEncodeImages {
    #[serde(flatten)]
    pub on: ModelOn,
    pub images: Vec<PathBuf>,
    pub out: PathBuf,
    pub dtype: LatentDtype,
    /// Decode again and measure PSNR/SSIM per image.
    pub check: bool,
}
op!(VaeEncodeImages => VaeEncodeImagesReply);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeEncodeImagesReply {
    pub out: PathBuf,
    pub shape: Vec<i64>,
    pub dtype: LatentDtype,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Vec<RoundTrip>>,
}

/// How well one image survives encoding and decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundTrip {
    pub image: PathBuf,
    pub psnr_db: f64,
    pub ssim: f64,
}

/// Loads a VAE (a bad folder fails here, before any decoding) and says how it scales latents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeInfo {
    #[serde(flatten)]
    pub on: ModelOn,
}
op!(VaeInfo => VaeFacts);

/// The VAE families the library runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VaeClass {
    /// diffusers' `AutoencoderKL` (tiling and posterior sampling).
    AutoencoderKL,
    /// TAESD and its relatives (diffusers' `AutoencoderTiny`, taef2): whole frames, deterministic.
    #[serde(rename = "TAESD")]
    Taesd,
}

impl VaeClass {
    pub fn name(self) -> &'static str {
        match self {
            VaeClass::AutoencoderKL => "AutoencoderKL",
            VaeClass::Taesd => "TAESD",
        }
    }

    /// Whether the model encodes in tiles and samples its posterior.
    pub fn is_kl(self) -> bool {
        self == VaeClass::AutoencoderKL
    }
}

/// The input range a VAE expects its pixels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputRange {
    #[serde(rename = "[-1, 1]")]
    MinusOneToOne,
    #[serde(rename = "[0, 1]")]
    ZeroToOne,
}

impl InputRange {
    pub fn name(self) -> &'static str {
        match self {
            InputRange::MinusOneToOne => "[-1, 1]",
            InputRange::ZeroToOne => "[0, 1]",
        }
    }
}

/// A VAE's facts, as the report and the latents' metadata carry them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeFacts {
    pub class: VaeClass,
    pub scaling_factor: f64,
    pub shift_factor: Option<f64>,
    pub input_range: InputRange,
    pub latent_channels: i64,
    /// How many pixels one latent covers on each side.
    pub downsampling: i64,
    /// Whether the folder holds a decoder (a TAESD folder may hold only its encoder): decoding
    /// and reconstruction need one. Reports written before it was recorded had one.
    #[serde(default = "has_decoder")]
    pub decoder: bool,
}

fn has_decoder() -> bool {
    true
}

/// The batch size that fits the CUDA device's free memory for frames of this size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaePlanBatch {
    #[serde(flatten)]
    pub on: ModelOn,
    pub width: u32,
    pub height: u32,
    pub tiling: bool,
}
op!(VaePlanBatch => VaeBatchPlan);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeBatchPlan {
    pub batch_size: u64,
    pub per_frame_bytes: u64,
    pub fixed_bytes: u64,
    pub usable_bytes: u64,
}

/// The model stages `bench_model` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelStage {
    Clip,
    Vae,
}

impl ModelStage {
    pub fn name(self) -> &'static str {
        match self {
            ModelStage::Clip => "clip",
            ModelStage::Vae => "vae",
        }
    }
}

/// How many frames a second a model stage's device work sustains, on random frames already on
/// the device (the stage's own code: colour conversion, preprocessing, the model, the copy
/// back), or with `model_only` the model alone on random input of its own shape and precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchModel {
    pub stage: ModelStage,
    #[serde(flatten)]
    pub on: ModelOn,
    /// Frames per call.
    pub n: u32,
    pub layout: FrameLayout,
    /// The vae stage's options (tiling; never sampling).
    #[serde(default)]
    pub tiling: bool,
    /// How long to keep calling.
    pub seconds: f64,
    /// Untimed calls first (cuDNN's benchmark mode picks its kernels during the first).
    pub warmup: u32,
    pub model_only: bool,
}
op!(BenchModel => BenchReply);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchReply {
    pub frames_per_second: f64,
    pub calls: u64,
    pub median_call_seconds: f64,
    pub min_call_seconds: f64,
    pub max_call_seconds: f64,
    /// The CUDA allocator's peak over the timed calls; `None` on the CPU.
    pub peak_memory_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchFree {
    pub handle: u64,
}
op!(SearchFree => SearchFreed);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchFreed {
    pub freed: bool,
}

/// Releases canvases (unknown handles are ignored: releasing is idempotent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanvasFree {
    pub handles: Vec<u64>,
}
op!(CanvasFree => CanvasesFreed);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanvasesFreed {
    pub freed: u64,
}

/// How many canvases are alive (tests: a run must not leak them).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanvasLive {}
op!(CanvasLive => CanvasesLive);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanvasesLive {
    pub live: u64,
}

/// Random weights for the model `folder/config.json` describes, named as the real checkpoints
/// name them (benchmarks of real shapes without the real weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitRandom {
    pub folder: PathBuf,
    pub seed: i64,
}
op!(InitRandom => RandomWeights);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomWeights {
    pub out: PathBuf,
    pub tensors: u64,
}

// ---- Entry points with bulk data -----------------------------------------------------------

/// The frames of a model call: `n` frames of `layout`, as bytes (by pointer) or as device
/// canvases by handle (then no bytes travel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frames {
    pub n: u32,
    pub layout: FrameLayout,
    #[serde(default)]
    pub canvases: Option<Vec<u64>>,
}

/// Embeds frames with a CLIP model (normalized image embeddings, `n` x `dim` f32 out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipEmbedFrames {
    #[serde(flatten)]
    pub on: ModelOn,
    pub frames: Frames,
}
op!(ClipEmbedFrames => Embedded);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embedded {
    pub n: u32,
    pub dim: u32,
}

/// Posterior sampling for an AutoencoderKL: frame `i` is sampled with seed
/// `seed + frame_index[i]`, so a frame's latent does not depend on its batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    pub seed: u64,
    pub frame_index: Vec<u64>,
}

/// Encodes frames with a VAE into latents (f32 `[n, C, h, w]` out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeEncodeFrames {
    #[serde(flatten)]
    pub on: ModelOn,
    pub frames: Frames,
    /// Encode in tiles (AutoencoderKL only).
    pub tiling: bool,
    /// Sample the posterior instead of taking its mean (AutoencoderKL only).
    pub sampling: Option<Sampling>,
    /// Also decode some of the frames' latents again and measure how far they are from the
    /// frames (reconstruction error, for anomaly detection).
    #[serde(default)]
    pub reconstruct: Option<Reconstruct>,
}
op!(VaeEncodeFrames => Encoded);

/// Which frames of an encoded batch are decoded again, and which part of them is compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reconstruct {
    /// Positions in the batch (0-based, ascending, each below `n`).
    pub frames: Vec<u32>,
    /// The part of the model's picture compared (letterbox bars left out); `None`: all of it.
    pub picture: Option<crate::frames::Crop>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encoded {
    pub n: u32,
    /// `[C, h, w]`.
    pub shape_per_frame: [i64; 3],
    /// With [`Reconstruct`]: one PSNR (dB, 8-bit RGB: the decoded frame rounded to 8 bits against
    /// the frame the model encoded, over the picture) per reconstructed frame, in its order.
    /// Identical pictures read [`PSNR_IDENTICAL`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psnr: Option<Vec<f64>>,
}

/// The PSNR of two identical pictures (the true value is infinite, which JSON cannot carry): the
/// MSE is floored at 255² · 1e-10.
pub const PSNR_IDENTICAL: f64 = 100.0;

/// Decodes latents (f32 `[n, C, h, w]` in, as a pipeline stores them) to packed RGB24 frames
/// (`n` x `h * factor` x `w * factor` x 3 bytes out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeDecodeFrames {
    #[serde(flatten)]
    pub on: ModelOn,
    pub n: u32,
    /// `[C, h, w]`.
    pub shape_per_frame: [i64; 3],
    /// Decode in tiles (AutoencoderKL only).
    #[serde(default)]
    pub tiling: bool,
}
op!(VaeDecodeFrames => Decoded);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decoded {
    pub n: u32,
    pub width: u32,
    pub height: u32,
}

/// Where a picture's planes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaneLocation {
    /// Host memory.
    Host,
    /// The request's device (NVDEC's surfaces).
    Device,
}

/// How a source picture's planes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// Three 8-bit planes.
    Yuv420p,
    /// 8-bit Y, then interleaved U/V (NVDEC's 8-bit output).
    Nv12,
    /// 16-bit samples with the value in the top 10 bits, Y then interleaved U/V (NVDEC's 10-bit
    /// output).
    P010,
    /// Three 16-bit planes with the value in the low 10 bits.
    Yuv420p10,
}

impl SourceFormat {
    /// Y and one interleaved chroma plane (two planes), or three planes.
    pub fn interleaved(self) -> bool {
        matches!(self, SourceFormat::Nv12 | SourceFormat::P010)
    }

    pub fn sample_bytes(self) -> i64 {
        match self {
            SourceFormat::Yuv420p | SourceFormat::Nv12 => 1,
            SourceFormat::P010 | SourceFormat::Yuv420p10 => 2,
        }
    }
}

/// Makes a device canvas from one picture (planes by pointer) with the CPU normalizer's plan:
/// scaled to `scaled`, turned `rotation` degrees clockwise, its `crop` `[x, y, w, h]` placed at
/// `placed` on a `canvas` of limited-range yuv420p.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanvasMake {
    pub device: Device,
    pub location: PlaneLocation,
    pub format: SourceFormat,
    pub width: i64,
    pub height: i64,
    pub full_range: bool,
    pub canvas: [i64; 2],
    pub scaled: [i64; 2],
    pub rotation: i64,
    pub crop: [i64; 4],
    pub placed: [i64; 4],
}
op!(CanvasMake => CanvasMade);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanvasMade {
    pub handle: u64,
    pub width: i64,
    pub height: i64,
}

/// Copies a canvas's planes (Y, U, V) into the caller's buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanvasRead {
    pub handle: u64,
}
op!(CanvasRead => CanvasBytes);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanvasBytes {
    pub bytes: u64,
}

/// Loads fp16 embedding rows (bit patterns, `rows` x `dim`) as a search matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchLoad {
    pub device: Device,
    pub rows: u64,
    pub dim: u64,
}
op!(SearchLoad => SearchLoaded);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchLoaded {
    pub handle: u64,
    /// The precision candidates are picked in (`f16`, `bf16` or `f32`).
    pub coarse: String,
    pub rows: u64,
    pub dim: u64,
}

/// The top `k` rows of a search matrix for each of `queries` f32 query rows (by pointer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub handle: u64,
    pub queries: u64,
    pub k: u64,
}
op!(SearchQuery => SearchAnswered);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchAnswered {
    pub queries: u64,
    pub k: u64,
    /// How many candidate sets were widened to prove the top-k exact.
    pub widened: u64,
}

/// TransNetV2's input frames: 48x27 rgb24, as the reference makes them (`ffmpeg -s 48x27
/// -pix_fmt rgb24`).
pub const SHOT_FRAME_WIDTH: u32 = 48;
pub const SHOT_FRAME_HEIGHT: u32 = 27;
pub const SHOT_FRAME_BYTES: usize = (SHOT_FRAME_WIDTH * SHOT_FRAME_HEIGHT * 3) as usize;

/// Loads a TransNetV2 folder (a bad folder fails here, before any decoding) and says how it
/// windows a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShotsInfo {
    #[serde(flatten)]
    pub on: ModelOn,
}
op!(ShotsInfo => ShotsFacts);

/// How the shot model reads a video: windows of `window` frames every `step` frames, each
/// predicting its frames `context .. context + step`; and the precision it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShotsFacts {
    pub window: u32,
    pub step: u32,
    pub context: u32,
    /// Never `auto`: what the configured precision means for this model on this device and CPU.
    pub precision: crate::Precision,
}

/// Transition probabilities of TransNetV2 windows. The frames (by pointer) are `frames`
/// consecutive 48x27 rgb24 frames of the padded stream starting at a window's first frame,
/// `frames = step * (windows + 1)`; out are `2 * step * windows` floats: the single-frame
/// probabilities of each window's middle `step` frames, window after window, then the
/// many-hot ones in the same order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShotsPredict {
    #[serde(flatten)]
    pub on: ModelOn,
    pub frames: u64,
}
op!(ShotsPredict => ShotsPredicted);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShotsPredicted {
    pub windows: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi;

    fn on() -> ModelOn {
        ModelOn {
            model: "m".into(),
            device: Device::Cuda(1),
        }
    }

    /// One value of every generic-entry request: what the host sends parses as the variant the
    /// library dispatches, field for field.
    #[test]
    fn every_call_op_round_trips_as_its_variant() {
        let layout = FrameLayout::rgb24(8, 8);
        let requests = [
            Request::Devices(Devices {}),
            Request::Configure(Configure {
                precision: Precision::Bf16,
                cudnn_benchmark: true,
            }),
            Request::ClipRun(ClipRun {
                on: on(),
                images: vec!["a.png".into()],
                texts: vec!["t".into()],
            }),
            Request::ClipTexts(ClipTexts {
                on: on(),
                texts: vec![],
            }),
            Request::VaeEncodeImages(VaeEncodeImages {
                on: on(),
                images: vec![],
                out: "o".into(),
                dtype: LatentDtype::F16,
                check: true,
            }),
            Request::VaeInfo(VaeInfo { on: on() }),
            Request::VaePlanBatch(VaePlanBatch {
                on: on(),
                width: 8,
                height: 16,
                tiling: false,
            }),
            Request::BenchModel(BenchModel {
                stage: ModelStage::Vae,
                on: on(),
                n: 2,
                layout,
                tiling: true,
                seconds: 0.5,
                warmup: 1,
                model_only: false,
            }),
            Request::SearchFree(SearchFree { handle: 3 }),
            Request::CanvasFree(CanvasFree {
                handles: vec![1, 2],
            }),
            Request::CanvasLive(CanvasLive {}),
            Request::InitRandom(InitRandom {
                folder: "f".into(),
                seed: -1,
            }),
            Request::ShotsInfo(ShotsInfo { on: on() }),
        ];
        assert_eq!(requests.len(), CALL_OP_NAMES.len());
        for (request, name) in requests.into_iter().zip(CALL_OP_NAMES) {
            let text = match &request {
                Request::Devices(op) => abi::request_text(op),
                Request::Configure(op) => abi::request_text(op),
                Request::ClipRun(op) => abi::request_text(op),
                Request::ClipTexts(op) => abi::request_text(op),
                Request::VaeEncodeImages(op) => abi::request_text(op),
                Request::VaeInfo(op) => abi::request_text(op),
                Request::VaePlanBatch(op) => abi::request_text(op),
                Request::BenchModel(op) => abi::request_text(op),
                Request::SearchFree(op) => abi::request_text(op),
                Request::CanvasFree(op) => abi::request_text(op),
                Request::CanvasLive(op) => abi::request_text(op),
                Request::InitRandom(op) => abi::request_text(op),
                Request::ShotsInfo(op) => abi::request_text(op),
            };
            let text = text.into_string().unwrap();
            assert!(text.starts_with(&format!("{{\"op\":\"{name}\"")), "{text}");
            let parsed: Request = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed, request, "{text}");
        }
    }

    #[test]
    fn unknown_fields_and_ops_are_refused() {
        let e = serde_json::from_str::<Request>(
            r#"{"op": "vae_info", "model": "m", "device": "cpu", "tilling": true}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("tilling"), "{e}");
        let e = serde_json::from_str::<Request>(r#"{"op": "nope"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
        assert!(serde_json::from_str::<Request>("{}").is_err());
        let frames =
            r#"{"n": 1, "layout": {"width": 2, "height": 2, "format": "rgb24"}, "extra": 1}"#;
        assert!(serde_json::from_str::<Frames>(frames).is_err());
    }

    #[test]
    fn vae_facts_read_as_reports_write_them() {
        let text = r#"{"class": "TAESD", "scaling_factor": 1.0, "shift_factor": null, "input_range": "[0, 1]", "latent_channels": 16, "downsampling": 8}"#;
        let facts: VaeFacts = serde_json::from_str(text).unwrap();
        assert_eq!(
            (facts.class, facts.input_range),
            (VaeClass::Taesd, InputRange::ZeroToOne)
        );
        assert!(!facts.class.is_kl());
    }
}
