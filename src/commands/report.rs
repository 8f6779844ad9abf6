//! `report`: the HTML page of finished outputs (see `report_page`), also written by
//! `run --report` and `batch --report` into `OUTDIR/report/`.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::error::CommandResult;
use super::Global;
use crate::logging::Severity;
use crate::report_page::Written;

/// The page's folder inside a `run`/`batch` output folder.
pub const FOLDER: &str = "report";

pub fn report(dirs: &[PathBuf], out: &Path, global: Global) -> CommandResult {
    let written = crate::report_page::write(dirs, out)?;
    announce(&written, global);
    super::print_json(&written);
    Ok(ExitCode::SUCCESS)
}

/// Names the page on stderr (stdout keeps the command's own JSON lines).
pub fn announce(written: &Written, global: Global) {
    if global.quiet {
        return;
    }
    crate::logging::say(
        Severity::Info,
        None,
        &format!(
            "report: {} ({} outputs, {} scenes, {} thumbnails, {} skipped)",
            written.index.display(),
            written.outputs,
            written.scenes,
            written.thumbnails,
            written.skipped
        ),
        &[],
    );
}
