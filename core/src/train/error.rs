//! Errors of the `train` module.

/// What can go wrong in `train`.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid train configuration: {0}")]
    Config(String),
}
