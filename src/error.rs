//! The library's error type. Every variant names what it is about (the input file, the config
//! key, the stage), so a message read in a CI log is enough to act on. It knows nothing of the
//! subcommands: `commands::error` maps it (and the commands' own errors) to exit codes.
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

    /// The libtorch library failed a request that is the whole command (`framepipe clip`,
    /// `devices`, ...).
    #[error("{0}")]
    Torch(String),
}

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

    /// True for the consequence of another failure, false for a root cause.
    pub fn is_cancellation(&self) -> bool {
        matches!(self, Error::Cancelled { .. })
    }
}
