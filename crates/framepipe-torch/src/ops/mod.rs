//! One handler per request: [`handle`] dispatches the generic entry point's [`Request`]s; the
//! bulk entry points (crate::entry) call their handlers here directly.
pub mod bench;
pub mod clip;
pub mod random;
pub mod search;
pub mod shots;
pub mod vae;

use std::ffi::CString;

use framepipe_proto::ops::{CanvasesLive, Configure, ConfigureReply, DevicesReply, ModelStage};
use framepipe_proto::Request;

use crate::reply::finish;
use crate::runtime::{canvas, cuda, models};

/// Runs one generic-entry request; returns its reply text.
pub fn handle(request: Request) -> CString {
    match request {
        Request::Devices(_) => finish(Ok(devices())),
        Request::Configure(op) => finish(Ok(configure(&op))),
        Request::ClipRun(op) => finish(clip::run(&op)),
        Request::ClipTexts(op) => finish(clip::texts(&op)),
        Request::VaeEncodeImages(op) => finish(vae::encode_images(&op)),
        Request::VaeInfo(op) => finish(vae::info(&op)),
        Request::VaePlanBatch(op) => finish(vae::plan_batch(&op)),
        Request::BenchModel(op) => finish(match op.stage {
            ModelStage::Clip => clip::bench(&op),
            ModelStage::Vae => vae::bench(&op),
        }),
        Request::SearchFree(op) => finish(Ok(search::free(&op))),
        Request::CanvasFree(op) => finish(Ok(canvas::free(&op))),
        Request::CanvasLive(_) => finish(Ok(CanvasesLive {
            live: canvas::live() as u64,
        })),
        Request::InitRandom(op) => finish(random::init_random(&op)),
        Request::ShotsInfo(op) => finish(shots::info(&op)),
    }
}

/// What libtorch sees on this machine.
pub fn devices() -> DevicesReply {
    let cuda_available = tch::Cuda::is_available();
    let count = if cuda_available {
        tch::Cuda::device_count().max(0)
    } else {
        0
    };
    DevicesReply {
        cuda_available,
        cuda_devices: count as u32,
        cudnn_available: cuda_available && tch::Cuda::cudnn_is_available(),
        threads: tch::get_num_threads(),
        // Model stages on CUDA streams of their own (crate::runtime::cuda): none where they
        // are, else why not.
        stage_streams_off: if !cuda::built_with_cuda() {
            Some("built without CUDA headers".into())
        } else if !cuda::stage_streams_enabled() {
            Some("FRAMEPIPE_STAGE_STREAMS=off".into())
        } else {
            cuda::stream_failure().map(String::from)
        },
    }
}

/// Process-wide settings, sent before any model loads.
pub fn configure(op: &Configure) -> ConfigureReply {
    models::set_precision(op.precision);
    // cuDNN times the candidate kernels per convolution shape once and keeps the fastest:
    // pipeline shapes repeat for every batch, so the first batch pays for all the others.
    tch::Cuda::cudnn_set_benchmark(op.cudnn_benchmark);
    ConfigureReply {
        precision: models::precision(),
    }
}
