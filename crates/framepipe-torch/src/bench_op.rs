//! `{"op": "bench_model", "stage": "clip"|"vae", ...}`: how many frames a second a model
//! stage's device work sustains, measured on the stage's own code (colour conversion,
//! preprocessing, the model, the copy back of each batch's results) with random frames already
//! on the device, so neither decoding nor the host's copies bound it. The request is a frames
//! request (`model`, `device`, `n`, `width`, `height`, `format`, ...) plus `seconds` (how long
//! to keep calling, default 3), `warmup` (untimed calls first, default 2: cuDNN's benchmark
//! mode picks its kernels during the first) and `model_only` (time the model alone on random
//! input of its own shape and precision, as the Python libraries' benchmarks do). Replies
//! `{"frames_per_second", "calls", "median_call_seconds", "min_call_seconds",
//! "max_call_seconds", "peak_memory_bytes"}` (the peak is the CUDA allocator's over the timed
//! calls; `null` on the CPU).
use std::time::Instant;

use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::frames::FrameLayout;

/// Most timed calls, however fast they are.
const MAX_CALLS: usize = 10_000;
/// Fewest timed calls, however slow: a median needs a few.
const MIN_CALLS: usize = 3;

/// Dispatches `bench_model` by `stage`.
pub fn bench_model(request: &Value) -> Result<Value, String> {
    match request["stage"].as_str() {
        Some("clip") => crate::clip_op::bench(request),
        Some("vae") => crate::vae_op::bench(request),
        other => Err(format!("bench_model: \"stage\" is {other:?}: clip or vae")),
    }
}

/// Whether the request times the model alone (`model_only`).
pub fn model_only(request: &Value) -> bool {
    request["model_only"].as_bool().unwrap_or(false)
}

/// Random uint8 frames in `layout` on `device`, as [`FrameLayout::with_uploaded`] hands them on.
pub fn random_frames(layout: &FrameLayout, device: Device) -> Result<Tensor, String> {
    Tensor::f_randint_low(
        0,
        256,
        [layout.n, layout.bytes_per_frame()],
        (Kind::Uint8, device),
    )
    .map_err(|e| e.to_string())
}

/// Runs `call` `warmup` times untimed, then times calls until `seconds` have passed (at least
/// [`MIN_CALLS`], at most [`MAX_CALLS`]). Each call ends with its results on the CPU, so its
/// time includes the device's work; the rate is `frames_per_call` over the median call.
pub fn time_calls(
    request: &Value,
    device: Device,
    frames_per_call: i64,
    mut call: impl FnMut() -> Result<(), String>,
) -> Result<Value, String> {
    let seconds = request["seconds"].as_f64().unwrap_or(3.0);
    if !(0.0..=600.0).contains(&seconds) {
        return Err(format!("\"seconds\" is {seconds}: 0 to 600"));
    }
    let warmup = request["warmup"].as_u64().unwrap_or(2).min(100);
    for _ in 0..warmup {
        call()?;
    }
    if device.is_cuda() {
        crate::cuda::sync_thread_stream(device)?;
        crate::cuda::reset_peak(device)?;
    }
    let started = Instant::now();
    let mut times = Vec::new();
    while times.len() < MIN_CALLS
        || (times.len() < MAX_CALLS && started.elapsed().as_secs_f64() < seconds)
    {
        let t = Instant::now();
        call()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let peak = if device.is_cuda() {
        Some(crate::cuda::memory(device)?.peak_allocated)
    } else {
        None
    };
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(json!({
        "frames_per_second": frames_per_call as f64 / median.max(1e-12),
        "calls": times.len(),
        "median_call_seconds": median,
        "min_call_seconds": times[0],
        "max_call_seconds": times[times.len() - 1],
        "peak_memory_bytes": peak,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_calls_times_at_least_a_few_calls_and_reports_the_median_rate() {
        let mut calls = 0;
        let reply = time_calls(
            &json!({"seconds": 0.0, "warmup": 1}),
            Device::Cpu,
            8,
            || {
                calls += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(calls, 1 + MIN_CALLS);
        assert_eq!(reply["calls"], MIN_CALLS);
        let fps = reply["frames_per_second"].as_f64().unwrap();
        // 8 frames per >= 10 ms call.
        assert!(fps > 0.0 && fps <= 800.0, "{fps}");
        assert!(reply["peak_memory_bytes"].is_null());
    }

    #[test]
    fn bad_requests_are_refused() {
        let never = || -> Result<(), String> { panic!("must not be called") };
        assert!(time_calls(&json!({"seconds": -1}), Device::Cpu, 1, never)
            .unwrap_err()
            .contains("seconds"));
        assert!(bench_model(&json!({"stage": "audio"}))
            .unwrap_err()
            .contains("clip or vae"));
        let failing = time_calls(&json!({}), Device::Cpu, 1, || Err("model failed".into()));
        assert_eq!(failing.unwrap_err(), "model failed");
    }

    #[test]
    fn random_frames_fill_the_layout() {
        let layout = FrameLayout::from_request(
            &json!({"n": 2, "width": 4, "height": 2, "format": "yuv420p"}),
        )
        .unwrap();
        let t = random_frames(&layout, Device::Cpu).unwrap();
        assert_eq!(t.size(), [2, 12]);
        assert_eq!(t.kind(), Kind::Uint8);
    }
}
