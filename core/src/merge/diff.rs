//! Diff vectors (task vectors): `ΔW = scale · B @ A` for every matrix a LoRA adapter touches,
//! or `fine-tuned − base` for every tensor of a full checkpoint. Each diff tensor is saved as
//! `<diffs_dir>/<domain>/<tensor name>.npy` with an `index.json` (tensor → file, shape, hash of
//! the base tensor it was computed against), and statistics go to
//! `<stats_dir>/<domain>_summary.json`.

use super::MergeError;
use super::adapter::{self, LoraAdapter};
use super::checkpoint::Checkpoint;
use super::lowrank::lora_delta;
use super::npy::{self, NpyArray};
use super::stats::{Moments, TensorStats};
use crate::run::{AtomicDir, check_cancelled, progress_bar, write_atomic};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Name of the index file in a diff directory.
pub const INDEX_FILE: &str = "index.json";
/// Format tag written into `index.json`.
pub const INDEX_FORMAT: &str = "yunmin-diff/1";

/// Options of [`compute_diff`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiffConfig {
    /// Domain name; default: the adapter directory's name without a leading `lora_`.
    pub domain: Option<String>,
    /// Parent of the per-domain diff directories. Default `diffs`.
    pub diffs_dir: PathBuf,
    /// Directory of the `<domain>_summary.json` statistics. Default `diff_stats`.
    pub stats_dir: PathBuf,
}

impl crate::config::Primitive for DiffConfig {
    const NAME: &'static str = "diff";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[
            opt(
                "domain",
                "domain name (none: the adapter directory's name without a leading `lora_`)",
            ),
            opt(
                "diffs_dir",
                "parent of the per-domain diff directories (relative to the run root)",
            ),
            opt(
                "stats_dir",
                "directory of the <domain>_summary.json statistics (relative to the run root)",
            ),
        ]
    };
}

impl Default for DiffConfig {
    fn default() -> Self {
        Self {
            domain: None,
            diffs_dir: "diffs".into(),
            stats_dir: "diff_stats".into(),
        }
    }
}

/// How a diff was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// `scale · B @ A` from a PEFT LoRA adapter.
    Lora,
    /// `fine-tuned − base` from a full checkpoint.
    Full,
}

/// One tensor of a diff's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffEntry {
    /// `.npy` file name inside the diff directory.
    pub file: String,
    /// Shape (equal to the base tensor's).
    pub shape: Vec<usize>,
    /// xxh3-64 (hex) of the base tensor's bytes the diff was computed against.
    pub base_hash: String,
    /// LoRA diffs: the scale this tensor's `B @ A` was multiplied by (per module with
    /// `rank_pattern` / `alpha_pattern`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<f64>,
}

/// `index.json` of a diff directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffIndex {
    /// Always [`INDEX_FORMAT`].
    pub format: String,
    /// Domain name.
    pub domain: String,
    /// How the diff was obtained.
    pub kind: DiffKind,
    /// The base checkpoint directory, as given.
    pub base: PathBuf,
    /// The adapter or fine-tuned checkpoint, as given.
    pub source: PathBuf,
    /// LoRA diffs: the adapter's scale for modules no pattern matches (`lora_alpha / r`, or
    /// `lora_alpha / √r` with `use_rslora`); each entry records its own.
    pub scaling: Option<f64>,
    /// Tensors by base tensor name.
    pub tensors: BTreeMap<String, DiffEntry>,
}

/// `diff_stats/<domain>_summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffSummary {
    /// Domain name.
    pub domain: String,
    /// How the diff was obtained.
    pub kind: DiffKind,
    /// Base checkpoint.
    pub base: PathBuf,
    /// Adapter or fine-tuned checkpoint.
    pub source: PathBuf,
    /// LoRA diffs: the adapter's scale for modules no pattern matches.
    pub scaling: Option<f64>,
    /// Number of diff tensors.
    pub num_tensors: usize,
    /// Statistics over every element of every diff tensor.
    pub overall: TensorStats,
    /// Per-tensor statistics.
    pub tensors: BTreeMap<String, TensorStats>,
    /// Full-checkpoint diffs: tensors identical in both checkpoints (no diff file written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchanged: Vec<String>,
}

/// A diff directory opened for merging: its index and memory-mapped tensors.
#[derive(Debug, Clone)]
pub struct DiffSet {
    /// The directory.
    pub dir: PathBuf,
    /// Its index.
    pub index: DiffIndex,
    /// Tensors by base tensor name.
    pub tensors: BTreeMap<String, NpyArray>,
}

impl DiffSet {
    /// Opens a diff directory (`index.json` and its `.npy` files), checking every shape.
    pub fn open(dir: &Path) -> Result<Self> {
        let ip = dir.join(INDEX_FILE);
        if !ip.exists() {
            return Err(MergeError::MissingFile {
                what: "diff index",
                path: ip,
            }
            .into());
        }
        let text = std::fs::read_to_string(&ip).map_err(|e| Error::io("read", &ip, e))?;
        let index: DiffIndex = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: ip.clone(),
            source: e,
        })?;
        if index.format != INDEX_FORMAT {
            return Err(MergeError::Config(format!(
                "{}: format `{}`, expected `{INDEX_FORMAT}`",
                ip.display(),
                index.format
            ))
            .into());
        }
        let mut tensors = BTreeMap::new();
        for (name, e) in &index.tensors {
            let p = dir.join(&e.file);
            if !p.exists() {
                return Err(MergeError::MissingFile {
                    what: "diff tensor",
                    path: p,
                }
                .into());
            }
            let arr = npy::read(&p)?;
            if arr.shape != e.shape {
                return Err(MergeError::Shape {
                    tensor: name.clone(),
                    what: format!("{} vs {INDEX_FILE}", p.display()),
                    expected: e.shape.clone(),
                    got: arr.shape,
                }
                .into());
            }
            tensors.insert(name.clone(), arr);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            tensors,
        })
    }

    /// The domain name.
    pub fn domain(&self) -> &str {
        &self.index.domain
    }

    /// Number of elements over all tensors.
    pub fn numel(&self) -> usize {
        self.tensors.values().map(|t| t.data.len()).sum()
    }
}

/// The result of [`compute_diff`]: the opened diff and its statistics.
#[derive(Debug, Clone)]
pub struct DiffOutput {
    /// The diff, ready to merge.
    pub diff: DiffSet,
    /// Its statistics (also written to `summary_path`).
    pub summary: DiffSummary,
    /// Where the statistics were written.
    pub summary_path: PathBuf,
}

fn default_domain(source: &Path) -> String {
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "domain".into());
    name.strip_prefix("lora_")
        .map(str::to_string)
        .unwrap_or(name)
}

fn check_domain(d: &str) -> Result<()> {
    if d.is_empty() || d.contains(['/', '\\']) || d == "." || d == ".." {
        return Err(MergeError::Config(format!(
            "domain `{d}` must be a non-empty name without path separators"
        ))
        .into());
    }
    Ok(())
}

/// Computes the diff of `source` (a PEFT adapter directory, or a full fine-tuned checkpoint)
/// against `base`, writes the `.npy` files, the index and the statistics (each through a
/// temporary name), and returns the opened diff.
pub fn compute_diff(base: &Path, source: &Path, cfg: &DiffConfig) -> Result<DiffOutput> {
    if !source.exists() {
        return Err(MergeError::MissingFile {
            what: "adapter or fine-tuned checkpoint",
            path: source.into(),
        }
        .into());
    }
    let domain = cfg.domain.clone().unwrap_or_else(|| default_domain(source));
    check_domain(&domain)?;
    let base_ck = Checkpoint::open(base, "base checkpoint")?;
    let target = cfg.diffs_dir.join(&domain);
    let out = AtomicDir::new(&target)?;
    std::fs::create_dir_all(out.path())
        .map_err(|e| Error::io("create directory", out.path(), e))?;

    let (kind, scaling, per_tensor, unchanged) = if adapter::is_adapter_dir(source) {
        let ad = adapter::open(source)?;
        let s = ad.config.scaling();
        (
            DiffKind::Lora,
            Some(s),
            lora_diffs(&base_ck, &ad, out.path())?,
            Vec::new(),
        )
    } else {
        let tuned = Checkpoint::open(source, "fine-tuned checkpoint")?;
        let (t, u) = full_diffs(&base_ck, &tuned, out.path())?;
        (DiffKind::Full, None, t, u)
    };

    let mut tensors = BTreeMap::new();
    let mut stats = BTreeMap::new();
    let mut pooled = Moments::default();
    for (name, entry, m) in per_tensor {
        pooled = Moments::merge(pooled, m);
        stats.insert(name.clone(), m.stats());
        tensors.insert(name, entry);
    }
    let index = DiffIndex {
        format: INDEX_FORMAT.into(),
        domain: domain.clone(),
        kind,
        base: base.to_path_buf(),
        source: source.to_path_buf(),
        scaling,
        tensors,
    };
    let json = serde_json::to_vec_pretty(&index).map_err(|e| Error::Json {
        path: target.join(INDEX_FILE),
        source: e,
    })?;
    write_atomic(&out.path().join(INDEX_FILE), &json)?;
    let summary = DiffSummary {
        domain: domain.clone(),
        kind,
        base: base.to_path_buf(),
        source: source.to_path_buf(),
        scaling,
        num_tensors: stats.len(),
        overall: pooled.stats(),
        tensors: stats,
        unchanged,
    };
    let summary_path = cfg.stats_dir.join(format!("{domain}_summary.json"));
    let sj = serde_json::to_vec_pretty(&summary).map_err(|e| Error::Json {
        path: summary_path.clone(),
        source: e,
    })?;
    let dir = out.commit()?;
    write_atomic(&summary_path, &sj)?;
    tracing::info!(
        domain,
        tensors = summary.num_tensors,
        l2 = summary.overall.l2,
        "diff written to {}",
        dir.display()
    );
    Ok(DiffOutput {
        diff: DiffSet::open(&dir)?,
        summary,
        summary_path,
    })
}

type TensorResult = (String, DiffEntry, Moments);

fn file_name(tensor: &str) -> String {
    format!("{tensor}.npy")
}

fn lora_diffs(base: &Checkpoint, ad: &LoraAdapter, out: &Path) -> Result<Vec<TensorResult>> {
    // Check everything before computing anything.
    for (name, p) in &ad.pairs {
        let e = base.require(name, &format!(" (adapted by {})", ad.dir.display()))?;
        base.check_float(name, e)?;
        let want = vec![p.b_shape[0], p.a_shape[1]];
        if e.shape != want {
            return Err(MergeError::Shape {
                tensor: name.clone(),
                what: format!(
                    "base {} vs adapter B@A {}",
                    base.file.display(),
                    ad.dir.display()
                ),
                expected: e.shape.clone(),
                got: want,
            }
            .into());
        }
    }
    let bar = progress_bar(ad.pairs.len() as u64, "diff");
    let res = ad
        .pairs
        .par_iter()
        .map(|(name, p)| {
            check_cancelled()?;
            let [rows, r] = p.b_shape;
            let cols = p.a_shape[1];
            let mut d = vec![0.0f32; rows * cols];
            lora_delta(
                p.b.as_slice(),
                p.a.as_slice(),
                rows,
                r,
                cols,
                p.scale as f32,
                &mut d,
            );
            let entry = DiffEntry {
                file: file_name(name),
                shape: vec![rows, cols],
                base_hash: base.tensor_hash(name)?,
                scaling: Some(p.scale),
            };
            npy::write(&out.join(&entry.file), &entry.shape, &d)?;
            let m = Moments::of(&d);
            bar.inc(1);
            Ok((name.clone(), entry, m))
        })
        .collect::<Result<Vec<_>>>();
    bar.finish_and_clear();
    res
}

fn full_diffs(
    base: &Checkpoint,
    tuned: &Checkpoint,
    out: &Path,
) -> Result<(Vec<TensorResult>, Vec<String>)> {
    for name in base.names() {
        tuned.require(name, &format!(" (present in base {})", base.file.display()))?;
    }
    for (name, t) in tuned.entries() {
        let b = base.require(
            name,
            &format!(" (present in fine-tuned {})", tuned.file.display()),
        )?;
        if b.shape != t.shape {
            return Err(MergeError::Shape {
                tensor: name.clone(),
                what: format!(
                    "base {} vs fine-tuned {}",
                    base.file.display(),
                    tuned.file.display()
                ),
                expected: b.shape.clone(),
                got: t.shape.clone(),
            }
            .into());
        }
        if base.bytes(b) != tuned.bytes(t) {
            base.check_float(name, b)?;
            tuned.check_float(name, t)?;
        }
    }
    let bar = progress_bar(tuned.entries().len() as u64, "diff");
    let res = tuned
        .entries()
        .par_iter()
        .map(|(name, t)| {
            check_cancelled()?;
            let b = base.require(name, "")?;
            bar.inc(1);
            if base.bytes(b) == tuned.bytes(t) {
                return Ok(Err(name.clone()));
            }
            let (bv, tv) = (base.f32(name)?, tuned.f32(name)?);
            let d: Vec<f32> = tv
                .as_slice()
                .par_iter()
                .zip(bv.as_slice().par_iter())
                .map(|(t, b)| t - b)
                .collect();
            let entry = DiffEntry {
                file: file_name(name),
                shape: t.shape.clone(),
                base_hash: base.tensor_hash(name)?,
                scaling: None,
            };
            npy::write(&out.join(&entry.file), &entry.shape, &d)?;
            Ok(Ok((name.clone(), entry, Moments::of(&d))))
        })
        .collect::<Result<Vec<_>>>()?;
    bar.finish_and_clear();
    let mut changed = Vec::new();
    let mut unchanged = Vec::new();
    for r in res {
        match r {
            Ok(t) => changed.push(t),
            Err(n) => unchanged.push(n),
        }
    }
    Ok((changed, unchanged))
}
