//! `ingest_report.json`: counts per source and per reason, throughput, output paths.

use super::RejectReason;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts of one input (or of all of them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    /// Input name (path or `s3://` URL), or `total`.
    pub source: String,
    /// How the input stores records (absent in the totals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<crate::source::Format>,
    /// Split of a Hugging Face datasets shard (`train`, `validation`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// Lines (Parquet: rows) read. Always `valid + rejected`.
    pub lines: u64,
    /// Lines that became documents.
    pub valid: u64,
    /// Lines written to the rejects.
    pub rejected: u64,
    /// Decompressed bytes read.
    pub bytes: u64,
    /// Bytes read from storage (compressed size).
    pub input_bytes: u64,
    /// Ranged-GET resumes after dropped connections.
    pub resumes: u64,
    /// Rejected lines per reason (only reasons that occurred).
    pub reasons: BTreeMap<String, u64>,
}

impl SourceReport {
    /// Adds per-reason counts (indexed like [`RejectReason::ALL`]).
    pub fn add_reasons(&mut self, counts: &[u64; RejectReason::ALL.len()]) {
        for (r, n) in RejectReason::ALL.iter().zip(counts) {
            if *n > 0 {
                *self.reasons.entry(r.as_str().to_string()).or_default() += n;
            }
        }
    }

    /// Adds another report's counts to this one.
    pub fn absorb(&mut self, o: &SourceReport) {
        self.lines += o.lines;
        self.valid += o.valid;
        self.rejected += o.rejected;
        self.bytes += o.bytes;
        self.input_bytes += o.input_bytes;
        self.resumes += o.resumes;
        for (k, v) in &o.reasons {
            *self.reasons.entry(k.clone()).or_default() += v;
        }
    }
}

/// Where an ingest run put its outputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestOutputs {
    /// Dataset directory of valid documents.
    pub dataset: String,
    /// Directory of rejected lines.
    pub rejected: String,
    /// Preview file.
    pub preview: String,
    /// This report.
    pub report: String,
    /// S3 prefix the outputs were uploaded to, if any.
    pub uploaded_to: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Per input, in input order.
    pub sources: Vec<SourceReport>,
    /// Sum over inputs.
    pub totals: SourceReport,
    /// Valid documents per domain.
    pub domains: BTreeMap<String, u64>,
    /// Output locations.
    pub outputs: IngestOutputs,
    /// The run's seed (used for the preview).
    pub seed: u64,
    /// Wall time in seconds. Times and speeds are logged (`summary_line`), not written to
    /// `ingest_report.json`, so a rerun's report is byte-identical.
    #[serde(skip)]
    pub seconds: f64,
    /// Decompressed megabytes (10^6 bytes) per second.
    #[serde(skip)]
    pub mb_per_s: f64,
    /// Valid documents per second.
    #[serde(skip)]
    pub docs_per_s: f64,
}

impl IngestReport {
    /// The one-line summary logged at the end of a run.
    pub fn summary_line(&self) -> String {
        let t = &self.totals;
        let reasons: Vec<String> = t.reasons.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "ingest: {} lines from {} sources → {} valid, {} rejected{} | {:.1} MB in {:.2}s ({:.1} MB/s, {:.0} docs/s){}",
            t.lines,
            self.sources.len(),
            t.valid,
            t.rejected,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            },
            t.bytes as f64 / 1e6,
            self.seconds,
            self.mb_per_s,
            self.docs_per_s,
            if t.resumes > 0 {
                format!(", {} resumes", t.resumes)
            } else {
                String::new()
            }
        )
    }
}
