//! A failure on the libtorch side, with what kind of failure it is, so the caller decides by
//! kind (a smaller batch for out of memory, a configuration error for a bad model folder).
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// An allocation failed (CUDA's caching allocator or the CPU's): a smaller batch or tiling
    /// may fit.
    OutOfMemory,
    /// The model folder cannot be loaded (missing or mismatched weights, a bad config).
    BadModel,
    /// The request or its data is wrong (sizes, layouts, files it names).
    BadInput,
    /// The model or device cannot do what was asked (tiling a TAESD, planning CPU memory).
    Unsupported,
    /// Anything else libtorch reported, and panics.
    Internal,
}

/// The error of a request; its text is the message (the caller adds its own context).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchError {
    pub kind: ErrorKind,
    pub message: String,
}

impl TorchError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> TorchError {
        TorchError {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> TorchError {
        TorchError::new(ErrorKind::BadInput, message)
    }

    pub fn bad_model(message: impl Into<String>) -> TorchError {
        TorchError::new(ErrorKind::BadModel, message)
    }

    pub fn unsupported(message: impl Into<String>) -> TorchError {
        TorchError::new(ErrorKind::Unsupported, message)
    }

    /// An error libtorch reported as text (tch carries C++ exceptions as their message):
    /// [`ErrorKind::OutOfMemory`] when the text is an allocator's, else `Internal`. libtorch's
    /// messages are the only place the kind can be read from, and this is the only place that
    /// reads it.
    pub fn from_libtorch(message: impl Into<String>) -> TorchError {
        let message = message.into();
        let kind = if is_allocation_failure(&message) {
            ErrorKind::OutOfMemory
        } else {
            ErrorKind::Internal
        };
        TorchError { kind, message }
    }

    pub fn is_out_of_memory(&self) -> bool {
        self.kind == ErrorKind::OutOfMemory
    }
}

/// Texts of libtorch's allocators: CUDA's caching allocator ("CUDA out of memory",
/// `torch.OutOfMemoryError`) and the CPU's (`DefaultCPUAllocator: can't allocate memory` /
/// `not enough memory`).
fn is_allocation_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("out of memory")
        || m.contains("outofmemoryerror")
        || m.contains("can't allocate memory")
        || m.contains("not enough memory")
}

impl fmt::Display for TorchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TorchError {}

/// Text errors of the libtorch side's helpers are libtorch's (see [`TorchError::from_libtorch`]).
impl From<String> for TorchError {
    fn from(message: String) -> TorchError {
        TorchError::from_libtorch(message)
    }
}

impl From<&str> for TorchError {
    fn from(message: &str) -> TorchError {
        TorchError::from_libtorch(message)
    }
}

/// For callers whose errors are text: the message (its kind is for callers that decide by it).
impl From<TorchError> for String {
    fn from(e: TorchError) -> String {
        e.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_failures_are_their_own_kind() {
        for m in [
            "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB",
            "torch.OutOfMemoryError: CUDA out of memory.",
            "activation: Internal torch error: [enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 235929600 bytes.",
            "DefaultCPUAllocator: not enough memory: you tried to allocate 1 bytes.",
        ] {
            assert!(TorchError::from_libtorch(m).is_out_of_memory(), "{m}");
        }
        let other = TorchError::from("weight of size [8, 3, 3, 3] expected".to_string());
        assert_eq!(other.kind, ErrorKind::Internal);
    }

    #[test]
    fn errors_travel_as_kind_and_message() {
        let e = TorchError::bad_model("clip: no weights");
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(text, r#"{"kind":"bad_model","message":"clip: no weights"}"#);
        assert_eq!(serde_json::from_str::<TorchError>(&text).unwrap(), e);
        assert_eq!(e.to_string(), "clip: no weights");
    }
}
