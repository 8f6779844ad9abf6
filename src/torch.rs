//! Loads framepipe's libtorch library (`libframepipe_torch.so`, crate `framepipe-torch`) on
//! first use, so runs without a model stage never pay libtorch's start-up (about 0.36 s and
//! 500 MB of RSS, measured on the 2-core dev machine).
//!
//! Where it is looked for, in order: `$FRAMEPIPE_TORCH_LIB`; next to the executable (cargo puts
//! it in `target/release/`); one folder up (test and bench executables in `target/release/deps/`);
//! `data/` next to the executable (the GPU bundle's layout).
use std::ffi::{c_char, CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

pub const LIBRARY_NAME: &str = "libframepipe_torch.so";
/// Must equal `framepipe_torch::ABI_VERSION` of the library.
const ABI_VERSION: u32 = 7;

type AbiFn = unsafe extern "C" fn() -> u32;
type CallFn = unsafe extern "C" fn(*const c_char) -> *mut c_char;
type FreeFn = unsafe extern "C" fn(*mut c_char);
type EmbedFn =
    unsafe extern "C" fn(*const c_char, *const u8, usize, *mut f32, usize) -> *mut c_char;
type CanvasMakeFn =
    unsafe extern "C" fn(*const c_char, *const *const u8, *const i64) -> *mut c_char;
type CanvasReadFn = unsafe extern "C" fn(*const c_char, *mut u8, usize) -> *mut c_char;
type SearchLoadFn = unsafe extern "C" fn(*const c_char, *const u16, usize) -> *mut c_char;
type SearchQueryFn = unsafe extern "C" fn(
    *const c_char,
    *const f32,
    usize,
    *mut i64,
    *mut f32,
    usize,
) -> *mut c_char;

/// The opened library.
pub struct Torch {
    path: PathBuf,
    // Kept open for the life of the process; the function pointers below point into it.
    _library: libloading::Library,
    call: CallFn,
    free: FreeFn,
    clip_embed: EmbedFn,
    vae_encode: EmbedFn,
    search_load: SearchLoadFn,
    search_query: SearchQueryFn,
    canvas_make: CanvasMakeFn,
    canvas_read: CanvasReadFn,
}

impl Torch {
    /// The process-wide instance, loaded on first call.
    pub fn get() -> Result<&'static Torch, String> {
        static TORCH: OnceLock<Result<Torch, String>> = OnceLock::new();
        TORCH
            .get_or_init(Torch::load)
            .as_ref()
            .map_err(Clone::clone)
    }

    fn load() -> Result<Torch, String> {
        let candidates = candidates();
        let path = candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
            let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!("{LIBRARY_NAME} not found (looked in: {}); build it with `cargo build --release`", list.join(", "))
        })?;
        // SAFETY: loading our own library; its initializers are libtorch's.
        let library = unsafe { libloading::Library::new(&path) }
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
        // SAFETY: the symbols have these signatures in framepipe-torch (checked by the ABI number).
        unsafe {
            let abi = symbol::<AbiFn>(&library, &path, b"framepipe_torch_abi\0")?;
            let found = abi();
            if found != ABI_VERSION {
                return Err(format!(
                    "{} speaks ABI {found}, this framepipe needs {ABI_VERSION}: rebuild both",
                    path.display()
                ));
            }
            let call = symbol::<CallFn>(&library, &path, b"framepipe_torch_call\0")?;
            let free = symbol::<FreeFn>(&library, &path, b"framepipe_torch_free\0")?;
            let clip_embed =
                symbol::<EmbedFn>(&library, &path, b"framepipe_torch_clip_embed_frames\0")?;
            let vae_encode =
                symbol::<EmbedFn>(&library, &path, b"framepipe_torch_vae_encode_frames\0")?;
            let search_load =
                symbol::<SearchLoadFn>(&library, &path, b"framepipe_torch_search_load\0")?;
            let search_query =
                symbol::<SearchQueryFn>(&library, &path, b"framepipe_torch_search_query\0")?;
            let canvas_make =
                symbol::<CanvasMakeFn>(&library, &path, b"framepipe_torch_canvas_make\0")?;
            let canvas_read =
                symbol::<CanvasReadFn>(&library, &path, b"framepipe_torch_canvas_read\0")?;
            Ok(Torch {
                path,
                canvas_make,
                canvas_read,
                _library: library,
                call,
                free,
                clip_embed,
                vae_encode,
                search_load,
                search_query,
            })
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Embeds `rgb` frames with a CLIP model into `out` (see framepipe-torch's
    /// `framepipe_torch_clip_embed_frames`); returns the reply's `ok` part.
    pub fn clip_embed_frames(
        &self,
        request: &Value,
        rgb: &[u8],
        out: &mut [f32],
    ) -> Result<Value, String> {
        self.frames_call(self.clip_embed, request, rgb, out)
    }

    /// Encodes `rgb` frames with a VAE into `out` (f32 latents [n, C, h, w]); see framepipe-torch's
    /// `framepipe_torch_vae_encode_frames`.
    pub fn vae_encode_frames(
        &self,
        request: &Value,
        rgb: &[u8],
        out: &mut [f32],
    ) -> Result<Value, String> {
        self.frames_call(self.vae_encode, request, rgb, out)
    }

    /// Loads fp16 rows (bit patterns, `rows` x `dim`) as a search matrix on `device`; see
    /// framepipe-torch's `search_op`. Returns the reply (`handle`, `coarse`).
    pub fn search_load(
        &self,
        device: &str,
        rows: usize,
        dim: usize,
        values: &[u16],
    ) -> Result<Value, String> {
        let request = serde_json::json!({"device": device, "rows": rows, "dim": dim});
        let text = CString::new(request.to_string()).expect("JSON has no NUL");
        // SAFETY: a valid buffer of the stated length; the reply is released by the library.
        let reply = unsafe {
            let raw = (self.search_load)(text.as_ptr(), values.as_ptr(), values.len());
            self.take_reply(raw)
        };
        Self::unwrap_reply(&reply)
    }

    /// The top `k` rows of search matrix `handle` for each query (`queries` = Q x dim f32):
    /// (row index, cosine) per query, best first.
    pub fn search_query(
        &self,
        handle: u64,
        queries: &[f32],
        count: usize,
        k: usize,
    ) -> Result<Vec<Vec<(usize, f32)>>, String> {
        let request = serde_json::json!({"handle": handle, "queries": count, "k": k});
        let text = CString::new(request.to_string()).expect("JSON has no NUL");
        let mut index = vec![-1i64; count * k];
        let mut score = vec![0f32; count * k];
        // SAFETY: valid buffers of the stated lengths; the reply is released by the library.
        let reply = unsafe {
            let raw = (self.search_query)(
                text.as_ptr(),
                queries.as_ptr(),
                queries.len(),
                index.as_mut_ptr(),
                score.as_mut_ptr(),
                index.len(),
            );
            self.take_reply(raw)
        };
        Self::unwrap_reply(&reply)?;
        Ok(index
            .chunks(k)
            .zip(score.chunks(k))
            .map(|(i, s)| {
                i.iter()
                    .zip(s)
                    .filter(|(i, _)| **i >= 0)
                    .map(|(&i, &s)| (i as usize, s))
                    .collect()
            })
            .collect())
    }

    /// Makes a device canvas from one picture's planes (see framepipe-torch's `canvas::make`);
    /// returns the reply (`handle`, `width`, `height`).
    ///
    /// # Safety
    /// Each plane pointer is valid for reads of its pitch times its rows, in the memory the
    /// request's `location` names (host, or the request's device).
    pub unsafe fn canvas_make(
        &self,
        request: &Value,
        planes: [*const u8; 3],
        pitches: [i64; 3],
    ) -> Result<Value, String> {
        let text = CString::new(request.to_string()).expect("JSON has no NUL");
        // SAFETY: three pointers and three pitches, valid as the caller vouches.
        let reply = unsafe {
            let raw = (self.canvas_make)(text.as_ptr(), planes.as_ptr(), pitches.as_ptr());
            self.take_reply(raw)
        };
        Self::unwrap_reply(&reply)
    }

    /// Copies canvas `handle`'s planes (Y, U, V) into `out`.
    pub fn canvas_read(&self, handle: u64, out: &mut [u8]) -> Result<Value, String> {
        let request = serde_json::json!({ "handle": handle });
        let text = CString::new(request.to_string()).expect("JSON has no NUL");
        // SAFETY: a valid buffer of the stated length; the reply is released by the library.
        let reply = unsafe {
            let raw = (self.canvas_read)(text.as_ptr(), out.as_mut_ptr(), out.len());
            self.take_reply(raw)
        };
        Self::unwrap_reply(&reply)
    }

    /// Copies a reply string and releases it with the library's own free.
    ///
    /// # Safety
    /// `raw` is a reply of this library, not yet released.
    unsafe fn take_reply(&self, raw: *mut c_char) -> String {
        // SAFETY: guaranteed by the caller.
        unsafe {
            let reply = CStr::from_ptr(raw).to_string_lossy().into_owned();
            (self.free)(raw);
            reply
        }
    }

    fn frames_call(
        &self,
        entry: EmbedFn,
        request: &Value,
        rgb: &[u8],
        out: &mut [f32],
    ) -> Result<Value, String> {
        let text = CString::new(request.to_string()).expect("JSON has no NUL");
        // SAFETY: valid buffers of the stated lengths; the reply is released by the library.
        let reply = unsafe {
            let raw = entry(
                text.as_ptr(),
                rgb.as_ptr(),
                rgb.len(),
                out.as_mut_ptr(),
                out.len(),
            );
            let reply = CStr::from_ptr(raw).to_string_lossy().into_owned();
            (self.free)(raw);
            reply
        };
        Self::unwrap_reply(&reply)
    }

    fn unwrap_reply(reply: &str) -> Result<Value, String> {
        let mut value: Value = serde_json::from_str(reply)
            .map_err(|e| format!("bad reply from libtorch side: {e}"))?;
        match value.get_mut("ok") {
            Some(ok) => Ok(ok.take()),
            None => Err(value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_string()),
        }
    }

    /// Sends one request; returns the `ok` part of the reply or its `error`.
    pub fn call(&self, request: &Value) -> Result<Value, String> {
        let text = CString::new(request.to_string()).expect("JSON has no NUL");
        // SAFETY: a valid C string in; the reply is released with the library's own free.
        let reply = unsafe {
            let raw = (self.call)(text.as_ptr());
            let reply = CStr::from_ptr(raw).to_string_lossy().into_owned();
            (self.free)(raw);
            reply
        };
        Self::unwrap_reply(&reply)
    }
}

/// The function `name` (NUL-terminated) of the opened library at `path`.
///
/// # Safety
/// `T` must be the function's real signature.
unsafe fn symbol<T: Copy>(
    library: &libloading::Library,
    path: &std::path::Path,
    name: &[u8],
) -> Result<T, String> {
    // SAFETY: guaranteed by the caller.
    unsafe { library.get::<T>(name) }
        .map(|s| *s)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn candidates() -> Vec<PathBuf> {
    let mut list = Vec::new();
    if let Some(p) = std::env::var_os("FRAMEPIPE_TORCH_LIB") {
        list.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.to_path_buf()))
    {
        list.push(dir.join(LIBRARY_NAME));
        if let Some(up) = dir.parent() {
            list.push(up.join(LIBRARY_NAME));
        }
        list.push(dir.join("data").join(LIBRARY_NAME));
    }
    list
}
