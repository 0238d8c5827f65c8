//! Errors of the `text` module.

/// What can go wrong in `text`.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid text configuration: {0}")]
    Config(String),
}
