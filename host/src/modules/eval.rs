//! Rhai module `eval` (metrics part) and the `yunmin metrics` subcommand: sacreBLEU-compatible
//! BLEU, rouge-score-compatible ROUGE and the perplexity accumulator. Both faces build the same
//! core config structs (`BleuConfig`, `RougeConfig`) and call the same core functions.

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::state::Host;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rhai::{Array, Dynamic, Map};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use yunmin_core::eval::bleu::{self, BleuConfig, BleuScore};
use yunmin_core::eval::perplexity::PerplexityAccumulator;
use yunmin_core::eval::rouge::{self, RougeConfig, RougeResult};
use yunmin_core::report::Table;

fn bleu_config(func: &'static str, base: BleuConfig, opts: Map) -> RhaiResult<BleuConfig> {
    crate::primitive::from_rhai(base, opts).map_err(|e| msg_err(format!("{func}: {e}")))
}

fn rouge_config(func: &'static str, opts: Map) -> RhaiResult<RougeConfig> {
    crate::primitive::from_rhai(RougeConfig::default(), opts)
        .map_err(|e| msg_err(format!("{func}: {e}")))
}

fn strings(func: &str, what: &str, a: Array) -> RhaiResult<Vec<String>> {
    a.into_iter()
        .enumerate()
        .map(|(i, x)| {
            x.into_string()
                .map_err(|t| msg_err(format!("{func}: {what}[{i}] must be a string, got {t}")))
        })
        .collect()
}

/// Reference streams from Rhai: an array of strings (one reference per hypothesis) or an
/// array of arrays (the references of each hypothesis, equally many for all).
fn ref_streams(func: &str, refs: Array, n: usize) -> RhaiResult<Vec<Vec<String>>> {
    if refs.iter().all(|r| r.is_string()) {
        return Ok(vec![strings(func, "refs", refs)?]);
    }
    let mut per_item = Vec::with_capacity(refs.len());
    for (i, r) in refs.into_iter().enumerate() {
        let a = r.into_array().map_err(|t| {
            msg_err(format!(
                "{func}: refs[{i}] must be a string or an array of strings, got {t}"
            ))
        })?;
        per_item.push(strings(func, &format!("refs[{i}]"), a)?);
    }
    let k = per_item.first().map_or(1, Vec::len);
    if let Some((i, r)) = per_item.iter().enumerate().find(|(_, r)| r.len() != k) {
        return Err(msg_err(format!(
            "{func}: refs[{i}] has {} references but refs[0] has {k}; give every hypothesis equally many",
            r.len()
        )));
    }
    if per_item.len() != n {
        return Err(msg_err(format!(
            "{func}: {n} hypotheses but {} reference lists",
            per_item.len()
        )));
    }
    Ok((0..k)
        .map(|j| per_item.iter().map(|r| r[j].clone()).collect())
        .collect())
}

fn to_map<T: Serialize>(v: &T) -> RhaiResult<Dynamic> {
    rhai::serde::to_dynamic(v)
}

fn rouge_map(r: &RougeResult) -> RhaiResult<Map> {
    let mut m = Map::new();
    m.insert("tokenizer".into(), r.tokenizer.as_str().into());
    m.insert(
        "types".into(),
        r.types
            .iter()
            .map(|t| Dynamic::from(t.to_string()))
            .collect::<Array>()
            .into(),
    );
    for (t, s) in r.types.iter().zip(&r.mean) {
        m.insert(t.to_string().into(), to_map(s)?);
    }
    m.insert("table".into(), Dynamic::from(r.table().rhai()?));
    Ok(m)
}

/// Handle to a [`PerplexityAccumulator`] shared by clones.
#[derive(Clone)]
pub struct Perplexity(Arc<Mutex<PerplexityAccumulator>>);

impl Perplexity {
    fn with<T>(&self, f: impl FnOnce(&mut PerplexityAccumulator) -> T) -> T {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
}

/// Registers the metric functions of the `eval` module.
pub fn register(api: &mut Api, _host: &Arc<Host>) {
    api.func(
        "bleu",
        &["hyps", "refs", "opts"],
        "Corpus BLEU, identical to sacreBLEU 2.x `corpus_bleu`. `refs`: one string per hypothesis, or one\n\
         array of references per hypothesis. Options (defaults): `tokenize` (\"13a\"; \"char\", \"none\"),\n\
         `lowercase` (false), `smooth_method` (\"exp\"; \"floor\", \"add-k\", \"none\"), `smooth_value` (method\n\
         default), `max_ngram_order` (4, at most 4), `effective_order` (false).\n\
         Returns `#{ score, counts, totals, precisions, bp, sys_len, ref_len, ratio, signature }`.",
        |hyps: Array, refs: Array, opts: Map| {
            let cfg = bleu_config("bleu", BleuConfig::default(), opts)?;
            let h = strings("bleu", "hyps", hyps)?;
            let r = ref_streams("bleu", refs, h.len())?;
            to_map(&bleu::corpus_bleu(&h, &r, &cfg).rhai()?)
        },
    );
    api.func(
        "bleu",
        &["hyps", "refs"],
        "Corpus BLEU with sacreBLEU's defaults (`13a`, exp smoothing).",
        |hyps: Array, refs: Array| {
            let h = strings("bleu", "hyps", hyps)?;
            let r = ref_streams("bleu", refs, h.len())?;
            to_map(&bleu::corpus_bleu(&h, &r, &BleuConfig::default()).rhai()?)
        },
    );
    let sentence = |hyp: &str, refs: Dynamic, opts: Map| -> RhaiResult<Dynamic> {
        let cfg = bleu_config("sentence_bleu", BleuConfig::sentence(), opts)?;
        let refs: Vec<String> = if refs.is_string() {
            vec![refs.into_string().unwrap_or_default()]
        } else {
            let a = refs.into_array().map_err(|t| {
                msg_err(format!(
                    "sentence_bleu: refs must be a string or an array of strings, got {t}"
                ))
            })?;
            strings("sentence_bleu", "refs", a)?
        };
        let r: Vec<&str> = refs.iter().map(String::as_str).collect();
        to_map(&bleu::sentence_bleu(hyp, &r, &cfg).rhai()?)
    };
    api.func(
        "sentence_bleu",
        &["hyp", "refs", "opts"],
        "Sentence BLEU as sacreBLEU's `sentence_bleu` (effective order on by default). `refs`: a string or\n\
         an array of strings. Options as `bleu`. Returns the same map as `bleu`.",
        sentence,
    );
    api.func(
        "sentence_bleu",
        &["hyp", "refs"],
        "Sentence BLEU with sacreBLEU's `sentence_bleu` defaults.",
        move |hyp: &str, refs: Dynamic| sentence(hyp, refs, Map::new()),
    );
    api.func(
        "sentence_bleu_table",
        &["hyps", "refs", "opts"],
        "Sentence BLEU of every hypothesis (parallel) as a Table: `index, bleu, bp, sys_len, ref_len,\n\
         precision_1…4`. Options as `sentence_bleu`.",
        |hyps: Array, refs: Array, opts: Map| {
            let cfg = bleu_config("sentence_bleu_table", BleuConfig::sentence(), opts)?;
            let h = strings("sentence_bleu_table", "hyps", hyps)?;
            let r = ref_streams("sentence_bleu_table", refs, h.len())?;
            let s = bleu::sentence_bleu_all(&h, &r, &cfg).rhai()?;
            bleu::sentence_bleu_table(&s).rhai()
        },
    );
    api.func(
        "rouge",
        &["hyps", "refs", "opts"],
        "ROUGE as Google's rouge-score `RougeScorer` (best reference by F when several). `refs` as in\n\
         `bleu`. Options (defaults): `tokenizer` (\"hangul\": lowercased letter/digit runs, keeps Korean;\n\
         \"rouge\": rouge-score's own, deletes Hangul; \"whitespace\", \"char\", \"jamo\"), `types`\n\
         ([\"rouge1\", \"rouge2\", \"rougeL\", \"rougeLsum\"]; rouge1…rouge9), `use_stemmer` (false only).\n\
         Returns `#{ tokenizer, types, rouge1: #{precision, recall, fmeasure} (means), …, table }` where\n\
         `table` holds the per-item scores.",
        |hyps: Array, refs: Array, opts: Map| {
            let cfg = rouge_config("rouge", opts)?;
            let h = strings("rouge", "hyps", hyps)?;
            let r = ref_streams("rouge", refs, h.len())?;
            rouge_map(&rouge::rouge(&h, &r, &cfg).rhai()?)
        },
    );
    api.func(
        "rouge",
        &["hyps", "refs"],
        "ROUGE 1/2/L/Lsum with the Hangul-preserving tokenizer.",
        |hyps: Array, refs: Array| {
            let h = strings("rouge", "hyps", hyps)?;
            let r = ref_streams("rouge", refs, h.len())?;
            rouge_map(&rouge::rouge(&h, &r, &RougeConfig::default()).rhai()?)
        },
    );
    api.func(
        "rouge_pair",
        &["hyp", "ref", "opts"],
        "ROUGE of one hypothesis against one reference: `#{ rouge1: #{precision, recall, fmeasure}, … }`.\n\
         Options as `rouge`.",
        |hyp: &str, reference: &str, opts: Map| {
            let cfg = rouge_config("rouge_pair", opts)?;
            let mut m = Map::new();
            for (t, s) in cfg.types.iter().zip(rouge::rouge_pair(reference, hyp, &cfg)) {
                m.insert(t.to_string().into(), to_map(&s)?);
            }
            Ok::<_, crate::errors::RhaiError>(m)
        },
    );

    api.engine()
        .register_type_with_name::<Perplexity>("Perplexity");
    api.func(
        "perplexity",
        &[],
        "A new perplexity accumulator: feed it token NLL sums per domain, read exp(mean NLL) per domain\n\
         and overall. Sums are exact (order-independent).",
        || Perplexity(Arc::new(Mutex::new(PerplexityAccumulator::new()))),
    );
    api.func(
        "add",
        &["ppl", "domain", "nll_sum", "n_tokens"],
        "Adds `n_tokens` predicted tokens whose natural-log NLLs sum to `nll_sum`.",
        |p: &mut Perplexity, domain: &str, nll: f64, n: i64| {
            let n = u64::try_from(n)
                .map_err(|_| msg_err(format!("add: n_tokens must be ≥ 0, got {n}")))?;
            p.with(|a| a.add(domain, nll, n)).rhai()
        },
    );
    api.func(
        "add_tokens",
        &["ppl", "domain", "nlls"],
        "Adds per-token NLLs (an array of numbers).",
        |p: &mut Perplexity, domain: &str, nlls: Array| {
            let v: Vec<f64> = nlls
                .into_iter()
                .enumerate()
                .map(|(i, x)| {
                    x.as_float()
                        .or_else(|_| x.as_int().map(|i| i as f64))
                        .map_err(|_| msg_err(format!("add_tokens: nlls[{i}] must be a number")))
                })
                .collect::<RhaiResult<_>>()?;
            p.with(|a| a.add_tokens(domain, &v)).rhai()
        },
    );
    api.func(
        "add_all",
        &["ppl", "other"],
        "Adds every sum of `other` into `ppl` (two accumulators of the same model, e.g. from\n\
         two halves of the data, become one). (`merge` is for models only.)",
        |p: &mut Perplexity, other: Perplexity| {
            let o = other.with(|a| a.clone());
            p.with(|a| a.merge(&o));
        },
    );
    api.func(
        "value",
        &["ppl", "domain"],
        "Perplexity of one domain (\"overall\" for the corpus).",
        |p: &mut Perplexity, domain: &str| {
            p.with(|a| {
                if domain == yunmin_core::eval::perplexity::OVERALL {
                    Ok(a.overall().perplexity())
                } else {
                    a.domain(domain).map(|d| d.perplexity()).ok_or_else(|| {
                        msg_err(format!(
                            "perplexity: no domain `{domain}` (domains: {})",
                            a.domains().join(", ")
                        ))
                    })
                }
            })
        },
    );
    api.func(
        "table",
        &["ppl"],
        "Per-domain rows and an `overall` row: `domain, tokens, nll_sum, mean_nll, perplexity`.",
        |p: &mut Perplexity| p.with(|a| a.table()).rhai(),
    );
}

/// `yunmin metrics …`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// The metric.
    #[command(subcommand)]
    pub command: MetricsCommand,
}

/// Metric subcommands.
#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// BLEU as sacreBLEU 2.x computes it (corpus by default; --sentence for per-line scores).
    Bleu(BleuArgs),
    /// ROUGE-1/2/L/Lsum as rouge-score computes it (per line, with means).
    Rouge(RougeArgs),
    /// Perplexity of a checkpoint (optionally with a LoRA adapter) on held-out token data.
    Perplexity(super::evaluate::PerplexityArgs),
    /// One model on every domain's held-out Parquet split, as the script's `evaluate` scores it
    /// (metrics.parquet and generations.parquet in --out).
    Evaluate(super::evaluate::EvaluateArgs),
}

/// Inputs shared by the metric subcommands.
#[derive(Debug, Args)]
pub struct PairArgs {
    /// Hypotheses: one per line (a `.jsonl` file: one JSON string, or object with `text`, per line).
    #[arg(long)]
    pub hyp: PathBuf,
    /// References, same format and length as --hyp; repeat for several references per line.
    #[arg(long = "ref", required = true)]
    pub refs: Vec<PathBuf>,
    /// Write per-line scores to this table (.csv or .parquet).
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `yunmin metrics bleu`.
#[derive(Debug, Args)]
pub struct BleuArgs {
    /// Inputs and outputs.
    #[command(flatten)]
    pub io: PairArgs,
    /// BLEU's options (the same as Rhai's `bleu` options).
    #[command(flatten)]
    pub opts: crate::primitive::CliOptions<BleuConfig>,
    /// Sentence BLEU of every line (sacreBLEU's sentence_bleu); --out gets the table.
    #[arg(long)]
    pub sentence: bool,
}

/// `yunmin metrics rouge`.
#[derive(Debug, Args)]
pub struct RougeArgs {
    /// Inputs and outputs.
    #[command(flatten)]
    pub io: PairArgs,
    /// ROUGE's options (the same as Rhai's `rouge` options).
    #[command(flatten)]
    pub opts: crate::primitive::CliOptions<RougeConfig>,
}

/// Lines of a hypothesis/reference file (`.jsonl`: one JSON string or `{text}` object per line).
fn read_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let s = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "jsonl") {
        return s
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                let v: serde_json::Value = serde_json::from_str(l)
                    .with_context(|| format!("{}: line {}: not JSON", path.display(), i + 1))?;
                match v {
                    serde_json::Value::String(t) => Ok(t),
                    serde_json::Value::Object(ref m)
                        if m.get("text").is_some_and(|t| t.is_string()) =>
                    {
                        Ok(m["text"].as_str().unwrap_or_default().to_string())
                    }
                    _ => bail!(
                        "{}: line {}: expected a JSON string or an object with a `text` string",
                        path.display(),
                        i + 1
                    ),
                }
            })
            .collect();
    }
    Ok(s.lines().map(str::to_string).collect())
}

fn read_pairs(io: &PairArgs) -> anyhow::Result<(Vec<String>, Vec<Vec<String>>)> {
    let hyps = read_lines(&io.hyp)?;
    let refs = io
        .refs
        .iter()
        .map(|p| read_lines(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (p, r) in io.refs.iter().zip(&refs) {
        if r.len() != hyps.len() {
            bail!(
                "{} has {} lines but {} has {}",
                io.hyp.display(),
                hyps.len(),
                p.display(),
                r.len()
            );
        }
    }
    Ok((hyps, refs))
}

/// Writes a table as Parquet (`.parquet`) or CSV, and says so on stderr.
pub(crate) fn write_table(t: &Table, path: &Path) -> anyhow::Result<()> {
    if path.extension().is_some_and(|e| e == "parquet") {
        t.write_parquet(path)?
    } else {
        t.write_csv(path)?
    }
    eprintln!("wrote {} ({} rows)", path.display(), t.height());
    Ok(())
}

fn print_bleu(s: &BleuScore, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(s)?);
    } else {
        println!("{}", s.format());
    }
    Ok(())
}

/// Runs `yunmin metrics …`.
pub fn run_cli(args: MetricsArgs) -> anyhow::Result<()> {
    match args.command {
        MetricsCommand::Bleu(a) => {
            // Effective order defaults to on for sentence BLEU, as in sacreBLEU.
            let cfg = a.opts.config(BleuConfig {
                effective_order: a.sentence,
                ..Default::default()
            })?;
            let (hyps, refs) = read_pairs(&a.io)?;
            if a.sentence {
                let scores = bleu::sentence_bleu_all(&hyps, &refs, &cfg)?;
                let table = bleu::sentence_bleu_table(&scores)?;
                if let Some(p) = &a.io.table {
                    write_table(&table, p)?;
                }
                if a.io.json {
                    println!("{}", serde_json::to_string(&scores)?);
                } else {
                    println!("{table}");
                }
            } else {
                let s = bleu::corpus_bleu(&hyps, &refs, &cfg)?;
                if let Some(p) = &a.io.table {
                    let per = bleu::sentence_bleu_all(
                        &hyps,
                        &refs,
                        &BleuConfig {
                            effective_order: true,
                            ..cfg.clone()
                        },
                    )?;
                    write_table(&bleu::sentence_bleu_table(&per)?, p)?;
                }
                print_bleu(&s, a.io.json)?;
            }
        }
        MetricsCommand::Rouge(a) => {
            let cfg = a.opts.config(RougeConfig::default())?;
            let (hyps, refs) = read_pairs(&a.io)?;
            let r = rouge::rouge(&hyps, &refs, &cfg)?;
            if let Some(p) = &a.io.table {
                write_table(&r.table()?, p)?;
            }
            if a.io.json {
                println!(
                    "{}",
                    serde_json::to_string(
                        &serde_json::json!({"tokenizer": r.tokenizer, "types": r.types, "mean": r.mean, "items": r.items.len()})
                    )?
                );
            } else {
                println!(
                    "ROUGE (tokenizer {}, {} pairs, mean over pairs)\n{}",
                    r.tokenizer.as_str(),
                    r.items.len(),
                    r.mean_table()?
                );
            }
        }
        MetricsCommand::Perplexity(a) => super::evaluate::run_perplexity(a)?,
        MetricsCommand::Evaluate(a) => super::evaluate::run_evaluate(a)?,
    }
    Ok(())
}
