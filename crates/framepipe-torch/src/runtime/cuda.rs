//! The CUDA runtime calls tch does not bind, through `src/runtime/cuda_shim.cpp`: a stream per stage
//! thread (so the CLIP and VAE stages overlap on one GPU instead of queueing on the default
//! stream), waiting for one stream only, ordering one stream after another with events (device
//! frames made on the normalize thread's stream and read on the model stages'), and device
//! memory as the caching allocator sees it (for choosing a batch size from free memory).
use std::cell::RefCell;
use std::ffi::c_char;

use tch::Device;

extern "C" {
    fn framepipe_cuda_built() -> i32;
    fn framepipe_cuda_use_pool_stream(device: i32, error: *mut c_char, error_len: usize) -> i32;
    fn framepipe_cuda_current_stream(device: i32, error: *mut c_char, error_len: usize) -> i64;
    fn framepipe_cuda_memory(
        device: i32,
        out: *mut u64,
        error: *mut c_char,
        error_len: usize,
    ) -> i32;
    fn framepipe_cuda_reset_peak(device: i32, error: *mut c_char, error_len: usize) -> i32;
    fn framepipe_cuda_sync_stream(device: i32, error: *mut c_char, error_len: usize) -> i32;
    fn framepipe_cuda_current_waits_for_default(
        device: i32,
        error: *mut c_char,
        error_len: usize,
    ) -> i32;
    fn framepipe_cuda_default_waits_for_current(
        device: i32,
        error: *mut c_char,
        error_len: usize,
    ) -> i32;
    fn framepipe_cuda_event_record(device: i32, error: *mut c_char, error_len: usize) -> i64;
    fn framepipe_cuda_event_block(
        event: i64,
        device: i32,
        error: *mut c_char,
        error_len: usize,
    ) -> i32;
    fn framepipe_cuda_event_free(event: i64);
}

/// Whether the shim was compiled with CUDA (false with a CPU-only libtorch).
pub fn built_with_cuda() -> bool {
    // SAFETY: no arguments, no state.
    unsafe { framepipe_cuda_built() == 1 }
}

/// Calls a shim function with an error buffer; `Err` carries the shim's message.
fn call<T: PartialOrd + Default>(
    what: &str,
    f: impl FnOnce(*mut c_char, usize) -> T,
) -> Result<T, String> {
    let mut error = [0u8; 512];
    let value = f(error.as_mut_ptr().cast(), error.len());
    if value < T::default() {
        let end = error.iter().position(|b| *b == 0).unwrap_or(error.len());
        let message = String::from_utf8_lossy(&error[..end]);
        return Err(format!(
            "CUDA {what}: {}",
            crate::reply::without_backtrace(&message)
        ));
    }
    Ok(value)
}

fn cuda_index(device: Device) -> Option<i32> {
    match device {
        Device::Cuda(i) => i32::try_from(i).ok(),
        _ => None,
    }
}

thread_local! {
    /// The CUDA devices on which this thread already runs on its own stream.
    static STREAM_SET: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

/// Whether stage threads get streams of their own: yes unless `FRAMEPIPE_STAGE_STREAMS=off`
/// (everything on the default stream, as tch alone does), which exists so the GPU check can
/// measure what the overlap is worth in the same build.
pub fn stage_streams_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("FRAMEPIPE_STAGE_STREAMS").as_deref() != Ok("off"))
}

/// Gives the calling thread its own stream on `device` (once per thread and device; nothing on
/// the CPU). The pipeline runs each model stage on its own thread, so each stage's kernels and
/// copies get a stream of their own.
pub fn use_thread_stream(device: Device) -> Result<(), String> {
    let Some(index) = cuda_index(device) else {
        return Ok(());
    };
    if !stage_streams_enabled() {
        return Ok(());
    }
    if STREAM_SET.with(|s| s.borrow().contains(&index)) {
        return Ok(());
    }
    // Tried once per thread and device, whatever the outcome.
    STREAM_SET.with(|s| s.borrow_mut().push(index));
    // SAFETY: the buffer outlives the call and its length is passed.
    call("stream", |e, n| unsafe {
        framepipe_cuda_use_pool_stream(index, e, n)
    })
    .map(drop)
}

/// Why a stage thread could not get a stream of its own, if one could not (see
/// [`use_thread_stream_or_default`]); `framepipe devices` shows it.
static STREAM_FAILURE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// [`use_thread_stream`] for the model requests: a failure leaves the thread on the default
/// stream (slower, not wrong) and is kept for `devices` instead of failing the run.
pub fn use_thread_stream_or_default(device: Device) {
    if let Err(message) = use_thread_stream(device) {
        let _ = STREAM_FAILURE.set(message);
    }
}

/// The first failure of [`use_thread_stream_or_default`] in this process.
pub fn stream_failure() -> Option<&'static str> {
    STREAM_FAILURE.get().map(String::as_str)
}

/// A shim entry point that takes a device index and an error buffer.
type DeviceCall = unsafe extern "C" fn(i32, *mut c_char, usize) -> i32;

/// Calls `entry` for `device`; nothing on the CPU.
fn on_cuda_device(device: Device, what: &str, entry: DeviceCall) -> Result<(), String> {
    let Some(index) = cuda_index(device) else {
        return Ok(());
    };
    // SAFETY: the shim's entry points take any index (errors come back in the buffer) and write
    // at most the buffer's stated length.
    call(what, |e, n| unsafe { entry(index, e, n) }).map(drop)
}

/// The id of the calling thread's current stream on `device` (0: the default stream).
pub fn current_stream(device: Device) -> Result<i64, String> {
    let index = cuda_index(device).ok_or("not a CUDA device")?;
    // SAFETY: as in use_thread_stream.
    call("stream", |e, n| unsafe {
        framepipe_cuda_current_stream(index, e, n)
    })
}

/// Waits until the calling thread's stream on `device` has finished its queued work (the other
/// stages' streams keep running). Nothing on the CPU.
pub fn sync_thread_stream(device: Device) -> Result<(), String> {
    on_cuda_device(device, "synchronize", framepipe_cuda_sync_stream)
}

/// Orders the calling thread's stream on `device` after the work queued so far on the legacy
/// default stream, where FFmpeg's NVDEC copies decoded pictures (a device-side wait).
pub fn current_waits_for_default(device: Device) -> Result<(), String> {
    on_cuda_device(
        device,
        "stream wait",
        framepipe_cuda_current_waits_for_default,
    )
}

/// Orders the legacy default stream after the work queued so far on the calling thread's
/// stream: FFmpeg reuses a decoded picture's memory only after the kernels reading it ran.
pub fn default_waits_for_current(device: Device) -> Result<(), String> {
    on_cuda_device(
        device,
        "stream wait",
        framepipe_cuda_default_waits_for_current,
    )
}

/// A point in one thread's stream that another thread's stream can wait for.
#[derive(Debug)]
pub struct Event {
    handle: i64,
    device: i32,
}

impl Event {
    /// Records an event on the calling thread's current stream on `device` (`None` on the CPU,
    /// where work is done when the call returns).
    pub fn record(device: Device) -> Result<Option<Event>, String> {
        let Some(index) = cuda_index(device) else {
            return Ok(None);
        };
        // SAFETY: as in use_thread_stream.
        let handle = call("event", |e, n| unsafe {
            framepipe_cuda_event_record(index, e, n)
        })?;
        Ok(Some(Event {
            handle,
            device: index,
        }))
    }

    /// Makes the calling thread's current stream wait for this event (on the device).
    pub fn block_current(&self) -> Result<(), String> {
        // SAFETY: `handle` came from framepipe_cuda_event_record and is not freed yet.
        call("event", |e, n| unsafe {
            framepipe_cuda_event_block(self.handle, self.device, e, n)
        })
        .map(drop)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: released once, here.
        unsafe { framepipe_cuda_event_free(self.handle) }
    }
}

/// Memory of one CUDA device, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Free on the device (outside the caching allocator).
    pub free: u64,
    pub total: u64,
    /// Held by libtorch's caching allocator (in tensors or cached for reuse).
    pub reserved: u64,
    /// In live tensors now.
    pub allocated: u64,
    /// The most in live tensors since the last [`reset_peak`].
    pub peak_allocated: u64,
}

impl Memory {
    /// What new tensors can use: the device's free memory plus what the allocator caches.
    pub fn usable(&self) -> u64 {
        self.free + self.reserved.saturating_sub(self.allocated)
    }
}

/// The memory of `device` now.
pub fn memory(device: Device) -> Result<Memory, String> {
    let index = cuda_index(device).ok_or("memory is measured on CUDA devices only")?;
    let mut out = [0u64; 5];
    // SAFETY: `out` holds the 5 values the shim writes; the error buffer as in use_thread_stream.
    call("memory", |e, n| unsafe {
        framepipe_cuda_memory(index, out.as_mut_ptr(), e, n)
    })?;
    Ok(Memory {
        free: out[0],
        total: out[1],
        reserved: out[2],
        allocated: out[3],
        peak_allocated: out[4],
    })
}

/// Starts a new peak for [`Memory::peak_allocated`].
pub fn reset_peak(device: Device) -> Result<(), String> {
    let index = cuda_index(device).ok_or("memory is measured on CUDA devices only")?;
    // SAFETY: as in use_thread_stream.
    call("memory", |e, n| unsafe {
        framepipe_cuda_reset_peak(index, e, n)
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_links_and_the_cpu_needs_none_of_it() {
        // The PyPI torch this project builds against ships the CUDA headers and libc10_cuda,
        // so the shim must have been compiled with CUDA (a silent stub build would lose the
        // per-stage streams on the GPU machine without anyone noticing).
        assert!(built_with_cuda(), "the CUDA shim was built without CUDA");
        use_thread_stream(Device::Cpu).unwrap();
        sync_thread_stream(Device::Cpu).unwrap();
        current_waits_for_default(Device::Cpu).unwrap();
        default_waits_for_current(Device::Cpu).unwrap();
        assert!(Event::record(Device::Cpu).unwrap().is_none());
        assert!(memory(Device::Cpu).is_err());
        if !tch::Cuda::is_available() {
            // The shim itself answers on a machine without a GPU: an error, never a crash.
            let e = memory(Device::Cuda(0)).unwrap_err();
            assert!(e.starts_with("CUDA memory: "), "{e}");
            let e = Event::record(Device::Cuda(0)).unwrap_err();
            assert!(e.starts_with("CUDA event: "), "{e}");
        }
    }

    /// A thread that cannot get a stream (here: no GPU at all) stays on the default stream and
    /// the reason is kept; nothing fails.
    #[test]
    fn a_stream_failure_is_kept_not_raised() {
        if tch::Cuda::is_available() {
            return;
        }
        std::thread::spawn(|| use_thread_stream_or_default(Device::Cuda(0)))
            .join()
            .unwrap();
        let why = stream_failure().expect("the failure is kept");
        assert!(why.starts_with("CUDA stream: "), "{why}");
    }

    // On a GPU: tests/cuda.rs (stage threads get streams of their own, and the rest of the
    // device check's `cuda` test set).

    #[test]
    fn usable_memory_counts_the_allocators_cache() {
        let m = Memory {
            free: 10,
            total: 100,
            reserved: 50,
            allocated: 30,
            peak_allocated: 40,
        };
        assert_eq!(m.usable(), 30);
    }
}
