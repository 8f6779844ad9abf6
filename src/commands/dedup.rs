//! `dedup`: near-duplicate groups across finished outputs, with a one-line summary on stderr
//! (none with `-q`).
use std::process::ExitCode;

use super::error::CommandResult;
use super::Global;
use crate::cli::DedupArgs;
use crate::dedup::{self, DedupRequest, DUPLICATES_FILE};
use crate::logging::Severity;

pub fn dedup(args: &DedupArgs, global: Global) -> CommandResult {
    let summary = dedup::dedup(&DedupRequest {
        dirs: &args.dirs,
        out: &args.output,
        index: args.index.as_deref(),
        by: args.by,
        threshold: args.threshold,
        embedding_threshold: args.embedding_threshold,
    })?;
    if !global.quiet {
        crate::logging::say(
            Severity::Info,
            None,
            &format!(
                "{} clips of {} outputs added to the index {} ({} already there, {} in all); {} candidate pairs compared, {} matched; {} groups, {} duplicates to leave out, in {} ({:.2} s){}",
                summary.added,
                summary.outputs,
                summary.index.display(),
                summary.already_indexed,
                summary.indexed,
                summary.candidates,
                summary.matched,
                summary.groups,
                summary.duplicates,
                args.output.join(DUPLICATES_FILE).display(),
                summary.seconds,
                super::skipped_note(summary.skipped.len())
            ),
            &[],
        );
    }
    Ok(ExitCode::SUCCESS)
}
