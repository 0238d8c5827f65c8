//! Errors of the `model` module.

/// What can go wrong in `model`.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// A checkpoint lacks a tensor the configuration needs.
    #[error("checkpoint {path}: missing tensor `{name}`")]
    MissingTensor {
        /// The checkpoint file or directory.
        path: String,
        /// The Hugging Face tensor name.
        name: String,
    },
    /// A tensor's shape contradicts the configuration.
    #[error(
        "checkpoint {path}: tensor `{name}` has shape {got:?}, but config.json implies {want:?}"
    )]
    Shape {
        /// The checkpoint file or directory.
        path: String,
        /// The Hugging Face tensor name.
        name: String,
        /// The shape in the file.
        got: Vec<usize>,
        /// The shape the configuration implies.
        want: Vec<usize>,
    },
    /// A safetensors file could not be parsed or written.
    #[error("safetensors {path}: {msg}")]
    Safetensors {
        /// The file.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// A device name that this build cannot provide.
    #[error("device `{0}`: {1}")]
    Device(String, String),
    /// Bad input to generation or the forward pass (e.g. a token id outside the vocabulary).
    #[error("{0}")]
    Input(String),
}
