//! Rhai module `train`: token inputs (`tokens`), `pretrain` and `lora`, and the
//! `yunmin train pretrain|lora|bench` commands. Both faces call the same core functions with
//! the same config structs.

use super::ingest::DocSources;
use super::model::{Adapter, Model, resolve, under};
use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::primitive::CliOptions;
use crate::state::Host;
use clap::{Args, Subcommand};
use rhai::{Dynamic, Map};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yunmin_core::columnar::TokenFiles;
use yunmin_core::model::{LoadConfig, LoadedModel, load_adapter, parse_device};
use yunmin_core::train::staged::{AdapterStage, PretrainStage};
use yunmin_core::train::{
    LoraConfig, PretrainConfig, TokenCorpus, parquet_corpus, read_token_file, tokenize_dataset,
    train_lora,
};

/// A handle on token sequences of one domain (held natively, never copied into Rhai).
#[derive(Clone)]
pub struct Tokens(pub Arc<TokenCorpus>);

/// Rhai option keys of `lora`: [`LoraConfig`]'s and `domain`, which names a corpus given as a
/// path.
pub fn lora_keys() -> Vec<&'static str> {
    let mut k = crate::primitive::keys::<LoraConfig>();
    k.push("domain");
    k
}

/// Rhai option keys of `train_adapters`: [`LoraConfig`]'s less `model_dir` (each adapter sets
/// its own), where they run and the mixing adapter.
pub fn adapters_keys() -> Vec<&'static str> {
    let mut k = crate::primitive::keys::<LoraConfig>();
    k.retain(|k| *k != "model_dir");
    k.extend(["engine", "mixed"]);
    k
}

/// A [`PretrainConfig`] from a Rhai option map over the defaults, the seed defaulting to the run's.
pub fn pretrain_config(opts: Map, seed: u64) -> RhaiResult<PretrainConfig> {
    let base = PretrainConfig {
        seed,
        ..Default::default()
    };
    crate::primitive::from_rhai(base, opts)
}

/// A [`LoraConfig`] from a Rhai option map over the defaults, the seed defaulting to the run's
/// (`func` names the function in errors).
pub fn lora_config(func: &'static str, opts: Map, seed: u64) -> RhaiResult<LoraConfig> {
    let base = LoraConfig {
        seed,
        ..Default::default()
    };
    crate::primitive::from_rhai_as(func, base, opts)
}

/// The options of `T` with their defaults, for a function's documentation.
fn options_doc<T: yunmin_core::config::Primitive>(note: &str) -> String {
    format!(
        "Options (defaults{note}):\n{}",
        yunmin_core::config::describe::<T>()
    )
}

/// Token sequences from a Rhai value: Tokens, TokenFiles (Parquet token columns), a token file
/// path, or an array of id arrays; `name` renames the corpus (its domain).
pub fn tokens_of(host: &Host, src: Dynamic, name: Option<String>) -> RhaiResult<Arc<TokenCorpus>> {
    if let Some(f) = src.clone().try_cast::<TokenFiles>() {
        let docs = f.read_tokens().rhai()?;
        // `law:train` → `law`; every domain (`*:train`) → `all`.
        let own = match f.name.split(':').next().unwrap_or("") {
            "*" | "" => "all".to_string(),
            d => d.to_string(),
        };
        return Ok(Arc::new(TokenCorpus::new(name.unwrap_or(own), docs)));
    }
    if let Some(t) = src.clone().try_cast::<Tokens>() {
        return Ok(match name {
            Some(n) if n != t.0.name => Arc::new(TokenCorpus::new(n, t.0.docs.clone())),
            _ => t.0,
        });
    }
    if src.is_string() {
        let p = resolve(host, &src.into_string().unwrap_or_default())?;
        let docs = read_token_file(&p).rhai()?;
        let n = name.unwrap_or_else(|| {
            p.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "tokens".into())
        });
        return Ok(Arc::new(TokenCorpus::new(n, docs)));
    }
    if src.is_array() {
        let mut docs = Vec::new();
        for (i, d) in src.into_array().unwrap_or_default().into_iter().enumerate() {
            let ids = d
                .into_array()
                .ok()
                .and_then(|a| {
                    a.into_iter()
                        .map(|x| x.as_int().ok().and_then(|i| u32::try_from(i).ok()))
                        .collect::<Option<Vec<u32>>>()
                })
                .ok_or_else(|| {
                    msg_err(format!(
                        "tokens: element {i} must be an array of non-negative ints"
                    ))
                })?;
            docs.push(ids);
        }
        return Ok(Arc::new(TokenCorpus::new(
            name.unwrap_or_else(|| "tokens".into()),
            docs,
        )));
    }
    Err(msg_err(format!(
        "expected Tokens, TokenFiles, a path to a JSON/JSONL token file, or an array of id arrays; got {}",
        src.type_name()
    )))
}

/// One adapter of `train_adapters`: stage `lora_<name>`, output `models/lora_<name>`.
struct AdapterJob {
    name: String,
    /// The domain whose training split it learns; `None`: every domain's (the mixing adapter).
    domain: Option<String>,
    cfg: LoraConfig,
}

impl AdapterJob {
    /// Its cached stage, on `base` and the training data `data` (the Parquet directory).
    fn stage<'a>(&'a self, base: &'a Path, data: &'a [PathBuf]) -> AdapterStage<'a> {
        AdapterStage {
            name: &self.name,
            base,
            data,
            domain: self.domain.as_deref(),
            cfg: &self.cfg,
        }
    }
}

/// `train_adapters`: one LoRA adapter per domain (and optionally the data-mixing adapter),
/// each a cached stage `lora_<name>`; with engine "ray" the unfinished ones run side by side,
/// one `yunmin train lora --parquet …` task each. The stage keys do not depend on the engine.
fn train_adapters(
    h: &Host,
    base: &str,
    parquet: &str,
    domains: rhai::Array,
    opts: Map,
) -> RhaiResult<Map> {
    const F: &str = "train_adapters";
    let mut opts = opts;
    let ray = crate::ray::take_engine(F, &mut opts)?;
    let mixed = match opts.remove("mixed") {
        None => None,
        Some(v) => Some(v.try_cast::<Map>().ok_or_else(|| {
            msg_err(format!(
                "{F}: option `mixed` must be a map of options for the mixing adapter (e.g. #{{ steps: 240 }})"
            ))
        })?),
    };
    let per_adapter = |m: &Map| -> RhaiResult<()> {
        match ["model_dir", "domain"].iter().find(|k| m.contains_key(**k)) {
            Some(k) => Err(msg_err(format!(
                "{F}: option `{k}` is set by each adapter itself (models/lora_<domain>)"
            ))),
            None => Ok(()),
        }
    };
    per_adapter(&opts)?;
    let seed = h.ctx.seed();
    let cfg = lora_config(F, opts.clone(), seed)?;
    let base_dir = resolve(h, base)?;
    let pq_dir = resolve(h, parquet)?;
    let mut jobs: Vec<AdapterJob> = Vec::new();
    for d in domains {
        let d = d
            .into_string()
            .map_err(|t| msg_err(format!("{F}: `domains` must hold strings, got {t}")))?;
        yunmin_core::train::check_name(&d).rhai()?;
        if jobs.iter().any(|j| j.name == d) || (mixed.is_some() && d == "mixed") {
            return Err(msg_err(format!("{F}: adapter `lora_{d}` named twice")));
        }
        jobs.push(AdapterJob {
            cfg: LoraConfig {
                model_dir: Some(PathBuf::from(format!("models/lora_{d}"))),
                ..cfg.clone()
            },
            name: d.clone(),
            domain: Some(d),
        });
    }
    if let Some(m) = mixed {
        let mut all = opts;
        for (k, v) in m {
            all.insert(k, v);
        }
        per_adapter(&all)?;
        let mut cfg = lora_config("train_adapters: mixed", all, seed)?;
        cfg.model_dir = Some(PathBuf::from("models/lora_mixed"));
        jobs.push(AdapterJob {
            name: "mixed".into(),
            domain: None,
            cfg,
        });
    }
    let root = h.ctx.root().to_path_buf();
    // What every adapter trains on (its stage hashes it).
    let data = [pq_dir.clone()];
    let mut dirs = Vec::new();
    for j in &jobs {
        let out = j.cfg.model_dir.as_ref().expect("set above");
        dirs.push(h.ctx.write_path(out).rhai()?);
    }
    // `--fail-at lora` stops before training, and only when some adapter is not cached yet.
    if h.fails_at("lora") {
        for j in &jobs {
            if !j.stage(&base_dir, &data).is_cached(&h.ctx).rhai()? {
                return Err(msg_err(format!(
                    "lora: failing on purpose before training {} (--fail-at lora)",
                    j.stage(&base_dir, &data).stage()
                )));
            }
        }
    }
    if ray {
        let mut tasks = Vec::new();
        let mut configs = Vec::new();
        for j in &jobs {
            let st = j.stage(&base_dir, &data);
            let stage = st.stage();
            if st.is_cached(&h.ctx).rhai()? {
                continue;
            }
            let cfg_path = root.join(format!(".ray-{stage}.config.json"));
            let body = serde_json::to_vec_pretty(&yunmin_core::config::options_of(&j.cfg))
                .map_err(|e| msg_err(e.to_string()))?;
            yunmin_core::run::write_atomic(&cfg_path, &body).rhai()?;
            let mut args: Vec<String> = vec!["train".into(), "lora".into(), "--base".into()];
            args.push(base_dir.display().to_string());
            args.extend(["--parquet".into(), pq_dir.display().to_string()]);
            args.extend(["--domain".into(), j.name.clone()]);
            if j.domain.is_none() {
                args.push("--all-domains".into());
            }
            args.extend(["--out".into(), root.display().to_string()]);
            args.extend(["--config".into(), cfg_path.display().to_string()]);
            tasks.push(crate::ray::Task {
                started: root.join(format!("logs/train_{}.log", j.name)),
                output: root.join(j.cfg.model_dir.as_ref().expect("set above")),
                name: stage,
                args,
            });
            configs.push(cfg_path);
        }
        let r = crate::ray::run_tasks(F, &root, &tasks);
        for c in configs {
            let _ = std::fs::remove_file(c);
        }
        r.rhai()?;
    }
    let mut base_model: Option<LoadedModel> = None;
    let mut out = Map::new();
    for (j, dir) in jobs.iter().zip(dirs) {
        let (d, _) = j
            .stage(&base_dir, &data)
            .run(&h.ctx, &dir, || {
                if ray {
                    // Written by its task (complete: an adapter appears only by rename).
                    load_adapter(&dir)?;
                    return Ok(dir.clone());
                }
                if base_model.is_none() {
                    base_model = Some(LoadedModel::load_as(&base_dir, &LoadConfig::default())?);
                }
                let bm = base_model.as_ref().expect("loaded above");
                let corpus = parquet_corpus(&pq_dir, j.domain.as_deref(), &j.name)?;
                let r = train_lora(bm, &corpus, &j.cfg, &root)?;
                Ok(r.dir)
            })
            .rhai()?;
        out.insert(
            j.name.as_str().into(),
            Dynamic::from(d.display().to_string()),
        );
    }
    Ok(out)
}

fn stats_map(v: serde_json::Value) -> Map {
    rhai::serde::to_dynamic(v)
        .ok()
        .and_then(|d| d.try_cast::<Map>())
        .unwrap_or_default()
}

/// Registers the `train` module.
pub fn register(api: &mut Api, host: &Arc<Host>) {
    api.engine().register_type_with_name::<Tokens>("Tokens");
    api.engine().register_fn("to_string", |t: &mut Tokens| {
        format!(
            "Tokens({}: {} docs, {} tokens)",
            t.0.name,
            t.0.docs.len(),
            t.0.tokens()
        )
    });
    api.engine()
        .register_get("name", |t: &mut Tokens| t.0.name.clone());
    api.engine()
        .register_get("docs", |t: &mut Tokens| t.0.docs.len() as i64);
    api.engine()
        .register_get("count", |t: &mut Tokens| t.0.tokens() as i64);

    let h = host.clone();
    api.func(
        "tokens",
        &["path"],
        "Token sequences from a JSON file (array of id arrays) or JSONL (an id array, or an object with\n`tokens`/`input_ids`, per line); named after the file stem.",
        move |path: &str| tokens_of(&h, Dynamic::from(path.to_string()), None).map(Tokens),
    );
    let h = host.clone();
    api.func(
        "tokens",
        &["source", "name"],
        "Token sequences (a file path, an array of id arrays, or Tokens) under domain `name`.",
        move |src: Dynamic, name: &str| tokens_of(&h, src, Some(name.to_string())).map(Tokens),
    );
    let h = host.clone();
    api.func(
        "tokenize_dataset",
        &["dataset_dir", "tokenizer"],
        "Tokenizes a dataset directory (JSONL Document shards) with a tokenizer.json; returns a map\ndomain → Tokens.",
        move |dir: &str, tok: &str| {
            let ds = yunmin_core::ingest::Dataset::open(resolve(&h, dir)?).rhai()?;
            let corpora = tokenize_dataset(&ds, &resolve(&h, tok)?, None).rhai()?;
            let mut m = Map::new();
            for c in corpora {
                m.insert(c.name.clone().into(), Dynamic::from(Tokens(Arc::new(c))));
            }
            Ok::<_, crate::errors::RhaiError>(m)
        },
    );
    let h = host.clone();
    api.func(
        "pretrain",
        &["tokens", "opts"],
        &format!(
            "Pretrains a Llama base from scratch on `tokens` (Tokens, TokenFiles from Parquet, or a token\n\
             file path). Writes the checkpoint, logs/train_<name>.log and a summary.csv row; returns\n\
             the Model (its `stats` are in summary.csv). It is the cached stage `pretrain`, keyed on\n\
             the tokens' content, the tokenizer file and the options: a rerun with the same ones loads\n\
             the checkpoint instead (`--force` retrains; `--fail-at pretrain` fails before training,\n\
             not when cached). {}",
            options_doc::<PretrainConfig>("; `seed` defaults to the run's seed")
        ),
        move |src: Dynamic, opts: Map| {
            let cfg = pretrain_config(opts, h.ctx.seed())?;
            h.ctx.write_path(&cfg.model_dir).rhai()?;
            if let Some(t) = &cfg.tokenizer {
                h.ctx.read_path(t).rhai()?;
            }
            let corpus = tokens_of(&h, src, None)?;
            let stage = PretrainStage { tokens: &corpus, cfg: &cfg };
            if h.fails_at("pretrain") && !stage.is_cached(&h.ctx).rhai()? {
                return Err(msg_err("pretrain: failing on purpose before training (--fail-at pretrain)"));
            }
            let done = stage.run(&h.ctx).rhai()?;
            let m = match done.model {
                Some(m) => m,
                None => LoadedModel::load(&done.result.dir, &parse_device(&cfg.device).rhai()?).rhai()?,
            };
            Ok::<_, crate::errors::RhaiError>(Model(Arc::new(m)))
        },
    );
    let h = host.clone();
    api.func(
        "lora",
        &["base", "tokens", "opts"],
        &format!(
            "Trains a LoRA adapter for one domain on the frozen `base` (a Model or a checkpoint\n\
             directory). `tokens`: Tokens or TokenFiles (their name is the domain) or a file path (the\n\
             `domain` option names it). Writes the PEFT adapter, logs/train_<domain>.log and a\n\
             summary.csv row; returns the Adapter (`.stats` has the numbers). {}\n\
             - `domain`: the corpus's name when `tokens` is a path (default: the file stem)",
            options_doc::<LoraConfig>("; `seed` defaults to the run's seed")
        ),
        move |base: Dynamic, src: Dynamic, opts: Map| {
            // The base as a Model handle or a checkpoint directory (loaded on the CPU).
            let base: Model = if base.is_string() {
                let dir = resolve(&h, &base.into_string().unwrap_or_default())?;
                Model(Arc::new(LoadedModel::load_as(&dir, &LoadConfig::default()).rhai()?))
            } else {
                base.try_cast::<Model>().ok_or_else(|| {
                    msg_err("lora: `base` must be a Model or a checkpoint directory")
                })?
            };
            let mut opts = opts;
            let domain = match opts.remove("domain") {
                None => None,
                Some(v) => Some(v.into_string().map_err(|t| {
                    msg_err(format!("lora: option `domain` must be a string, got {t}"))
                })?),
            };
            let cfg = lora_config("lora", opts, h.ctx.seed())?;
            if let Some(out) = &cfg.model_dir {
                h.ctx.write_path(out).rhai()?;
            }
            let corpus = tokens_of(&h, src, domain)?;
            let r = train_lora(&base.0, &corpus, &cfg, h.ctx.root()).rhai()?;
            let file = load_adapter(&r.dir).rhai()?;
            Ok::<_, crate::errors::RhaiError>(Adapter { file: Arc::new(file), dir: r.dir.clone(), stats: stats_map(serde_json::to_value(&r).unwrap_or_default()) })
        },
    );
    let h = host.clone();
    api.func(
        "train_adapters",
        &["base", "parquet", "domains", "opts"],
        "Trains one LoRA adapter per domain of `domains` on the frozen base checkpoint directory `base`,\n\
         each on its training split of the Parquet directory `parquet` (as\n\
         `lora(base, open_parquet(parquet).domain(d), …)`), into `models/lora_<d>`; each is a cached stage\n\
         `lora_<d>`. Options: `lora`'s (not `out` or `domain`); `mixed`: a map of options over\n\
         the others (e.g. `#{ steps: 240 }`) to also train the data-mixing adapter `lora_mixed` on\n\
         every domain's training split; `engine`: \"local\" (default: one after another here) or\n\
         \"ray\" (the unfinished adapters side by side, one `yunmin train lora` Ray task each on\n\
         the cluster in `RAY_ADDRESS`, through `scripts/ray/yunmin_ray.py`; the adapters and stage keys\n\
         are the same). Returns a map name → adapter directory.",
        move |base: &str, parquet: &str, domains: rhai::Array, opts: Map| {
            train_adapters(&h, base, parquet, domains, opts)
        },
    );
}

/// Where training data comes from on the command line: one of a token file, documents
/// (`--dataset` or `--input`, tokenized with `--tokenizer`) or a Parquet directory.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("training data").required(true).args(["tokens", "dataset", "input", "parquet"])))]
pub struct TokenArgs {
    /// Token file: JSON array of id arrays, or JSONL (id array or {"tokens": [...]} per line).
    #[arg(long, conflicts_with_all = ["dataset", "input", "parquet"])]
    pub tokens: Option<PathBuf>,
    /// Documents to tokenize with --tokenizer: a dataset directory, or raw JSONL/Parquet
    /// inputs ingested first (a cached stage) into <out>/ingest/.
    #[command(flatten)]
    pub docs: DocSources,
    /// tokenizer.json (for --dataset/--input; for pretrain it is also copied into the
    /// checkpoint).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Parquet directory (`yunmin parquet convert`, a script's `to_parquet`): the training
    /// split of --domain, read as a script's `open_parquet(DIR).domain(d)` reads it.
    #[arg(long, conflicts_with_all = ["dataset", "input"])]
    pub parquet: Option<PathBuf>,
    /// With --parquet: every domain's training split (as `open_parquet(DIR).train()`), named
    /// --domain (default `all`).
    #[arg(long, requires = "parquet")]
    pub all_domains: bool,
    /// Domain name (default: the token file stem; with --dataset/--input or --parquet, which
    /// domain to use).
    #[arg(long)]
    pub domain: Option<String>,
    /// Run root, as for `yunmin ingest` and `yunmin dedup`: the checkpoint (`--model-dir`,
    /// relative to it), logs/ and summary.csv go under it (and ingested --input under
    /// ingest/).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// JSON file of options: an object with the same keys as the option flags (e.g.
    /// `{"hidden": 256, "steps": 500}`); flags given override it. An unknown key is an error.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `yunmin train …`.
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Pretrain a base model from scratch (writes models/base, logs/train_base.log, summary.csv).
    Pretrain {
        #[command(flatten)]
        data: TokenArgs,
        #[command(flatten)]
        opts: CliOptions<PretrainConfig>,
        /// Retrain even when the run root holds this base for the same tokens, tokenizer and
        /// options (it is the cached stage `pretrain`, as a script's `pretrain`).
        #[arg(long)]
        force: bool,
    },
    /// Train a LoRA adapter for one domain on a frozen base (writes models/lora_<domain>).
    Lora {
        /// Base checkpoint directory.
        #[arg(long)]
        base: PathBuf,
        #[command(flatten)]
        data: TokenArgs,
        #[command(flatten)]
        opts: CliOptions<LoraConfig>,
        /// Retrain even when the run root holds this adapter for the same base, data and
        /// options (it is the cached stage `lora_<domain>`, as in a script's `train_adapters`).
        #[arg(long)]
        force: bool,
    },
}

/// `yunmin train` arguments.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// What to train.
    #[command(subcommand)]
    pub command: TrainCommand,
}

/// The training corpus the flags name, and the paths its content comes from (what a cached
/// stage keys on).
/// `tokenizer_kept` says whether `--tokenizer` is used besides tokenizing documents (pretrain
/// copies it into the checkpoint); otherwise it is an error with token ids. The raw-input
/// flags (field mapping, `--endpoint-url`) are errors with `--tokens` and `--parquet`.
fn corpus(
    d: &TokenArgs,
    seed: u64,
    tokenizer_kept: bool,
) -> anyhow::Result<(TokenCorpus, Vec<PathBuf>)> {
    let ids = match (&d.tokens, &d.parquet) {
        (Some(_), _) => Some("--tokens reads token ids"),
        (None, Some(_)) => Some("--parquet reads token ids"),
        (None, None) => None,
    };
    if let Some(why) = ids {
        super::ingest::reject_flags(&d.docs.raw_input_flags(), why)?;
        if d.tokenizer.is_some() && !tokenizer_kept {
            anyhow::bail!(
                "--tokenizer does not apply here: {why}, already tokenized, and a LoRA adapter keeps its base's tokenizer; it is for --dataset/--input documents"
            );
        }
    }
    if let Some(t) = &d.tokens {
        let docs = read_token_file(t)?;
        let name = d.domain.clone().unwrap_or_else(|| {
            t.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default()
        });
        return Ok((TokenCorpus::new(name, docs), vec![t.clone()]));
    }
    if d.docs.given() {
        let tok = d.tokenizer.as_ref().ok_or_else(|| {
            anyhow::anyhow!("--dataset/--input: name the tokenizer.json with --tokenizer")
        })?;
        let ds = d.docs.open(&d.out, seed)?;
        let mut cs = tokenize_dataset(&ds, tok, d.domain.as_deref())?;
        if cs.len() != 1 {
            let names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
            anyhow::bail!(
                "the documents hold domains [{}]: pick one with --domain",
                names.join(", ")
            );
        }
        return Ok((cs.remove(0), vec![ds.dir().to_path_buf(), tok.clone()]));
    }
    if let Some(p) = &d.parquet {
        let c = if d.all_domains {
            parquet_corpus(p, None, d.domain.as_deref().unwrap_or("all"))?
        } else {
            let dom = d.domain.as_deref().ok_or_else(|| {
                anyhow::anyhow!("--parquet: name the domain with --domain (or give --all-domains)")
            })?;
            parquet_corpus(p, Some(dom), dom)?
        };
        return Ok((c, vec![p.clone()]));
    }
    anyhow::bail!(
        "give --tokens FILE, --dataset DIR / --input PATH with --tokenizer FILE, or --parquet DIR"
    )
}

/// Runs `yunmin train pretrain|lora` and prints a one-line summary.
pub fn run_cli(a: TrainArgs) -> anyhow::Result<()> {
    match a.command {
        TrainCommand::Pretrain { data, opts, force } => {
            let mut cfg = opts.with_file(data.config.as_deref())?;
            if let Some(t) = &data.tokenizer {
                cfg.tokenizer = Some(std::path::absolute(t)?);
            }
            let (c, _) = corpus(&data, cfg.seed, true)?;
            // No manifest is written, as for `train lora`.
            let ctx = yunmin_core::run::RunContext::new(&data.out, cfg.seed, force)?;
            let done = PretrainStage {
                tokens: &c,
                cfg: &cfg,
            }
            .run(&ctx)?;
            let r = &done.result;
            if done.model.is_none() {
                println!(
                    "pretrain: cached (tokens, tokenizer and options unchanged; --force retrains) → {}",
                    r.dir.display()
                );
                return Ok(());
            }
            println!(
                "pretrained {} params: {} steps, {} tokens, held-out loss {:.4} (ppl {:.2}, from {:.2}), {:.0} tokens/s, {:.1}s → {}",
                r.params,
                r.stats.steps,
                r.stats.tokens,
                r.stats.heldout.mean(),
                r.stats.heldout.perplexity(),
                r.initial_heldout.perplexity(),
                r.stats.tokens_per_s,
                r.stats.wall_s,
                r.dir.display()
            );
        }
        TrainCommand::Lora {
            base,
            data,
            opts,
            force,
        } => {
            let cfg = opts.with_file(data.config.as_deref())?;
            let (c, sources) = corpus(&data, cfg.seed, false)?;
            let base = under(Path::new("."), &base);
            // No manifest is written: Ray tasks run this in their driver's run root.
            let ctx = yunmin_core::run::RunContext::new(&data.out, cfg.seed, force)?;
            let stage = AdapterStage {
                name: &c.name,
                base: &base,
                data: &sources,
                domain: data.domain.as_deref(),
                cfg: &cfg,
            };
            let dir = ctx.write_path(cfg.dir_for(&c.name))?;
            let mut fresh = None;
            let (dir, _) = stage.run(&ctx, &dir, || {
                let bm = LoadedModel::load(&base, &parse_device(&cfg.device)?)?;
                let r = train_lora(&bm, &c, &cfg, ctx.root())?;
                let d = r.dir.clone();
                fresh = Some(r);
                Ok(d)
            })?;
            let Some(r) = fresh else {
                println!(
                    "lora {}: cached (base, data and options unchanged; --force retrains) → {}",
                    c.name,
                    dir.display()
                );
                return Ok(());
            };
            println!(
                "lora {}: {} steps, {} tokens, held-out loss {:.4} (ppl {:.2}; base {:.2}), {:.0} tokens/s, {:.1}s → {}",
                r.domain,
                r.stats.steps,
                r.stats.tokens,
                r.stats.heldout.mean(),
                r.stats.heldout.perplexity(),
                r.base_heldout.perplexity(),
                r.stats.tokens_per_s,
                r.stats.wall_s,
                r.dir.display()
            );
        }
    }
    Ok(())
}
