//! `ingest`: validated documents and datasets (directories of JSONL shards).

mod dataset;
mod document;
mod error;

pub use dataset::{Dataset, DatasetWriter};
pub use document::Document;
pub use error::IngestError;
