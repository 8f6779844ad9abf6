//! What ends a command, and the process exit code each ending gives. The library's [`Error`]
//! knows nothing of the subcommands; the commands that have their own error types (`search`,
//! `export`) meet it here, the only place exit codes are decided.
use crate::error::Error;
use crate::export::ExportError;
use crate::search::SearchError;

/// The process exit codes: 0 all inputs done, 1 some input failed, 2 usage or configuration
/// error, 130 interrupted.
pub const EXIT_INPUT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why a command ended before its end.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A library error (pipeline, batch, check, report, models).
    #[error(transparent)]
    Library(#[from] Error),

    /// The search command's errors.
    #[error(transparent)]
    Search(#[from] SearchError),

    /// The export command's errors.
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// A command's result: the exit code of a command that ran to its end, or why it did not.
pub type CommandResult<T = std::process::ExitCode> = std::result::Result<T, CommandError>;

impl CommandError {
    /// The process exit code this error ends a command with: 2 for what the user must fix in
    /// the command or its configuration, 1 for inputs (and models) that failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Library(e) => library_exit_code(e),
            CommandError::Search(SearchError::Usage(_)) => EXIT_USAGE,
            CommandError::Search(SearchError::Failed(_)) => EXIT_INPUT_FAILED,
            CommandError::Export(ExportError::Usage(_) | ExportError::Input { .. }) => EXIT_USAGE,
            CommandError::Export(ExportError::Write { .. }) => EXIT_INPUT_FAILED,
        }
    }
}

fn library_exit_code(error: &Error) -> u8 {
    match error {
        Error::Config { .. } | Error::Device { .. } | Error::Usage(_) | Error::Setup(_) => {
            EXIT_USAGE
        }
        Error::Input { .. }
        | Error::Ffmpeg { .. }
        | Error::Io { .. }
        | Error::StagePanicked { .. }
        | Error::Cancelled { .. }
        | Error::Torch(_) => EXIT_INPUT_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_configuration_exit_2_inputs_exit_1() {
        let usage = CommandError::from(Error::Usage("x".into()));
        assert_eq!(usage.exit_code(), EXIT_USAGE);
        let setup = CommandError::from(Error::input("a.mp4", "gone").setup());
        assert_eq!(setup.exit_code(), EXIT_USAGE);
        let input = CommandError::from(Error::input("a.mp4", "not a video"));
        assert_eq!(input.exit_code(), EXIT_INPUT_FAILED);
        let search = CommandError::from(SearchError::Usage("no query".into()));
        assert_eq!(search.exit_code(), EXIT_USAGE);
        let failed = CommandError::from(SearchError::Failed("model".into()));
        assert_eq!(failed.exit_code(), EXIT_INPUT_FAILED);
    }
}
