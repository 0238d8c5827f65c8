//! Rhai module `columnar`: `to_parquet` and the `Parquet` / `TokenFiles` types,
//! `validate_parquet`; CLI `yunmin parquet convert|validate` (its benchmark is `yunmin bench
//! parquet`, in `yunmin-bench`).

use super::text::{TokenizerHandle, train_cached};
use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::options::Options;
use crate::primitive::OptionSet;
use crate::state::Host;
use clap::{Args, Subcommand};
use rhai::{Array, Dynamic, Map};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yunmin_core::columnar::staged::staged_with;
use yunmin_core::columnar::{
    ConversionReport, ConvertConfig, ParquetSet, Split, TokenFiles, convert, gather, part_dir,
    validate,
};
use yunmin_core::ingest::Dataset;
use yunmin_core::run::RunContext;
use yunmin_core::text::{Tokenizer, TokenizerConfig};

/// A conversion's output in a script (Rhai type `Parquet`).
#[derive(Clone, Debug)]
pub struct ParquetHandle(pub Arc<ParquetSet>);

/// Options of the Rhai `to_parquet` that are not the conversion's own: the tokenizer to use
/// (a Tokenizer, a tokenizer.json path or false) and the output path of the one trained when
/// none is given.
const TOKENIZER_KEYS: &[&str] = &["tokenizer", "tokenizer_out"];

/// The options of the tokenizer `to_parquet` and `yunmin parquet convert` train when none is
/// given: [`TokenizerConfig`]'s, less its seed (the conversion's) and special tokens.
#[derive(Debug, Clone, Copy)]
pub struct TrainedTokenizerKeys;

impl OptionSet for TrainedTokenizerKeys {
    const KEYS: Option<&'static [&'static str]> = Some(&[
        "vocab_size",
        "min_frequency",
        "sample",
        "max_docs",
        "max_chars",
    ]);
}

/// The trained tokenizer's keys.
fn trained_keys() -> &'static [&'static str] {
    TrainedTokenizerKeys::KEYS.unwrap_or_default()
}

/// Every option key of the Rhai `to_parquet`, for the static check.
pub(crate) fn convert_keys() -> Vec<&'static str> {
    let mut k = crate::primitive::keys::<ConvertConfig>();
    k.extend_from_slice(TOKENIZER_KEYS);
    k.extend_from_slice(trained_keys());
    k.push("engine");
    k
}

/// The conversion config of a Rhai option map, after the tokenizer's source keys
/// (`TOKENIZER_KEYS`) and the trained tokenizer's options are taken out (returned beside it);
/// the held-out split's seed defaults to the run's.
fn convert_config(mut opts: Map, seed: u64) -> RhaiResult<(ConvertConfig, Map, Map)> {
    let tok = take(&mut opts, TOKENIZER_KEYS);
    let trained = take(&mut opts, trained_keys());
    let base = ConvertConfig {
        seed,
        ..Default::default()
    };
    let cfg = crate::primitive::from_rhai(base, opts)?;
    cfg.check().rhai()?;
    Ok((cfg, tok, trained))
}

/// The entries of `keys` taken out of `opts`.
fn take(opts: &mut Map, keys: &[&str]) -> Map {
    keys.iter()
        .filter_map(|k| Some(((*k).into(), opts.remove(*k)?)))
        .collect()
}

/// Where a trained tokenizer goes when not told: `tokenizer.json` beside the Parquet
/// directory `dir` (Rhai `to_parquet` and `yunmin parquet convert` alike).
fn tokenizer_beside(dir: &Path) -> PathBuf {
    dir.parent()
        .unwrap_or(Path::new("."))
        .join("tokenizer.json")
}

/// The conversion as Ray tasks, one `yunmin parquet convert --domains D` per domain into
/// [`yunmin_core::columnar::part_dir`]s, joined into `dir` here by
/// [`yunmin_core::columnar::gather`].
fn convert_on_ray(
    ctx: &RunContext,
    dataset: &Dataset,
    dir: &Path,
    cfg: &ConvertConfig,
    tokenizer: Option<&Tokenizer>,
) -> yunmin_core::Result<ConversionReport> {
    let domains = if cfg.domains.is_empty() {
        dataset.domains()?
    } else {
        cfg.domains.clone()
    };
    if domains.len() < 2 {
        return convert(dataset, dir, cfg, tokenizer);
    }
    let tok_arg: Vec<String> = match tokenizer {
        None => vec!["--no-tokens".into()],
        Some(t) => {
            let p = match t.path() {
                Some(p) => p.to_path_buf(),
                None => {
                    // For the tasks only: removed with the parts.
                    let p = part_dir(dir, 0, 1).with_file_name("tokenizer.json");
                    t.clone().save(&p)?;
                    p
                }
            };
            vec!["--tokenizer".into(), p.display().to_string()]
        }
    };
    let n = domains.len();
    let parts: Vec<PathBuf> = (0..n).map(|i| part_dir(dir, i, n)).collect();
    let tasks: Vec<crate::ray::Task> = domains
        .iter()
        .zip(&parts)
        .enumerate()
        .map(|(i, (d, part))| {
            let one = ConvertConfig {
                domains: vec![d.clone()],
                ..cfg.clone()
            };
            let name = part.file_name().unwrap_or_default().to_string_lossy();
            let mut args: Vec<String> = vec!["parquet".into(), "convert".into()];
            args.extend(["--dataset".into(), dataset.dir().display().to_string()]);
            // The task's own run root, beside its part (its stage record is of no use later).
            let run = part.with_file_name(format!(".{name}.run"));
            args.extend(["--out".into(), run.display().to_string(), "--force".into()]);
            args.extend(["--dir".into(), part.display().to_string()]);
            args.extend(tok_arg.iter().cloned());
            args.extend(one.cli_args());
            crate::ray::Task {
                name: format!("parquet_{i:04}"),
                args,
                started: part.with_file_name(format!(".{name}.tmp")),
                output: part.join(yunmin_core::columnar::REPORT_FILE),
            }
        })
        .collect();
    crate::ray::run_tasks("to_parquet", ctx.root(), &tasks)?;
    let r = gather(dataset, &parts, dir, cfg)?;
    for p in &parts {
        let _ = std::fs::remove_dir_all(p);
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let _ = std::fs::remove_dir_all(p.with_file_name(format!(".{name}.run")));
    }
    // `parts/` itself when nothing else is in it.
    if let Some(d) = parts[0].parent() {
        if tokenizer.is_some_and(|t| t.path().is_none()) {
            let _ = std::fs::remove_file(d.join("tokenizer.json"));
        }
        let _ = std::fs::remove_dir(d);
    }
    Ok(r)
}

/// Converts as the cached stage `to_parquet` (`ray`: one Ray task per domain, joined into the
/// same files).
fn convert_staged(
    ctx: &RunContext,
    dataset: &Dataset,
    dir: &Path,
    cfg: &ConvertConfig,
    tokenizer: Option<&Tokenizer>,
    ray: bool,
) -> yunmin_core::Result<ParquetSet> {
    let (set, _cached) = staged_with(ctx, dataset, dir, cfg, tokenizer, || {
        if ray {
            convert_on_ray(ctx, dataset, dir, cfg, tokenizer)
        } else {
            convert(dataset, dir, cfg, tokenizer)
        }
    })?;
    Ok(set)
}

fn to_parquet(
    host: &Host,
    dataset: &Dataset,
    dir: &str,
    mut opts: Map,
) -> RhaiResult<ParquetHandle> {
    let ray = crate::ray::take_engine("to_parquet", &mut opts)?;
    let (cfg, tok, trained) = convert_config(opts, host.ctx.seed())?;
    let o = Options::new("to_parquet", tok.clone(), TOKENIZER_KEYS)?;
    let tok_opt = tok.get("tokenizer").cloned();
    let dir = host.ctx.write_path(dir).rhai()?;
    let tokenizer: Option<Tokenizer> = match tok_opt {
        Some(v) if v.is::<TokenizerHandle>() => Some((*v.cast::<TokenizerHandle>().0).clone()),
        Some(v) if v.is_string() => {
            let s = v.into_string().unwrap_or_default();
            Some(Tokenizer::load(host.ctx.input_path(&s).rhai()?).rhai()?)
        }
        Some(v) if v.as_bool() == Ok(false) || v.is_unit() => None,
        Some(v) => {
            return Err(msg_err(format!(
                "to_parquet: `tokenizer` must be a Tokenizer, a tokenizer.json path or false, got {}",
                v.type_name()
            )));
        }
        None => {
            let base = TokenizerConfig {
                seed: host.ctx.seed(),
                ..Default::default()
            };
            let tcfg = crate::primitive::from_rhai_as("to_parquet", base, trained)?;
            let out = match o.opt_str("tokenizer_out")? {
                Some(p) => host.ctx.write_path(p).rhai()?,
                None => tokenizer_beside(&dir),
            };
            Some(train_cached(&host.ctx, dataset, &tcfg, &out).rhai()?)
        }
    };
    let set = convert_staged(&host.ctx, dataset, &dir, &cfg, tokenizer.as_ref(), ray).rhai()?;
    Ok(ParquetHandle(Arc::new(set)))
}

fn open_dataset(host: &Host, path: &str) -> RhaiResult<Dataset> {
    Dataset::open(host.ctx.input_path(path).rhai()?).rhai()
}

fn strings(v: impl IntoIterator<Item = String>) -> Array {
    v.into_iter().map(Dynamic::from).collect()
}

/// Registers the `columnar` module.
pub fn register(api: &mut Api, host: &Arc<Host>) {
    let e = api.engine();
    e.register_type_with_name::<ParquetHandle>("Parquet");
    e.register_type_with_name::<TokenFiles>("TokenFiles");
    e.register_get("dir", |p: &mut ParquetHandle| {
        p.0.dir().to_string_lossy().to_string()
    });
    e.register_get("rows", |p: &mut ParquetHandle| {
        p.0.report().rows_written as i64
    });
    e.register_get("tokens", |p: &mut ParquetHandle| {
        p.0.report().tokens_written as i64
    });
    e.register_get("rejected", |p: &mut ParquetHandle| {
        p.0.report().rejected as i64
    });
    e.register_get("name", |t: &mut TokenFiles| t.name.clone());
    e.register_get("paths", |t: &mut TokenFiles| {
        strings(t.paths.iter().map(|p| p.to_string_lossy().to_string()))
    });
    e.register_fn("to_string", |p: &mut ParquetHandle| {
        format!(
            "Parquet({}, domains: {})",
            p.0.dir().display(),
            p.0.domains().join(", ")
        )
    });
    e.register_fn("to_string", |t: &mut TokenFiles| {
        format!("TokenFiles({}, {} files)", t.name, t.paths.len())
    });
    let doc = format!(
        "Converts a dataset to Parquet under `dir` (run-root relative): `<domain>.parquet`,\n\
        `heldout/<domain>.parquet`, `<domain>.schema.txt`, `schema.txt`, `rejects.jsonl`, `parquet_report.json`\n\
        (layout \"hf\": `<domain>/train-00000-of-00001.parquet`, `<domain>/heldout-00000-of-00001.parquet` and a\n\
        README.md whose configs `datasets.load_dataset(dir)` reads). `tokenizer`: a Tokenizer, a tokenizer.json\n\
        path, or false for no token columns — when absent one is trained (`vocab_size`, `min_frequency`,\n\
        `sample`, `max_docs`, `max_chars` as for `train_tokenizer`) and saved at\n\
        `tokenizer_out` (default: tokenizer.json next to `dir`). `engine`: \"local\" (default) or \"ray\": one\n\
        `yunmin parquet convert --domains D` Ray task per domain, joined here into the same files. Rows that do\n\
        not fit the schema or whose domain cannot name a file are rejected with a reason. A cached stage: the\n\
        same dataset, options and tokenizer reuse the output. Options (defaults; `seed`: the run's):\n{}",
        yunmin_core::config::describe::<ConvertConfig>()
    );
    let h = host.clone();
    api.func(
        "to_parquet",
        &["dataset", "dir", "opts"],
        &doc,
        move |ds: Dataset, dir: &str, opts: Map| to_parquet(&h, &ds, dir, opts),
    );
    let h = host.clone();
    api.func(
        "to_parquet",
        &["dataset_dir", "dir", "opts"],
        &doc,
        move |ds: &str, dir: &str, opts: Map| {
            let ds = open_dataset(&h, ds)?;
            to_parquet(&h, &ds, dir, opts)
        },
    );
    let h = host.clone();
    api.func(
        "open_parquet",
        &["dir"],
        "Opens a conversion's output directory (its parquet_report.json): inside the run root when\n\
         it exists there, else relative to the working directory.",
        move |dir: &str| {
            Ok::<_, crate::errors::RhaiError>(ParquetHandle(Arc::new(
                ParquetSet::open(crate::modules::model::resolve(&h, dir)?).rhai()?,
            )))
        },
    );
    api.func(
        "domains",
        &["parquet"],
        "The domains, sorted.",
        |p: &mut ParquetHandle| strings(p.0.domains().to_vec()),
    );
    api.func(
        "domain",
        &["parquet", "name"],
        "A domain's training file (tokens for training).",
        |p: &mut ParquetHandle, d: &str| p.0.files(Some(d), Split::Train).rhai(),
    );
    api.func(
        "heldout",
        &["parquet"],
        "Every domain's held-out file.",
        |p: &mut ParquetHandle| p.0.files(None, Split::Heldout).rhai(),
    );
    api.func(
        "heldout",
        &["parquet", "name"],
        "One domain's held-out file.",
        |p: &mut ParquetHandle, d: &str| p.0.files(Some(d), Split::Heldout).rhai(),
    );
    api.func(
        "train",
        &["parquet"],
        "Every domain's training file.",
        |p: &mut ParquetHandle| p.0.files(None, Split::Train).rhai(),
    );
    api.func(
        "report",
        &["parquet"],
        "The conversion report (parquet_report.json) as a map.",
        |p: &mut ParquetHandle| rhai::serde::to_dynamic(p.0.report()),
    );
    api.func(
        "rows",
        &["files"],
        "Rows in the files (from Parquet metadata).",
        |t: &mut TokenFiles| Ok::<_, crate::errors::RhaiError>(t.rows().rhai()? as i64),
    );
    api.func(
        "validate",
        &["parquet"],
        "Validates every file against its schema.txt and the report; returns the number checked.",
        |p: &mut ParquetHandle| {
            let files = p.0.files(None, Split::All).rhai()?;
            for f in &files.paths {
                validate(f).rhai()?;
            }
            Ok::<_, crate::errors::RhaiError>(files.paths.len() as i64)
        },
    );
    let h = host.clone();
    api.func(
        "validate_parquet",
        &["path"],
        "Checks a Parquet file against its schema.txt and the row count and codecs in parquet_report.json;\n\
         returns `#{ rows, codecs }`, errors listing every mismatch.",
        move |path: &str| {
            let v = validate(&h.ctx.input_path(path).rhai()?).rhai()?;
            rhai::serde::to_dynamic(serde_json::json!({ "rows": v.rows, "codecs": v.codecs }))
        },
    );
}

/// `yunmin parquet …`.
#[derive(Debug, Args)]
pub struct ParquetArgs {
    /// The action.
    #[command(subcommand)]
    pub action: ParquetAction,
}

/// The conversion's options: [`ConvertConfig`]'s options as flags.
pub type CodecArgs = crate::primitive::CliOptions<ConvertConfig>;

/// The conversion config the flags describe, checked.
fn codec_config(codecs: &CodecArgs) -> anyhow::Result<ConvertConfig> {
    let cfg = codecs.config(ConvertConfig::default())?;
    cfg.check()?;
    Ok(cfg)
}

/// Parquet actions.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum ParquetAction {
    /// Convert a dataset (part-*.jsonl) to one Parquet file per domain, tokenised.
    Convert {
        #[command(flatten)]
        inputs: super::ingest::DocInputs,
        /// Run root, as for `yunmin ingest` and `yunmin dedup`: the Parquet directory (--dir),
        /// the trained tokenizer and the stage cache go under it, raw inputs are ingested into
        /// <out>/ingest/. A rerun with the same dataset, options and tokenizer answers from
        /// the cache, as a script's `to_parquet` does.
        #[arg(long)]
        out: PathBuf,
        /// The Parquet directory, relative to the run root (replaced when the conversion
        /// completes).
        #[arg(long, default_value = "data/parquet")]
        dir: PathBuf,
        /// A tokenizer.json to use; without it one is trained and saved as tokenizer.json
        /// beside the Parquet directory.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// The trained tokenizer's options (as `yunmin tokenizer train`'s).
        #[command(flatten)]
        tokenizer_opts: Box<crate::primitive::CliOptions<TokenizerConfig, TrainedTokenizerKeys>>,
        /// Write no tokens/n_tokens columns.
        #[arg(long, conflicts_with = "tokenizer")]
        no_tokens: bool,
        /// Also print the conversion's seconds and peak memory as a last JSON line (they are
        /// not in parquet_report.json, which stays byte-identical between reruns).
        #[arg(long)]
        stats_json: bool,
        /// Redo the tokenizer training and the conversion even when cached.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        codecs: Box<CodecArgs>,
    },
    /// Check Parquet files (or every file of an output directory) against their schema.txt and
    /// the row counts and codecs in parquet_report.json.
    Validate {
        /// Files or conversion output directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn validate_paths(paths: &[PathBuf]) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(ParquetSet::open(p)?.files(None, Split::All)?.paths);
        } else {
            files.push(p.clone());
        }
    }
    let mut failed = 0;
    for f in &files {
        match validate(f) {
            Ok(v) => {
                let codecs: Vec<String> =
                    v.codecs.iter().map(|(c, k)| format!("{c}={k}")).collect();
                println!(
                    "ok  {} ({} rows; {})",
                    f.display(),
                    v.rows,
                    codecs.join(", ")
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("FAIL {e}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} files failed validation", files.len());
    }
    Ok(())
}

/// `yunmin parquet convert` in the run root of `ctx`: the same cached stages as a script's
/// `to_parquet` (the tokenizer's `train_tokenizer`, then `to_parquet`); prints a summary.
fn convert_cli(
    ctx: &RunContext,
    inputs: &super::ingest::DocInputs,
    dir: &Path,
    tokenizer: Option<&Path>,
    train: Option<&crate::primitive::CliOptions<TokenizerConfig, TrainedTokenizerKeys>>,
    cfg: &ConvertConfig,
    stats_json: bool,
) -> anyhow::Result<()> {
    let ds = inputs.open(ctx.root(), cfg.seed)?;
    let dir = ctx.write_path(dir)?;
    let tok = match (tokenizer, train) {
        (Some(p), _) => Some(Tokenizer::load(p)?),
        (None, None) => None,
        (None, Some(opts)) => {
            let tcfg = opts.config(TokenizerConfig {
                seed: cfg.seed,
                ..Default::default()
            })?;
            let p = tokenizer_beside(&dir);
            let (t, cached) = yunmin_core::text::staged::train_staged(ctx, &ds, &tcfg, &p)?;
            let how = if cached { "reused" } else { "trained" };
            println!("{how} {} (vocabulary {})", p.display(), t.vocab_size());
            Some(t)
        }
    };
    let mut fresh = None;
    let (set, cached) = staged_with(ctx, &ds, &dir, cfg, tok.as_ref(), || {
        let r = convert(&ds, &dir, cfg, tok.as_ref())?;
        fresh = Some((r.seconds, r.peak_rss_mb));
        Ok(r)
    })?;
    let r = set.report();
    println!(
        "wrote {} files for {} domains to {}: {} rows, {} tokens, {} rejected ({} MB in, {} MB out){}",
        r.files.len(),
        r.domains.len(),
        dir.display(),
        r.rows_written,
        r.tokens_written,
        r.rejected,
        r.input_bytes >> 20,
        r.output_bytes >> 20,
        match fresh {
            Some((s, peak)) => format!(" in {s:.1}s, peak RSS {:.0} MB", peak.unwrap_or(0.0)),
            None => " (cached: dataset, options and tokenizer unchanged; --force reruns)".into(),
        }
    );
    if stats_json {
        let (seconds, peak) = fresh.unwrap_or((0.0, None));
        println!(
            "{}",
            serde_json::json!({ "seconds": seconds, "peak_rss_mb": peak, "cached": cached })
        );
    }
    if r.rejected > 0 {
        eprintln!(
            "warning: {} rows rejected {:?}; see {}",
            r.rejected,
            r.rejected_by_category,
            dir.join(&r.rejects_file).display()
        );
    }
    Ok(())
}

/// Runs `yunmin parquet …`.
pub fn run_cli(args: ParquetArgs) -> anyhow::Result<()> {
    match args.action {
        ParquetAction::Convert {
            inputs,
            out,
            dir,
            tokenizer,
            tokenizer_opts,
            no_tokens,
            stats_json,
            force,
            codecs,
        } => {
            let cfg = codec_config(&codecs)?;
            let ctx = RunContext::new(&out, cfg.seed, force)?;
            let res = convert_cli(
                &ctx,
                &inputs,
                &dir,
                tokenizer.as_deref(),
                (!no_tokens).then_some(&*tokenizer_opts),
                &cfg,
                stats_json,
            );
            ctx.finish(res.is_ok())?;
            res?;
        }
        ParquetAction::Validate { paths } => validate_paths(&paths)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Command, FromArgMatches};

    type Flags = crate::primitive::CliOptions<TokenizerConfig, TrainedTokenizerKeys>;

    fn cli(args: &[&str]) -> Result<TokenizerConfig, String> {
        let cmd = Flags::augment_args(Command::new("t").no_binary_name(true));
        let m = cmd.try_get_matches_from(args).map_err(|e| e.to_string())?;
        let o = Flags::from_arg_matches(&m).map_err(|e| e.to_string())?;
        o.config(TokenizerConfig::default())
            .map_err(|e| e.to_string())
    }

    /// The trained tokenizer's flags of `yunmin parquet convert` and the keys of Rhai's
    /// `to_parquet` are the same subset of the tokenizer's own options, with its defaults.
    #[test]
    fn trained_tokenizer_options_are_the_tokenizers_own() {
        assert_eq!(cli(&[]).unwrap(), TokenizerConfig::default());
        let c = cli(&[
            "--sample",
            "0.5",
            "--min-frequency",
            "3",
            "--vocab-size",
            "400",
        ])
        .unwrap();
        assert_eq!((c.sample, c.min_frequency, c.vocab_size), (0.5, 3, 400));
        assert!(cli(&["--seed", "3"]).unwrap_err().contains("--seed"));
        let mut m = Map::new();
        m.insert("sample".into(), Dynamic::from(0.5));
        m.insert("min_frequency".into(), Dynamic::from(3_i64));
        m.insert("vocab_size".into(), Dynamic::from(400_i64));
        let r: TokenizerConfig =
            crate::primitive::from_rhai_as("to_parquet", TokenizerConfig::default(), m).unwrap();
        assert_eq!(r, c);
        for k in trained_keys() {
            assert!(convert_keys().contains(k), "{k}");
        }
    }
}
