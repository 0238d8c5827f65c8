//! `yunmin bench ingest`: the ingest of the given inputs, always rerun in this process, with a
//! CSV row per run; with `--pyarrow`, a row for pyarrow reading the same Parquet columns in
//! batches of the same size (`scripts/bench/ingest_pyarrow.py`), and both measured as whole
//! commands too: `yunmin ingest` as a child process and the peer's process, start to exit.

use crate::peer;
use anyhow::{Context, Result, ensure};
use serde::Serialize;
use std::path::PathBuf;
use yunmin_cli::CliOptions;
use yunmin_core::ingest::{IngestConfig, IngestReport, Plan, ingest_with};
use yunmin_core::run::RunContext;

/// Arguments of `yunmin bench ingest`.
#[derive(Debug, clap::Args)]
pub struct BenchIngestArgs {
    /// Input: JSONL or Parquet files, directories (Hugging Face layouts included), globs or
    /// s3://bucket/prefix/, as `yunmin ingest --input`; repeatable.
    #[arg(long, short = 'i', required = true, value_name = "PATH|GLOB|S3URL")]
    pub input: Vec<String>,
    /// The ingest's options (every `yunmin ingest` option).
    #[command(flatten)]
    pub opts: CliOptions<IngestConfig>,
    /// Run root of the measured ingest (its outputs are rewritten on every run).
    #[arg(long, default_value = "runs/bench_ingest")]
    pub out: PathBuf,
    /// Seed for the preview sample.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Append the rows (label, MB/s, docs/s, peak memory, …) to this CSV.
    #[arg(
        long,
        value_name = "CSV",
        default_value = "results/bench/ingest_bench.csv"
    )]
    pub csv: PathBuf,
    /// Label of the row (default: the first input).
    #[arg(long)]
    pub label: Option<String>,
    /// On local Parquet inputs: add a row for pyarrow reading the same columns of the same
    /// files in batches of the same size (a peer process), with its peak memory; and time both
    /// as whole commands (process start included: `yunmin ingest --force` with the same
    /// options as a child process, into OUT/command/).
    #[arg(long)]
    pub pyarrow: bool,
    /// Python with pyarrow (default: $YUNMIN_PYTHON, else .venv/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
}

/// One row of the ingest benchmark CSV.
#[derive(Debug, Clone, Serialize)]
struct Row {
    label: String,
    inputs: String,
    sources: usize,
    lines: u64,
    valid: u64,
    rejected: u64,
    mb: f64,
    input_mb: f64,
    seconds: f64,
    mb_per_s: f64,
    docs_per_s: f64,
    threads: usize,
    in_flight: usize,
    resumes: u64,
    peak_rss_mb: f64,
    /// Wall seconds of the whole command, process start to exit (with `--pyarrow`).
    command_s: f64,
    /// Peak memory of the whole command's process.
    command_peak_mb: f64,
}

impl Row {
    /// Rates from the counts and seconds, rounded as the CSV shows them.
    fn finish(mut self) -> Self {
        let secs = self.seconds.max(1e-9);
        self.mb_per_s = peer::round(self.mb / secs, 1);
        self.docs_per_s = peer::round(self.valid as f64 / secs, 0);
        self.mb = peer::round(self.mb, 2);
        self.input_mb = peer::round(self.input_mb, 2);
        self.seconds = peer::round(self.seconds, 3);
        self.peak_rss_mb = peer::round(self.peak_rss_mb, 0);
        self.command_s = peer::round(self.command_s, 3);
        self.command_peak_mb = peer::round(self.command_peak_mb, 0);
        self
    }
}

/// The pyarrow peer: the top-level columns the ingest reads (all when it keeps extras).
fn pyarrow_peer(
    cfg: &IngestConfig,
    report: &IngestReport,
    python: &std::path::Path,
) -> Result<peer::Finished> {
    let files: Vec<&str> = report
        .sources
        .iter()
        .filter(|s| s.format == Some(yunmin_core::source::Format::Parquet))
        .map(|s| s.source.as_str())
        .collect();
    ensure!(
        !files.is_empty() && files.iter().all(|f| !f.starts_with("s3://")),
        "--pyarrow needs local Parquet inputs"
    );
    let cols = if cfg.keep_extras {
        serde_json::Value::Null
    } else {
        let top = |f: &str| f.split('.').next().unwrap_or(f).to_string();
        serde_json::json!([
            top(&cfg.text_field),
            top(&cfg.id_field),
            top(&cfg.domain_field)
        ])
    };
    peer::run(
        std::process::Command::new(python)
            .arg(peer::script("ingest_pyarrow.py")?)
            .arg(cols.to_string())
            .arg(cfg.source.batch_rows.to_string())
            .args(&files),
    )
}

/// Runs `yunmin bench ingest`.
pub fn run(b: BenchIngestArgs) -> Result<()> {
    let cfg = b.opts.config(IngestConfig::default())?;
    cfg.validate()?;
    let python = if b.pyarrow {
        Some(peer::python(b.python.as_deref(), "ingest")?)
    } else {
        None
    };
    let ctx = RunContext::new(&b.out, b.seed, true)?;
    let res = ingest_with(&ctx, &b.input, &cfg, Plan::Whole);
    ctx.finish(res.is_ok()).ok();
    let out = res.with_context(|| format!("ingest of {}", b.input.join(", ")))?;
    let report = out.report;
    println!("{}", report.summary_line());
    let label = b.label.clone().unwrap_or_else(|| b.input[0].clone());
    let t = &report.totals;
    let row = Row {
        label: label.clone(),
        inputs: b.input.join(" "),
        sources: report.sources.len(),
        lines: t.lines,
        valid: t.valid,
        rejected: t.rejected,
        mb: t.bytes as f64 / 1e6,
        input_mb: t.input_bytes as f64 / 1e6,
        seconds: report.seconds,
        mb_per_s: 0.0,
        docs_per_s: 0.0,
        threads: rayon::current_num_threads(),
        in_flight: cfg.source.in_flight,
        resumes: t.resumes,
        peak_rss_mb: peer::own_peak_mib(),
        command_s: f64::NAN,
        command_peak_mb: f64::NAN,
    };
    let mut rows = vec![];
    if let Some(py) = python {
        let cmd = peer::run(
            std::process::Command::new(peer::yunmin()?)
                .args(["-q", "ingest", "--force", "--seed"])
                .arg(b.seed.to_string())
                .arg("--out")
                .arg(b.out.join("command"))
                .args(b.input.iter().flat_map(|i| ["--input", i.as_str()]))
                .args(b.opts.to_args()),
        )?;
        rows.push(
            Row {
                command_s: cmd.seconds,
                command_peak_mb: cmd.peak_mib,
                ..row.clone()
            }
            .finish(),
        );
        let run = pyarrow_peer(&cfg, &report, &py)?;
        let p = run.json()?;
        let read = p["rows"].as_u64().unwrap_or(0);
        ensure!(
            read == t.lines,
            "pyarrow read {read} rows, ingest {}",
            t.lines
        );
        rows.push(
            Row {
                label: format!("{label} pyarrow-read"),
                valid: read,
                rejected: 0,
                seconds: p["seconds"].as_f64().unwrap_or(f64::NAN),
                resumes: 0,
                peak_rss_mb: p["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
                command_s: run.seconds,
                command_peak_mb: run.peak_mib,
                ..row
            }
            .finish(),
        );
    } else {
        rows.push(row.finish());
    }
    peer::append_csv(&b.csv, &rows)?;
    println!("bench rows appended to {}", b.csv.display());
    Ok(())
}
