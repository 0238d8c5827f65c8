//! `merge`: diff vectors and DEM merging.
//!
//! - [`diff::compute_diff`]: `ΔW = scale · B @ A` per adapted matrix of a PEFT adapter (or
//!   `fine-tuned − base` for a full checkpoint), saved as `.npy` under `diffs/<domain>/` with an
//!   `index.json`, statistics in `diff_stats/<domain>_summary.json`.
//! - [`stream::merge_to_dir`]: `base + Σ wᵢ·diffᵢ` (or TIES / DARE, [`methods`]) streamed from
//!   memory-mapped inputs into a full HF checkpoint directory.
//! - [`memory::Merger`]: the base loaded once, merged in memory for many weight vectors
//!   ([`memory::MergedWeights`]), for sweeps and evaluation without disk writes.
//!
//! File formats: [`checkpoint`] (safetensors, HF layout: single or sharded, F32/F16/BF16/F64
//! read as f32, merged output F32), [`adapter`] (PEFT, through the one reader in
//! [`crate::model::AdapterConfig`]), [`npy`] (NumPy).
//! Formulas: `docs/merging.md`.

pub mod adapter;
pub mod buffer;
pub mod checkpoint;
pub mod diff;
mod error;
pub mod lowrank;
pub mod memory;
pub mod methods;
pub mod npy;
pub mod stats;
pub mod stream;
mod to_model;
pub mod validate;

#[cfg(test)]
mod adapter_tests;

pub use diff::{DiffConfig, DiffOutput, DiffSet, DiffSummary, compute_diff};
pub use error::MergeError;
pub use memory::{MergedWeights, Merger, WeightTensor};
pub use methods::{MergeConfig, MergeMethod};
pub use stream::{MergeReport, merge_to_dir};
