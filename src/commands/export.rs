//! `export`: finished outputs' clips into WebDataset or Parquet shards, with a one-line summary
//! on stderr (none with `-q`).
use std::process::ExitCode;

use super::error::CommandResult;
use super::Global;
use crate::cli::ExportArgs;
use crate::export::{self, ExportRequest};
use crate::logging::Severity;

pub fn export(args: &ExportArgs, global: Global) -> CommandResult {
    let summary = export::export(&ExportRequest {
        dirs: &args.dirs,
        out: &args.output,
        format: args.format,
        clips_per_shard: args.clips_per_shard,
        include_dropped: args.include_dropped,
        dedup: args.dedup.as_deref(),
    })?;
    if !global.quiet {
        let mb = summary.bytes as f64 / 1e6;
        crate::logging::say(
            Severity::Info,
            None,
            &format!(
                "exported {} clips of {} outputs into {} {} in {} ({mb:.1} MB, {:.2} s, {:.1} MB/s){}",
                summary.clips,
                summary.outputs,
                summary.shards,
                if summary.shards == 1 { "shard" } else { "shards" },
                args.output.display(),
                summary.seconds,
                mb / summary.seconds.max(1e-9),
                super::skipped_note(summary.skipped.len())
            ),
            &[],
        );
    }
    Ok(ExitCode::SUCCESS)
}
