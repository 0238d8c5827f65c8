//! Errors of the `source` module.

/// What can go wrong in `source`.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid source configuration: {0}")]
    Config(String),
}
