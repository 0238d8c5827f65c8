//! Errors of the `eval` module.

/// What can go wrong in `eval`.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid eval configuration: {0}")]
    Config(String),
}
