//! Errors of the `merge` module.

/// What can go wrong in `merge`.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid merge configuration: {0}")]
    Config(String),
}
