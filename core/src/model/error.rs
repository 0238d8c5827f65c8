//! Errors of the `model` module.

/// What can go wrong in `model`.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid model configuration: {0}")]
    Config(String),
}
