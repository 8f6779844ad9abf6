//! Sharing the GPU's primary CUDA context between FFmpeg's NVDEC and libtorch, so libtorch can
//! read decoded pictures where NVDEC leaves them.
//!
//! FFmpeg 5.1 takes the primary context only with its scheduling flag
//! (`CU_CTX_SCHED_BLOCKING_SYNC`) and refuses one that is already active with other flags,
//! which is the case once libtorch has run anything on the GPU (a model of an earlier input of a
//! batch, `framepipe devices`). Drivers since CUDA 11 let the flags of an active primary
//! context change, so the flag is set here first, through the driver API (libcuda, opened on
//! demand: a CPU-only machine has none and simply gets an error back). The flag only changes
//! how a host thread waits for the GPU (sleeping instead of spinning).
use std::ffi::c_int;
use std::sync::OnceLock;

/// `CU_CTX_SCHED_BLOCKING_SYNC`, what FFmpeg's CUDA device context wants.
const SCHED_BLOCKING_SYNC: u32 = 0x04;

type InitFn = unsafe extern "C" fn(u32) -> c_int;
type DeviceGetFn = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
type GetStateFn = unsafe extern "C" fn(c_int, *mut u32, *mut c_int) -> c_int;
type SetFlagsFn = unsafe extern "C" fn(c_int, u32) -> c_int;

/// Gives GPU `index`'s primary context the flags FFmpeg asks for (its scheduling flag and
/// nothing else: FFmpeg compares the whole word). `Err` says why not (no driver, no such GPU, a
/// driver that refuses).
pub fn prepare_primary_context(index: u32) -> Result<(), String> {
    // SAFETY: libcuda's own initializers; the functions below have these C signatures in
    // cuda.h (CUDA 11 and later).
    unsafe {
        let lib = libcuda()?;
        let symbol = |names: &[&[u8]]| {
            names
                .iter()
                .find_map(|n| lib.get::<*const ()>(*n).ok().map(|s| *s))
                .ok_or_else(|| {
                    format!(
                        "libcuda.so.1 lacks {}",
                        String::from_utf8_lossy(names[0].strip_suffix(b"\0").unwrap_or(names[0]))
                    )
                })
        };
        let init: InitFn = std::mem::transmute(symbol(&[b"cuInit\0"])?);
        let device_get: DeviceGetFn = std::mem::transmute(symbol(&[b"cuDeviceGet\0"])?);
        let get_state: GetStateFn =
            std::mem::transmute(symbol(&[b"cuDevicePrimaryCtxGetState\0"])?);
        let set_flags: SetFlagsFn = std::mem::transmute(symbol(&[
            b"cuDevicePrimaryCtxSetFlags_v2\0",
            b"cuDevicePrimaryCtxSetFlags\0",
        ])?);
        let check = |what: &str, code: c_int| {
            if code == 0 {
                Ok(())
            } else {
                Err(format!("{what} failed (CUDA error {code})"))
            }
        };
        check("cuInit", init(0))?;
        let mut device: c_int = 0;
        let ordinal = c_int::try_from(index).map_err(|_| format!("GPU index {index}"))?;
        check("cuDeviceGet", device_get(&mut device, ordinal))?;
        let (mut flags, mut active) = (0u32, 0 as c_int);
        check(
            "cuDevicePrimaryCtxGetState",
            get_state(device, &mut flags, &mut active),
        )?;
        if flags == SCHED_BLOCKING_SYNC {
            return Ok(());
        }
        check(
            "cuDevicePrimaryCtxSetFlags",
            set_flags(device, SCHED_BLOCKING_SYNC),
        )
    }
}

/// libcuda, opened once and kept for the life of the process: unloading the driver after
/// `cuInit` would unmap code its threads may still run (and FFmpeg and libtorch open it too).
fn libcuda() -> Result<&'static libloading::Library, String> {
    static LIBCUDA: OnceLock<Result<libloading::Library, String>> = OnceLock::new();
    LIBCUDA
        .get_or_init(|| {
            // SAFETY: loading the driver library runs only its own initializers.
            unsafe { libloading::Library::new("libcuda.so.1") }
                .map_err(|e| format!("no CUDA driver (libcuda.so.1: {e})"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a driver (this CI machine) the answer is an error naming the cause, never a
    /// crash; with one, GPU 0 ends up with FFmpeg's flag.
    #[test]
    fn preparing_answers_with_or_without_a_driver() {
        match prepare_primary_context(0) {
            Ok(()) => {}
            Err(e) => assert!(e.contains("libcuda") || e.contains("CUDA error"), "{e}"),
        }
        if let Err(e) = prepare_primary_context(10_000) {
            assert!(!e.is_empty());
        }
    }
}
