//! The library's error type. Every variant names what it is about (the input file, the config
//! key, the stage), so a message read in a CI log is enough to act on.
use std::path::PathBuf;

/// Result with our [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pipeline config that cannot be used; nothing was decoded.
    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },

    /// An input that cannot be processed (missing, not a video, unsupported, absurd size, ...).
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },

    /// An FFmpeg call that failed while working on `path`.
    #[error("{path}: {what}: {source}")]
    Ffmpeg {
        path: PathBuf,
        what: String,
        #[source]
        source: ffmpeg_next::Error,
    },

    /// Reading or writing a file or folder.
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// The requested compute device is not usable here.
    #[error("device {requested}: {message}")]
    Device { requested: String, message: String },

    /// A pipeline stage panicked; reported instead of hanging the pipeline.
    #[error("stage {stage} panicked: {message}")]
    StagePanicked {
        stage: &'static str,
        message: String,
    },

    /// A stage stopped because another one failed first (never the error that gets reported
    /// when a real cause exists).
    #[error("stage {stage} cancelled")]
    Cancelled { stage: &'static str },

    /// Flags or arguments that cannot work together; nothing was read.
    #[error("{0}")]
    Usage(String),

    /// A failure while setting a command up, before any input was read (the output folder, a
    /// manifest, a report file): reported as itself, with the exit code of a usage error.
    #[error(transparent)]
    Setup(Box<Error>),

    /// The search command's errors, which carry their own exit code.
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),

    /// The export command's errors, which carry their own exit code.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),

    /// The libtorch library failed a request that is the whole command (`framepipe clip`,
    /// `devices`, ...).
    #[error("{0}")]
    Torch(String),
}

/// The process exit codes: 0 all inputs done, 1 some input failed, 2 usage or configuration
/// error, 130 interrupted.
pub const EXIT_INPUT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

impl Error {
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            what: what.into(),
            source,
        }
    }

    pub fn ffmpeg(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        source: ffmpeg_next::Error,
    ) -> Self {
        Error::Ffmpeg {
            path: path.into(),
            what: what.into(),
            source,
        }
    }

    /// The same error, as one met before any input was read (exit code 2).
    pub fn setup(self) -> Error {
        match self {
            Error::Setup(_) => self,
            other => Error::Setup(Box::new(other)),
        }
    }

    /// The process exit code this error ends a command with: 2 for what the user must fix in
    /// the command or its configuration, 1 for inputs (and models) that failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. } | Error::Device { .. } | Error::Usage(_) | Error::Setup(_) => {
                EXIT_USAGE
            }
            Error::Search(crate::search::SearchError::Usage(_)) => EXIT_USAGE,
            Error::Export(e) => e.exit_code(),
            Error::Search(crate::search::SearchError::Failed(_))
            | Error::Input { .. }
            | Error::Ffmpeg { .. }
            | Error::Io { .. }
            | Error::StagePanicked { .. }
            | Error::Cancelled { .. }
            | Error::Torch(_) => EXIT_INPUT_FAILED,
        }
    }

    /// True for the consequence of another failure, false for a root cause.
    pub fn is_cancellation(&self) -> bool {
        matches!(self, Error::Cancelled { .. })
    }
}
