//! Rhai module `text`: `train_tokenizer`, `load_tokenizer` and the `Tokenizer` type; CLI
//! `yunmin tokenizer train|encode`.

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::state::Host;
use clap::{Args, Subcommand};
use rhai::{Array, Dynamic, Map};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yunmin_core::ingest::Dataset;
use yunmin_core::run::RunContext;
use yunmin_core::text::{Tokenizer, TokenizerConfig};

/// A tokenizer in a script (Rhai type `Tokenizer`).
#[derive(Clone, Debug)]
pub struct TokenizerHandle(pub Arc<Tokenizer>);

/// Where a trained tokenizer is saved, relative to the run root, unless told otherwise (Rhai
/// `file`, CLI `--file`).
pub const TOKENIZER_FILE: &str = "data/tokenizer.json";

/// Option keys of `train_tokenizer`: the tokenizer's options and `file`.
pub fn train_keys() -> Vec<&'static str> {
    let mut k = crate::primitive::keys::<TokenizerConfig>();
    k.push("file");
    k
}

/// Tokenizer options from a Rhai map over the defaults (the sample's seed defaulting to the
/// run's); `file` is taken out first.
pub fn tokenizer_config(mut opts: Map, seed: u64) -> RhaiResult<(TokenizerConfig, Option<String>)> {
    let out = match opts.remove("file") {
        Some(v) => Some(v.into_string().map_err(|t| {
            crate::errors::msg_err(format!("train_tokenizer: `file` must be a string, got {t}"))
        })?),
        None => None,
    };
    let base = TokenizerConfig {
        seed,
        ..Default::default()
    };
    Ok((crate::primitive::from_rhai(base, opts)?, out))
}

/// Trains (or reuses, when the cached stage's key is unchanged) a tokenizer saved at `out`.
pub fn train_cached(
    ctx: &RunContext,
    dataset: &Dataset,
    cfg: &TokenizerConfig,
    out: &Path,
) -> yunmin_core::Result<Tokenizer> {
    Ok(yunmin_core::text::staged::train_staged(ctx, dataset, cfg, out)?.0)
}

fn train(host: &Host, dataset: &Dataset, opts: Map) -> RhaiResult<TokenizerHandle> {
    let (cfg, out) = tokenizer_config(opts, host.ctx.seed())?;
    let out = host
        .ctx
        .write_path(out.as_deref().unwrap_or(TOKENIZER_FILE))
        .rhai()?;
    Ok(TokenizerHandle(Arc::new(
        train_cached(&host.ctx, dataset, &cfg, &out).rhai()?,
    )))
}

fn open_dataset(host: &Host, path: &str) -> RhaiResult<Dataset> {
    Dataset::open(host.ctx.input_path(path).rhai()?).rhai()
}

/// Registers the `text` module.
pub fn register(api: &mut Api, host: &Arc<Host>) {
    api.engine()
        .register_type_with_name::<TokenizerHandle>("Tokenizer");
    api.engine()
        .register_get("vocab_size", |t: &mut TokenizerHandle| {
            t.0.vocab_size() as i64
        });
    api.engine()
        .register_get("path", |t: &mut TokenizerHandle| {
            t.0.path()
                .map(|p| Dynamic::from(p.to_string_lossy().to_string()))
                .unwrap_or(Dynamic::UNIT)
        });
    api.engine()
        .register_fn("to_string", |t: &mut TokenizerHandle| format!("{:?}", t.0));
    let train_doc = format!(
        "Trains a byte-level BPE tokenizer on the dataset's texts and saves it at `file` (relative\n\
         to the run root, default \"{TOKENIZER_FILE}\"). Special tokens: `<s>` = 0, `</s>` = 1,\n\
         `<pad>` = 2, `<unk>` = 3. A cached stage: rerunning with the same dataset and options\n\
         reuses the file. Options (defaults; `seed`: the run's):\n{}",
        yunmin_core::config::describe::<TokenizerConfig>()
    );
    let train_doc = train_doc.as_str();
    let h = host.clone();
    api.func(
        "train_tokenizer",
        &["dataset", "opts"],
        train_doc,
        move |ds: Dataset, opts: Map| train(&h, &ds, opts),
    );
    let h = host.clone();
    api.func(
        "train_tokenizer",
        &["dataset_dir", "opts"],
        train_doc,
        move |ds: &str, opts: Map| {
            let ds = open_dataset(&h, ds)?;
            train(&h, &ds, opts)
        },
    );
    let h = host.clone();
    api.func(
        "load_tokenizer",
        &["path"],
        "Loads a `tokenizer.json` (run-root relative paths first, then as given).",
        move |path: &str| {
            let p = h.ctx.input_path(path).rhai()?;
            Ok::<_, crate::errors::RhaiError>(TokenizerHandle(Arc::new(
                Tokenizer::load(&p).rhai()?,
            )))
        },
    );
    api.func(
        "encode",
        &["tokenizer", "text"],
        "Token ids of `text` (no special tokens).",
        |t: &mut TokenizerHandle, s: &str| {
            Ok::<_, crate::errors::RhaiError>(
                t.0.encode(s)
                    .rhai()?
                    .into_iter()
                    .map(|i| Dynamic::from_int(i as i64))
                    .collect::<Array>(),
            )
        },
    );
    api.func(
        "decode",
        &["tokenizer", "ids"],
        "The text of token ids (special tokens skipped).",
        |t: &mut TokenizerHandle, ids: Array| {
            let ids: Vec<u32> = ids
                .into_iter()
                .map(|x| {
                    x.as_int()
                        .ok()
                        .and_then(|i| u32::try_from(i).ok())
                        .ok_or_else(|| msg_err("decode: ids must be non-negative integers"))
                })
                .collect::<RhaiResult<_>>()?;
            t.0.decode(&ids).rhai()
        },
    );
}

/// `yunmin tokenizer …`.
#[derive(Debug, Args)]
pub struct TokenizerArgs {
    /// The action.
    #[command(subcommand)]
    pub action: TokenizerAction,
}

/// Tokenizer actions.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum TokenizerAction {
    /// Train a byte-level BPE tokenizer on a dataset and write tokenizer.json: the cached stage
    /// `train_tokenizer` of a script (a rerun with the same dataset and options reuses it).
    Train {
        #[command(flatten)]
        inputs: super::ingest::DocInputs,
        /// Run root, as for the other phase commands: the tokenizer (--file) and the stage
        /// cache go under it, raw inputs are ingested into <out>/ingest/.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// The tokenizer file, relative to the run root.
        #[arg(long, default_value = TOKENIZER_FILE)]
        file: PathBuf,
        /// Retrain even when cached.
        #[arg(long)]
        force: bool,
        /// Tokenizer options (the same as Rhai's `train_tokenizer` options).
        #[command(flatten)]
        opts: crate::primitive::CliOptions<TokenizerConfig>,
    },
    /// Print the token ids of a text, one line, space separated.
    Encode {
        /// The tokenizer.json.
        #[arg(long)]
        tokenizer: PathBuf,
        /// The text.
        text: String,
    },
}

/// Runs `yunmin tokenizer …`.
pub fn run_cli(args: TokenizerArgs) -> anyhow::Result<()> {
    match args.action {
        TokenizerAction::Train {
            inputs,
            out,
            file,
            force,
            opts,
        } => {
            let cfg = opts.config(TokenizerConfig::default())?;
            let ctx = RunContext::new(&out, cfg.seed, force)?;
            let res = (|| -> anyhow::Result<(PathBuf, Tokenizer, bool)> {
                let ds = inputs.open(ctx.root(), cfg.seed)?;
                let p = ctx.write_path(&file)?;
                let (t, cached) = yunmin_core::text::staged::train_staged(&ctx, &ds, &cfg, &p)?;
                Ok((p, t, cached))
            })();
            ctx.finish(res.is_ok())?;
            let (p, t, cached) = res?;
            println!(
                "{} {} (vocabulary {}){}",
                if cached { "reused" } else { "wrote" },
                p.display(),
                t.vocab_size(),
                if cached {
                    " (cached: dataset and options unchanged; --force retrains)"
                } else {
                    ""
                }
            );
        }
        TokenizerAction::Encode { tokenizer, text } => {
            let t = Tokenizer::load(&tokenizer)?;
            let ids: Vec<String> = t.encode(&text)?.iter().map(u32::to_string).collect();
            println!("{}", ids.join(" "));
        }
    }
    Ok(())
}
