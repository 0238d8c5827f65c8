//! Rhai module `eval` (evaluation-run part): `evaluate` (every model on every domain's held-out
//! documents, through `yunmin_core::eval::runner`), `model_perplexity` and `to_model`; and the
//! `yunmin metrics perplexity` command.

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::modules::columnar::ParquetHandle;
use crate::modules::merge::Merged;
use crate::modules::model::Model;
use crate::modules::train::tokens_of;
use crate::options::Options;
use crate::state::Host;
use clap::Args;
use rhai::{Dynamic, Map};
use std::path::PathBuf;
use std::sync::Arc;
use yunmin_core::columnar::{ParquetSet, Split};
use yunmin_core::eval::perplexity::PerplexityAccumulator;
use yunmin_core::eval::runner::{DomainDocs, EvalConfig, add_document_nll, evaluate};
use yunmin_core::model::{LoadedModel, load_adapter, parse_device};
use yunmin_core::train::read_token_file;

pub(crate) const EVAL_KEYS: &[&str] = &[
    "seq_len",
    "batch",
    "max_docs",
    "prompts",
    "prompt_tokens",
    "max_new_tokens",
    "bleu_tokenize",
    "rouge_tokenizer",
    "domains",
    "offset",
];

/// Option keys of `model_perplexity` (only what scoring one model on one corpus uses).
pub(crate) const PERPLEXITY_KEYS: &[&str] = &["seq_len", "batch", "max_docs", "offset"];

/// Options that are not [`EvalConfig`] fields.
struct Extra {
    domains: Option<Vec<String>>,
    offset: usize,
}

fn eval_config(
    func: &'static str,
    opts: Map,
    keys: &'static [&'static str],
) -> RhaiResult<(EvalConfig, Extra)> {
    let o = Options::new(func, opts, keys)?;
    let extra = Extra {
        domains: o
            .has("domains")
            .then(|| o.str_list("domains", &[]))
            .transpose()?,
        offset: o.usize("offset", 0)?,
    };
    let mut json = o.to_json();
    if let serde_json::Value::Object(m) = &mut json {
        m.remove("domains");
        m.remove("offset");
    }
    let cfg = super::eval::overlay(&EvalConfig::default(), json)
        .map_err(|e| msg_err(format!("{func}: {e}")))?;
    Ok((cfg, extra))
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

/// Held-out documents: a Parquet set (every domain's held-out split), or a map domain →
/// Tokens / TokenFiles / token file.
fn heldout_of(host: &Host, v: Dynamic) -> RhaiResult<Vec<DomainDocs>> {
    if let Some(p) = v.clone().try_cast::<ParquetHandle>() {
        return p
            .0
            .domains()
            .iter()
            .map(|d| {
                Ok(DomainDocs {
                    domain: d.clone(),
                    docs: p.0.read_tokens(Some(d), Split::Heldout).rhai()?,
                })
            })
            .collect();
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
         predicted token's NLL summed exactly. Options: `seq_len` (128), `batch` (16), `offset`\n\
         (0: documents to skip, e.g. to keep a validation slice apart from the test slice),\n\
         `max_docs` (0 = all after `offset`). Returns `#{ domain, docs, tokens, nll_sum, perplexity }`.",
        move |model: Dynamic, tokens: Dynamic, opts: Map| {
            let lm = model_of("model_perplexity", model)?;
            let c = tokens_of(&h, tokens, None)?;
            let (cfg, extra) = eval_config("model_perplexity", opts, PERPLEXITY_KEYS)?;
            let docs = cfg.scored_docs(&c.docs, extra.offset);
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
        "Evaluates every model of `models` (a map name → Model or Merged) on every domain of\n\
         `heldout` (a Parquet set: its held-out split; or a map domain → Tokens / TokenFiles):\n\
         exact perplexity over each document, and greedy continuations of prompts (a document's\n\
         first `prompt_tokens` tokens) scored against the real continuation with corpus BLEU and\n\
         mean ROUGE F. Options (defaults): `seq_len` (128), `batch` (16), `max_docs` (0 = all),\n\
         `prompts` (8 per domain), `prompt_tokens` (16), `max_new_tokens` (24), `bleu_tokenize`\n\
         (\"char\"), `rouge_tokenizer` (\"hangul\"), `domains` (all). Returns `#{ metrics: Table\n\
         (model, domain, docs, tokens, perplexity, prompts, bleu, rouge1, rouge2, rougeL,\n\
         rougeLsum; an `overall` row per model), generations: Table (model, domain, doc, prompt,\n\
         reference, generation, sentence_bleu, rougeL) }`.",
        move |models: Map, heldout: Dynamic, opts: Map| {
            let (cfg, extra) = eval_config("evaluate", opts, EVAL_KEYS)?;
            if extra.offset != 0 {
                return Err(msg_err(
                    "evaluate: `offset` is an option of model_perplexity only",
                ));
            }
            let domains = extra.domains;
            let mut data = heldout_of(&h, heldout)?;
            if let Some(keep) = &domains {
                for d in keep {
                    if !data.iter().any(|x| &x.domain == d) {
                        return Err(msg_err(format!(
                            "evaluate: domain `{d}` is not in the held-out data (has: {})",
                            data.iter()
                                .map(|x| x.domain.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                }
                data.retain(|x| keep.contains(&x.domain));
            }
            let loaded: Vec<(String, Arc<LoadedModel>)> = models
                .into_iter()
                .map(|(k, v)| {
                    Ok((
                        k.to_string(),
                        model_of(&format!("evaluate: models.{k}"), v)?,
                    ))
                })
                .collect::<RhaiResult<_>>()?;
            let refs: Vec<(String, &LoadedModel)> = loaded
                .iter()
                .map(|(k, m)| (k.clone(), m.as_ref()))
                .collect();
            let t = evaluate(&refs, &data, &cfg).rhai()?;
            let mut out = Map::new();
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
    /// Only these domains (comma-separated; --parquet only).
    #[arg(long, value_delimiter = ',')]
    pub domains: Vec<String>,
    /// Longest chunk the model sees; longer documents are cut into chunks overlapping by one token.
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    /// Chunks per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Score only the first N documents of each domain (0 = all).
    #[arg(long, default_value_t = 0)]
    pub max_docs: usize,
    /// Write the table (domain, tokens, nll_sum, mean_nll, perplexity) to this .csv or .parquet.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `yunmin metrics perplexity`.
pub fn run_perplexity(a: PerplexityArgs) -> anyhow::Result<()> {
    let dev = parse_device("cpu")?;
    let mut lm = LoadedModel::load(&a.model, &dev)?;
    if let Some(dir) = &a.adapter {
        lm.model = load_adapter(dir)?.fold_into(lm.model)?;
    }
    let mut sets: Vec<(String, Vec<Vec<u32>>)> = Vec::new();
    if let Some(p) = &a.parquet {
        let set = ParquetSet::open(p)?;
        for d in set.domains() {
            if a.domains.is_empty() || a.domains.contains(d) {
                sets.push((d.clone(), set.read_tokens(Some(d), Split::Heldout)?));
            }
        }
        if sets.is_empty() {
            anyhow::bail!(
                "none of the domains {:?} is in {} (has: {})",
                a.domains,
                p.display(),
                set.domains().join(", ")
            );
        }
    } else if let Some(t) = &a.tokens {
        let name = t
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "tokens".into());
        sets.push((name, read_token_file(t)?));
    }
    let cfg = EvalConfig {
        seq_len: a.seq_len,
        batch: a.batch,
        max_docs: a.max_docs,
        ..EvalConfig::default()
    };
    let mut acc = PerplexityAccumulator::new();
    for (domain, docs) in &sets {
        let docs = cfg.scored_docs(docs, 0);
        add_document_nll(
            &mut acc,
            &lm.model,
            domain,
            docs,
            lm.config.first_eos(),
            &cfg,
        )?;
    }
    let t = acc.table()?;
    if let Some(p) = &a.out {
        super::eval::write_table(&t, p)?;
    }
    println!("{t}");
    Ok(())
}
