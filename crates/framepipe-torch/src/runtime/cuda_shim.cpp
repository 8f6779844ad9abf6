// framepipe's few calls into libtorch's CUDA runtime that tch does not bind: a CUDA stream per
// stage thread, ordering between streams through events (device-side waits, never the host's),
// and the device's memory as the caching allocator sees it (free, reserved, peak).
//
// Built by build.rs with the `cc` crate against the headers of the libtorch it links. Without
// CUDA headers or libc10_cuda (a CPU-only libtorch) FRAMEPIPE_WITH_CUDA is undefined and every
// call answers "not built with CUDA". C++ exceptions never cross into Rust: each entry point
// catches them and writes the message into the caller's buffer.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>

#ifdef FRAMEPIPE_WITH_CUDA
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace {

void write_error(char* error, size_t error_len, const char* message) {
  if (error != nullptr && error_len > 0) {
    std::snprintf(error, error_len, "%s", message);
  }
}

#ifdef FRAMEPIPE_WITH_CUDA
// Makes `waiter` wait, on the device, for the work queued so far on `waited`.
void wait_for(const c10::cuda::CUDAStream& waiter, const c10::cuda::CUDAStream& waited) {
  c10::Event done(c10::DeviceType::CUDA);
  done.record(waited);
  done.block(waiter);
}
#endif

}  // namespace

// The body of an entry point that returns 0 (or a value >= 0) on success and -1 with the
// message in (error, error_len) on failure; without CUDA, the failure that says so.
#ifdef FRAMEPIPE_WITH_CUDA
#define FRAMEPIPE_CUDA_BODY(...)                 \
  try {                                          \
    __VA_ARGS__                                  \
  } catch (const std::exception& e) {            \
    write_error(error, error_len, e.what());     \
    return -1;                                   \
  }
#else
#define FRAMEPIPE_CUDA_BODY(...)                                                       \
  write_error(error, error_len, "libframepipe_torch was built without CUDA headers"); \
  return -1;
#endif

extern "C" {

// 1 when this library was built with CUDA support, else 0.
int framepipe_cuda_built() {
#ifdef FRAMEPIPE_WITH_CUDA
  return 1;
#else
  return 0;
#endif
}

// Makes a stream from libtorch's pool the calling thread's current stream on `device`, so the
// thread's kernels and copies no longer queue behind other threads' work (each stage thread
// calls this once: CLIP and VAE then overlap). The pool streams do not synchronize with the
// legacy default stream. Returns 0, or -1 with a message in `error`.
int framepipe_cuda_use_pool_stream(int device, char* error, size_t error_len) {
  FRAMEPIPE_CUDA_BODY(
    auto index = static_cast<c10::DeviceIndex>(device);
    c10::cuda::setCurrentCUDAStream(c10::cuda::getStreamFromPool(false, index));
    return 0;
  )
}

// The id of the calling thread's current stream on `device` (0 is the default stream), so
// tests and the bench can tell that stage threads run on different streams. -1 on error.
int64_t framepipe_cuda_current_stream(int device, char* error, size_t error_len) {
  FRAMEPIPE_CUDA_BODY(
    return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).id();
  )
}

// Memory of `device` in bytes, into out[0..5]: free on the device (cudaMemGetInfo), total,
// reserved by the caching allocator, allocated in tensors now, and the peak allocated since the
// last reset. Free + reserved - allocated is what new tensors can use. Returns 0 or -1.
int framepipe_cuda_memory(int device, uint64_t* out, char* error, size_t error_len) {
  FRAMEPIPE_CUDA_BODY(
    auto index = static_cast<c10::DeviceIndex>(device);
    auto* allocator = c10::cuda::CUDACachingAllocator::get();
    auto [free, total] = allocator->getMemoryInfo(index);
    auto stats = allocator->getDeviceStats(index);
    constexpr auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    out[0] = free;
    out[1] = total;
    out[2] = static_cast<uint64_t>(stats.reserved_bytes[all].current);
    out[3] = static_cast<uint64_t>(stats.allocated_bytes[all].current);
    out[4] = static_cast<uint64_t>(stats.allocated_bytes[all].peak);
    return 0;
  )
}

// Starts a new peak for framepipe_cuda_memory's out[4]. Returns 0 or -1.
int framepipe_cuda_reset_peak(int device, char* error, size_t error_len) {
  FRAMEPIPE_CUDA_BODY(
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
    return 0;
  )
}

// Waits for the calling thread's current stream on `device` only (not the whole device, as
// torch::cuda::synchronize would, which would also wait for the other stages). Returns 0 or -1.
int framepipe_cuda_sync_stream(int device, char* error, size_t error_len) {
  FRAMEPIPE_CUDA_BODY(
    c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).synchronize();
    return 0;
  )
}

// Makes the calling thread's current stream on `device` wait, on the device, for everything
// queued so far on the legacy default stream. FFmpeg's NVDEC hwaccel copies each decoded
// picture into its frame pool on that stream; the pool streams the stages use do not
// synchronize with it by themselves. Returns 0 or -1.
int framepipe_cuda_current_waits_for_default(int device, char* error, size_t error_len) {
  FRAMEPIPE_CUDA_BODY(
    auto index = static_cast<c10::DeviceIndex>(device);
    wait_for(c10::cuda::getCurrentCUDAStream(index), c10::cuda::getDefaultCUDAStream(index));
    return 0;
  )
}

// The reverse: the legacy default stream waits for the work queued so far on the calling
// thread's current stream, so a picture of FFmpeg's pool is not overwritten by the next decode
// while kernels still read it. Returns 0 or -1.
int framepipe_cuda_default_waits_for_current(int device, char* error, size_t error_len) {
  FRAMEPIPE_CUDA_BODY(
    auto index = static_cast<c10::DeviceIndex>(device);
    wait_for(c10::cuda::getDefaultCUDAStream(index), c10::cuda::getCurrentCUDAStream(index));
    return 0;
  )
}

// An event recorded now on the calling thread's current stream on `device`, as an opaque
// handle (> 0) for framepipe_cuda_event_block and framepipe_cuda_event_free; -1 on error.
int64_t framepipe_cuda_event_record(int device, char* error, size_t error_len) {
  FRAMEPIPE_CUDA_BODY(
    auto index = static_cast<c10::DeviceIndex>(device);
    auto* event = new c10::Event(c10::DeviceType::CUDA);
    try {
      event->record(c10::cuda::getCurrentCUDAStream(index));
    } catch (...) {
      delete event;
      throw;
    }
    return static_cast<int64_t>(reinterpret_cast<intptr_t>(event));
  )
}

// Makes the calling thread's current stream on `device` wait for `event` (on the device).
// Returns 0 or -1.
int framepipe_cuda_event_block(int64_t event, int device, char* error, size_t error_len) {
  FRAMEPIPE_CUDA_BODY(
    auto* e = reinterpret_cast<c10::Event*>(static_cast<intptr_t>(event));
    e->block(c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)));
    return 0;
  )
}

// Releases an event of framepipe_cuda_event_record (CUDA frees it once it has completed).
void framepipe_cuda_event_free(int64_t event) {
#ifdef FRAMEPIPE_WITH_CUDA
  try {
    delete reinterpret_cast<c10::Event*>(static_cast<intptr_t>(event));
  } catch (...) {
  }
#else
  (void)event;
#endif
}

}  // extern "C"
