//! The model commands that are one libtorch request each: `devices`, `clip`, `vae` (images, or a
//! video through [`crate::vae_video`]) and `make-random-model`.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use framepipe_proto::ops::{ClipRun, DevicesReply, LatentDtype, ModelOn, VaeEncodeImages};
use framepipe_proto::CallOp;

use super::error::CommandResult;
use super::Global;
use crate::cli::VaeAction;
use crate::error::Error;
use crate::session::model_device;
use crate::torch::Torch;

/// What libtorch sees: loads the libtorch library, so it also proves that it loads.
pub fn devices() -> CommandResult {
    /// What `framepipe devices` prints: what libtorch sees and which library answered.
    #[derive(serde::Serialize)]
    struct Devices<'a> {
        #[serde(flatten)]
        seen: DevicesReply,
        library: &'a Path,
    }
    let libtorch = |m: String| Error::Torch(format!("libtorch: {m}"));
    let torch = Torch::get().map_err(libtorch)?;
    let seen = torch
        .call(&framepipe_proto::ops::Devices {})
        .map_err(|e| libtorch(e.message))?;
    super::print_json(&Devices {
        seen,
        library: torch.path(),
    });
    Ok(ExitCode::SUCCESS)
}

/// Sends a request to the libtorch side and prints its JSON reply.
pub fn call_and_print<O: CallOp>(request: &O) -> CommandResult {
    let reply = Torch::get()
        .and_then(|t| Ok(t.call(request)?))
        .map_err(Error::Torch)?;
    super::print_json(&reply);
    Ok(ExitCode::SUCCESS)
}

/// `framepipe vae`: encode or decode through the libtorch side.
pub fn vae(model: &Path, device_text: &str, action: VaeAction, global: Global) -> CommandResult {
    let device = model_device(device_text, global.precision)?;
    let is_image = |p: &PathBuf| {
        p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            matches!(
                e.to_ascii_lowercase().as_str(),
                "png" | "jpg" | "jpeg" | "bmp" | "webp"
            )
        })
    };
    if let VaeAction::Encode {
        images,
        output,
        dtype,
        check,
    } = &action
    {
        if images.iter().any(|p| !is_image(p)) {
            if images.len() != 1 || *check {
                return Err(Error::Usage(
                    "give one video (without --check), or images only".into(),
                )
                .into());
            }
            let latents = crate::vae_video::encode_video(
                &images[0],
                model,
                device.name,
                output,
                *dtype == LatentDtype::F16,
            )?;
            super::print_json(&latents);
            return Ok(ExitCode::SUCCESS);
        }
    }
    let on = ModelOn {
        model: model.to_path_buf(),
        device: device.name,
    };
    match action {
        VaeAction::Encode {
            images,
            output,
            dtype,
            check,
        } => call_and_print(&VaeEncodeImages {
            on,
            images,
            out: output,
            dtype,
            check,
        }),
        VaeAction::Decode {
            latents,
            output,
            fps,
            crf,
            preset,
        } => {
            let preset = serde_json::from_value(serde_json::Value::String(preset.clone()))
                .map_err(|_| Error::Usage(format!("--preset {preset:?}: not an x264 preset")))?;
            let encode = crate::config::EncodeConfig {
                crf,
                preset,
                ..Default::default()
            };
            let decoded = crate::vae_decode::decode(&crate::vae_decode::DecodeRequest {
                latents: &latents,
                model,
                device: device.name,
                out: &output,
                fps,
                encode,
            })?;
            super::print_json(&decoded);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `framepipe clip`: the libtorch side does the work; this resolves the device and prints.
pub fn clip(
    model: &Path,
    images: &[PathBuf],
    texts: &[String],
    device_text: &str,
    global: Global,
) -> CommandResult {
    if images.is_empty() && texts.is_empty() {
        return Err(Error::Usage("give at least one --image or --text".into()).into());
    }
    let device = model_device(device_text, global.precision)?;
    call_and_print(&ClipRun {
        on: ModelOn {
            model: model.to_path_buf(),
            device: device.name,
        },
        images: images.to_vec(),
        texts: texts.to_vec(),
    })
}
