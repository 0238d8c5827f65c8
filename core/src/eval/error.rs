//! Errors of the `eval` module.

/// What can go wrong in `eval`.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid eval configuration: {0}")]
    Config(String),
    /// Hypotheses and references (or another pair of inputs) differ in length.
    #[error("{what}: {left} has {left_len} segments but {right} has {right_len}")]
    LengthMismatch {
        /// The operation.
        what: &'static str,
        /// Name of the first input.
        left: String,
        /// Its length.
        left_len: usize,
        /// Name of the second input.
        right: String,
        /// Its length.
        right_len: usize,
    },
    /// An unknown name for a tokenizer, smoothing method, ROUGE type, …
    #[error("unknown {what} `{got}` (expected one of: {expected})")]
    Unknown {
        /// What kind of name.
        what: &'static str,
        /// The name given.
        got: String,
        /// The accepted names.
        expected: &'static str,
    },
    /// A perplexity input is not a finite, non-negative NLL with a sensible token count.
    #[error("perplexity: domain `{domain}`: {reason}")]
    BadNll {
        /// The domain the value was added to.
        domain: String,
        /// Why it was rejected.
        reason: String,
    },
}
