//! Why an export or a dedup could not run or finish: both read finished outputs and fail the
//! same ways (arguments, an input, a write); `commands::error` turns each kind into its exit code.
use std::path::PathBuf;

/// Why an export could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Arguments that cannot work (exit 2); nothing was written.
    #[error("{0}")]
    Usage(String),
    /// An input folder or file that cannot be exported (exit 2); nothing was written.
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    /// Writing the shards failed (exit 1); the temporaries were removed.
    #[error("{path}: {what}: {source}")]
    Write {
        path: PathBuf,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ExportError {
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ExportError::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn write(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ExportError::Write {
            path: path.into(),
            what: what.into(),
            source: source.into(),
        }
    }
}
