//! `dedup`: near-duplicate removal with hybrid Korean shingles, MinHash and LSH.
//!
//! [`shingle`] → [`scheme`] (how shingle kinds combine) → [`minhash`] or [`oph`] signatures
//! ([`signatures`]
//! persists them) → [`lsh`] index (memory or Redis) with [`params`] choosing bands × rows →
//! [`verify`] candidate pairs → [`cluster`] (union-find) → [`select`] representatives →
//! [`report`] outputs. [`pipeline`] runs it over a dataset; [`eval`] measures it on planted
//! near-duplicates (`yunmin-bench` times it).

pub mod cluster;
mod error;
pub mod eval;
pub mod lsh;
pub mod minhash;
pub mod oph;
pub mod params;
pub mod parts;
pub mod pipeline;
pub mod report;
pub mod scheme;
pub mod select;
pub mod shingle;
pub mod signatures;
pub mod staged;
pub mod verify;

pub use error::DedupError;
pub use pipeline::{DedupConfig, DedupSummary, Phase, Shard, dedup_documents, run};
