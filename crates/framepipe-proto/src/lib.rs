//! The one definition of what crosses between the `framepipe` binary and its libtorch library
//! (`framepipe-torch`): both crates depend on this one and on nothing of each other.
//!
//! - [`ops`]: every request as a struct, with the type of its reply ([`Op::Reply`]); the
//!   requests sent through the generic entry point form the tagged [`Request`] enum.
//! - [`frames`]: how a batch of frames is laid out in the bytes that travel by pointer.
//! - [`Device`], [`Precision`]: the compute device and the models' precision.
//! - [`TorchError`]: a failure with its [`ErrorKind`] (out of memory is a kind, not a substring).
//! - [`abi`]: [`ABI_VERSION`], the `#[repr(C)]` table of entry points, and the wire format
//!   (JSON text for requests and replies; bulk data by pointer).
pub mod abi;
pub mod device;
pub mod error;
pub mod frames;
pub mod ops;

pub use abi::ABI_VERSION;
pub use device::{Device, Precision};
pub use error::{ErrorKind, TorchError};
pub use frames::{Crop, FrameLayout, Matrix, PixelFormat};
pub use ops::{CallOp, Op, Request};
