//! Replies that cross the C boundary: an op's result as reply text, its error message cut
//! short of libtorch's C++ backtrace (a user reads the cause, not 40 stack frames). Below
//! `ops/` and `runtime/`, which both make replies, and `entry`, which hands them out.
use std::ffi::CString;

use framepipe_proto::abi::reply_text;
use framepipe_proto::TorchError;
use serde::Serialize;

/// The reply text of an op's result, its error message without libtorch's C++ backtrace.
pub fn finish<T: Serialize>(result: Result<T, TorchError>) -> CString {
    reply_text(result.map_err(|e| TorchError {
        message: without_backtrace(&e.message),
        ..e
    }))
}

/// libtorch's error text ends in a C++ backtrace (`Exception raised from ...` and dozens of
/// `frame #N:` lines) that means nothing to a user; the message before it is kept.
pub fn without_backtrace(message: &str) -> String {
    let cut = message
        .find("\nException raised from")
        .or_else(|| message.find("Exception raised from"))
        .or_else(|| message.find("\nframe #"))
        .unwrap_or(message.len());
    message[..cut].trim_end().to_string()
}
