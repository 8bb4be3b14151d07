//! The trainer's error type: one line of context per failure, never a panic.
use std::fmt;

/// Everything that can go wrong while preparing data, training or checkpointing.
#[derive(Debug)]
#[non_exhaustive]
pub enum TrainError {
    /// A bad option or option combination (absurd dims, ctx 0, ...).
    Config(String),
    /// The corpus is missing, unreadable or empty after cleanup.
    Data(String),
    /// A file could not be read or written.
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A checkpoint, tokenizer or fixture file is malformed.
    Format(String),
}

impl TrainError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Config(m) => write!(f, "invalid option: {m}"),
            TrainError::Data(m) => write!(f, "data: {m}"),
            TrainError::Io { path, source } => write!(f, "{path}: {source}"),
            TrainError::Format(m) => write!(f, "format: {m}"),
        }
    }
}

impl std::error::Error for TrainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TrainError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, TrainError>;
