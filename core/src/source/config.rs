//! Settings of the byte sources (S3 endpoint and credentials chain, concurrency, retries).

use serde::{Deserialize, Serialize};

/// How inputs are found and read. The CLI and the Rhai `ingest` function fill the same struct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// S3 endpoint for S3-compatible servers (e.g. `http://127.0.0.1:9000`); path-style
    /// addressing is used when set. Default: none (AWS, or `AWS_ENDPOINT_URL` from the environment).
    pub endpoint_url: Option<String>,
    /// AWS region. Default: none (the standard chain: `AWS_REGION`, profile; else `us-east-1`).
    pub region: Option<String>,
    /// Inputs read concurrently (objects in flight). Default 4.
    pub in_flight: usize,
    /// Ranged-GET resumes in a row without progress before an object fails. Default 5.
    pub retries: usize,
    /// Keys per `ListObjectsV2` page (1–1000). Default 1000.
    pub page_size: i32,
    /// Bytes per line chunk handed to the validators. Default 4 MiB.
    pub chunk_bytes: usize,
    /// Lines longer than this are kept only up to this many bytes (the rest is skipped and the
    /// line reported as truncated); bounds memory on inputs without newlines. Default 64 MiB.
    pub keep_line_bytes: usize,
    /// Connect timeout for S3 in seconds. Default 5.
    pub connect_timeout_s: u64,
    /// Rows per batch handed to the validators from a Parquet row group. Default 1024 (long
    /// documents make larger batches tens of megabytes each, for no gain in speed).
    pub batch_rows: usize,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            region: None,
            in_flight: 4,
            retries: 5,
            page_size: 1000,
            chunk_bytes: 4 << 20,
            keep_line_bytes: 64 << 20,
            connect_timeout_s: 5,
            batch_rows: 1024,
        }
    }
}

impl SourceConfig {
    /// Checks the ranges of every setting.
    pub fn validate(&self) -> Result<(), super::SourceError> {
        let bad = |m: String| Err(super::SourceError::Config(m));
        if self.in_flight == 0 {
            return bad("in_flight must be ≥ 1".into());
        }
        if !(1..=1000).contains(&self.page_size) {
            return bad(format!("page_size must be 1–1000, got {}", self.page_size));
        }
        if self.chunk_bytes < 1024 {
            return bad(format!(
                "chunk_bytes must be ≥ 1024, got {}",
                self.chunk_bytes
            ));
        }
        if self.batch_rows == 0 {
            return bad("batch_rows must be ≥ 1".into());
        }
        if let Some(e) = &self.endpoint_url
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return bad(format!(
                "endpoint_url must start with http:// or https://, got {e}"
            ));
        }
        Ok(())
    }
}
