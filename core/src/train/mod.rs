//! `train`: pretraining a small Llama base from token sequences and per-domain LoRA on a frozen
//! base (AdamW, warmup + cosine, gradient accumulation and clipping, held-out evaluation,
//! resumable checkpoints, `logs/train_<domain>.log`, `summary.csv`). See `docs/models.md`.

mod data;
mod error;
mod log;
mod lora;
mod pretrain;
mod schedule;
pub mod staged;
mod trainer;

pub use data::{
    BatchOrder, Split, TokenCorpus, pack_windows, parquet_corpus, read_token_file, split_windows,
    tokenize_dataset,
};
pub use error::TrainError;
pub use log::{LOG_HEADER, SUMMARY_HEADER, SummaryRow, TrainLog, upsert_summary};
pub use lora::{DEFAULT_TARGETS, LoraConfig, LoraResult, train_lora};
pub use pretrain::{PretrainConfig, PretrainResult, check_name, pretrain, pretrain_model_config};
pub use schedule::lr_at;
pub use trainer::{LoopStats, OptimConfig};

#[cfg(test)]
mod tests;
