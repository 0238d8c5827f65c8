//! Dedup as the cached stage `dedup` of a run: the one definition of its stage key (the
//! config, the dataset's content, the code version) and of the outputs it must find, used by
//! `yunmin dedup` and Rhai's `dedup` alike.

use super::pipeline::{DedupConfig, DedupSummary, run};
use crate::Result;
use crate::ingest::Dataset;
use crate::run::RunContext;

/// Version of the stage's code: bump it when the outputs change for the same inputs.
pub const DEDUP_STAGE_CODE: &str = "dedup-v1";

/// Dedups `ds` into the run root of `ctx` as the cached stage `dedup`, `run` doing the work
/// (the pipeline here, or tasks elsewhere that write the same outputs). Skipped — the stored
/// summary and `true` returned — when the config and the dataset's content are unchanged and
/// the outputs (kept dataset, `candidates.json`, `clusters.jsonl`, `dedup_log.csv`) exist.
pub fn staged_with(
    ctx: &RunContext,
    ds: &Dataset,
    cfg: &DedupConfig,
    run: impl FnOnce() -> Result<DedupSummary>,
) -> Result<(DedupSummary, bool)> {
    let params = serde_json::to_value(cfg)
        .map_err(|e| crate::Error::invalid(format!("dedup config: {e}")))?;
    let root = ctx.root();
    let outputs = [
        ctx.write_path(&cfg.kept)?,
        root.join("candidates.json"),
        root.join("clusters.jsonl"),
        root.join("dedup_log.csv"),
    ];
    ctx.stage(
        "dedup",
        &params,
        &[ds.dir().to_path_buf()],
        &outputs,
        DEDUP_STAGE_CODE,
        run,
    )
}

/// [`staged_with`] running the whole pipeline in this process.
pub fn staged(ctx: &RunContext, ds: &Dataset, cfg: &DedupConfig) -> Result<(DedupSummary, bool)> {
    staged_with(ctx, ds, cfg, || run(ds, ctx.root(), cfg))
}
