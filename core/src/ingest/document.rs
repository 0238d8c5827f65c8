//! The document record every stage after ingest reads and writes, one JSON object per line.

use serde::{Deserialize, Serialize};

/// A validated document: normalised fields plus any extra fields of the input line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Unique id (from the line, or `<source>:<line number>`).
    pub id: String,
    /// The text (non-empty).
    pub text: String,
    /// Domain (from the line, the path, or a configured default).
    pub domain: String,
    /// Where the line came from (file path or `s3://` URL).
    pub source: String,
    /// Extra fields of the input object, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}
