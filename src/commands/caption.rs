//! `caption`: captions for finished outputs' clips, with a one-line summary on stderr (none
//! with `-q`).
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use super::error::CommandResult;
use super::Global;
use crate::caption::Captioner;
use crate::caption_outputs::caption_outputs;
use crate::config::PipelineConfig;
use crate::error::Error;
use crate::logging::Severity;

pub fn caption(dirs: &[PathBuf], pipeline: &Path, refresh: bool, global: Global) -> CommandResult {
    let config = PipelineConfig::load(pipeline).map_err(Error::setup)?;
    let Some(section) = &config.caption else {
        return Err(Error::config(
            pipeline,
            "has no caption section: nothing says how to caption",
        )
        .into());
    };
    let captioner = Captioner::connect(section)
        .map_err(|m| Error::config(pipeline, format!("caption: {m}")))?;
    let (outputs, skipped) = crate::export::collect(dirs)?;
    let summary = caption_outputs(&Arc::new(captioner), outputs, skipped, refresh)?;
    if !global.quiet {
        let c = &summary.counts;
        crate::logging::say(
            if c.failed > 0 { Severity::Warning } else { Severity::Info },
            None,
            &format!(
                "{} clips of {} outputs captioned ({} from captions.jsonl, {} requests), {} failed, {} already captioned with these settings, in {:.2} s{}",
                c.captioned,
                summary.outputs,
                c.from_cache,
                c.requests,
                c.failed,
                summary.current,
                summary.seconds,
                super::skipped_note(summary.skipped.len())
            ),
            &[],
        );
    }
    Ok(ExitCode::SUCCESS)
}
