//! Merging to disk: `models/merged/` as a full Hugging Face checkpoint. The base and the diffs
//! are memory-mapped; the output `model.safetensors` is computed in 4 MiB blocks in parallel and
//! written with `pwrite`, and input pages are released once used, so resident memory is bounded by
//! the blocks in flight, not by the model size. The directory is built under a temporary name and
//! renamed when complete.

use super::MergeError;
use super::buffer::bytes_as_f32_mut;
use super::checkpoint::{
    Checkpoint, OutTensor, WEIGHTS_FILE, copy_side_files, dtype_size, write_safetensors,
};
use super::diff::DiffSet;
use super::methods::{MergeConfig, Term, merge_range, prepare};
use super::validate::check_diffs;
use crate::run::{AtomicDir, check_cancelled, progress_bar};
use crate::{Error, Result};
use rayon::prelude::*;
use safetensors::Dtype;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What [`merge_to_dir`] did.
#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    /// The merged checkpoint directory.
    pub out_dir: PathBuf,
    /// Tensors that received at least one diff.
    pub tensors_merged: usize,
    /// Tensors copied unchanged from the base.
    pub tensors_copied: usize,
    /// Parameters (elements) written.
    pub params: u64,
    /// Bytes of the written `model.safetensors`.
    pub bytes_written: u64,
    /// Wall time of the merge, seconds.
    pub seconds: f64,
}

/// Builds, for every base tensor, the non-zero-weight diff terms that touch it.
pub(crate) fn terms_for<'a>(name: &str, diffs: &'a [DiffSet], weights: &[f32]) -> Vec<Term<'a>> {
    diffs
        .iter()
        .enumerate()
        .filter(|(i, _)| weights[*i] != 0.0)
        .filter_map(|(i, d)| {
            d.tensors.get(name).map(|a| Term {
                index: i,
                weight: weights[i],
                values: a.data.as_slice(),
            })
        })
        .collect()
}

/// Merges `diffs` into the checkpoint at `base` with `cfg` and writes a full HF checkpoint
/// (side files copied from the base, `model.safetensors` with `format = pt`) to `out_dir`.
pub fn merge_to_dir(
    base: &Path,
    diffs: &[DiffSet],
    cfg: &MergeConfig,
    out_dir: &Path,
) -> Result<MergeReport> {
    let t0 = Instant::now();
    let weights = cfg.resolved_weights(diffs.len())?;
    let ck = Checkpoint::open(base, "base checkpoint")?;
    check_diffs(&ck, diffs, cfg.check_base)?;
    let out = AtomicDir::new(out_dir)?;
    std::fs::create_dir_all(out.path())
        .map_err(|e| Error::io("create directory", out.path(), e))?;
    copy_side_files(&ck.dir, out.path())?;

    let names: Vec<&String> = ck.names().collect();
    // Floating-point tensors (F32/F16/BF16/F64 in the base) are written as F32; anything else
    // is copied as it is.
    let specs: Vec<OutTensor> = names
        .iter()
        .map(|n| {
            let e = &ck.entries()[*n];
            OutTensor {
                name: (*n).clone(),
                dtype: if e.is_float() { Dtype::F32 } else { e.dtype },
                shape: e.shape.clone(),
            }
        })
        .collect();
    let mut metadata: HashMap<String, String> = ck.metadata.clone();
    metadata.insert("format".into(), "pt".into());
    let total_bytes: u64 = specs
        .iter()
        .map(|t| (t.shape.iter().product::<usize>() * dtype_size(t.dtype)) as u64)
        .sum();
    // Per tensor: the diff terms touching it and what the method needs over the whole tensor
    // (TIES thresholds), computed before any block is written.
    let plans: Vec<(Vec<Term<'_>>, Vec<f32>)> = names
        .par_iter()
        .map(|n| {
            let terms = terms_for(n, diffs, &weights);
            let prep = prepare(&terms, cfg);
            if !prep.is_empty() {
                for t in &terms {
                    diffs[t.index].tensors[n.as_str()]
                        .data
                        .release(0, t.values.len());
                }
            }
            (terms, prep)
        })
        .collect();
    let merged = plans.iter().filter(|(t, _)| !t.is_empty()).count();
    let bar = progress_bar(total_bytes, "merge bytes");
    let file = out.path().join(WEIGHTS_FILE);
    let bytes_written = write_safetensors(&file, &specs, metadata, |i, off, buf| {
        check_cancelled()?;
        let name = names[i];
        let e = &ck.entries()[name];
        let (terms, prep) = &plans[i];
        if !e.is_float() || (terms.is_empty() && e.dtype == Dtype::F32) {
            // Copied as it is.
            buf.copy_from_slice(&ck.bytes(e)[off..off + buf.len()]);
            ck.release(e, off, buf.len());
        } else {
            let outf = bytes_as_f32_mut(buf)
                .ok_or_else(|| MergeError::Config(format!("tensor `{name}`: misaligned output")))?;
            let (s, n) = (off / 4, outf.len());
            if terms.is_empty() {
                ck.read_f32_into(name, e, s, outf)?;
            } else {
                let base_vals = ck.f32_range(name, e, s, n)?;
                merge_range(name, &base_vals, terms, cfg, prep, s, outf);
                for t in terms {
                    diffs[t.index].tensors[name.as_str()].data.release(s, n);
                }
            }
            let size = dtype_size(e.dtype);
            ck.release(e, s * size, n * size);
        }
        bar.inc(buf.len() as u64);
        Ok(())
    })?;
    bar.finish_and_clear();
    let dir = out.commit()?;
    Ok(MergeReport {
        out_dir: dir,
        tensors_merged: merged,
        tensors_copied: names.len() - merged,
        params: ck.num_params() as u64,
        bytes_written,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
