//! framepipe's libtorch side, built as `libframepipe_torch.so` and opened by the `framepipe`
//! binary only when a run needs libtorch.
//!
//! Why a separate library: linking libtorch into the binary costs every run about 0.36 s and
//! 500 MB of RSS before `main` (libtorch's static initializers and the CUDA libraries it pulls
//! in), which is most of the time of a short scene-detection or CI check run. Loaded on demand,
//! pipelines without a model stage never pay it.
//!
//! The boundary is typed in `framepipe-proto` (requests, replies, frame layouts, errors, the
//! entry-point table); this crate implements it:
//! - [`entry`]: the C entry points (one exported symbol hands out their table); panics never
//!   cross it.
//! - [`ops`]: one handler per request.
//! - [`models`]: CLIP and the VAEs in tch.
//! - [`nn`]: the plain layers they share (Linear, LayerNorm, Conv2d).
//! - [`runtime`]: devices and CUDA streams, frame batches, device canvases, weights, the
//!   process's loaded models.
pub mod entry;
pub mod models;
pub mod nn;
pub mod ops;
pub mod reply;
pub mod runtime;

pub use framepipe_proto::ABI_VERSION;
