//! Tokenizer training as the cached stage `train_tokenizer` of a run: one definition of its
//! stage key (the dataset's content, the config, the output file), used by
//! `yunmin tokenizer train` and Rhai's `train_tokenizer`/`to_parquet` alike.

use super::tokenizer::{Tokenizer, TokenizerConfig};
use crate::Result;
use crate::ingest::Dataset;
use crate::run::{RunContext, hash_path};
use std::path::Path;

/// Version of the stage's code: bump it when the output changes for the same inputs.
pub const TOKENIZER_STAGE_CODE: &str = concat!("text-v1-", env!("CARGO_PKG_VERSION"));

/// Trains a tokenizer on `dataset` and saves it at `out` as the cached stage
/// `train_tokenizer` of `ctx` (reused, `true`, when the key is unchanged and `out` exists);
/// returns it loaded from `out`.
pub fn train_staged(
    ctx: &RunContext,
    dataset: &Dataset,
    cfg: &TokenizerConfig,
    out: &Path,
) -> Result<(Tokenizer, bool)> {
    let params = serde_json::json!({ "dataset": dataset.dir(), "config": cfg, "out": out });
    let (_, cached) = ctx.stage(
        "train_tokenizer",
        &params,
        &[dataset.dir().to_path_buf()],
        std::slice::from_ref(&out.to_path_buf()),
        TOKENIZER_STAGE_CODE,
        || {
            let mut t = Tokenizer::train(dataset, cfg)?;
            t.save(out)?;
            hash_path(out)
        },
    )?;
    Ok((Tokenizer::load(out)?, cached))
}
