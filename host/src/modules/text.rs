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

/// Option keys of `train_tokenizer`: the tokenizer's options and `out`.
pub fn train_keys() -> Vec<&'static str> {
    let mut k = crate::primitive::keys::<TokenizerConfig>();
    k.push("out");
    k
}

/// Tokenizer options from a Rhai map over the defaults (the sample's seed defaulting to the
/// run's); `out` is taken out first.
pub fn tokenizer_config(mut opts: Map, seed: u64) -> RhaiResult<(TokenizerConfig, Option<String>)> {
    let out = match opts.remove("out") {
        Some(v) => Some(v.into_string().map_err(|t| {
            crate::errors::msg_err(format!("train_tokenizer: `out` must be a string, got {t}"))
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
        .write_path(out.as_deref().unwrap_or("data/tokenizer.json"))
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
    let train_doc = "Trains a byte-level BPE tokenizer on the dataset's texts and saves `tokenizer.json`.\n\
        Options: `vocab_size` (8000), `min_frequency` (2), `sample` (1.0: fraction of documents, by seeded id hash),\n\
        `max_docs` (0 = all), `seed` (the run's), `max_chars` (100000 per document), `out` (\"data/tokenizer.json\").\n\
        Special tokens: `<s>` = 0, `</s>` = 1, `<pad>` = 2, `<unk>` = 3. A cached stage: rerunning with the same\n\
        dataset and options reuses the file.";
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
pub enum TokenizerAction {
    /// Train a byte-level BPE tokenizer on a dataset and write tokenizer.json.
    Train {
        /// The dataset directory (part-*.jsonl shards of documents).
        #[arg(long)]
        dataset: PathBuf,
        /// Where to write tokenizer.json.
        #[arg(long, default_value = "tokenizer.json")]
        out: PathBuf,
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
        TokenizerAction::Train { dataset, out, opts } => {
            let cfg = opts.config(TokenizerConfig::default())?;
            let ds = Dataset::open(&dataset)?;
            let mut t = Tokenizer::train(&ds, &cfg)?;
            t.save(&out)?;
            println!("wrote {} (vocabulary {})", out.display(), t.vocab_size());
        }
        TokenizerAction::Encode { tokenizer, text } => {
            let t = Tokenizer::load(&tokenizer)?;
            let ids: Vec<String> = t.encode(&text)?.iter().map(u32::to_string).collect();
            println!("{}", ids.join(" "));
        }
    }
    Ok(())
}
