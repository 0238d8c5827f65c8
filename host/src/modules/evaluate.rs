//! Rhai module `eval` (evaluation-run part): `evaluate` (every model on every domain's held-out
//! documents, through `yunmin_core::eval::runner`), `model_perplexity` and `to_model`; and the
//! `yunmin metrics perplexity` command.

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::modules::columnar::ParquetHandle;
use crate::modules::merge::Merged;
use crate::modules::model::{Model, resolve};
use crate::modules::train::tokens_of;
use crate::primitive::from_rhai_subset;
use crate::state::Host;
use clap::Args;
use rhai::{Dynamic, Map};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yunmin_core::columnar::ParquetSet;
use yunmin_core::eval::perplexity::PerplexityAccumulator;
use yunmin_core::eval::runner::{
    DomainDocs, EvalConfig, EvalTables, add_document_nll, evaluate, parquet_heldout, select_domains,
};
use yunmin_core::model::{LoadConfig, LoadedModel, load_adapter, parse_device};
use yunmin_core::train::read_token_file;

/// Rhai option keys of `evaluate`: [`EvalConfig`]'s and where it runs.
pub(crate) fn evaluate_keys() -> Vec<&'static str> {
    let mut k = crate::primitive::keys::<EvalConfig>();
    k.push("engine");
    k
}

/// The [`EvalConfig`] options that scoring one model on one corpus uses (`model_perplexity`).
#[derive(Debug, Clone, Copy)]
pub struct PerplexityKeys;

impl crate::primitive::OptionSet for PerplexityKeys {
    const KEYS: Option<&'static [&'static str]> = Some(&["seq_len", "batch", "max_docs", "offset"]);
}

/// The [`EvalConfig`] options of `yunmin metrics perplexity`: [`PerplexityKeys`] and the
/// domains of a Parquet set to score.
#[derive(Debug, Clone, Copy)]
pub struct PerplexityCliKeys;

impl crate::primitive::OptionSet for PerplexityCliKeys {
    const KEYS: Option<&'static [&'static str]> =
        Some(&["seq_len", "batch", "max_docs", "offset", "domains"]);
}

/// Rhai option keys of `model_perplexity`.
pub(crate) fn perplexity_keys() -> Vec<&'static str> {
    use crate::primitive::OptionSet;
    PerplexityKeys::KEYS.unwrap_or_default().to_vec()
}

/// A Model or Merged value as a loaded model.
fn model_of(what: &str, v: Dynamic) -> RhaiResult<Arc<LoadedModel>> {
    if let Some(m) = v.clone().try_cast::<Model>() {
        return Ok(m.0);
    }
    if let Some(m) = v.clone().try_cast::<Merged>() {
        let dev = parse_device("cpu").rhai()?;
        return Ok(Arc::new(m.weights.to_model(&dev).rhai()?));
    }
    Err(msg_err(format!(
        "{what}: expected a Model or a Merged, got {}",
        v.type_name()
    )))
}

/// A model of `evaluate`'s map: loaded already, or directories to load it from.
enum ModelSpec {
    Loaded(Arc<LoadedModel>),
    /// A checkpoint directory, with a PEFT adapter directory to fold in.
    Dirs {
        base: PathBuf,
        adapter: Option<PathBuf>,
    },
}

/// A Model, a Merged, a checkpoint directory, or `#{ base: DIR, adapter: DIR }`.
fn model_spec(host: &Host, what: &str, v: Dynamic) -> RhaiResult<ModelSpec> {
    if v.is_string() {
        let dir = resolve(host, &v.into_string().unwrap_or_default())?;
        return Ok(ModelSpec::Dirs {
            base: dir,
            adapter: None,
        });
    }
    if let Some(m) = v.clone().try_cast::<Map>() {
        let mut base = None;
        let mut adapter = None;
        for (k, x) in m {
            let dir = x
                .into_string()
                .map_err(|t| msg_err(format!("{what}.{k}: expected a directory, got {t}")))?;
            match k.as_str() {
                "base" => base = Some(resolve(host, &dir)?),
                "adapter" => adapter = Some(resolve(host, &dir)?),
                other => {
                    return Err(msg_err(format!(
                        "{what}: unknown key `{other}` (expected `base` and optionally `adapter`)"
                    )));
                }
            }
        }
        let base = base.ok_or_else(|| msg_err(format!("{what}: `base` is missing")))?;
        return Ok(ModelSpec::Dirs { base, adapter });
    }
    Ok(ModelSpec::Loaded(model_of(what, v)?))
}

/// A checkpoint directory on the CPU, with `adapter` folded in (as `with_adapter` does).
pub fn load_with_adapter(base: &Path, adapter: Option<&Path>) -> yunmin_core::Result<LoadedModel> {
    let mut lm = LoadedModel::load_as(base, &LoadConfig::default())?;
    if let Some(a) = adapter {
        lm.model = load_adapter(a)?.fold_into(lm.model)?;
        lm.dir = None;
    }
    Ok(lm)
}

/// `evaluate` with engine "ray": one `yunmin metrics evaluate` task per model, each writing
/// its tables into a part directory; the parts joined in the map's (name) order.
fn evaluate_on_ray(
    host: &Host,
    models: &[(String, ModelSpec)],
    parquet: &Path,
    cfg: &EvalConfig,
) -> yunmin_core::Result<EvalTables> {
    use yunmin_core::Error;
    if models.is_empty() {
        return Err(Error::invalid("evaluation: no models or no domains"));
    }
    let root = host.ctx.root().to_path_buf();
    let parts = root.join(format!(".evaluate-{}", std::process::id()));
    std::fs::create_dir_all(&parts).map_err(|e| Error::io("create directory", &parts, e))?;
    let cfg_path = parts.join("config.json");
    let body = serde_json::to_vec_pretty(&yunmin_core::config::options_of(cfg))
        .map_err(|e| Error::invalid(e.to_string()))?;
    yunmin_core::run::write_atomic(&cfg_path, &body)?;
    let mut tasks = Vec::new();
    for (i, (name, spec)) in models.iter().enumerate() {
        let ModelSpec::Dirs { base, adapter } = spec else {
            return Err(Error::invalid(format!(
                "evaluate with engine \"ray\": models.{name} must be a checkpoint directory or \
                 #{{ base: DIR, adapter: DIR }} (a task loads it), not a loaded model"
            )));
        };
        let out = parts.join(format!("{i:04}"));
        let mut args: Vec<String> = vec!["metrics".into(), "evaluate".into()];
        args.extend(["--name".into(), name.clone()]);
        args.extend(["--model".into(), base.display().to_string()]);
        if let Some(a) = adapter {
            args.extend(["--adapter".into(), a.display().to_string()]);
        }
        args.extend(["--parquet".into(), parquet.display().to_string()]);
        args.extend(["--config".into(), cfg_path.display().to_string()]);
        args.extend(["--dir".into(), out.display().to_string()]);
        tasks.push(crate::ray::Task {
            name: format!("eval_{name}"),
            args,
            started: out.clone(),
            output: out,
        });
    }
    let r = crate::ray::run_tasks("evaluate", &root, &tasks).and_then(|()| {
        let tables = (0..models.len())
            .map(|i| EvalTables::load(&parts.join(format!("{i:04}"))))
            .collect::<yunmin_core::Result<Vec<_>>>()?;
        EvalTables::join(&tables)
    });
    let _ = std::fs::remove_dir_all(&parts);
    r
}

/// Held-out documents: a Parquet set (every domain's held-out split), or a map domain →
/// Tokens / TokenFiles / token file.
fn heldout_of(host: &Host, v: Dynamic) -> RhaiResult<Vec<DomainDocs>> {
    if let Some(p) = v.clone().try_cast::<ParquetHandle>() {
        return parquet_heldout(&p.0).rhai();
    }
    if let Some(m) = v.clone().try_cast::<Map>() {
        return m
            .into_iter()
            .map(|(d, t)| {
                let c = tokens_of(host, t, Some(d.to_string()))?;
                Ok(DomainDocs {
                    domain: d.to_string(),
                    docs: c.docs.clone(),
                })
            })
            .collect();
    }
    Err(msg_err(format!(
        "evaluate: held-out data must be a Parquet set or a map domain → tokens, got {}",
        v.type_name()
    )))
}

/// Registers the evaluation-run functions of the `eval` module.
pub fn register(api: &mut Api, host: &Arc<Host>) {
    api.func(
        "to_model",
        &["merged"],
        "The merged weights as a runnable Model (built in memory on the CPU, with the base's\n\
         config and tokenizer), for `generate` and `evaluate`.",
        |m: &mut Merged| {
            let dev = parse_device("cpu").rhai()?;
            Ok::<_, crate::errors::RhaiError>(Model(Arc::new(m.weights.to_model(&dev).rhai()?)))
        },
    );
    let h = host.clone();
    api.func(
        "model_perplexity",
        &["model", "tokens", "opts"],
        "Perplexity of a Model (or Merged) on token sequences (Tokens, TokenFiles, a token file):\n\
         each document plus EOS in chunks of at most `seq_len` + 1 tokens overlapping by one, every\n\
         predicted token's NLL summed exactly. Returns `#{ domain, docs, tokens, nll_sum, perplexity }`.\n\
         Options (defaults): `seq_len` (128), `batch` (16), `max_docs` (0 = all after `offset`) and\n\
         `offset` (0: documents to skip, e.g. to keep a validation slice apart from the test slice),\n\
         as `evaluate`'s.",
        move |model: Dynamic, tokens: Dynamic, opts: Map| {
            let lm = model_of("model_perplexity", model)?;
            let c = tokens_of(&h, tokens, None)?;
            let cfg = from_rhai_subset("model_perplexity", EvalConfig::default(), opts, &perplexity_keys())?;
            let docs = cfg.scored_docs(&c.docs);
            let mut acc = PerplexityAccumulator::new();
            let eos = lm.config.first_eos();
            add_document_nll(&mut acc, &lm.model, &c.name, docs, eos, &cfg).rhai()?;
            let r = acc.domain(&c.name).cloned().unwrap_or_default();
            let mut out = Map::new();
            out.insert("domain".into(), Dynamic::from(c.name.clone()));
            out.insert("docs".into(), Dynamic::from_int(docs.len() as i64));
            out.insert("tokens".into(), Dynamic::from_int(r.tokens() as i64));
            out.insert("nll_sum".into(), Dynamic::from_float(r.nll()));
            out.insert("perplexity".into(), Dynamic::from_float(r.perplexity()));
            Ok::<_, crate::errors::RhaiError>(out)
        },
    );
    let h = host.clone();
    api.func(
        "evaluate",
        &["models", "heldout", "opts"],
        &format!(
            "Evaluates every model of `models` (a map name → Model, Merged, checkpoint directory, or\n\
             `#{{ base: DIR, adapter: DIR }}`: the adapter folded into the base) on every domain of\n\
             `heldout` (a Parquet set: its held-out split; or a map domain → Tokens / TokenFiles):\n\
             exact perplexity over each document, and greedy continuations of prompts (a document's\n\
             first `prompt_tokens` tokens) scored against the real continuation with corpus BLEU and\n\
             mean ROUGE F. Returns `#{{ metrics: Table (model, domain, docs, tokens, perplexity, prompts,\n\
             bleu, rouge1, rouge2, rougeL, rougeLsum; an `overall` row per model), generations: Table\n\
             (model, domain, doc, prompt, reference, generation, sentence_bleu, rougeL), summary: Table\n\
             (model, domains, perplexity, macro_geometric_perplexity, macro_arithmetic_perplexity: one\n\
             row per model; `perplexity` is token-weighted, the macros weigh every domain the same) }}`.\n\
             Options (defaults):\n{}\n\
             - `engine` (\"local\"): \"ray\" runs one `yunmin metrics evaluate` Ray task per model on the\n  \
             cluster in `RAY_ADDRESS` (models given as directories, `heldout` a Parquet set; the\n  \
             tables are the same)",
            yunmin_core::config::describe::<EvalConfig>()
        ),
        move |models: Map, heldout: Dynamic, opts: Map| {
            let mut opts = opts;
            let ray = crate::ray::take_engine("evaluate", &mut opts)?;
            let cfg = from_rhai_subset("evaluate", EvalConfig::default(), opts, &evaluate_keys())?;
            let specs: Vec<(String, ModelSpec)> = models
                .into_iter()
                .map(|(k, v)| Ok((k.to_string(), model_spec(&h, &format!("evaluate: models.{k}"), v)?)))
                .collect::<RhaiResult<_>>()?;
            let t = if ray {
                let pq = heldout.clone().try_cast::<ParquetHandle>().ok_or_else(|| {
                    msg_err("evaluate with engine \"ray\": the held-out data must be a Parquet set (open_parquet)")
                })?;
                cfg.validate().rhai()?;
                evaluate_on_ray(&h, &specs, pq.0.dir(), &cfg).rhai()?
            } else {
                let data = heldout_of(&h, heldout)?;
                let loaded: Vec<(String, Arc<LoadedModel>)> = specs
                    .into_iter()
                    .map(|(k, spec)| {
                        Ok((k, match spec {
                            ModelSpec::Loaded(m) => m,
                            ModelSpec::Dirs { base, adapter } => {
                                Arc::new(load_with_adapter(&base, adapter.as_deref()).rhai()?)
                            }
                        }))
                    })
                    .collect::<RhaiResult<_>>()?;
                let refs: Vec<(String, &LoadedModel)> = loaded
                    .iter()
                    .map(|(k, m)| (k.clone(), m.as_ref()))
                    .collect();
                evaluate(&refs, &data, &cfg).rhai()?
            };
            let mut out = Map::new();
            out.insert("summary".into(), Dynamic::from(t.summary().rhai()?));
            out.insert("metrics".into(), Dynamic::from(t.metrics));
            out.insert("generations".into(), Dynamic::from(t.generations));
            Ok::<_, crate::errors::RhaiError>(out)
        },
    );
}

/// `yunmin metrics perplexity`: exact perplexity (every predicted token of each document, NLLs
/// summed exactly) per domain and overall.
#[derive(Debug, Args)]
pub struct PerplexityArgs {
    /// Hugging Face Llama checkpoint directory (config.json + model.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// PEFT LoRA adapter directory to fold into the model first.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// A Parquet directory written by `yunmin parquet convert`: every domain's held-out split.
    #[arg(long, conflicts_with = "tokens", required_unless_present = "tokens")]
    pub parquet: Option<PathBuf>,
    /// A token file instead (JSON array of id arrays, or JSONL: one id array per line).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    #[command(flatten)]
    pub opts: crate::primitive::CliOptions<EvalConfig, PerplexityCliKeys>,
    /// Write the table (domain, tokens, nll_sum, mean_nll, perplexity) to this .csv or .parquet.
    #[arg(long)]
    pub table: Option<PathBuf>,
}

/// Runs `yunmin metrics perplexity`.
pub fn run_perplexity(a: PerplexityArgs) -> anyhow::Result<()> {
    let lm = load_with_adapter(&a.model, a.adapter.as_deref())?;
    let cfg = a.opts.config(EvalConfig::default())?;
    let sets = if let Some(p) = &a.parquet {
        parquet_heldout(&ParquetSet::open(p)?)?
    } else if let Some(t) = &a.tokens {
        let name = t
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "tokens".into());
        vec![DomainDocs {
            domain: name,
            docs: read_token_file(t)?,
        }]
    } else {
        Vec::new()
    };
    let mut acc = PerplexityAccumulator::new();
    for d in select_domains(&sets, &cfg.domains)? {
        add_document_nll(
            &mut acc,
            &lm.model,
            &d.domain,
            cfg.scored_docs(&d.docs),
            lm.config.first_eos(),
            &cfg,
        )?;
    }
    let t = acc.table()?;
    if let Some(p) = &a.table {
        super::eval::write_table(&t, p)?;
    }
    println!("{t}");
    Ok(())
}

/// `yunmin metrics evaluate`: one model on every domain's held-out split of a Parquet directory,
/// as the script function `evaluate` scores it (one task of `evaluate` with engine "ray").
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The model's name in the tables.
    #[arg(long)]
    pub name: String,
    /// Hugging Face Llama checkpoint directory.
    #[arg(long)]
    pub model: PathBuf,
    /// PEFT LoRA adapter directory to fold into the model first.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Parquet directory (`to_parquet`): every domain's held-out split.
    #[arg(long)]
    pub parquet: PathBuf,
    /// JSON file of options: an object with the same keys as the option flags; flags given
    /// override it. An unknown key is an error.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub opts: crate::primitive::CliOptions<EvalConfig>,
    /// Run root, as for the other commands: the tables go to <out>/<dir>.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Directory for metrics.parquet and generations.parquet, relative to the run root
    /// (appears when complete).
    #[arg(long, default_value = "results/eval")]
    pub dir: PathBuf,
}

/// Runs `yunmin metrics evaluate`.
pub fn run_evaluate(a: EvaluateArgs) -> anyhow::Result<()> {
    let cfg = a.opts.with_file(a.config.as_deref())?;
    let data = parquet_heldout(&ParquetSet::open(&a.parquet)?)?;
    let lm = load_with_adapter(&a.model, a.adapter.as_deref())?;
    let t = evaluate(&[(a.name.clone(), &lm)], &data, &cfg)?;
    let dir = t.save(&a.out.join(&a.dir))?;
    println!(
        "evaluated {}: {} metric rows, {} generations → {}",
        a.name,
        t.metrics.height(),
        t.generations.height(),
        dir.display()
    );
    Ok(())
}
