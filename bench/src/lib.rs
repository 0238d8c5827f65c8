//! `yunmin bench <phase>`: every side-by-side benchmark under one command. Each runs yunmin and
//! its peers (datasketch and rensa, pyarrow and polars, PyTorch + PEFT, a NumPy merge, sacreBLEU
//! and rouge-score) in one run and writes CSV; the numbers are in `docs/benchmarks.md`.
//!
//! Peers are Python processes run by one [`peer`] runner (interpreter lookup, spawn, wall time
//! and peak memory); the scripts they run live in the repository's `scripts/bench/`.

pub mod dedup;
pub mod ingest;
pub mod merge;
pub mod metrics;
pub mod model;
pub mod parquet;
pub mod peer;

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
    Ingest(Box<ingest::BenchIngestArgs>),
    /// Dedup vs datasketch and rensa on short, long and mixed documents (one thread, with and
    /// without process start), and the whole corpora on all threads (wall time, peak memory).
    Dedup(dedup::BenchDedupArgs),
    /// Dedup's stages (signing, memory and Redis index) vs datasketch's MinHashLSH on a sample
    /// of the corpora, on one thread and on all.
    DedupStages(dedup::stages::StagesArgs),
    /// LoRA training vs PyTorch + PEFT on the same checkpoint, tokens and settings.
    Train(model::BenchModelArgs),
    /// The perplexity forward vs transformers on the same checkpoint and windows.
    Eval(model::BenchModelArgs),
    /// Greedy generation with the KV cache vs transformers `generate` on the same checkpoint
    /// and prompts (new tokens/s, and whether the two produce the same tokens).
    Generate(model::BenchModelArgs),
    /// Merging on a random ≥100M-parameter checkpoint against the NumPy/safetensors reference
    /// and mergekit (from the same adapters), and one in-memory sweep point (merge + perplexity).
    Merge(merge::MergeBenchArgs),
    /// JSONL → Parquet conversion vs pyarrow, text codecs, and the loader vs pyarrow/polars.
    Parquet(Box<parquet::ParquetBenchArgs>),
    /// BLEU and ROUGE vs sacreBLEU and rouge-score on corpus sentence pairs.
    Metrics(metrics::MetricsBenchArgs),
}

/// Runs `yunmin bench <phase>`.
pub fn run(b: BenchCli) -> anyhow::Result<()> {
    match b.what {
        BenchWhat::Ingest(a) => ingest::run(*a),
        BenchWhat::Dedup(a) => dedup::run(a),
        BenchWhat::DedupStages(a) => dedup::stages::run(a),
        BenchWhat::Train(a) => model::run(a, model::Mode::Train),
        BenchWhat::Eval(a) => model::run(a, model::Mode::Eval),
        BenchWhat::Generate(a) => model::run(a, model::Mode::Generate),
        BenchWhat::Merge(a) => merge::run(a),
        BenchWhat::Parquet(a) => parquet::run(*a),
        BenchWhat::Metrics(a) => metrics::run(a),
    }
}
