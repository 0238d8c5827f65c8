//! `yunmin-core`: every native primitive of YunMin-EfficientData.
//!
//! The pipeline modules run in data-flow order — [`source`] → [`ingest`] → [`dedup`] →
//! [`columnar`] → [`text`] → [`model`] → [`train`] → [`merge`] → [`eval`] — and each depends only
//! on modules before it. [`run`] (run directories, manifests, stage cache, cancellation, progress)
//! and [`report`] (polars tables, plots, notebooks) are leaves any module may use.
//!
//! Nothing here knows about Rhai or command-line parsing: the `yunmin` host crate is glue over
//! these functions.

pub mod config;
pub mod error;

pub mod report;
pub mod run;

pub mod columnar;
pub mod dedup;
pub mod eval;
pub mod ingest;
pub mod merge;
pub mod model;
pub mod source;
pub mod text;
pub mod train;

pub use error::{Error, Result};
