//! `probe` (a file's stream facts) and `check` (CI rules over media files).
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::error::{CommandResult, EXIT_INPUT_FAILED};
use crate::cli::CheckFormat;
use crate::error::Error;
use crate::logging::Severity;

pub fn probe(input: &Path) -> CommandResult {
    let info = crate::media::probe::probe(input)?;
    super::print_json(&info);
    Ok(ExitCode::SUCCESS)
}

pub fn check(
    rules_path: &Path,
    junit: Option<&Path>,
    format: CheckFormat,
    jobs: Option<usize>,
    inputs: &[PathBuf],
) -> CommandResult {
    use crate::check;
    let rules = check::rules::RulesFile::load(rules_path).map_err(Error::setup)?;
    let files = check::expand_inputs(inputs);
    let jobs = jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let (results, unmatched) = check::check_all(&rules, &files, jobs);
    for path in &unmatched {
        crate::logging::say(
            Severity::Warning,
            Some(&path.display().to_string()),
            &format!("warning: {}: no rule set applies", path.display()),
            &[],
        );
    }
    let stdout = match format {
        CheckFormat::Text => check::output::text(&results),
        CheckFormat::Json => check::output::json(&results),
        CheckFormat::Github => check::output::github(&results),
    };
    print!("{stdout}");
    if let Some(path) = junit {
        std::fs::write(path, check::output::junit(&results))
            .map_err(|e| Error::io(path, "writing the JUnit report", e).setup())?;
    }
    Ok(if results.iter().any(|r| r.failures().next().is_some()) {
        ExitCode::from(EXIT_INPUT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
