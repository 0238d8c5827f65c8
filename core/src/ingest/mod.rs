//! `ingest`: validated documents and datasets (directories of JSONL shards). JSONL lines and
//! Parquet rows stream in from [`crate::source`], are validated in parallel, and end up either
//! as documents or, with a reason from a fixed set, in the rejects; nothing read is lost.

mod config;
mod dataset;
mod document;
mod error;
mod json_out;
mod parts;
mod pipeline;
mod reason;
mod report;
mod rows;
mod validate;

pub use config::IngestConfig;
pub use dataset::{Dataset, DatasetStats, DatasetWriter, STATS_FILE};
pub use document::Document;
pub use error::IngestError;
pub use parts::Part;
pub use pipeline::{INGEST_CODE_VERSION, IngestOutcome, Plan, REJECTS_FILE, ingest, ingest_with};
pub use reason::RejectReason;
pub use report::{IngestOutputs, IngestReport, SourceReport};
pub use validate::{
    FieldPath, FieldSpec, LineFields, LineOrigin, ORIG_SOURCE_KEY, Rejection, extra_key,
    parse_line, validate_json, write_document, write_reject,
};
