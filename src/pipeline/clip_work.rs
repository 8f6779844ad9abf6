//! What the encode stage does with each clip as it closes, besides cutting its file: read its
//! burned-in text (`clips.text`) and ask for its caption (`caption`), both from the frames it
//! was encoded from ([`ClipFrameTap`]) and both in their own worker pools.
use std::sync::Arc;

use super::clip_caption::{CaptionTarget, ClipCaptioning};
use super::clip_frames::ClipFrameTap;
use super::clip_text::ClipTextReading;
use super::normalize::NormFrame;
use crate::caption::pool::Outcomes;
use crate::config::TextScoring;
use crate::error::Result;
use crate::media::clip_mux::FrameRole;
use crate::output::clip_record::TextScore;

/// The clip work of one output, when there is any.
pub struct ClipWork {
    tap: ClipFrameTap,
    text: Option<ClipTextReading>,
    captions: Option<ClipCaptioning>,
}

/// What the clip work found, each by the clip's first output frame.
#[derive(Default)]
pub struct ClipFindings {
    pub texts: Vec<(u64, TextScore)>,
    pub captions: Outcomes,
}

impl ClipWork {
    /// `lengths`: the clip lengths (frames) the cutter writes; `None` when there is nothing
    /// to do per clip.
    pub fn start(
        output: &std::path::Path,
        lengths: (u64, u64),
        text: Option<&TextScoring>,
        captions: Option<&CaptionTarget>,
    ) -> Option<ClipWork> {
        if text.is_none() && captions.is_none() {
            return None;
        }
        Some(ClipWork {
            tap: ClipFrameTap::new(lengths),
            text: text.map(|settings| ClipTextReading::start(output, settings)),
            captions: captions.map(|target| ClipCaptioning::start(output, target)),
        })
    }

    /// The next encoded frame, coded as `role`; `cancelled`: whether the run is being
    /// cancelled (a wait for a caption worker then ends).
    pub fn frame(
        &mut self,
        norm: &Arc<NormFrame>,
        role: FrameRole,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        let Some(clip) = self.tap.frame(norm, role) else {
            return Ok(());
        };
        if let Some(text) = &mut self.text {
            text.clip(&clip);
        }
        if let Some(captions) = &mut self.captions {
            captions.clip(&clip, cancelled)?;
        }
        Ok(())
    }

    /// Waits for both pools.
    pub fn finish(self) -> Result<ClipFindings> {
        let captions = self.captions.map(ClipCaptioning::finish).transpose()?;
        let texts = self.text.map(ClipTextReading::finish).transpose()?;
        Ok(ClipFindings {
            texts: texts.unwrap_or_default(),
            captions: captions.unwrap_or_default(),
        })
    }
}
