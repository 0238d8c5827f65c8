//! Errors of the `text` module.

use std::path::PathBuf;

/// What can go wrong in `text`.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid text configuration: {0}")]
    Config(String),
    /// Training a tokenizer failed.
    #[error("training the tokenizer: {0}")]
    Train(String),
    /// A `tokenizer.json` could not be read or parsed.
    #[error("loading tokenizer {path}: {msg}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What the tokenizers crate reported.
        msg: String,
    },
    /// Serialising the tokenizer failed.
    #[error("saving tokenizer {path}: {msg}")]
    Save {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// Encoding or decoding failed.
    #[error("tokenizing: {0}")]
    Encode(String),
}
