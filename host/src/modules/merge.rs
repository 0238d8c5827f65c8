//! Rhai module `merge` and the `yunmin diff` and `yunmin merge`
//! subcommands over `yunmin_core::merge`: diff vectors, task arithmetic / TIES / DARE, in-memory
//! merges for sweeps, and the merge benchmark.

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::state::Host;
use anyhow::Result;
use clap::Args;
use rhai::{Array, Dynamic, Map};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use yunmin_core::merge::{
    DiffConfig, DiffSet, DiffSummary, MergeConfig, MergedWeights, Merger as CoreMerger,
    compute_diff, merge_to_dir,
};

// ----------------------------------------------------------------------------------------------
// Handles

/// Rhai `Diff`: an opened diff directory and its statistics.
#[derive(Clone)]
pub struct Diff {
    /// The diff (memory-mapped `.npy` tensors and index).
    pub set: Arc<DiffSet>,
    /// Its statistics, when computed in this run or found in `diff_stats/`.
    pub summary: Option<Arc<DiffSummary>>,
}

/// Rhai `Merged`: merged weights held in memory (no disk write), plus the merger that made
/// them (its base is shared). Model/eval code builds a model from `weights`.
#[derive(Clone)]
pub struct Merged {
    /// Every tensor of the merged model, HF names, f32.
    pub weights: Arc<MergedWeights>,
    /// The base + diffs this came from.
    pub merger: Arc<CoreMerger>,
}

/// Rhai `Merger`: a base loaded once with a fixed list of diffs.
#[derive(Clone)]
pub struct Merger(pub Arc<CoreMerger>);

fn stats_map(s: &yunmin_core::merge::stats::TensorStats) -> Map {
    let mut m = Map::new();
    m.insert("numel".into(), Dynamic::from_int(s.numel as i64));
    m.insert("l2".into(), Dynamic::from_float(s.l2));
    m.insert("max".into(), Dynamic::from_float(s.max));
    m.insert("min".into(), Dynamic::from_float(s.min));
    m.insert("mean".into(), Dynamic::from_float(s.mean));
    m.insert("std".into(), Dynamic::from_float(s.std));
    m
}

/// The directory of a checkpoint or adapter given as a path, a `Model` (loaded or saved from a
/// directory) or an `Adapter` handle; a model built in memory has none and is an error.
fn checkpoint_dir(host: &Host, what: &str, v: Dynamic) -> crate::errors::RhaiResult<PathBuf> {
    if v.is_string() {
        return super::model::resolve(host, &v.into_string().unwrap_or_default());
    }
    if let Some(m) = v.read_lock::<super::model::Model>() {
        return m.0.dir.clone().ok_or_else(|| {
            msg_err(format!(
                "{what}: this Model was built in memory; save it (`save(model, dir)`) and pass the directory"
            ))
        });
    }
    if let Some(a) = v.read_lock::<super::model::Adapter>() {
        return Ok(a.dir.clone());
    }
    Err(msg_err(format!(
        "{what}: expected a directory path, a Model or an Adapter, got {}",
        v.type_name()
    )))
}

/// A merge's options from a Rhai map over the defaults, DARE's seed defaulting to the run's.
fn merge_config(opts: Map, run_seed: u64) -> RhaiResult<MergeConfig> {
    let base = MergeConfig {
        seed: run_seed,
        ..Default::default()
    };
    crate::primitive::from_rhai(base, opts)
}

/// The options of `merge`, `merge_save` and `Merger.merge`, with their defaults (for docs).
fn options_doc() -> String {
    format!(
        "Options (defaults; DARE's `seed` defaults to the run's seed):\n{}",
        yunmin_core::config::describe::<MergeConfig>()
    )
}

fn diff_sets(host: &Host, diffs: Array) -> RhaiResult<Vec<DiffSet>> {
    diffs
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            if d.is::<Diff>() {
                Ok((*d.cast::<Diff>().set).clone())
            } else if d.is_string() {
                let p = super::model::resolve(host, &d.into_string().unwrap_or_default())?;
                DiffSet::open(&p).rhai()
            } else {
                Err(msg_err(format!(
                    "diffs[{i}]: expected a Diff or a diff directory path, got {}",
                    d.type_name()
                )))
            }
        })
        .collect()
}

/// Cache of the last merger, so repeated `merge(base, diffs, …)` calls in a sweep reuse the
/// loaded base.
type MergerCache = Arc<Mutex<Option<(Vec<PathBuf>, Arc<CoreMerger>)>>>;

fn cached_merger(
    cache: &MergerCache,
    base: PathBuf,
    diffs: Vec<DiffSet>,
) -> RhaiResult<Arc<CoreMerger>> {
    let mut key = vec![base.clone()];
    key.extend(diffs.iter().map(|d| d.dir.clone()));
    let mut g = cache
        .lock()
        .map_err(|_| msg_err("merge: merger cache poisoned"))?;
    if let Some((k, m)) = g.as_ref()
        && *k == key
    {
        return Ok(m.clone());
    }
    let m = Arc::new(CoreMerger::new(&base, diffs).rhai()?);
    *g = Some((key, m.clone()));
    Ok(m)
}

/// Registers the `merge` module.
pub fn register(api: &mut Api, host: &Arc<Host>) {
    let e = api.engine();
    e.register_type_with_name::<Diff>("Diff");
    e.register_get("domain", |d: &mut Diff| d.set.domain().to_string());
    e.register_get("dir", |d: &mut Diff| {
        d.set.dir.to_string_lossy().to_string()
    });
    e.register_get("tensors", |d: &mut Diff| d.set.tensors.len() as i64);
    e.register_get("numel", |d: &mut Diff| d.set.numel() as i64);
    e.register_get("stats", |d: &mut Diff| {
        d.summary
            .as_ref()
            .map(|s| stats_map(&s.overall))
            .unwrap_or_default()
    });
    e.register_get("l2", |d: &mut Diff| {
        d.summary.as_ref().map(|s| s.overall.l2).unwrap_or(f64::NAN)
    });
    e.register_fn("to_string", |d: &mut Diff| {
        format!("Diff({}, {} tensors)", d.set.domain(), d.set.tensors.len())
    });
    e.register_type_with_name::<Merged>("Merged");
    e.register_get("params", |m: &mut Merged| m.weights.num_params() as i64);
    e.register_get("tensors", |m: &mut Merged| m.weights.tensors.len() as i64);
    e.register_get("weights", |m: &mut Merged| {
        m.weights
            .config
            .as_ref()
            .map(|c| {
                c.weights
                    .iter()
                    .map(|w| Dynamic::from_float(*w))
                    .collect::<Array>()
            })
            .unwrap_or_default()
    });
    e.register_fn("to_string", |m: &mut Merged| {
        format!(
            "Merged({} tensors, {} params)",
            m.weights.tensors.len(),
            m.weights.num_params()
        )
    });
    e.register_type_with_name::<Merger>("Merger");

    let h = host.clone();
    let diff_fn = move |base: Dynamic, adapter: Dynamic, opts: Map| -> RhaiResult<Diff> {
        let mut cfg: DiffConfig = crate::primitive::from_rhai(DiffConfig::default(), opts)?;
        cfg.diffs_dir = h.ctx.write_path(&cfg.diffs_dir).rhai()?;
        cfg.stats_dir = h.ctx.write_path(&cfg.stats_dir).rhai()?;
        let out = compute_diff(
            &checkpoint_dir(&h, "diff: base", base)?,
            &checkpoint_dir(&h, "diff: adapter", adapter)?,
            &cfg,
        )
        .rhai()?;
        Ok(Diff {
            set: Arc::new(out.diff),
            summary: Some(Arc::new(out.summary)),
        })
    };
    let f = diff_fn.clone();
    api.func(
        "diff",
        &["base", "adapter"],
        "Diff vectors of a PEFT adapter (ΔW = scale · B@A per adapted matrix; scale = lora_alpha/r, \
         lora_alpha/√r with use_rslora, per module with rank_pattern / alpha_pattern) or of a full \
         fine-tuned checkpoint (fine-tuned − base) against the base checkpoint (single or sharded; \
         F32, F16 or BF16). `base` and `adapter` are directories or `Model` / `Adapter` handles. Writes \
         `diffs/<domain>/*.npy` + `index.json` and `diff_stats/<domain>_summary.json` (L2, max, min, \
         mean, std per tensor and overall); the domain is the adapter directory's name without `lora_`.",
        move |b: Dynamic, a: Dynamic| f(b, a, Map::new()),
    );
    api.func(
        "diff",
        &["base", "adapter", "opts"],
        "As `diff(base, adapter)` with options `#{ domain: <dir name>, diffs_dir: \"diffs\", \
         stats_dir: \"diff_stats\" }` (relative to the run root).",
        diff_fn,
    );
    let h = host.clone();
    api.func(
        "load_diff",
        &["dir"],
        "Opens an existing diff directory (with `index.json`); reads its statistics from \
         `diff_stats/<domain>_summary.json` in the run root when present.",
        move |dir: &str| {
            let set = DiffSet::open(&super::model::resolve(&h, dir)?).rhai()?;
            let sp = h
                .ctx
                .path(format!("diff_stats/{}_summary.json", set.domain()));
            let summary = std::fs::read_to_string(&sp)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .map(Arc::new);
            Ok::<_, crate::errors::RhaiError>(Diff {
                set: Arc::new(set),
                summary,
            })
        },
    );

    let cache: MergerCache = Arc::new(Mutex::new(None));
    let (h, c) = (host.clone(), cache.clone());
    api.func(
        "merge",
        &["base", "diffs", "opts"],
        &format!(
            "Merges diffs (Diff handles or diff directories) into the base checkpoint (a directory or a \
             `Model` handle) in memory, no \
             disk write: `base + Σ wᵢ·diffᵢ` (task arithmetic, unnormalised: any sign, any sum), TIES \
             or DARE. The loaded base is cached: repeated calls with the same base and diffs do not \
             reload it. Returns a `Merged` handle (`save(merged, dir)` writes it).\n{}",
            options_doc()
        ),
        move |base: Dynamic, diffs: Array, opts: Map| {
            let cfg = merge_config(opts, h.ctx.seed())?;
            let m = cached_merger(&c, checkpoint_dir(&h, "base", base)?, diff_sets(&h, diffs)?)?;
            let w = m.merge(&cfg).rhai()?;
            Ok::<_, crate::errors::RhaiError>(Merged { weights: Arc::new(w), merger: m })
        },
    );
    let h = host.clone();
    api.func(
        "merger",
        &["base", "diffs"],
        "Loads the base once and validates the diffs against it (names, shapes, base hashes); call \
         `.merge(opts)` on it for each point of a sweep.",
        move |base: Dynamic, diffs: Array| {
            Ok::<_, crate::errors::RhaiError>(Merger(Arc::new(
                CoreMerger::new(&checkpoint_dir(&h, "base", base)?, diff_sets(&h, diffs)?)
                    .rhai()?,
            )))
        },
    );
    let h = host.clone();
    api.func(
        "merge",
        &["merger", "opts"],
        "Merges with the merger's base and diffs in memory; options as `merge(base, diffs, opts)`.",
        move |m: &mut Merger, opts: Map| {
            let cfg = merge_config(opts, h.ctx.seed())?;
            Ok::<_, crate::errors::RhaiError>(Merged {
                weights: Arc::new(m.0.merge(&cfg).rhai()?),
                merger: m.0.clone(),
            })
        },
    );
    api.func(
        "base",
        &["merger"],
        "The base weights as a `Merged` handle (no copy), e.g. to evaluate the base in a sweep.",
        |m: &mut Merger| Merged {
            weights: Arc::new(m.0.base().clone()),
            merger: m.0.clone(),
        },
    );
    api.func(
        "distance_from_base",
        &["merged"],
        "‖merged − base‖₂ over every parameter: how far the merge moved the weights.",
        |m: &mut Merged| m.merger.distance_from_base(&m.weights).rhai(),
    );
    let h = host.clone();
    api.func(
        "save",
        &["merged", "dir"],
        "Writes merged weights as a full HF checkpoint (config.json and tokenizer files copied from \
         the base, dtype fields set to float32; model.safetensors in F32 with format=pt) to `dir` in \
         the run root, via a temporary directory and a rename; returns the path.",
        move |m: &mut Merged, dir: &str| {
            let p = m.weights.save(&h.ctx.write_path(dir).rhai()?).rhai()?;
            Ok::<_, crate::errors::RhaiError>(p.to_string_lossy().to_string())
        },
    );
    let h = host.clone();
    api.func(
        "merge_save",
        &["base", "diffs", "dir", "opts"],
        &format!(
            "Streams a merge straight to disk (memory-mapped inputs, output written in 4 MiB blocks; \
             memory stays at the blocks in flight, whatever the model size): the large-model path of \
             `merge` + `save`. Returns the directory.\n{}",
            options_doc()
        ),
        move |base: Dynamic, diffs: Array, dir: &str, opts: Map| {
            let cfg = merge_config(opts, h.ctx.seed())?;
            let r = merge_to_dir(&checkpoint_dir(&h, "base", base)?, &diff_sets(&h, diffs)?, &cfg, &h.ctx.write_path(dir).rhai()?).rhai()?;
            Ok::<_, crate::errors::RhaiError>(r.out_dir.to_string_lossy().to_string())
        },
    );
}

// ----------------------------------------------------------------------------------------------
// CLI

/// `yunmin diff`: diff vectors of an adapter (or fine-tuned checkpoint) against a base.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Base checkpoint directory (config.json + model.safetensors, or a sharded
    /// model.safetensors.index.json; F32, F16 or BF16 tensors).
    #[arg(long)]
    pub base: PathBuf,
    /// PEFT adapter directory (adapter_config.json + adapter_model.safetensors), or a full
    /// fine-tuned checkpoint directory.
    #[arg(long)]
    pub adapter: PathBuf,
    /// Run root: writes OUT/<diffs-dir>/<domain>/ and OUT/<stats-dir>/<domain>_summary.json.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// The diff's options (the same as Rhai's `diff` options).
    #[command(flatten)]
    pub opts: crate::primitive::CliOptions<DiffConfig>,
}

/// `yunmin merge`: merge diffs into a base and write a full HF checkpoint.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Base checkpoint directory (single or sharded; F32, F16 or BF16). The merged checkpoint
    /// is written in F32, its config.json dtype fields set to float32.
    #[arg(long)]
    pub base: PathBuf,
    /// Diff directories (each with index.json), comma-separated or repeated.
    #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
    pub diffs: Vec<PathBuf>,
    /// The merge's options (the same as Rhai's `merge` options).
    #[command(flatten)]
    pub opts: crate::primitive::CliOptions<MergeConfig>,
    /// Run root, as for the other commands: the merged checkpoint goes to <out>/<model-dir>.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// The merged checkpoint directory, relative to the run root (where a script's
    /// `merge_save(…, "models/merged", …)` puts it).
    #[arg(long, default_value = "models/merged")]
    pub model_dir: PathBuf,
}

/// Runs `yunmin diff`.
pub fn run_diff(a: DiffArgs) -> Result<()> {
    let mut cfg = a.opts.config(DiffConfig::default())?;
    cfg.diffs_dir = a.out.join(&cfg.diffs_dir);
    cfg.stats_dir = a.out.join(&cfg.stats_dir);
    let out = compute_diff(&a.base, &a.adapter, &cfg)?;
    let s = &out.summary.overall;
    println!(
        "diff `{}`: {} tensors, {} values, L2 {:.6}, mean {:.3e}, std {:.3e}, min {:.3e}, max {:.3e}\n  {}\n  {}",
        out.summary.domain,
        out.summary.num_tensors,
        s.numel,
        s.l2,
        s.mean,
        s.std,
        s.min,
        s.max,
        out.diff.dir.display(),
        out.summary_path.display()
    );
    Ok(())
}

fn cli_merge_config(a: &MergeArgs) -> Result<MergeConfig> {
    a.opts.config(MergeConfig::default())
}

/// Runs `yunmin merge`.
pub fn run_merge(a: MergeArgs) -> Result<()> {
    let cfg = cli_merge_config(&a)?;
    let diffs = a
        .diffs
        .iter()
        .map(|d| DiffSet::open(d))
        .collect::<yunmin_core::Result<Vec<_>>>()?;
    let r = merge_to_dir(&a.base, &diffs, &cfg, &a.out.join(&a.model_dir))?;
    println!(
        "merged {} diff(s) ({}): {} tensors merged, {} copied, {} params, {:.2} GB in {:.2}s ({:.2} GB/s) → {}",
        diffs.len(),
        cfg.method,
        r.tensors_merged,
        r.tensors_copied,
        r.params,
        r.bytes_written as f64 / 1e9,
        r.seconds,
        r.bytes_written as f64 / 1e9 / r.seconds.max(1e-9),
        r.out_dir.display()
    );
    Ok(())
}
