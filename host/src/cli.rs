//! The command line: `yunmin run | check | api` plus one subcommand per pipeline phase.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// YunMin-EfficientData: Korean text → clean training data → domain-merged language models.
///
/// Experiments are Rhai scripts (`yunmin run scripts/pipeline.rhai`); every primitive is also a
/// subcommand. `yunmin api` lists the scripting functions.
#[derive(Debug, Parser)]
#[command(name = "yunmin", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors; no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by commands that produce a run directory.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Run root (default: runs/<script or command name>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Redo every stage even when its cached outputs are up to date.
    #[arg(long)]
    pub force: bool,
    /// Seed for everything random (scripts may set it with params(#{seed: …})).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Where a script may read and write, and the engine limits it runs under.
#[derive(Debug, Clone, Args)]
pub struct GuardArgs {
    /// Also let file functions read under DIR (besides the run root and the paths in params);
    /// repeatable.
    #[arg(long, value_name = "DIR")]
    pub allow_read: Vec<PathBuf>,
    /// Also let file functions write under DIR (besides the run root); repeatable.
    #[arg(long, value_name = "DIR")]
    pub allow_write: Vec<PathBuf>,
    /// Do not run `check` before the script.
    #[arg(long)]
    pub no_check: bool,
    /// Make the script's `fail_point(NAME)` fail on purpose, to check error reporting and
    /// resuming (not part of any stage key, so the rerun without it resumes).
    #[arg(long, value_name = "NAME")]
    pub fail_at: Option<String>,
    /// Most script operations (0: unlimited).
    #[arg(long, default_value_t = 10_000_000_000)]
    pub max_operations: u64,
    /// Most wall-clock seconds the script may run (0: unlimited).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// Deepest nesting of script function calls.
    #[arg(long, default_value_t = 256)]
    pub max_call_depth: usize,
    /// Longest string, in bytes.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    pub max_string_size: usize,
    /// Most elements of one array.
    #[arg(long, default_value_t = 50_000_000)]
    pub max_array_size: usize,
    /// Most entries of one object map.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_map_size: usize,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Rhai script: `yunmin run SCRIPT.rhai [--set key=value]… [--out DIR] [--force]`.
    ///
    /// The script is checked first (as `yunmin check` does). Writes manifest.json (with the
    /// content hash of every input and output file), pipeline_run.log, pipeline_errors.log and
    /// yunmin.log in the run root. Stages whose inputs, parameters, code and captured values are
    /// unchanged are skipped. File functions stay inside the run root and the paths the script
    /// declares in params (see --allow-read/--allow-write).
    Run {
        /// The script.
        script: PathBuf,
        /// Override a parameter declared with params(#{…}); repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_kv)]
        set: Vec<(String, String)>,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        guard: GuardArgs,
    },
    /// Check a script without running it: syntax, every function and method call (name and
    /// number of arguments), option keys of map literals, `p.key` reads of the declared params
    /// and `--set` keys. Every problem is reported as file:line:col.
    Check {
        /// The script.
        script: PathBuf,
        /// `--set` keys to check against the declared parameters; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_kv)]
        set: Vec<(String, String)>,
    },
    /// Rehash every file a finished run recorded in its manifest.json and report any drift
    /// (changed, missing or new files). Exits non-zero on drift.
    Verify {
        /// The run root.
        run: PathBuf,
    },
    /// Rerun a run from its recorded script copy, parameters and seed into a new run root;
    /// with --verify, compare every file with the original and exit non-zero on a difference.
    Rerun {
        /// The original run root.
        run: PathBuf,
        /// The new run root.
        #[arg(long)]
        out: PathBuf,
        /// Compare every produced file with the original run's.
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        guard: GuardArgs,
    },
    /// List every registered Rhai function with its signature and documentation.
    Api {
        /// Write the markdown reference to this file (e.g. docs/scripting.md).
        #[arg(long)]
        write: Option<PathBuf>,
        /// Exit non-zero if this file differs from the generated reference.
        #[arg(long)]
        check: Option<PathBuf>,
    },
    /// Remove near-duplicates: `yunmin dedup --input DATASET --out RUN_ROOT` (MinHash-LSH over
    /// jamo and word shingles; --index redis://… and --phase/--shard for many workers).
    Dedup(Box<crate::modules::dedup::DedupArgs>),
    /// Side-by-side benchmarks against the peers, written to CSV: `yunmin bench
    /// ingest|dedup|dedup-stages|train|eval|generate|merge|parquet|metrics`.
    Bench(yunmin_bench::BenchCli),
    /// Text metrics: `yunmin metrics bleu|rouge|perplexity` (sacreBLEU / rouge-score compatible).
    Metrics(Box<crate::modules::eval::MetricsArgs>),
    /// Validate JSONL and Parquet from local files or S3 into documents and rejects.
    Ingest(crate::modules::ingest::IngestArgs),
    /// Diff vectors of a LoRA adapter (or fine-tuned checkpoint) against the base: .npy + stats.
    Diff(crate::modules::merge::DiffArgs),
    /// Merge diffs into the base (task arithmetic, TIES, DARE) and write a full HF checkpoint.
    Merge(crate::modules::merge::MergeArgs),
    /// JSONL datasets to Parquet per domain: convert, validate.
    Parquet(crate::modules::columnar::ParquetArgs),
    /// Byte-level BPE tokenizers: train, encode.
    Tokenizer(crate::modules::text::TokenizerArgs),
    /// Pretrain a base model or train a per-domain LoRA adapter.
    Train(crate::modules::train::TrainArgs),
    /// Generate a continuation with a checkpoint (optionally with a LoRA adapter).
    Generate(crate::modules::model::GenerateArgs),
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}
