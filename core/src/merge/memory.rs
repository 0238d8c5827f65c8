//! In-memory merging for sweeps. A [`Merger`] loads the base once and keeps the diffs mapped;
//! each [`Merger::merge`] returns [`MergedWeights`] — every tensor as `(shape, Arc<[f32]>)` —
//! without touching the disk. Tensors no diff touches share the base's buffer (an `Arc` clone),
//! and [`Merger::merge_into`] recomputes only the touched tensors, in place when the previous
//! result is no longer shared, so a weight grid costs one pass over the adapted tensors per point.

use super::MergeError;
use super::buffer::{F32Data, bytes_as_f32_mut};
use super::checkpoint::{Checkpoint, OutTensor, WEIGHTS_FILE, copy_side_files, write_safetensors};
use super::diff::DiffSet;
use super::methods::{MergeConfig, merge_tensor};
use super::stream::terms_for;
use super::validate::check_diffs;
use crate::run::AtomicDir;
use crate::{Error, Result};
use rayon::prelude::*;
use safetensors::Dtype;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One float32 tensor held in memory.
#[derive(Debug, Clone)]
pub struct WeightTensor {
    /// Shape, row-major (HF layout: linear weights are `[out, in]`).
    pub shape: Vec<usize>,
    /// Values.
    pub data: Arc<[f32]>,
}

/// A complete set of model weights in memory, keyed by HF tensor name
/// (`model.layers.0.self_attn.q_proj.weight`, …), plus the checkpoint directory whose
/// `config.json` and tokenizer describe them.
#[derive(Debug, Clone, Default)]
pub struct MergedWeights {
    /// Tensors by name.
    pub tensors: BTreeMap<String, WeightTensor>,
    /// The base checkpoint directory (config.json, tokenizer.json).
    pub base_dir: PathBuf,
    /// The configuration that produced these weights (None for the base itself).
    pub config: Option<MergeConfig>,
}

impl MergedWeights {
    /// The tensor `name`.
    pub fn get(&self, name: &str) -> Option<&WeightTensor> {
        self.tensors.get(name)
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.tensors.values().map(|t| t.data.len()).sum()
    }

    /// `‖self − other‖₂` over all tensors (f64 accumulation); errors on differing names/shapes.
    pub fn l2_distance(&self, other: &MergedWeights) -> Result<f64> {
        if self.tensors.len() != other.tensors.len() {
            return Err(MergeError::Config(format!(
                "l2_distance: {} tensors vs {}",
                self.tensors.len(),
                other.tensors.len()
            ))
            .into());
        }
        let mut sum = 0.0f64;
        for (name, a) in &self.tensors {
            let b = other.get(name).ok_or_else(|| MergeError::MissingTensor {
                tensor: name.clone(),
                path: other.base_dir.clone(),
                hint: " (l2_distance)".into(),
            })?;
            if a.shape != b.shape {
                return Err(MergeError::Shape {
                    tensor: name.clone(),
                    what: "l2_distance".into(),
                    expected: a.shape.clone(),
                    got: b.shape.clone(),
                }
                .into());
            }
            if Arc::ptr_eq(&a.data, &b.data) {
                continue;
            }
            sum += a
                .data
                .par_chunks(1 << 14)
                .zip(b.data.par_chunks(1 << 14))
                .map(|(x, y)| {
                    x.iter()
                        .zip(y)
                        .map(|(p, q)| ((p - q) as f64).powi(2))
                        .sum::<f64>()
                })
                .sum::<f64>();
        }
        Ok(sum.sqrt())
    }

    /// Saves a full HF checkpoint to `dir` (side files from the base directory,
    /// `model.safetensors` with `format = pt`), through a temporary directory and a rename.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let out = AtomicDir::new(dir)?;
        std::fs::create_dir_all(out.path())
            .map_err(|e| Error::io("create directory", out.path(), e))?;
        copy_side_files(&self.base_dir, out.path())?;
        let names: Vec<&String> = self.tensors.keys().collect();
        let specs: Vec<OutTensor> = names
            .iter()
            .map(|n| OutTensor {
                name: (*n).clone(),
                dtype: Dtype::F32,
                shape: self.tensors[*n].shape.clone(),
            })
            .collect();
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        write_safetensors(
            &out.path().join(WEIGHTS_FILE),
            &specs,
            meta,
            |i, off, buf| {
                let src = &self.tensors[names[i]].data;
                let dst = bytes_as_f32_mut(buf)
                    .ok_or_else(|| MergeError::Config("misaligned output".into()))?;
                dst.copy_from_slice(&src[off / 4..off / 4 + dst.len()]);
                Ok(())
            },
        )?;
        out.commit()
    }
}

/// A base checkpoint loaded once plus a fixed list of diffs, ready to merge with many weight
/// vectors. See the module documentation.
#[derive(Debug)]
pub struct Merger {
    base: MergedWeights,
    diffs: Vec<DiffSet>,
}

impl Merger {
    /// Loads the base at `base_dir` (a single file or a sharded index; every tensor F32, F16,
    /// BF16 or F64, held as f32) and validates `diffs` against it once (names, shapes, base
    /// hashes).
    pub fn new(base_dir: &Path, diffs: Vec<DiffSet>) -> Result<Self> {
        let ck = Checkpoint::open(base_dir, "base checkpoint")?;
        check_diffs(&ck, &diffs, true)?;
        let tensors = ck
            .entries()
            .par_iter()
            .map(|(name, e)| {
                ck.check_float(name, e)?;
                let data: Arc<[f32]> = match ck.f32(name)? {
                    F32Data::Owned(v) => v,
                    m => Arc::from(m.as_slice()),
                };
                Ok((
                    name.clone(),
                    WeightTensor {
                        shape: e.shape.clone(),
                        data,
                    },
                ))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(Self {
            base: MergedWeights {
                tensors,
                base_dir: ck.dir.clone(),
                config: None,
            },
            diffs,
        })
    }

    /// The base weights (shared buffers, no copy).
    pub fn base(&self) -> &MergedWeights {
        &self.base
    }

    /// The diffs, in weight order.
    pub fn diffs(&self) -> &[DiffSet] {
        &self.diffs
    }

    /// Merges with `cfg` into new weights.
    pub fn merge(&self, cfg: &MergeConfig) -> Result<MergedWeights> {
        let mut out = self.base.clone();
        self.merge_into(cfg, &mut out)?;
        Ok(out)
    }

    /// Merges with `cfg` into `out`, reusing its buffers when they are not shared (pass the
    /// previous grid point's result). Untouched tensors point at the base's buffers.
    pub fn merge_into(&self, cfg: &MergeConfig, out: &mut MergedWeights) -> Result<()> {
        let weights = cfg.resolved_weights(self.diffs.len())?;
        out.base_dir = self.base.base_dir.clone();
        out.config = Some(cfg.clone());
        out.tensors.retain(|k, _| self.base.tensors.contains_key(k));
        for (name, b) in &self.base.tensors {
            let terms = terms_for(name, &self.diffs, &weights);
            if terms.is_empty() {
                out.tensors.insert(name.clone(), b.clone());
                continue;
            }
            let slot = out.tensors.entry(name.clone()).or_insert_with(|| b.clone());
            let reusable = !Arc::ptr_eq(&slot.data, &b.data) && slot.data.len() == b.data.len();
            match Arc::get_mut(&mut slot.data).filter(|_| reusable) {
                Some(buf) => merge_tensor(name, &b.data, &terms, cfg, buf),
                None => {
                    let mut v = vec![0.0f32; b.data.len()];
                    merge_tensor(name, &b.data, &terms, cfg, &mut v);
                    slot.data = Arc::from(v);
                }
            }
            slot.shape = b.shape.clone();
        }
        Ok(())
    }

    /// `‖merged − base‖₂`: how far a merge moved the weights (a file-level metric for sweeps).
    pub fn distance_from_base(&self, merged: &MergedWeights) -> Result<f64> {
        merged.l2_distance(&self.base)
    }
}
