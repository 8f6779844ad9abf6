//! Every stage built one way: [`FromPlan::from_plan`] takes the plan, the opened source and the
//! shared cancel flag, and gives the stage when the plan has it (`None` when it does not). The
//! plan decides which stages exist; the wiring ([`super::run`]) makes channels only for those,
//! and each stage then runs on its channel ends (`run(inputs…, outputs…)`).
use super::decode::DecodeStage;
use super::encode::{ClipCutting, EncodeStage};
use super::normalize::NormalizeStage;
use super::plan::{self, Plan};
use super::scenes::SceneStage;
use super::stage::Cancel;
use super::tagging::TaggingStage;
use super::thumbs::ThumbStage;
use super::vae::VaeStage;
use crate::error::Result;

/// A stage that exists when the plan has it.
pub trait FromPlan: Sized {
    fn from_plan(plan: &Plan, source: &DecodeStage, cancel: &Cancel) -> Result<Option<Self>>;
}

impl FromPlan for SceneStage {
    fn from_plan(plan: &Plan, _: &DecodeStage, cancel: &Cancel) -> Result<Option<Self>> {
        let Some(cfg) = plan.scenes else {
            return Ok(None);
        };
        // Clips' motion scores need every decoded frame, which only the scenes stage sees.
        let motion = plan.clips.is_some();
        SceneStage::new(cfg, plan.info, plan.device, motion, cancel.clone()).map(Some)
    }
}

impl FromPlan for NormalizeStage {
    /// Makes its canvases on the model device when the plan keeps frames there.
    fn from_plan(plan: &Plan, _: &DecodeStage, cancel: &Cancel) -> Result<Option<Self>> {
        if !plan.wants_canvas() {
            return Ok(None);
        }
        let canvas_maker = match plan.frames {
            plan::Frames::Device(torch) => Some((torch, plan.device)),
            plan::Frames::Host => None,
        };
        Ok(Some(NormalizeStage::new(
            &plan.config.normalize,
            plan.info,
            canvas_maker,
            cancel.clone(),
        )))
    }
}

impl FromPlan for EncodeStage {
    /// Cuts clip files as it goes when the plan makes them.
    fn from_plan(plan: &Plan, source: &DecodeStage, cancel: &Cancel) -> Result<Option<Self>> {
        let Some(out) = &plan.encode else {
            return Ok(None);
        };
        let video = source.video_settings(plan.config);
        let max_waiting = max_waiting_frames(video.width, video.height);
        let clips = plan.clips.as_ref().and_then(|c| {
            c.dir.clone().map(|dir| ClipCutting {
                dir,
                rules: c.rules,
                max_waiting,
                text: plan.config.clips.as_ref().and_then(|c| c.text_scoring()),
                captions: c.captions.clone(),
            })
        });
        Ok(Some(EncodeStage {
            path: out.path.clone(),
            config: out.config.clone(),
            video,
            audio: source.audio_source().filter(|_| out.audio),
            audio_offset: source.audio_offset(),
            fps: plan.config.normalize.fps,
            clips,
            cancel: cancel.clone(),
        }))
    }
}

impl FromPlan for TaggingStage {
    fn from_plan(plan: &Plan, _: &DecodeStage, cancel: &Cancel) -> Result<Option<Self>> {
        Ok(plan
            .tagging
            .as_ref()
            .map(|t| t.stage(plan.device, &plan.info.path, cancel.clone())))
    }
}

impl FromPlan for VaeStage {
    fn from_plan(plan: &Plan, _: &DecodeStage, cancel: &Cancel) -> Result<Option<Self>> {
        Ok(plan
            .vae
            .as_ref()
            .map(|v| v.stage(plan.device, &plan.info.path, cancel.clone())))
    }
}

impl FromPlan for ThumbStage {
    fn from_plan(plan: &Plan, source: &DecodeStage, cancel: &Cancel) -> Result<Option<Self>> {
        let Some(out) = &plan.thumbs else {
            return Ok(None);
        };
        let video = source.video_settings(plan.config);
        Ok(Some(ThumbStage {
            out: out.clone(),
            fps: plan.config.normalize.fps,
            nominal_fps: plan::output_fps(plan.config, plan.info),
            max_waiting: max_waiting_frames(video.width, video.height),
            cancel: cancel.clone(),
        }))
    }
}

/// How many normalized frames the encoder may hold while clip boundaries are being decided: a
/// budget of 512 MiB of yuv420p canvases (about 380 at 720p, 170 at 1080p), enough for
/// TransNetV2's delay (up to 125 frames with two windows per call) plus the trim.
fn max_waiting_frames(width: u32, height: u32) -> usize {
    let bytes = (width as usize * height as usize * 3 / 2).max(1);
    ((512usize << 20) / bytes).clamp(64, 1024)
}
