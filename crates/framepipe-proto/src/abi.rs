//! The C boundary: [`ABI_VERSION`], the table of entry points the library hands out through
//! one symbol ([`ENTRY_SYMBOL`]), and the wire format of requests and replies.
//!
//! Requests are JSON text: a [`CallOp`] as `{"op": NAME, ...fields}`, the bulk entry points'
//! requests as their struct. Replies are JSON text `{"ok": REPLY}` or `{"error": TorchError}`
//! ([`Reply`]), allocated by the library and released with its [`EntryPoints::free`]. Frames,
//! embeddings, latents, canvas planes and search rows travel by pointer.
use std::ffi::{c_char, CString};

use serde::{Deserialize, Serialize};

use crate::error::TorchError;
use crate::ops::{CallOp, Op};

/// Bumped whenever a request, a reply or the entry-point table changes shape.
pub const ABI_VERSION: u32 = 11;

/// The one symbol the binary looks up: `extern "C" fn() -> *const EntryPoints`.
pub const ENTRY_SYMBOL: &[u8] = b"framepipe_torch_entry_points\0";

pub type EntryPointsFn = unsafe extern "C" fn() -> *const EntryPoints;

/// A request's JSON text in, a reply out.
pub type CallFn = unsafe extern "C" fn(request: *const c_char) -> *mut c_char;
/// Releases a reply.
pub type FreeFn = unsafe extern "C" fn(reply: *mut c_char);
/// Frames in (`frames`, `frames_len` bytes; none when the request names canvases), f32 results
/// out (`out`, `out_len` floats).
pub type FramesFn = unsafe extern "C" fn(
    request: *const c_char,
    frames: *const u8,
    frames_len: usize,
    out: *mut f32,
    out_len: usize,
) -> *mut c_char;
/// Latents in (`latents`, `latents_len` floats), RGB24 frames out (`out`, `out_len` bytes).
pub type LatentsFn = unsafe extern "C" fn(
    request: *const c_char,
    latents: *const f32,
    latents_len: usize,
    out: *mut u8,
    out_len: usize,
) -> *mut c_char;
/// Three plane pointers and three pitches in bytes (the third unused for two-plane formats).
pub type CanvasMakeFn = unsafe extern "C" fn(
    request: *const c_char,
    planes: *const *const u8,
    pitches: *const i64,
) -> *mut c_char;
pub type CanvasReadFn =
    unsafe extern "C" fn(request: *const c_char, out: *mut u8, out_len: usize) -> *mut c_char;
/// fp16 rows as bit patterns.
pub type SearchLoadFn =
    unsafe extern "C" fn(request: *const c_char, rows: *const u16, rows_len: usize) -> *mut c_char;
pub type SearchQueryFn = unsafe extern "C" fn(
    request: *const c_char,
    queries: *const f32,
    queries_len: usize,
    out_index: *mut i64,
    out_score: *mut f32,
    out_len: usize,
) -> *mut c_char;

/// The library's entry points. `abi_version` comes first so a caller reads it before trusting
/// the rest of the layout.
#[repr(C)]
pub struct EntryPoints {
    pub abi_version: u32,
    /// Every [`CallOp`].
    pub call: CallFn,
    pub free: FreeFn,
    /// [`crate::ops::ClipEmbedFrames`].
    pub clip_embed_frames: FramesFn,
    /// [`crate::ops::VaeEncodeFrames`].
    pub vae_encode_frames: FramesFn,
    /// [`crate::ops::CanvasMake`].
    pub canvas_make: CanvasMakeFn,
    /// [`crate::ops::CanvasRead`].
    pub canvas_read: CanvasReadFn,
    /// [`crate::ops::SearchLoad`].
    pub search_load: SearchLoadFn,
    /// [`crate::ops::SearchQuery`].
    pub search_query: SearchQueryFn,
    /// [`crate::ops::ShotsPredict`].
    pub shots_predict: FramesFn,
    /// [`crate::ops::VaeDecodeFrames`].
    pub vae_decode_frames: LatentsFn,
}

/// A reply on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    Ok(T),
    Error(TorchError),
}

impl<T> From<Result<T, TorchError>> for Reply<T> {
    fn from(result: Result<T, TorchError>) -> Reply<T> {
        match result {
            Ok(v) => Reply::Ok(v),
            Err(e) => Reply::Error(e),
        }
    }
}

#[derive(Serialize)]
struct Tagged<'a, O> {
    op: &'static str,
    #[serde(flatten)]
    body: &'a O,
}

/// The JSON text of a generic-entry request.
pub fn request_text<O: CallOp>(op: &O) -> CString {
    c_string(&Tagged {
        op: O::NAME,
        body: op,
    })
}

/// The JSON text of a bulk entry point's request.
pub fn bulk_request_text<O: Op>(op: &O) -> CString {
    c_string(op)
}

fn c_string<T: Serialize>(value: &T) -> CString {
    // Serializing these plain structs cannot fail, and JSON text has no NUL byte.
    CString::new(serde_json::to_vec(value).expect("requests serialize")).expect("JSON has no NUL")
}

/// A reply's text as the op's result; a reply that does not parse is an internal error naming
/// what was expected.
pub fn parse_reply<O: Op>(text: &str) -> Result<O::Reply, TorchError> {
    match serde_json::from_str::<Reply<O::Reply>>(text) {
        Ok(Reply::Ok(v)) => Ok(v),
        Ok(Reply::Error(e)) => Err(e),
        Err(e) => Err(TorchError::new(
            crate::ErrorKind::Internal,
            format!(
                "bad reply from the libtorch library for {}: {e}",
                std::any::type_name::<O>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("?")
            ),
        )),
    }
}

/// The reply text of a result (the library's side of [`parse_reply`]).
pub fn reply_text<T: Serialize>(result: Result<T, TorchError>) -> CString {
    let reply = Reply::from(result);
    CString::new(serde_json::to_vec(&reply).unwrap_or_else(|e| {
        serde_json::to_vec(&Reply::<()>::Error(TorchError::new(
            crate::ErrorKind::Internal,
            format!("reply does not serialize: {e}"),
        )))
        .expect("an error reply serializes")
    }))
    .expect("JSON has no NUL")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{CanvasLive, CanvasesLive};

    #[test]
    fn replies_round_trip_through_their_text() {
        let ok = reply_text(Ok(CanvasesLive { live: 2 }));
        assert_eq!(ok.to_str().unwrap(), r#"{"ok":{"live":2}}"#);
        assert_eq!(
            parse_reply::<CanvasLive>(ok.to_str().unwrap()),
            Ok(CanvasesLive { live: 2 })
        );
        let err = reply_text::<CanvasesLive>(Err(TorchError::bad_input("no")));
        let e = parse_reply::<CanvasLive>(err.to_str().unwrap()).unwrap_err();
        assert_eq!(e, TorchError::bad_input("no"));
        let bad = parse_reply::<CanvasLive>(r#"{"ok":{"alive":2}}"#).unwrap_err();
        assert!(bad.message.contains("CanvasLive"), "{bad}");
    }
}
