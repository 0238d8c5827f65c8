//! Settings of an ingest run; the CLI and the Rhai `ingest` function fill the same struct.

use crate::source::SourceConfig;
use serde::{Deserialize, Serialize};

/// How lines are validated and where the outputs go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Dataset of valid documents (relative paths are inside the run root). Default `data/dedup_ready`.
    pub out: String,
    /// Directory of rejected lines. Default `data/rejected`.
    pub rejected: String,
    /// Preview file. Default `sample_preview.json`.
    pub preview: String,
    /// Report file. Default `ingest_report.json`.
    pub report: String,
    /// After writing, upload the outputs to this `s3://bucket/prefix/` (relative layout kept).
    /// Default: none.
    pub upload: Option<String>,
    /// Domain for lines without one when the file name gives none. Default `unknown`.
    pub default_domain: String,
    /// Take a missing `domain` from the input's file name stem (`news.jsonl.zst` → `news`).
    /// Default true.
    pub domain_from_path: bool,
    /// Lines longer than this many bytes are rejected as `too_large`. Default 8 MiB.
    pub max_line_bytes: usize,
    /// Documents per output shard. Default 100 000.
    pub shard_docs: usize,
    /// Documents in `sample_preview.json` (chosen with the run's seed). Default 5.
    pub preview_docs: usize,
    /// Chunks between reading and writing at once: queued for the validation threads, being
    /// validated, or waiting for their turn to be written (0: 4 × rayon threads). Default 0.
    pub batch_chunks: usize,
    /// Field holding the text: a key, or a dotted path into nested objects / struct columns
    /// (`content`, `metadata.body`). Default `text`.
    pub text_field: String,
    /// Field holding the id (string or number). Default `id`.
    pub id_field: String,
    /// Field holding the domain (string), e.g. `metadata.domain` for datatrove outputs.
    /// Default `domain`.
    pub domain_field: String,
    /// Keep the record's other fields (JSONL keys, Parquet columns) as extra fields of the
    /// document. When false, Parquet inputs read only the three mapped columns. Default true.
    pub keep_extras: bool,
    /// Byte sources: S3 endpoint, region, in-flight inputs, retries, chunk size.
    pub source: SourceConfig,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            out: "data/dedup_ready".into(),
            rejected: "data/rejected".into(),
            preview: "sample_preview.json".into(),
            report: "ingest_report.json".into(),
            upload: None,
            default_domain: "unknown".into(),
            domain_from_path: true,
            max_line_bytes: 8 << 20,
            shard_docs: 100_000,
            preview_docs: 5,
            batch_chunks: 0,
            text_field: "text".into(),
            id_field: "id".into(),
            domain_field: "domain".into(),
            keep_extras: true,
            source: SourceConfig::default(),
        }
    }
}

impl crate::config::Primitive for IngestConfig {
    const NAME: &'static str = "ingest";
    const CLI_OWN: &'static [&'static str] = &["out", "upload"];
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::{opt, opt_at};
        &[
            opt(
                "out",
                "dataset of valid documents, relative to the run root",
            ),
            opt("rejected", "directory of rejected lines and rows"),
            opt("preview", "preview file of sample documents"),
            opt("report", "report file (counts per source and per reason)"),
            opt(
                "upload",
                "s3://bucket/prefix/ to copy the outputs to after writing (none: keep them local)",
            ),
            opt(
                "default_domain",
                "domain of records without one when the file name gives none",
            ),
            opt(
                "domain_from_path",
                "take a missing domain from the input's file name stem (news.jsonl.zst → news)",
            ),
            opt(
                "max_line_bytes",
                "lines (and Parquet texts) longer than this many bytes are rejected as too_large",
            ),
            opt("shard_docs", "documents per output shard"),
            opt(
                "preview_docs",
                "documents in the preview (chosen with the run's seed)",
            ),
            opt(
                "batch_chunks",
                "chunks between reading and writing at once (0: 4 × threads)",
            ),
            opt(
                "text_field",
                "field holding the text: a key or a dotted path (content, metadata.body)",
            ),
            opt("id_field", "field holding the id (string or number)"),
            opt(
                "domain_field",
                "field holding the domain (metadata.domain for datatrove outputs)",
            ),
            opt(
                "keep_extras",
                "keep the records' other fields (false: Parquet reads only the mapped columns)",
            ),
            opt_at(
                "endpoint_url",
                "source.endpoint_url",
                "S3-compatible endpoint (http://127.0.0.1:9000), path-style (none: AWS or AWS_ENDPOINT_URL)",
            ),
            opt_at(
                "region",
                "source.region",
                "AWS region (none: the AWS chain, else us-east-1)",
            ),
            opt_at("in_flight", "source.in_flight", "inputs read at once"),
            opt_at(
                "retries",
                "source.retries",
                "ranged-GET resumes in a row without progress before an S3 object fails",
            ),
            opt_at(
                "page_size",
                "source.page_size",
                "keys per S3 listing page (1–1000)",
            ),
            opt_at(
                "chunk_bytes",
                "source.chunk_bytes",
                "bytes per line chunk handed to the validators",
            ),
            opt_at(
                "keep_line_bytes",
                "source.keep_line_bytes",
                "longer lines are kept only up to this many bytes (bounds memory without newlines)",
            ),
            opt_at(
                "connect_timeout_s",
                "source.connect_timeout_s",
                "S3 connect timeout in seconds",
            ),
            opt_at(
                "batch_rows",
                "source.batch_rows",
                "Parquet rows per validation batch",
            ),
        ]
    };
}

impl IngestConfig {
    /// Checks every setting; the error names the offending one.
    pub fn validate(&self) -> Result<(), super::IngestError> {
        let bad = |m: String| Err(super::IngestError::Config(m));
        if self.max_line_bytes == 0 {
            return bad("max_line_bytes must be ≥ 1".into());
        }
        if self.shard_docs == 0 {
            return bad("shard_docs must be ≥ 1".into());
        }
        if self.default_domain.trim().is_empty() {
            return bad("default_domain must not be empty".into());
        }
        if let Some(u) = &self.upload
            && !u.starts_with("s3://")
        {
            return bad(format!("upload must be an s3:// URL, got {u}"));
        }
        for (k, v) in [
            ("out", &self.out),
            ("rejected", &self.rejected),
            ("preview", &self.preview),
            ("report", &self.report),
        ] {
            if v.starts_with("s3://") {
                return bad(format!(
                    "{k} must be a local path (use `upload` to copy outputs to S3), got {v}"
                ));
            }
        }
        self.field_spec()?;
        self.source
            .validate()
            .map_err(|e| super::IngestError::Config(e.to_string()))
    }

    /// The parsed `text_field`, `id_field` and `domain_field`.
    pub fn field_spec(&self) -> Result<super::FieldSpec, super::IngestError> {
        super::FieldSpec::new(&self.text_field, &self.id_field, &self.domain_field)
            .map_err(super::IngestError::Config)
    }
}
