//! Conversion as the cached stage `to_parquet` of a run: the one definition of its stage key
//! (the dataset's content, the options, the output directory and the tokenizer file — not where
//! it runs: per-domain tasks joined by [`super::gather`] write the same files), used by
//! `yunmin parquet convert` and Rhai's `to_parquet` alike.

use super::config::ConvertConfig;
use super::convert::convert;
use super::reader::ParquetSet;
use super::report::ConversionReport;
use crate::Result;
use crate::ingest::Dataset;
use crate::run::RunContext;
use crate::text::Tokenizer;
use std::path::Path;

/// Version of the stage's code: bump it when the outputs change for the same inputs.
pub const CONVERT_STAGE_CODE: &str = concat!("columnar-v1-", env!("CARGO_PKG_VERSION"));

/// Converts `dataset` into `dir` as the cached stage `to_parquet` of `ctx`, `run` doing the
/// work; skipped (`true`) when the key is unchanged and `dir` exists. Returns the output.
pub fn staged_with(
    ctx: &RunContext,
    dataset: &Dataset,
    dir: &Path,
    cfg: &ConvertConfig,
    tokenizer: Option<&Tokenizer>,
    run: impl FnOnce() -> Result<ConversionReport>,
) -> Result<(ParquetSet, bool)> {
    let mut inputs = vec![dataset.dir().to_path_buf()];
    if let Some(p) = tokenizer.and_then(|t| t.path()) {
        inputs.push(p.to_path_buf());
    }
    let params = serde_json::json!({ "dataset": dataset.dir(), "dir": dir, "config": cfg, "tokenized": tokenizer.is_some() });
    let (_, cached) = ctx.stage(
        "to_parquet",
        &params,
        &inputs,
        std::slice::from_ref(&dir.to_path_buf()),
        CONVERT_STAGE_CODE,
        || run().map(|r| r.rows_written),
    )?;
    Ok((ParquetSet::open(dir)?, cached))
}

/// [`staged_with`] converting in this process.
pub fn staged(
    ctx: &RunContext,
    dataset: &Dataset,
    dir: &Path,
    cfg: &ConvertConfig,
    tokenizer: Option<&Tokenizer>,
) -> Result<(ParquetSet, bool)> {
    staged_with(ctx, dataset, dir, cfg, tokenizer, || {
        convert(dataset, dir, cfg, tokenizer)
    })
}
