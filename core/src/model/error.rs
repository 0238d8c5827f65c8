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
    /// A setting of a PEFT `adapter_config.json` that is refused: a feature that changes the
    /// adapter's arithmetic and is not implemented, or an invalid value.
    #[error("adapter config {path}: `{field}` = {value}: {why}")]
    AdapterConfig {
        /// The `adapter_config.json` file.
        path: String,
        /// The field (`rank_pattern.<key>` for a pattern entry).
        field: String,
        /// Its value, as JSON.
        value: String,
        /// Why it is refused.
        why: String,
    },
    /// The tensors of a PEFT adapter do not form LoRA factors (names, pairs, ranks, targets).
    #[error("adapter {path}: {msg}")]
    Adapter {
        /// The adapter weights file.
        path: String,
        /// What is wrong, naming the tensor.
        msg: String,
    },
}
