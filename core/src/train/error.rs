//! Errors of the `train` module.

/// What can go wrong in `train`.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid train configuration: {0}")]
    Config(String),
    /// A domain has too little data for one batch plus a held-out window.
    #[error(
        "domain `{domain}`: {tokens} tokens make {windows} windows of seq_len+1 = {window} tokens, \
         but one batch needs {need} training windows plus {heldout} held-out (lower batch or seq_len, or add data)"
    )]
    TooFewTokens {
        /// The domain (or corpus) name.
        domain: String,
        /// Tokens available.
        tokens: usize,
        /// Windows they make.
        windows: usize,
        /// Window length.
        window: usize,
        /// Training windows one batch needs.
        need: usize,
        /// Held-out windows reserved.
        heldout: usize,
    },
    /// The loss became NaN or infinite; training stopped.
    #[error(
        "{what}: loss is {loss} at step {step} (micro-batch {micro}); stopped. Lower lr, check the data and the base weights"
    )]
    NonFiniteLoss {
        /// Which run.
        what: String,
        /// Optimizer step (1-based).
        step: usize,
        /// Micro-batch within the step.
        micro: usize,
        /// The value.
        loss: f64,
    },
    /// Token input could not be read.
    #[error("token input {path}: {msg}")]
    Input {
        /// The file.
        path: String,
        /// What is wrong, with the line when known.
        msg: String,
    },
    /// A resume checkpoint does not fit the current settings.
    #[error("resume checkpoint {path}: {msg}")]
    Resume {
        /// The checkpoint directory.
        path: String,
        /// What does not fit.
        msg: String,
    },
    /// burn could not save or load a training record.
    #[error("training record {path}: {msg}")]
    Record {
        /// The file.
        path: String,
        /// The burn error.
        msg: String,
    },
}
