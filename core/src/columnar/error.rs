//! Errors of the `columnar` module.

use std::path::PathBuf;

/// What can go wrong in `columnar`.
#[derive(Debug, thiserror::Error)]
pub enum ColumnarError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid columnar configuration: {0}")]
    Config(String),
    /// Arrow failed (decoding JSON, building arrays).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Reading or writing a Parquet file failed.
    #[error("parquet file {path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The parquet error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A Parquet file does not match its `schema.txt` or the conversion report.
    #[error("{path} fails validation:\n  {}", problems.join("\n  "))]
    Validation {
        /// The file that was checked.
        path: PathBuf,
        /// One line per mismatch.
        problems: Vec<String>,
    },
    /// A file the operation needs is missing.
    #[error("{what} {path} is missing")]
    Missing {
        /// What the file is ("schema file", "conversion report", …).
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
}

impl ColumnarError {
    /// Wraps a parquet error with the file it concerns.
    pub fn parquet(
        path: impl Into<PathBuf>,
        source: parquet::errors::ParquetError,
    ) -> crate::Error {
        ColumnarError::Parquet {
            path: path.into(),
            source,
        }
        .into()
    }
}
