//! Loads framepipe's libtorch library (`libframepipe_torch.so`, crate `framepipe-torch`) on
//! first use, so runs without a model stage never pay libtorch's start-up (about 0.36 s and
//! 500 MB of RSS, measured on the 2-core dev machine), and calls it with the typed requests of
//! `framepipe-proto`.
//!
//! Where it is looked for, in order: `$FRAMEPIPE_TORCH_LIB`; next to the executable (cargo puts
//! it in `target/release/`); one folder up (test and bench executables in `target/release/deps/`);
//! `data/` next to the executable (the GPU bundle's layout).
use std::ffi::{c_char, CStr};
use std::path::PathBuf;
use std::sync::OnceLock;

use framepipe_proto::abi::{self, EntryPoints, EntryPointsFn, FramesFn, ENTRY_SYMBOL};
use framepipe_proto::ops::{
    CanvasBytes, CanvasMade, CanvasMake, CanvasRead, ClipEmbedFrames, Decoded, Embedded, Encoded,
    SearchAnswered, SearchLoad, SearchLoaded, SearchQuery, ShotsPredict, ShotsPredicted,
    VaeDecodeFrames, VaeEncodeFrames,
};
use framepipe_proto::{CallOp, Op, TorchError, ABI_VERSION};

pub const LIBRARY_NAME: &str = "libframepipe_torch.so";

/// The opened library.
pub struct Torch {
    path: PathBuf,
    // Kept open for the life of the process; the entry points point into it.
    _library: libloading::Library,
    entry: &'static EntryPoints,
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
        // SAFETY: the symbol has this signature in every library that exports it; the table it
        // returns is static, and its first field (the ABI version) is read before the rest.
        let entry = unsafe {
            let get = library.get::<EntryPointsFn>(ENTRY_SYMBOL).map_err(|e| {
                format!(
                    "{} is not a framepipe libtorch library of ABI {ABI_VERSION} ({e}): rebuild both",
                    path.display()
                )
            })?;
            let table = get();
            let found = std::ptr::read(table.cast::<u32>());
            if found != ABI_VERSION {
                return Err(format!(
                    "{} speaks ABI {found}, this framepipe needs {ABI_VERSION}: rebuild both",
                    path.display()
                ));
            }
            &*table
        };
        Ok(Torch {
            path,
            _library: library,
            entry,
        })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Sends one request of the generic entry point.
    pub fn call<O: CallOp>(&self, op: &O) -> Result<O::Reply, TorchError> {
        let text = abi::request_text(op);
        // SAFETY: a valid C string in; the reply is released by `reply`.
        unsafe { self.reply::<O>((self.entry.call)(text.as_ptr())) }
    }

    /// Embeds `frames` (bytes as `op.frames` lays them out; none when it names canvases) with a
    /// CLIP model into `out` (`n` x dim f32).
    pub fn clip_embed_frames(
        &self,
        op: &ClipEmbedFrames,
        frames: &[u8],
        out: &mut [f32],
    ) -> Result<Embedded, TorchError> {
        self.frames_call(self.entry.clip_embed_frames, op, frames, out)
    }

    /// Encodes `frames` with a VAE into `out` (f32 latents `[n, C, h, w]`).
    pub fn vae_encode_frames(
        &self,
        op: &VaeEncodeFrames,
        frames: &[u8],
        out: &mut [f32],
    ) -> Result<Encoded, TorchError> {
        self.frames_call(self.entry.vae_encode_frames, op, frames, out)
    }

    /// Decodes `latents` (f32 `[n, C, h, w]`, as a pipeline stores them) with a VAE into `out`
    /// (packed RGB24 frames of the decoded size).
    pub fn vae_decode_frames(
        &self,
        op: &VaeDecodeFrames,
        latents: &[f32],
        out: &mut [u8],
    ) -> Result<Decoded, TorchError> {
        let text = abi::bulk_request_text(op);
        // SAFETY: valid buffers of the stated lengths; the reply is released by `reply`.
        unsafe {
            self.reply::<VaeDecodeFrames>((self.entry.vae_decode_frames)(
                text.as_ptr(),
                latents.as_ptr(),
                latents.len(),
                out.as_mut_ptr(),
                out.len(),
            ))
        }
    }

    /// TransNetV2 probabilities for a run of 48x27 frames (see [`ShotsPredict`]): `out` gets
    /// `2 * 50 * windows` floats, the single-frame ones, then the many-hot ones.
    pub fn shots_predict(
        &self,
        op: &ShotsPredict,
        frames: &[u8],
        out: &mut [f32],
    ) -> Result<ShotsPredicted, TorchError> {
        self.frames_call(self.entry.shots_predict, op, frames, out)
    }

    /// One call of a frame-batch entry point: `op`'s text, the frames in, floats out.
    fn frames_call<O: Op>(
        &self,
        entry: FramesFn,
        op: &O,
        frames: &[u8],
        out: &mut [f32],
    ) -> Result<O::Reply, TorchError> {
        let text = abi::bulk_request_text(op);
        // SAFETY: valid buffers of the stated lengths; the reply is released by `reply`.
        unsafe {
            self.reply::<O>(entry(
                text.as_ptr(),
                frames.as_ptr(),
                frames.len(),
                out.as_mut_ptr(),
                out.len(),
            ))
        }
    }

    /// Loads fp16 rows (bit patterns, `op.rows` x `op.dim`) as a search matrix.
    pub fn search_load(&self, op: &SearchLoad, values: &[u16]) -> Result<SearchLoaded, TorchError> {
        let text = abi::bulk_request_text(op);
        // SAFETY: a valid buffer of the stated length; the reply is released by `reply`.
        unsafe {
            self.reply::<SearchLoad>((self.entry.search_load)(
                text.as_ptr(),
                values.as_ptr(),
                values.len(),
            ))
        }
    }

    /// The top `k` rows of search matrix `handle` for each query (`queries` = `count` x dim
    /// f32): (row index, cosine) per query, best first.
    pub fn search_query(
        &self,
        handle: u64,
        queries: &[f32],
        count: usize,
        k: usize,
    ) -> Result<Vec<Vec<(usize, f32)>>, TorchError> {
        let op = SearchQuery {
            handle,
            queries: count as u64,
            k: k as u64,
        };
        let text = abi::bulk_request_text(&op);
        let mut index = vec![-1i64; count * k];
        let mut score = vec![0f32; count * k];
        // SAFETY: valid buffers of the stated lengths; the reply is released by `reply`.
        let _: SearchAnswered = unsafe {
            self.reply::<SearchQuery>((self.entry.search_query)(
                text.as_ptr(),
                queries.as_ptr(),
                queries.len(),
                index.as_mut_ptr(),
                score.as_mut_ptr(),
                index.len(),
            ))
        }?;
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

    /// Makes a device canvas from one picture's planes (see framepipe-torch's `canvas::make`).
    ///
    /// # Safety
    /// Each plane pointer is valid for reads of its pitch times its rows, in the memory
    /// `op.location` names (host, or the op's device).
    pub unsafe fn canvas_make(
        &self,
        op: &CanvasMake,
        planes: [*const u8; 3],
        pitches: [i64; 3],
    ) -> Result<CanvasMade, TorchError> {
        let text = abi::bulk_request_text(op);
        // SAFETY: three pointers and three pitches, valid as the caller vouches.
        unsafe {
            self.reply::<CanvasMake>((self.entry.canvas_make)(
                text.as_ptr(),
                planes.as_ptr(),
                pitches.as_ptr(),
            ))
        }
    }

    /// Copies canvas `handle`'s planes (Y, U, V) into `out`.
    pub fn canvas_read(&self, handle: u64, out: &mut [u8]) -> Result<CanvasBytes, TorchError> {
        let text = abi::bulk_request_text(&CanvasRead { handle });
        // SAFETY: a valid buffer of the stated length; the reply is released by `reply`.
        unsafe {
            self.reply::<CanvasRead>((self.entry.canvas_read)(
                text.as_ptr(),
                out.as_mut_ptr(),
                out.len(),
            ))
        }
    }

    /// Parses a reply of this library as `O`'s and releases it with the library's own free.
    ///
    /// # Safety
    /// `raw` is a reply of this library, not yet released.
    unsafe fn reply<O: Op>(&self, raw: *mut c_char) -> Result<O::Reply, TorchError> {
        // SAFETY: guaranteed by the caller.
        let text = unsafe {
            let text = CStr::from_ptr(raw).to_string_lossy().into_owned();
            (self.entry.free)(raw);
            text
        };
        abi::parse_reply::<O>(&text)
    }
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
