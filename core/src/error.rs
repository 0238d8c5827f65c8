//! The crate-wide error type: one variant per module, each wrapping that module's typed enum.

use std::path::PathBuf;

/// Result alias used across `yunmin-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error a core primitive can return. Module errors keep their own enums so callers can
/// match on them; the variants here add the cross-cutting cases.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation failed on `path`.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("read", "write", "rename", …).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// JSON (de)serialisation of a project file failed.
    #[error("JSON in {path}: {source}")]
    Json {
        /// The file being read or written.
        path: PathBuf,
        /// The serde_json error.
        #[source]
        source: serde_json::Error,
    },
    /// An option or argument is invalid; the message names it and what is allowed.
    #[error("{0}")]
    Invalid(String),
    /// The user interrupted the run (Ctrl-C); work stopped at a safe point.
    #[error("cancelled by user")]
    Cancelled,
    /// A result table operation failed.
    #[error("table: {0}")]
    Table(#[from] polars::error::PolarsError),
    /// Run directory, manifest or stage cache.
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    /// Data sources (local files, S3).
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// Ingest and validation.
    #[error(transparent)]
    Ingest(#[from] crate::ingest::IngestError),
    /// Near-duplicate removal.
    #[error(transparent)]
    Dedup(#[from] crate::dedup::DedupError),
    /// JSONL → Arrow → Parquet.
    #[error(transparent)]
    Columnar(#[from] crate::columnar::ColumnarError),
    /// Tokenizers.
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
    /// Model definition and checkpoints.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// Pretraining and LoRA.
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    /// Diff vectors and merging.
    #[error(transparent)]
    Merge(#[from] crate::merge::MergeError),
    /// Metrics and evaluation.
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    /// Plots, notebooks, reports.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// A primitive's options.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

impl Error {
    /// Wraps an I/O error with the operation and path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}
