//! `parquet_report.json`: what a conversion wrote, read back by `validate` and the readers.

use super::config::ConvertConfig;
use crate::text::TokenizerInfo;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of the conversion report in the output directory.
pub const REPORT_FILE: &str = "parquet_report.json";
/// File name of the rejected rows in the output directory (JSON lines).
pub const REJECTS_FILE: &str = "rejects.jsonl";
/// Sub-directory of the held-out files.
pub const HELDOUT_DIR: &str = "heldout";

/// One Parquet file of a conversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileReport {
    /// The domain.
    pub domain: String,
    /// `train` or `heldout`.
    pub split: String,
    /// Rows written.
    pub rows: u64,
    /// Tokens in the `tokens` column (0 without a tokenizer).
    pub tokens: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Row groups.
    pub row_groups: usize,
    /// Its schema file, relative to the output directory.
    pub schema_file: String,
}

/// The conversion report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversionReport {
    /// The input dataset directory.
    pub input: PathBuf,
    /// The output directory.
    pub output: PathBuf,
    /// The configuration used.
    pub config: ConvertConfig,
    /// The tokenizer, if the files have token columns.
    pub tokenizer: Option<TokenizerInfo>,
    /// The declared schema, as in `schema.txt`.
    pub schema: Vec<String>,
    /// Domains with at least one accepted row, sorted.
    pub domains: Vec<String>,
    /// Every Parquet file, keyed by its path relative to the output directory
    /// (`<domain>.parquet`, `heldout/<domain>.parquet`).
    pub files: BTreeMap<String, FileReport>,
    /// Non-blank input lines read.
    pub docs_in: u64,
    /// Rows written (train + held out).
    pub rows_written: u64,
    /// Tokens written.
    pub tokens_written: u64,
    /// Rows rejected (each is a line of `rejects.jsonl`).
    pub rejected: u64,
    /// Rejected rows per category (`json`, `schema`, `domain`, `unknown_field`).
    pub rejected_by_category: BTreeMap<String, u64>,
    /// The rejects file, relative to the output directory.
    pub rejects_file: String,
    /// Input bytes read.
    pub input_bytes: u64,
    /// Parquet bytes written.
    pub output_bytes: u64,
    /// Wall time of the conversion (logged and printed, not written to the report file, so
    /// that a rerun's report is byte-identical).
    #[serde(skip)]
    pub seconds: f64,
    /// Peak resident memory of the process at the end of the conversion (MiB), when known
    /// (not written to the report file either).
    #[serde(skip)]
    pub peak_rss_mb: Option<f64>,
}

impl ConversionReport {
    /// Reads `parquet_report.json` from an output directory.
    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join(REPORT_FILE);
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io("read", &p, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Json { path: p, source: e })
    }

    /// The paths of the files of `split` (`train`, `heldout` or `all`), optionally of one domain.
    pub fn paths(&self, dir: &Path, domain: Option<&str>, split: &str) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|(_, f)| {
                domain.is_none_or(|d| f.domain == d) && (split == "all" || f.split == split)
            })
            .map(|(rel, _)| dir.join(rel))
            .collect()
    }
}
