//! Errors of the `ingest` module.

/// What can go wrong in `ingest`.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid ingest configuration: {0}")]
    Config(String),
}
