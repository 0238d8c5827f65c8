//! `yunmin bench <phase>`: every side-by-side benchmark under one command. Each runs yunmin and
//! its peers (datasketch and rensa, pyarrow and polars, PyTorch + PEFT, a NumPy merge, sacreBLEU
//! and rouge-score) in one run and writes CSV; the numbers are in `docs/benchmarks.md`.

/// `yunmin bench …`.
#[derive(Debug, clap::Args)]
pub struct BenchCli {
    /// What to benchmark.
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// Benchmarks of `yunmin bench`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchWhat {
    /// Ingest throughput (MB/s, docs/s, peak memory) on the given inputs, local or S3; with
    /// `--pyarrow`, pyarrow reading the same Parquet columns side by side.
    Ingest(Box<super::ingest::BenchIngestArgs>),
    /// Dedup vs datasketch and rensa on short, long and mixed documents (one thread, with and
    /// without process start), and the whole corpora on all threads (wall time, peak memory).
    Dedup(super::dedup::BenchDedupArgs),
    /// LoRA training vs PyTorch + PEFT on the same checkpoint, tokens and settings.
    Train(super::bench_model::BenchModelArgs),
    /// The perplexity forward vs transformers on the same checkpoint and windows.
    Eval(super::bench_model::BenchModelArgs),
    /// Merging on a random ≥100M-parameter checkpoint against the NumPy/safetensors reference.
    Merge(super::merge::MergeBenchArgs),
    /// JSONL → Parquet conversion vs pyarrow, text codecs, and the loader vs pyarrow/polars.
    Parquet(Box<super::columnar::ParquetBenchArgs>),
    /// BLEU and ROUGE vs sacreBLEU and rouge-score on corpus sentence pairs.
    Metrics(super::eval::BenchArgs),
}

/// Runs `yunmin bench <phase>`.
pub fn run(b: BenchCli) -> anyhow::Result<()> {
    match b.what {
        BenchWhat::Ingest(a) => super::ingest::run_bench(*a),
        BenchWhat::Dedup(a) => super::dedup::run_bench_dedup(a),
        BenchWhat::Train(a) => super::bench_model::run(a, true),
        BenchWhat::Eval(a) => super::bench_model::run(a, false),
        BenchWhat::Merge(a) => super::merge::run_bench(a),
        BenchWhat::Parquet(a) => super::columnar::run_bench(*a),
        BenchWhat::Metrics(a) => super::eval::run_bench(a),
    }
}
