//! Errors of the `merge` module.

use std::path::PathBuf;

/// What can go wrong while computing diff vectors or merging checkpoints. Every variant names
/// the file and, where one is involved, the tensor.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid merge configuration: {0}")]
    Config(String),
    /// A required file of a checkpoint, adapter or diff directory does not exist.
    #[error("missing {what}: {path} does not exist")]
    MissingFile {
        /// What the file is ("base checkpoint", "adapter weights", "diff index", …).
        what: &'static str,
        /// The path that was looked for.
        path: PathBuf,
    },
    /// A safetensors file could not be parsed.
    #[error("safetensors file {path}: {msg}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        msg: String,
    },
    /// A `.npy` file is malformed or not a little-endian float32 C-order array.
    #[error("npy file {path}: {msg}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A tensor has a dtype the merge arithmetic does not read (F32, F16, BF16, F64 are read
    /// as f32).
    #[error(
        "tensor `{tensor}` in {path} has dtype {dtype}; only F32, F16, BF16, F64 tensors can be \
         diffed or merged"
    )]
    Dtype {
        /// The tensor name.
        tensor: String,
        /// The file holding it.
        path: PathBuf,
        /// Its dtype.
        dtype: String,
    },
    /// A tensor a diff or adapter refers to is not in the checkpoint.
    #[error("tensor `{tensor}` is not in {path}{hint}")]
    MissingTensor {
        /// The tensor name.
        tensor: String,
        /// The checkpoint that lacks it.
        path: PathBuf,
        /// Extra context (which diff or adapter asked for it).
        hint: String,
    },
    /// Two tensors that must have the same shape do not.
    #[error("tensor `{tensor}`: shape mismatch, {what}: expected {expected:?}, got {got:?}")]
    Shape {
        /// The tensor name.
        tensor: String,
        /// Which two things were compared.
        what: String,
        /// The shape required.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },
    /// A diff was computed against a different base checkpoint than the one being merged into.
    #[error(
        "tensor `{tensor}`: diff `{domain}` was computed against a different base (base tensor \
         hash {expected} recorded in the diff, {got} in {base})"
    )]
    BaseMismatch {
        /// The tensor whose base content differs.
        tensor: String,
        /// The diff's domain.
        domain: String,
        /// The base checkpoint being merged into.
        base: PathBuf,
        /// Hash recorded when the diff was computed.
        expected: String,
        /// Hash of the base tensor now.
        got: String,
    },
    /// A PEFT adapter is malformed or uses a feature this module does not handle.
    #[error("adapter {path}: {msg}")]
    Adapter {
        /// The adapter directory or file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The weight list does not have one weight per diff.
    #[error(
        "weights: got {got} weight(s) for {expected} diff(s); give exactly one weight per diff"
    )]
    WeightCount {
        /// Number of diffs.
        expected: usize,
        /// Number of weights given.
        got: usize,
    },
}
