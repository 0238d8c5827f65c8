//! One Rhai module per core module. Each `register` function adds its types and functions to
//! the engine through [`crate::api::Api`], so `yunmin api` documents all of them.

use crate::api::{Api, ApiEntry};
use crate::state::Host;
use rhai::Engine;
use std::sync::Arc;

pub mod columnar;
pub mod dedup;
pub mod eval;
pub mod evaluate;
pub mod ingest;
pub mod merge;
pub mod model;
pub mod report;
pub mod run;
pub mod table;
pub mod text;
pub mod train;

/// Module names and one-line descriptions, in pipeline order (for `docs/scripting.md`).
pub const MODULE_DOCS: &[(&str, &str)] = &[
    (
        "run",
        "Parameters, the run root, the seed and cached stages.",
    ),
    ("table", "Result tables backed by polars DataFrames."),
    (
        "report",
        "PNG charts and notebooks written with their outputs.",
    ),
    (
        "ingest",
        "Streaming JSONL from local files or S3, validation, quarantine.",
    ),
    (
        "dedup",
        "Hybrid Korean shingles, MinHash, LSH (memory or Redis), clusters.",
    ),
    (
        "columnar",
        "JSONL → Arrow → Parquet per domain, schemas, the token loader.",
    ),
    ("text", "Byte-level BPE tokenizers."),
    (
        "model",
        "Llama-style models in burn, HF checkpoints, generation.",
    ),
    ("train", "Pretraining and per-domain LoRA."),
    (
        "merge",
        "Diff vectors and DEM merging (task arithmetic, TIES, DARE).",
    ),
    ("eval", "Perplexity, BLEU, ROUGE and evaluation runs."),
];

/// Option keys of every function that takes an option map (for `yunmin check`); the same
/// constants the functions check their options against when called.
pub fn option_keys() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut v: Vec<(&'static str, Vec<&'static str>)> = vec![
        (
            "ingest",
            [
                crate::primitive::keys::<yunmin_core::ingest::IngestConfig>(),
                ingest::ENGINE_KEYS.to_vec(),
            ]
            .concat(),
        ),
        ("to_parquet", columnar::convert_keys()),
        (
            "merge",
            crate::primitive::keys::<yunmin_core::merge::MergeConfig>(),
        ),
        (
            "merge_save",
            crate::primitive::keys::<yunmin_core::merge::MergeConfig>(),
        ),
        (
            "generate",
            crate::primitive::keys::<yunmin_core::model::GenerateConfig>(),
        ),
        (
            "plot_bars",
            crate::primitive::keys::<yunmin_core::report::ChartConfig>(),
        ),
        (
            "plot_lines",
            crate::primitive::keys::<yunmin_core::report::ChartConfig>(),
        ),
        ("train_tokenizer", text::train_keys()),
        (
            "pretrain",
            crate::primitive::keys::<yunmin_core::train::PretrainConfig>(),
        ),
        ("lora", train::lora_keys()),
        ("train_adapters", train::adapters_keys()),
        ("evaluate", evaluate::evaluate_keys()),
        ("model_perplexity", evaluate::perplexity_keys()),
        (
            "bleu",
            crate::primitive::keys::<yunmin_core::eval::bleu::BleuConfig>(),
        ),
        (
            "sentence_bleu",
            crate::primitive::keys::<yunmin_core::eval::bleu::BleuConfig>(),
        ),
        (
            "rouge",
            crate::primitive::keys::<yunmin_core::eval::rouge::RougeConfig>(),
        ),
        ("lsh_index", dedup::LSH_INDEX_KEYS.to_vec()),
        ("candidates", dedup::CANDIDATES_KEYS.to_vec()),
        (
            "dedup_eval_set",
            crate::primitive::keys::<yunmin_core::dedup::eval::EvalConfig>(),
        ),
        ("shingles", dedup::SHINGLES_KEYS.to_vec()),
        (
            "diff",
            crate::primitive::keys::<yunmin_core::merge::DiffConfig>(),
        ),
        (
            "load_model",
            crate::primitive::keys::<yunmin_core::model::LoadConfig>(),
        ),
        (
            "write_csv",
            crate::primitive::keys::<yunmin_core::report::CsvConfig>(),
        ),
    ];
    for f in ["minhash", "dedup_eval"] {
        v.push((f, dedup::dedup_keys()));
    }
    v.push((
        "dedup",
        [dedup::dedup_keys(), dedup::ENGINE_KEYS.to_vec()].concat(),
    ));
    v
}

/// Registers every module into `engine`, returning the documentation entries.
/// The output revision of a host module's functions: the core revision of what they compute
/// from the same inputs (a stage calling one has it in its cache key), `None` for modules whose
/// outputs have not changed since stage keys began.
pub fn output_revision(module: &str) -> Option<u32> {
    match module {
        "model" | "train" | "eval" | "merge" => Some(yunmin_core::model::NUMERICS_REVISION),
        "report" => Some(yunmin_core::report::RENDER_REVISION),
        _ => None,
    }
}

pub fn register_all(engine: &mut Engine, host: &Arc<Host>) -> Vec<ApiEntry> {
    let mut entries = Vec::new();
    run::register(&mut Api::new(engine, "run", &mut entries), host);
    table::register(&mut Api::new(engine, "table", &mut entries), host);
    ingest::register(&mut Api::new(engine, "ingest", &mut entries), host);
    dedup::register(&mut Api::new(engine, "dedup", &mut entries), host);
    report::register(&mut Api::new(engine, "report", &mut entries), host);
    eval::register(&mut Api::new(engine, "eval", &mut entries), host);
    evaluate::register(&mut Api::new(engine, "eval", &mut entries), host);
    merge::register(&mut Api::new(engine, "merge", &mut entries), host);
    columnar::register(&mut Api::new(engine, "columnar", &mut entries), host);
    text::register(&mut Api::new(engine, "text", &mut entries), host);
    model::register(&mut Api::new(engine, "model", &mut entries), host);
    train::register(&mut Api::new(engine, "train", &mut entries), host);
    entries
}
