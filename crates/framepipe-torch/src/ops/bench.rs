//! `bench_model`'s timing, shared by the CLIP and VAE ops (which each time their own stage): how many frames a second a model stage's device work sustains, measured on
//! the stage's own code (colour conversion, preprocessing, the model, the copy back of each
//! batch's results) with random frames already on the device, so neither decoding nor the
//! host's copies bound it; with `model_only`, the model alone on random input of its own shape
//! and precision, as the Python libraries' benchmarks do. The peak memory is the CUDA
//! allocator's over the timed calls (none on the CPU).
use std::time::Instant;

use framepipe_proto::ops::{BenchModel, BenchReply};
use framepipe_proto::TorchError;
use tch::{Device, Kind, Tensor};

use crate::runtime::frames::{torch_error, Batch};

/// Most timed calls, however fast they are.
const MAX_CALLS: usize = 10_000;
/// Fewest timed calls, however slow: a median needs a few.
const MIN_CALLS: usize = 3;

/// Random uint8 frames of `batch` on `device`, as [`Batch::with_uploaded`] hands them on.
pub fn random_frames(batch: &Batch, device: Device) -> Result<Tensor, TorchError> {
    Tensor::f_randint_low(
        0,
        256,
        [batch.n, batch.bytes_per_frame()],
        (Kind::Uint8, device),
    )
    .map_err(torch_error)
}

/// Runs `call` `warmup` times untimed, then times calls until `seconds` have passed (at least
/// [`MIN_CALLS`], at most [`MAX_CALLS`]). Each call ends with its results on the CPU, so its
/// time includes the device's work; the rate is `frames_per_call` over the median call.
pub fn time_calls(
    op: &BenchModel,
    device: Device,
    frames_per_call: i64,
    mut call: impl FnMut() -> Result<(), TorchError>,
) -> Result<BenchReply, TorchError> {
    let seconds = op.seconds;
    if !(0.0..=600.0).contains(&seconds) {
        return Err(TorchError::bad_input(format!(
            "\"seconds\" is {seconds}: 0 to 600"
        )));
    }
    let warmup = op.warmup.min(100);
    for _ in 0..warmup {
        call()?;
    }
    if device.is_cuda() {
        crate::runtime::cuda::sync_thread_stream(device)?;
        crate::runtime::cuda::reset_peak(device)?;
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
        Some(crate::runtime::cuda::memory(device)?.peak_allocated)
    } else {
        None
    };
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(BenchReply {
        frames_per_second: frames_per_call as f64 / median.max(1e-12),
        calls: times.len() as u64,
        median_call_seconds: median,
        min_call_seconds: times[0],
        max_call_seconds: times[times.len() - 1],
        peak_memory_bytes: peak,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use framepipe_proto::ops::{ModelOn, ModelStage};
    use framepipe_proto::{FrameLayout, Matrix};

    fn op(seconds: f64, warmup: u32) -> BenchModel {
        BenchModel {
            stage: ModelStage::Clip,
            on: ModelOn {
                model: "m".into(),
                device: framepipe_proto::Device::Cpu,
            },
            n: 1,
            layout: FrameLayout::rgb24(8, 8),
            tiling: false,
            seconds,
            warmup,
            model_only: false,
        }
    }

    #[test]
    fn time_calls_times_at_least_a_few_calls_and_reports_the_median_rate() {
        let mut calls = 0;
        let reply = time_calls(&op(0.0, 1), Device::Cpu, 8, || {
            calls += 1;
            std::thread::sleep(std::time::Duration::from_millis(10));
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 1 + MIN_CALLS);
        assert_eq!(reply.calls, MIN_CALLS as u64);
        // 8 frames per >= 10 ms call.
        assert!(
            reply.frames_per_second > 0.0 && reply.frames_per_second <= 800.0,
            "{reply:?}"
        );
        assert!(reply.peak_memory_bytes.is_none());
    }

    #[test]
    fn bad_requests_are_refused() {
        let never = || -> Result<(), TorchError> { panic!("must not be called") };
        let e = time_calls(&op(-1.0, 2), Device::Cpu, 1, never).unwrap_err();
        assert!(e.message.contains("seconds"), "{e}");
        let failing = time_calls(&op(3.0, 2), Device::Cpu, 1, || {
            Err(TorchError::bad_input("model failed"))
        });
        assert_eq!(failing.unwrap_err().message, "model failed");
    }

    #[test]
    fn random_frames_fill_the_layout() {
        let layout = FrameLayout::yuv420p((4, 2), Matrix::Bt601, false, None);
        let t = random_frames(&Batch::of(2, layout).unwrap(), Device::Cpu).unwrap();
        assert_eq!(t.size(), [2, 12]);
        assert_eq!(t.kind(), Kind::Uint8);
    }
}
