//! Errors of the `dedup` module.

/// What can go wrong in `dedup`.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid dedup configuration: {0}")]
    Config(String),
}
