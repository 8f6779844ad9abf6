//! framepipe's libtorch side, built as `libframepipe_torch.so` and opened by the `framepipe`
//! binary only when a run needs libtorch.
//!
//! Why a separate library: linking libtorch into the binary costs every run about 0.36 s and
//! 500 MB of RSS before `main` (libtorch's static initializers and the CUDA libraries it pulls
//! in), which is most of the time of a short scene-detection or CI check run. Loaded on demand,
//! pipelines without a model stage never pay it.
//!
//! The boundary is deliberately narrow: one JSON request in, one JSON reply out
//! ([`framepipe_torch_call`]), plus [`framepipe_torch_abi`] so the binary refuses a library of
//! another build. Panics never cross it.
pub mod bench_op;
pub mod canvas;
pub mod clip;
pub mod clip_op;
pub mod cuda;
pub mod frames;
pub mod random_op;
pub mod request;
pub mod search_op;
pub mod vae;
pub mod vae_op;
pub mod weights;

use std::ffi::{c_char, CStr, CString};

use serde_json::{json, Value};

/// Bumped whenever a request or reply changes shape.
pub const ABI_VERSION: u32 = 7;

/// The ABI version this library speaks.
#[no_mangle]
pub extern "C" fn framepipe_torch_abi() -> u32 {
    ABI_VERSION
}

/// Handles one JSON request; returns a JSON reply `{"ok": ...}` or `{"error": "..."}` that the
/// caller must release with [`framepipe_torch_free`].
///
/// # Safety
/// `request` must be a valid NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn framepipe_torch_call(request: *const c_char) -> *mut c_char {
    // SAFETY: the caller passes a valid C string.
    unsafe { reply_to(request, handle) }
}

/// Embeds a batch of RGB frames with a CLIP model: `request` is JSON (`model`, `device`, `n`,
/// `height`, `width`), `rgb` holds `n*height*width*3` bytes, `out` receives `n*dim` floats.
/// Returns a JSON reply as [`framepipe_torch_call`] does (release with [`framepipe_torch_free`]).
///
/// # Safety
/// `request` is a valid C string; `rgb` and `out` are valid for `rgb_len` bytes and `out_len`
/// floats.
#[no_mangle]
pub unsafe extern "C" fn framepipe_torch_clip_embed_frames(
    request: *const c_char,
    rgb: *const u8,
    rgb_len: usize,
    out: *mut f32,
    out_len: usize,
) -> *mut c_char {
    // SAFETY: forwarded unchanged; same contract.
    unsafe { frames_call(request, rgb, rgb_len, out, out_len, clip_op::embed_frames) }
}

/// Encodes a batch of RGB frames with a VAE into latents: `request` is JSON (`model`, `device`,
/// `n`, `height`, `width`), `rgb` holds `n*height*width*3` bytes, `out` receives the latents as
/// f32 [n, C, h, w]. Reply and safety as [`framepipe_torch_clip_embed_frames`].
///
/// # Safety
/// As [`framepipe_torch_clip_embed_frames`].
#[no_mangle]
pub unsafe extern "C" fn framepipe_torch_vae_encode_frames(
    request: *const c_char,
    rgb: *const u8,
    rgb_len: usize,
    out: *mut f32,
    out_len: usize,
) -> *mut c_char {
    // SAFETY: forwarded unchanged; same contract.
    unsafe { frames_call(request, rgb, rgb_len, out, out_len, vae_op::encode_frames) }
}

/// A frame-batch operation: request, frames in, floats out.
type FramesOp = fn(&Value, &[u8], &mut [f32]) -> Result<Value, String>;

/// The body shared by the frame-batch entry points: parse, run, catch panics, reply as JSON.
///
/// # Safety
/// As [`framepipe_torch_clip_embed_frames`].
unsafe fn frames_call(
    request: *const c_char,
    rgb: *const u8,
    rgb_len: usize,
    out: *mut f32,
    out_len: usize,
    op: FramesOp,
) -> *mut c_char {
    // SAFETY: guaranteed by the caller.
    unsafe {
        reply_to(request, |req| {
            op(
                req,
                std::slice::from_raw_parts(rgb, rgb_len),
                std::slice::from_raw_parts_mut(out, out_len),
            )
        })
    }
}

/// Makes a device canvas from one decoded picture (see [`canvas::make`]): `request` is JSON,
/// `planes` points at three plane pointers and `pitches` at three pitches in bytes (the third
/// of each unused for two-plane formats). Reply `{"handle", "width", "height"}`, released with
/// [`framepipe_torch_free`]; the canvas itself with the `canvas_free` op.
///
/// # Safety
/// `request` is a valid C string; `planes` and `pitches` point at three values each, and the
/// planes satisfy [`canvas::make`]'s contract.
#[no_mangle]
pub unsafe extern "C" fn framepipe_torch_canvas_make(
    request: *const c_char,
    planes: *const *const u8,
    pitches: *const i64,
) -> *mut c_char {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let planes = [*planes, *planes.add(1), *planes.add(2)];
        let pitches = [*pitches, *pitches.add(1), *pitches.add(2)];
        reply_to(request, move |req| canvas::make(req, planes, pitches))
    }
}

/// Copies a canvas's planes into `out` (`out_len` bytes): `{"handle"}` → `{"bytes"}`.
///
/// # Safety
/// `request` is a valid C string; `out` is valid for `out_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn framepipe_torch_canvas_read(
    request: *const c_char,
    out: *mut u8,
    out_len: usize,
) -> *mut c_char {
    // SAFETY: guaranteed by the caller.
    unsafe {
        reply_to(request, |req| {
            canvas::read(req, std::slice::from_raw_parts_mut(out, out_len))
        })
    }
}

/// Loads fp16 embedding rows (`rows_len` values, bit patterns) as a search matrix on the
/// request's device: `{"device", "rows", "dim"}` → `{"handle", ...}`.
///
/// # Safety
/// `request` is a valid C string; `rows` is valid for `rows_len` values.
#[no_mangle]
pub unsafe extern "C" fn framepipe_torch_search_load(
    request: *const c_char,
    rows: *const u16,
    rows_len: usize,
) -> *mut c_char {
    // SAFETY: guaranteed by the caller.
    unsafe {
        reply_to(request, |req| {
            search_op::load(req, std::slice::from_raw_parts(rows, rows_len))
        })
    }
}

/// Top-k rows of a loaded search matrix for `queries` (f32, `queries_len` values):
/// `{"handle", "queries", "k"}`; results in `out_index`/`out_score` (`out_len` each).
///
/// # Safety
/// `request` is a valid C string; the buffers are valid for their stated lengths.
#[no_mangle]
pub unsafe extern "C" fn framepipe_torch_search_query(
    request: *const c_char,
    queries: *const f32,
    queries_len: usize,
    out_index: *mut i64,
    out_score: *mut f32,
    out_len: usize,
) -> *mut c_char {
    // SAFETY: guaranteed by the caller.
    unsafe {
        reply_to(request, |req| {
            search_op::query(
                req,
                std::slice::from_raw_parts(queries, queries_len),
                std::slice::from_raw_parts_mut(out_index, out_len),
                std::slice::from_raw_parts_mut(out_score, out_len),
            )
        })
    }
}

/// Parses `request`, runs `op` on it with panics caught, and replies as JSON.
///
/// # Safety
/// `request` must be a valid NUL-terminated string.
unsafe fn reply_to(
    request: *const c_char,
    op: impl FnOnce(&Value) -> Result<Value, String> + std::panic::UnwindSafe,
) -> *mut c_char {
    quiet_panics();
    let reply = std::panic::catch_unwind(|| {
        // SAFETY: guaranteed by the caller.
        let text = unsafe { CStr::from_ptr(request) }.to_string_lossy();
        match serde_json::from_str::<Value>(&text) {
            Ok(req) => match op(&req) {
                Ok(v) => json!({ "ok": v }),
                Err(e) => json!({ "error": without_backtrace(&e) }),
            },
            Err(e) => json!({ "error": format!("bad request: {e}") }),
        }
    })
    .unwrap_or_else(|payload| json!({ "error": panic_message(payload.as_ref()) }));
    CString::new(reply.to_string())
        .expect("JSON has no NUL")
        .into_raw()
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

/// This library's panics become error replies that carry their message; the default hook
/// would also print them (with libtorch's backtrace) to the user's terminal.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

/// A panic inside the library (tch's non-`f_` methods panic on libtorch errors, e.g. out of
/// memory) as an error reply that keeps its message, so the caller can tell what failed.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("no message");
    format!("libtorch side panicked: {}", without_backtrace(text))
}

/// Releases a reply of [`framepipe_torch_call`].
///
/// # Safety
/// `reply` must come from `framepipe_torch_call` and be released once.
#[no_mangle]
pub unsafe extern "C" fn framepipe_torch_free(reply: *mut c_char) {
    if !reply.is_null() {
        // SAFETY: created by CString::into_raw in framepipe_torch_call.
        drop(unsafe { CString::from_raw(reply) });
    }
}

/// Dispatches a request by its `op`.
pub fn handle(request: &Value) -> Result<Value, String> {
    match request["op"].as_str() {
        Some("devices") => Ok(devices()),
        Some("clip") => clip_op::run(request),
        Some("clip_texts") => clip_op::texts(request),
        Some("vae_encode") => vae_op::encode(request),
        Some("vae_decode") => vae_op::decode(request),
        Some("vae_info") => vae_op::info(request),
        Some("vae_plan_batch") => vae_op::plan_batch(request),
        Some("bench_model") => bench_op::bench_model(request),
        Some("search_free") => search_op::free(request),
        Some("canvas_free") => canvas::free(request),
        Some("canvas_live") => Ok(json!({ "live": canvas::live() })),
        Some("configure") => request::configure(request),
        Some("init_random") => random_op::init_random(request),
        Some(other) => Err(format!("unknown op {other:?}")),
        None => Err("request has no \"op\"".into()),
    }
}

/// What libtorch sees on this machine.
pub fn devices() -> Value {
    let cuda = tch::Cuda::is_available();
    let count = if cuda {
        tch::Cuda::device_count().max(0)
    } else {
        0
    };
    json!({
        "cuda_available": cuda,
        "cuda_devices": count,
        "cudnn_available": cuda && tch::Cuda::cudnn_is_available(),
        "threads": tch::get_num_threads(),
        // Model stages on CUDA streams of their own (crate::cuda): null where they are, else
        // why not.
        "stage_streams_off": if !cuda::built_with_cuda() {
            Some("built without CUDA headers")
        } else if !cuda::stage_streams_enabled() {
            Some("FRAMEPIPE_STAGE_STREAMS=off")
        } else {
            cuda::stream_failure()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_request_round_trips_through_the_c_boundary() {
        let request = CString::new(r#"{"op": "devices"}"#).unwrap();
        let reply = unsafe { framepipe_torch_call(request.as_ptr()) };
        let text = unsafe { CStr::from_ptr(reply) }
            .to_str()
            .unwrap()
            .to_owned();
        unsafe { framepipe_torch_free(reply) };
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["ok"]["cuda_devices"].as_i64().unwrap() >= 0, "{text}");
        assert!(v["ok"]["threads"].as_i64().unwrap() >= 1, "{text}");
        assert!(v["ok"].get("stage_streams_off").is_some(), "{text}");
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
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        assert!(handle(&json!({"op": "nope"})).unwrap_err().contains("nope"));
        assert!(handle(&json!({})).is_err());
    }
}
