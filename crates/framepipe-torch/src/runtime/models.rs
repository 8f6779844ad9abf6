//! What every model request shares: the device and precision models run on, and keeping
//! loaded models for the process (a pipeline run loads each model once; calls on one model are
//! serialized: one replica per device).
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

use framepipe_proto::{Device, Precision, TorchError};

/// The proto's device as tch's.
pub fn tch_device(device: Device) -> tch::Device {
    match device {
        Device::Cpu => tch::Device::Cpu,
        Device::Cuda(n) => tch::Device::Cuda(n as usize),
    }
}

/// The precision set by the `configure` op (an index into [`Precision::ALL`]).
static PRECISION: AtomicU8 = AtomicU8::new(0);

pub fn set_precision(precision: Precision) {
    let code = Precision::ALL
        .iter()
        .position(|p| *p == precision)
        .unwrap_or(0);
    PRECISION.store(code as u8, Ordering::Relaxed);
}

pub fn precision() -> Precision {
    Precision::ALL[usize::from(PRECISION.load(Ordering::Relaxed)).min(3)]
}

/// The precision models run in: as configured, else (`auto`) fp16 on CUDA and fp32 on the CPU
/// (exact parity with the references; `bf16` is several times faster on CPUs with AMX).
pub fn inference_kind(device: tch::Device) -> tch::Kind {
    kind_of(precision().effective(proto_device(device)))
}

/// The tch kind a (settled) precision computes in.
pub fn kind_of(precision: Precision) -> tch::Kind {
    match precision {
        Precision::Fp16 => tch::Kind::Half,
        Precision::Bf16 => tch::Kind::BFloat16,
        _ => tch::Kind::Float,
    }
}

/// The precision a model loaded in `kind` computes in ([`kind_of`]'s inverse).
pub fn precision_of(kind: tch::Kind) -> Precision {
    match kind {
        tch::Kind::Half => Precision::Fp16,
        tch::Kind::BFloat16 => Precision::Bf16,
        _ => Precision::Fp32,
    }
}

fn proto_device(device: tch::Device) -> Device {
    if device.is_cuda() {
        Device::Cuda(0)
    } else {
        Device::Cpu
    }
}

/// The shot detector's precision: as configured, except that `auto` on a CPU that computes
/// bf16 natively runs TransNetV2 in bf16. Measured (issue 31): the same cuts as fp32 on the
/// transitions benchmark and every shared video, probabilities within 0.02, the model about
/// 1.5x faster. Models with float outputs users keep (CLIP embeddings, VAE latents) stay fp32.
pub fn shots_precision(device: tch::Device) -> Precision {
    match precision() {
        Precision::Auto if !device.is_cuda() && cpu_computes_bf16() => Precision::Bf16,
        configured => configured.effective(proto_device(device)),
    }
}

/// Whether this CPU has native bf16 arithmetic (AVX-512 BF16; every AMX CPU has it too) and
/// libtorch may use AVX-512: `ATEN_CPU_CAPABILITY=avx2` (or `default`), libtorch's own switch
/// for narrowing its kernels, rules bf16 out here as well.
pub fn cpu_computes_bf16() -> bool {
    let narrowed = std::env::var("ATEN_CPU_CAPABILITY")
        .is_ok_and(|c| matches!(c.trim().to_ascii_lowercase().as_str(), "default" | "avx2"));
    !narrowed && has_avx512_bf16()
}

#[cfg(target_arch = "x86_64")]
fn has_avx512_bf16() -> bool {
    std::arch::is_x86_feature_detected!("avx512bf16")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512_bf16() -> bool {
    false
}

/// Models kept for the process, by (folder, device).
pub struct ModelCache<M>(OnceLock<Mutex<HashMap<(PathBuf, String), M>>>);

impl<M> Default for ModelCache<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> ModelCache<M> {
    pub const fn new() -> Self {
        ModelCache(OnceLock::new())
    }

    /// Runs `f` with the model of `folder` on `device`, made by `load` on first use.
    pub fn with<T>(
        &self,
        folder: &std::path::Path,
        device: tch::Device,
        load: impl FnOnce() -> Result<M, TorchError>,
        f: impl FnOnce(&M) -> Result<T, TorchError>,
    ) -> Result<T, TorchError> {
        let key = (
            folder.to_path_buf(),
            format!("{device:?}/{:?}", inference_kind(device)),
        );
        // A panic inside a model call (tch's operators panic on libtorch errors such as out of
        // memory) poisons the lock but leaves the models as they were (their weights are only
        // read), so the next call uses them as usual.
        let mut models = self
            .0
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Each stage thread queues its work on a stream of its own (see crate::runtime::cuda).
        crate::runtime::cuda::use_thread_stream_or_default(device);
        if !models.contains_key(&key) {
            let model = load()?;
            // The weights were copied to the device on this thread's stream; a stage on another
            // thread (another stream) may use them next, so the copies finish first.
            crate::runtime::cuda::sync_thread_stream(device)?;
            models.insert(key.clone(), model);
        }
        f(&models[&key])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call that panics (as tch's operators do on libtorch errors) leaves the cached model
    /// usable: the next call gets it, not a "poisoned" error.
    #[test]
    fn a_panicking_call_does_not_lose_the_model() {
        let cache: ModelCache<u32> = ModelCache::new();
        let folder = std::path::Path::new("model");
        let panicked = std::panic::catch_unwind(|| {
            cache.with(
                folder,
                tch::Device::Cpu,
                || Ok(7),
                |_| -> Result<(), TorchError> { panic!("out of memory") },
            )
        });
        assert!(panicked.is_err());
        let loads = std::cell::Cell::new(0);
        let got = cache.with(
            folder,
            tch::Device::Cpu,
            || {
                loads.set(loads.get() + 1);
                Ok(8)
            },
            |m| Ok(*m),
        );
        assert_eq!(got, Ok(7), "the model loaded before the panic");
        assert_eq!(loads.get(), 0);
    }

    #[test]
    fn devices_map_onto_tch() {
        assert_eq!(tch_device(Device::Cuda(2)), tch::Device::Cuda(2));
        assert_eq!(tch_device(Device::Cpu), tch::Device::Cpu);
    }
}
