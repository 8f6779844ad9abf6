//! The shot-transition requests: `shots_info` loads a TransNetV2 folder (so a bad folder fails
//! before any decoding) and `shots_predict` runs windows of 48x27 frames through it.
use framepipe_proto::ops::{ShotsFacts, ShotsInfo, ShotsPredict, ShotsPredicted, SHOT_FRAME_BYTES};
use framepipe_proto::TorchError;
use tch::Tensor;

use crate::models::transnet::{TransNetError, TransNetV2, CONTEXT, STEP, WINDOW};
use crate::runtime::frames::{copy_into, to_host_f32, torch_error};
use crate::runtime::models::{kind_of, precision_of, shots_precision, tch_device, ModelCache};

static MODELS: ModelCache<TransNetV2> = ModelCache::new();

/// Loading errors name the folder; the rest are the input's or libtorch's.
impl From<TransNetError> for TorchError {
    fn from(e: TransNetError) -> TorchError {
        match e {
            TransNetError::Config { .. } | TransNetError::Weights { .. } => {
                TorchError::bad_model(e.to_string())
            }
            TransNetError::Input(_) => TorchError::bad_input(e.to_string()),
            TransNetError::Torch(_) => TorchError::from_libtorch(e.to_string()),
        }
    }
}

fn with_model<T>(
    op_on: &framepipe_proto::ops::ModelOn,
    f: impl FnOnce(&TransNetV2) -> Result<T, TorchError>,
) -> Result<T, TorchError> {
    let (folder, device) = (op_on.model.as_path(), tch_device(op_on.device));
    MODELS.with(
        folder,
        device,
        || {
            let kind = kind_of(shots_precision(device));
            Ok(TransNetV2::load(folder, device, kind)?)
        },
        f,
    )
}

pub fn info(op: &ShotsInfo) -> Result<ShotsFacts, TorchError> {
    with_model(&op.on, |model| {
        Ok(ShotsFacts {
            window: WINDOW as u32,
            step: STEP as u32,
            context: CONTEXT as u32,
            // What the loaded model computes in, whatever the precision setting says now.
            precision: precision_of(model.kind()),
        })
    })
}

/// `frames` are `op.frames` 48x27 rgb24 frames; `out` gets the single-frame probabilities of
/// every window's predicted frames, then the many-hot ones.
pub fn predict(
    op: &ShotsPredict,
    frames: &[u8],
    out: &mut [f32],
) -> Result<ShotsPredicted, TorchError> {
    let n = op.frames as usize;
    if frames.len() != n * SHOT_FRAME_BYTES {
        return Err(TorchError::bad_input(format!(
            "shots_predict: {} bytes for {n} frames of 48x27 rgb24 ({} expected)",
            frames.len(),
            n * SHOT_FRAME_BYTES
        )));
    }
    with_model(&op.on, |model| {
        let host = Tensor::f_from_slice(frames)
            .and_then(|t| t.f_view([n as i64, 27, 48, 3]))
            .map_err(torch_error)?;
        let on_device = host.f_to_device(model.device()).map_err(torch_error)?;
        let p = model.predict(&on_device)?;
        let both = Tensor::f_cat(
            &[
                p.single.f_reshape([-1]).map_err(torch_error)?,
                p.many_hot.f_reshape([-1]).map_err(torch_error)?,
            ],
            0,
        )
        .map_err(torch_error)?;
        copy_into(&to_host_f32(&both)?, out)?;
        Ok(ShotsPredicted {
            windows: p.single.size()[0] as u64,
        })
    })
}
