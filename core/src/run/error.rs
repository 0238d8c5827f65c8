//! Errors of the `run` module.

use std::path::PathBuf;

/// What can go wrong while managing a run directory.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run root could not be created or used.
    #[error("run directory {path}: {reason}")]
    RunDir {
        /// The run root.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },
    /// A stage cache record is corrupt; it is ignored and the stage redone.
    #[error("stage cache record {path} is unreadable: {reason}")]
    CacheRecord {
        /// The record file.
        path: PathBuf,
        /// Parse error text.
        reason: String,
    },
}
