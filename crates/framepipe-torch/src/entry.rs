//! The C boundary: the table of entry points handed out through the one exported symbol
//! (`framepipe_proto::abi::ENTRY_SYMBOL`), each parsing its typed request, running its op with
//! panics caught, and replying as JSON text that the caller releases with the table's `free`.
use std::ffi::{c_char, CStr, CString};

use framepipe_proto::abi::EntryPoints;
use framepipe_proto::ops::{CanvasMake, CanvasRead, SearchLoad, SearchQuery, VaeDecodeFrames};
use framepipe_proto::{TorchError, ABI_VERSION};

use crate::reply::{finish, without_backtrace};
use serde::de::DeserializeOwned;
use serde::Serialize;

static ENTRY_POINTS: EntryPoints = EntryPoints {
    abi_version: ABI_VERSION,
    call,
    free,
    clip_embed_frames,
    vae_encode_frames,
    canvas_make,
    canvas_read,
    search_load,
    search_query,
    shots_predict,
    vae_decode_frames,
};

/// The library's entry points (the only exported symbol).
#[no_mangle]
pub extern "C" fn framepipe_torch_entry_points() -> *const EntryPoints {
    &ENTRY_POINTS
}

/// Handles one [`Request`].
///
/// # Safety
/// `request` must be a valid NUL-terminated string.
unsafe extern "C" fn call(request: *const c_char) -> *mut c_char {
    // SAFETY: the caller passes a valid C string.
    unsafe { respond(request, crate::ops::handle) }
}

/// Releases a reply.
///
/// # Safety
/// `reply` must come from one of this library's entry points and be released once.
unsafe extern "C" fn free(reply: *mut c_char) {
    if !reply.is_null() {
        // SAFETY: created by CString::into_raw in `respond`.
        drop(unsafe { CString::from_raw(reply) });
    }
}

/// # Safety
/// `request` is a valid C string; `rgb` and `out` are valid for `rgb_len` bytes and `out_len`
/// floats.
unsafe extern "C" fn clip_embed_frames(
    request: *const c_char,
    rgb: *const u8,
    rgb_len: usize,
    out: *mut f32,
    out_len: usize,
) -> *mut c_char {
    // SAFETY: forwarded unchanged; same contract.
    unsafe {
        frames_entry(
            request,
            rgb,
            rgb_len,
            out,
            out_len,
            crate::ops::clip::embed_frames,
        )
    }
}

/// # Safety
/// As [`clip_embed_frames`].
unsafe extern "C" fn vae_encode_frames(
    request: *const c_char,
    rgb: *const u8,
    rgb_len: usize,
    out: *mut f32,
    out_len: usize,
) -> *mut c_char {
    // SAFETY: forwarded unchanged; same contract.
    unsafe {
        frames_entry(
            request,
            rgb,
            rgb_len,
            out,
            out_len,
            crate::ops::vae::encode_frames,
        )
    }
}

/// # Safety
/// As [`clip_embed_frames`].
unsafe extern "C" fn shots_predict(
    request: *const c_char,
    rgb: *const u8,
    rgb_len: usize,
    out: *mut f32,
    out_len: usize,
) -> *mut c_char {
    // SAFETY: forwarded unchanged; same contract.
    unsafe {
        frames_entry(
            request,
            rgb,
            rgb_len,
            out,
            out_len,
            crate::ops::shots::predict,
        )
    }
}

/// # Safety
/// `request` is a valid C string; `latents` and `out` are valid for `latents_len` floats and
/// `out_len` bytes.
unsafe extern "C" fn vae_decode_frames(
    request: *const c_char,
    latents: *const f32,
    latents_len: usize,
    out: *mut u8,
    out_len: usize,
) -> *mut c_char {
    // SAFETY: guaranteed by the caller.
    unsafe {
        respond(request, |op: VaeDecodeFrames| {
            finish(crate::ops::vae::decode_frames(
                &op,
                slice(latents, latents_len),
                slice_mut(out, out_len),
            ))
        })
    }
}

/// A frame-batch op: its request, frames in, floats out.
type FramesOp<R, T> = fn(&R, &[u8], &mut [f32]) -> Result<T, TorchError>;

/// The body the frame-batch entry points share: parse `R`, run `op` on the caller's buffers,
/// reply.
///
/// # Safety
/// As [`clip_embed_frames`].
unsafe fn frames_entry<R: DeserializeOwned, T: Serialize>(
    request: *const c_char,
    rgb: *const u8,
    rgb_len: usize,
    out: *mut f32,
    out_len: usize,
    op: FramesOp<R, T>,
) -> *mut c_char {
    // SAFETY: guaranteed by the caller.
    unsafe {
        respond(request, |req: R| {
            finish(op(&req, slice(rgb, rgb_len), slice_mut(out, out_len)))
        })
    }
}

/// # Safety
/// `request` is a valid C string; `planes` and `pitches` point at three values each, and the
/// planes satisfy [`crate::runtime::canvas::make`]'s contract.
unsafe extern "C" fn canvas_make(
    request: *const c_char,
    planes: *const *const u8,
    pitches: *const i64,
) -> *mut c_char {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let planes = [*planes, *planes.add(1), *planes.add(2)];
        let pitches = [*pitches, *pitches.add(1), *pitches.add(2)];
        respond(request, move |op: CanvasMake| {
            finish(crate::runtime::canvas::make(&op, planes, pitches))
        })
    }
}

/// # Safety
/// `request` is a valid C string; `out` is valid for `out_len` bytes.
unsafe extern "C" fn canvas_read(
    request: *const c_char,
    out: *mut u8,
    out_len: usize,
) -> *mut c_char {
    // SAFETY: guaranteed by the caller.
    unsafe {
        respond(request, |op: CanvasRead| {
            finish(crate::runtime::canvas::read(&op, slice_mut(out, out_len)))
        })
    }
}

/// # Safety
/// `request` is a valid C string; `rows` is valid for `rows_len` values.
unsafe extern "C" fn search_load(
    request: *const c_char,
    rows: *const u16,
    rows_len: usize,
) -> *mut c_char {
    // SAFETY: guaranteed by the caller.
    unsafe {
        respond(request, |op: SearchLoad| {
            finish(crate::ops::search::load(&op, slice(rows, rows_len)))
        })
    }
}

/// # Safety
/// `request` is a valid C string; the buffers are valid for their stated lengths.
unsafe extern "C" fn search_query(
    request: *const c_char,
    queries: *const f32,
    queries_len: usize,
    out_index: *mut i64,
    out_score: *mut f32,
    out_len: usize,
) -> *mut c_char {
    // SAFETY: guaranteed by the caller.
    unsafe {
        respond(request, |op: SearchQuery| {
            finish(crate::ops::search::query(
                &op,
                slice(queries, queries_len),
                slice_mut(out_index, out_len),
                slice_mut(out_score, out_len),
            ))
        })
    }
}

/// A buffer of the caller's (empty when it passes none).
///
/// # Safety
/// `ptr` is valid for `len` values, or `len` is 0.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// # Safety
/// As [`slice`], for writing.
unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize) -> &'a mut [T] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts_mut(ptr, len) }
}

/// Parses `request` as `R`, runs `op` on it with panics caught, and returns the reply for the
/// caller to release.
///
/// # Safety
/// `request` must be a valid NUL-terminated string.
unsafe fn respond<R: DeserializeOwned>(
    request: *const c_char,
    op: impl FnOnce(R) -> CString,
) -> *mut c_char {
    quiet_panics();
    let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: guaranteed by the caller.
        let text = unsafe { CStr::from_ptr(request) }.to_string_lossy();
        match serde_json::from_str::<R>(&text) {
            Ok(request) => op(request),
            Err(e) => finish::<()>(Err(TorchError::bad_input(format!("bad request: {e}")))),
        }
    }))
    .unwrap_or_else(|payload| {
        finish::<()>(Err(TorchError::from_libtorch(panic_message(
            payload.as_ref(),
        ))))
    });
    reply.into_raw()
}

/// This library's panics become error replies that carry their message; the default hook
/// would also print them (with libtorch's backtrace) to the user's terminal.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

/// A panic inside the library (tch's non-`f_` methods panic on libtorch errors, e.g. out of
/// memory) as an error message that keeps its text, so the caller can tell what failed.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("no message");
    format!("libtorch side panicked: {}", without_backtrace(text))
}

/// Sends `op` through the generic entry point as the binary does (for this crate's tests).
pub fn call_through_c<O: framepipe_proto::CallOp>(op: &O) -> Result<O::Reply, TorchError> {
    let text = framepipe_proto::abi::request_text(op);
    // SAFETY: a valid C string in; the reply is released once, with the table's `free`.
    unsafe {
        let table = &*framepipe_torch_entry_points();
        let raw = (table.call)(text.as_ptr());
        let reply = CStr::from_ptr(raw).to_string_lossy().into_owned();
        (table.free)(raw);
        framepipe_proto::abi::parse_reply::<O>(&reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use framepipe_proto::ops::{CanvasLive, Devices, VaeInfo};
    use framepipe_proto::ErrorKind;

    #[test]
    fn devices_request_round_trips_through_the_c_boundary() {
        let reply = call_through_c(&Devices {}).unwrap();
        assert!(reply.threads >= 1, "{reply:?}");
        assert!(call_through_c(&CanvasLive {}).is_ok());
        // SAFETY: reading the table's first field.
        assert_eq!(
            unsafe { (*framepipe_torch_entry_points()).abi_version },
            ABI_VERSION
        );
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        let bad = CString::new(r#"{"op": "nope"}"#).unwrap();
        // SAFETY: a valid C string; the reply is released once.
        let reply = unsafe {
            let raw = call(bad.as_ptr());
            let text = CStr::from_ptr(raw).to_string_lossy().into_owned();
            free(raw);
            text
        };
        let e = framepipe_proto::abi::parse_reply::<Devices>(&reply).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadInput);
        assert!(e.message.contains("nope"), "{e}");
        let missing = call_through_c(&VaeInfo {
            on: framepipe_proto::ops::ModelOn {
                model: "/no/such/vae".into(),
                device: framepipe_proto::Device::Cpu,
            },
        })
        .unwrap_err();
        assert_eq!(missing.kind, ErrorKind::BadModel, "{missing}");
    }

    #[test]
    fn torch_backtraces_are_cut_from_messages() {
        let raw = "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 235929600 bytes.\nException raised from alloc_cpu at /pytorch/c10/core/impl/alloc_cpu.cpp:127 (most recent call first):\nframe #0: c10::ThrowEnforceNotMet(..)\nframe #1: <unknown function>";
        let clean = without_backtrace(raw);
        assert!(clean.ends_with("235929600 bytes."), "{clean}");
        assert_eq!(without_backtrace("plain"), "plain");
        let payload: Box<dyn std::any::Any + Send> = Box::new(raw.to_string());
        let m = panic_message(payload.as_ref());
        assert!(m.starts_with("libtorch side panicked: [enforce"), "{m}");
        assert!(!m.contains("frame #"), "{m}");
        assert!(TorchError::from_libtorch(m).is_out_of_memory());
    }
}
