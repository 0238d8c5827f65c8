//! Errors of the `columnar` module.

/// What can go wrong in `columnar`.
#[derive(Debug, thiserror::Error)]
pub enum ColumnarError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid columnar configuration: {0}")]
    Config(String),
}
