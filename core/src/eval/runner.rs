//! The evaluation runner: every model on every domain's held-out documents.
//!
//! - **Perplexity**: each document (followed by EOS when the model has one) is cut into chunks of
//!   at most `seq_len + 1` tokens that overlap by one token, so every token after the first is
//!   predicted exactly once; the per-token NLLs are summed exactly ([`PerplexityAccumulator`]).
//! - **Continuations**: the first `prompts` documents with enough tokens give a prompt (their
//!   first `prompt_tokens` tokens) and a reference (the next `max_new_tokens` tokens, decoded);
//!   each model continues the prompt greedily and the decoded continuation is scored against
//!   the reference with corpus BLEU and mean ROUGE F-measures.
//!
//! The result is two tables: one row per model × domain (plus an `overall` row per model), and
//! every generation with its sentence scores.

use super::EvalError;
use super::bleu::{BleuConfig, BleuTokenize, corpus_bleu, sentence_bleu};
use super::perplexity::{NllSum, OVERALL, PerplexityAccumulator};
use super::rouge::{RougeConfig, RougeTokenizer, RougeType, rouge};
use crate::Result;
use crate::model::{GenerateConfig, Llama, LoadedModel, generate};
use crate::report::Table;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Settings of an evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Longest chunk the model sees when scoring perplexity (default 128).
    pub seq_len: usize,
    /// Chunks per forward pass (default 16).
    pub batch: usize,
    /// Documents per domain scored for perplexity, the first ones (default 0 = all).
    pub max_docs: usize,
    /// Prompts per domain (default 8).
    pub prompts: usize,
    /// Tokens of a document that form its prompt (default 16).
    pub prompt_tokens: usize,
    /// Tokens generated per prompt, and the reference length (default 24).
    pub max_new_tokens: usize,
    /// BLEU tokenizer (default `char`: Korean has no reliable word boundaries for 13a).
    pub bleu_tokenize: BleuTokenize,
    /// ROUGE tokenizer (default `hangul`).
    pub rouge_tokenizer: RougeTokenizer,
    /// Documents per domain skipped before those scored and prompted (default 0).
    pub offset: usize,
    /// Only these domains (default empty: every domain of the data).
    pub domains: Vec<String>,
}

impl crate::config::Primitive for EvalConfig {
    const NAME: &'static str = "evaluate";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[
            opt(
                "seq_len",
                "longest chunk the model sees when scoring perplexity (longer documents are cut into chunks overlapping by one token)",
            ),
            opt("batch", "chunks per forward pass"),
            opt(
                "max_docs",
                "documents per domain scored for perplexity, the first ones (0: all)",
            ),
            opt("prompts", "prompts per domain"),
            opt("prompt_tokens", "tokens of a document that form its prompt"),
            opt(
                "max_new_tokens",
                "tokens generated per prompt, and the reference length",
            ),
            opt("bleu_tokenize", "BLEU tokenizer: char, 13a or none"),
            opt(
                "rouge_tokenizer",
                "ROUGE tokenizer: hangul, jamo, char, whitespace or rouge",
            ),
            opt(
                "offset",
                "documents per domain skipped before those scored and prompted (e.g. to keep a validation slice apart from the test slice)",
            ),
            opt(
                "domains",
                "only these domains (empty: every domain; one the data lacks is an error)",
            ),
        ]
    };
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            seq_len: 128,
            batch: 16,
            max_docs: 0,
            prompts: 8,
            prompt_tokens: 16,
            max_new_tokens: 24,
            bleu_tokenize: BleuTokenize::Char,
            rouge_tokenizer: RougeTokenizer::Hangul,
            offset: 0,
            domains: Vec::new(),
        }
    }
}

impl EvalConfig {
    /// The documents scored for perplexity: `max_docs` of them (0 = all) after skipping
    /// `offset`.
    pub fn scored_docs<'a>(&self, docs: &'a [Vec<u32>]) -> &'a [Vec<u32>] {
        let start = self.offset.min(docs.len());
        let end = if self.max_docs == 0 {
            docs.len()
        } else {
            (start + self.max_docs).min(docs.len())
        };
        &docs[start..end]
    }

    /// Checks the settings: `seq_len`, `batch` and `prompt_tokens` must be positive.
    pub fn validate(&self) -> Result<()> {
        if self.seq_len == 0 || self.batch == 0 || self.prompt_tokens == 0 {
            return Err(EvalError::Config(
                "evaluation: seq_len, batch and prompt_tokens must be > 0".into(),
            )
            .into());
        }
        Ok(())
    }
}

/// Held-out token sequences of one domain.
#[derive(Debug, Clone)]
pub struct DomainDocs {
    /// Domain name.
    pub domain: String,
    /// One token sequence per document.
    pub docs: Vec<Vec<u32>>,
}

/// Every domain's held-out split of a Parquet directory, in the set's domain order.
pub fn parquet_heldout(set: &crate::columnar::ParquetSet) -> Result<Vec<DomainDocs>> {
    set.domains()
        .iter()
        .map(|d| {
            Ok(DomainDocs {
                domain: d.clone(),
                docs: set.read_tokens(Some(d), crate::columnar::Split::Heldout)?,
            })
        })
        .collect()
}

/// The domains of `data` that `keep` names, in `data`'s order (all when `keep` is empty); a
/// domain of `keep` that `data` lacks is an error naming it.
pub fn select_domains<'a>(data: &'a [DomainDocs], keep: &[String]) -> Result<Vec<&'a DomainDocs>> {
    for d in keep {
        if !data.iter().any(|x| &x.domain == d) {
            return Err(EvalError::Config(format!(
                "evaluate: domain `{d}` is not in the held-out data (has: {})",
                data.iter()
                    .map(|x| x.domain.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into());
        }
    }
    Ok(data
        .iter()
        .filter(|x| keep.is_empty() || keep.contains(&x.domain))
        .collect())
}

/// One prompt: a document's beginning and its real continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// Domain of the document.
    pub domain: String,
    /// Index of the document in its domain's list.
    pub doc: usize,
    /// Prompt token ids.
    pub ids: Vec<u32>,
    /// Reference continuation token ids.
    pub reference: Vec<u32>,
}

/// The prompts of a domain: the first `cfg.prompts` documents with at least
/// `prompt_tokens + 1` tokens; the reference is at most `max_new_tokens` tokens.
pub fn make_prompts(d: &DomainDocs, cfg: &EvalConfig) -> Vec<Prompt> {
    d.docs
        .iter()
        .enumerate()
        .skip(cfg.offset)
        .filter(|(_, t)| t.len() > cfg.prompt_tokens)
        .take(cfg.prompts)
        .map(|(i, t)| {
            let end = (cfg.prompt_tokens + cfg.max_new_tokens).min(t.len());
            Prompt {
                domain: d.domain.clone(),
                doc: i,
                ids: t[..cfg.prompt_tokens].to_vec(),
                reference: t[cfg.prompt_tokens..end].to_vec(),
            }
        })
        .collect()
}

/// Chunks of `doc` of at most `seq_len + 1` tokens overlapping by one, so that every token but
/// the first is a target exactly once. Documents shorter than 2 tokens give none.
pub fn chunks(doc: &[u32], seq_len: usize) -> Vec<&[u32]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start + 1 < doc.len() {
        let end = (start + seq_len + 1).min(doc.len());
        out.push(&doc[start..end]);
        start = end - 1;
    }
    out
}

/// Exact NLL of `docs` under `model`, added to `acc` under `domain`: every document (followed
/// by `eos` when given) chunked by [`chunks`], chunks of equal length batched together.
pub fn add_document_nll(
    acc: &mut PerplexityAccumulator,
    model: &Llama,
    domain: &str,
    docs: &[Vec<u32>],
    eos: Option<u32>,
    cfg: &EvalConfig,
) -> Result<()> {
    let with_eos: Vec<Vec<u32>> = docs
        .iter()
        .map(|d| d.iter().copied().chain(eos).collect())
        .collect();
    let mut by_len: BTreeMap<usize, Vec<Vec<u32>>> = BTreeMap::new();
    for d in &with_eos {
        for c in chunks(d, cfg.seq_len) {
            by_len.entry(c.len()).or_default().push(c.to_vec());
        }
    }
    // An empty domain still gets its (zero-token) row.
    acc.add(domain, 0.0, 0)?;
    let batches: Vec<&[Vec<u32>]> = by_len
        .values()
        .flat_map(|windows| windows.chunks(cfg.batch.max(1)))
        .collect();
    // Batches run in parallel; the accumulator's exact sum makes the result order-free anyway.
    let scorer = model.scorer()?;
    let nlls = crate::model::map_ordered(&batches, |_, batch| -> Result<Vec<f32>> {
        crate::run::check_cancelled()?;
        scorer.token_nlls(batch)
    });
    for batch in nlls {
        let v: Vec<f64> = batch?.into_iter().map(f64::from).collect();
        acc.add_tokens(domain, &v)?;
    }
    Ok(())
}

/// What [`evaluate`] produces.
#[derive(Debug, Clone)]
pub struct EvalTables {
    /// One row per model × domain and an `overall` row per model: `model, domain, docs,
    /// tokens, perplexity, prompts, bleu, rouge1, rouge2, rougeL, rougeLsum` (ROUGE as mean
    /// F-measure in [0, 1], BLEU in [0, 100]).
    pub metrics: Table,
    /// One row per model × prompt: `model, domain, doc, prompt, reference, generation,
    /// sentence_bleu, rougeL`.
    pub generations: Table,
}

const METRICS_FILE: &str = "metrics.parquet";
const GENERATIONS_FILE: &str = "generations.parquet";

impl EvalTables {
    /// Writes both tables as Parquet (types and values exact) into `dir`, which appears only
    /// when complete (built under a temporary name, then renamed).
    pub fn save(&self, dir: &std::path::Path) -> Result<std::path::PathBuf> {
        let tmp = crate::run::AtomicDir::new(dir)?;
        std::fs::create_dir_all(tmp.path())
            .map_err(|e| crate::Error::io("create directory", tmp.path(), e))?;
        self.metrics.write_parquet(&tmp.path().join(METRICS_FILE))?;
        self.generations
            .write_parquet(&tmp.path().join(GENERATIONS_FILE))?;
        tmp.commit()
    }

    /// Reads what [`EvalTables::save`] wrote.
    pub fn load(dir: &std::path::Path) -> Result<Self> {
        let read = |f: &str| {
            let p = dir.join(f);
            let bytes = std::fs::read(&p).map_err(|e| crate::Error::io("read", &p, e))?;
            Table::from_parquet_bytes(&bytes)
        };
        Ok(Self {
            metrics: read(METRICS_FILE)?,
            generations: read(GENERATIONS_FILE)?,
        })
    }

    /// One row per model: `model, domains, perplexity` (token-weighted, the `overall` row's),
    /// `macro_geometric_perplexity` (the geometric mean of the domains' perplexities: every
    /// domain weighs the same, and a relative change counts the same in every domain) and
    /// `macro_arithmetic_perplexity` (their arithmetic mean). A domain without a perplexity
    /// (no tokens) makes both macros null rather than being left out.
    pub fn summary(&self) -> Result<Table> {
        use crate::report::FilterOp;
        let m = &self.metrics;
        let field = |t: &Table, i: usize, k: &str| t.row(i).and_then(|mut r| r.remove(k));
        let mut models: Vec<Value> = Vec::new();
        for i in 0..m.height() {
            let model = field(m, i, "model").unwrap_or(Value::Null);
            if !models.contains(&model) {
                models.push(model);
            }
        }
        let mut out = Table::new();
        for model in models {
            let rows = m.filter("model", FilterOp::Eq, &model)?;
            let overall = rows.filter("domain", FilterOp::Eq, &OVERALL.into())?;
            let domains = rows.filter("domain", FilterOp::Ne, &OVERALL.into())?;
            // A NaN perplexity reads back as null, which the column means would skip.
            let complete = domains.height() > 0
                && (0..domains.height())
                    .all(|i| field(&domains, i, "perplexity").is_some_and(|v| v.is_number()));
            let (geo, arith) = if complete {
                (
                    Some(domains.geomean("perplexity")?),
                    Some(domains.mean("perplexity")?),
                )
            } else {
                (None, None)
            };
            let mut row = Map::new();
            row.insert("model".into(), model);
            row.insert("domains".into(), domains.height().into());
            row.insert(
                "perplexity".into(),
                field(&overall, 0, "perplexity").unwrap_or(Value::Null),
            );
            row.insert("macro_geometric_perplexity".into(), geo.into());
            row.insert("macro_arithmetic_perplexity".into(), arith.into());
            out.push_row(&row)?;
        }
        Ok(out)
    }

    /// The tables of separate evaluations (one model each, say) joined in the order given:
    /// equal to one [`evaluate`] of all their models in that order, since each model's rows
    /// depend on that model alone.
    pub fn join(parts: &[EvalTables]) -> Result<Self> {
        let mut out = EvalTables {
            metrics: Table::new(),
            generations: Table::new(),
        };
        for p in parts {
            out.metrics.append(&p.metrics)?;
            out.generations.append(&p.generations)?;
        }
        Ok(out)
    }
}

struct Scored {
    hyps: Vec<String>,
    refs: Vec<String>,
}

fn text_scores(s: &Scored, cfg: &EvalConfig) -> Result<(f64, Vec<f64>)> {
    if s.hyps.is_empty() {
        return Ok((f64::NAN, vec![f64::NAN; 4]));
    }
    let bcfg = BleuConfig {
        tokenize: cfg.bleu_tokenize,
        ..BleuConfig::default()
    };
    let b = corpus_bleu(&s.hyps, std::slice::from_ref(&s.refs), &bcfg)?;
    let r = rouge(&s.hyps, std::slice::from_ref(&s.refs), &rouge_config(cfg))?;
    Ok((b.score, r.mean.iter().map(|m| m.fmeasure).collect()))
}

fn rouge_config(cfg: &EvalConfig) -> RougeConfig {
    RougeConfig {
        tokenizer: cfg.rouge_tokenizer,
        types: vec![
            RougeType::N(1),
            RougeType::N(2),
            RougeType::L,
            RougeType::Lsum,
        ],
        use_stemmer: false,
    }
}

fn metric_row(
    model: &str,
    domain: &str,
    docs: usize,
    ppl: &NllSum,
    s: &Scored,
    cfg: &EvalConfig,
) -> Result<Map<String, Value>> {
    let (bleu, r) = text_scores(s, cfg)?;
    let num = |x: f64| if x.is_finite() { json!(x) } else { Value::Null };
    let mut row = Map::new();
    row.insert("model".into(), json!(model));
    row.insert("domain".into(), json!(domain));
    row.insert("docs".into(), json!(docs));
    row.insert("tokens".into(), json!(ppl.tokens()));
    row.insert("perplexity".into(), num(ppl.perplexity()));
    row.insert("prompts".into(), json!(s.hyps.len()));
    row.insert("bleu".into(), num(bleu));
    for (k, v) in ["rouge1", "rouge2", "rougeL", "rougeLsum"].iter().zip(r) {
        row.insert((*k).into(), num(v));
    }
    Ok(row)
}

/// One domain's evaluation inputs: the documents scored for perplexity and the prompts.
struct DomainSet<'a> {
    domain: &'a str,
    docs: &'a [Vec<u32>],
    prompts: Vec<Prompt>,
}

/// Generates and scores every prompt of `set` with `lm`, appending to `generations`.
fn continuations(
    name: &str,
    lm: &LoadedModel,
    set: &DomainSet<'_>,
    cfg: &EvalConfig,
    generations: &mut Table,
) -> Result<Scored> {
    let gcfg = GenerateConfig {
        max_new_tokens: cfg.max_new_tokens,
        ..GenerateConfig::default()
    };
    let scfg = BleuConfig {
        tokenize: cfg.bleu_tokenize,
        ..BleuConfig::sentence()
    };
    let rcfg = rouge_config(cfg);
    let eos = &lm.config.eos_token_id;
    let mut s = Scored {
        hyps: vec![],
        refs: vec![],
    };
    for p in &set.prompts {
        crate::run::check_cancelled()?;
        let out: Vec<u32> = generate(&lm.model, &p.ids, &gcfg, eos)?
            .into_iter()
            .filter(|t| !eos.contains(t))
            .collect();
        let (hyp, reference) = (lm.decode(&out)?, lm.decode(&p.reference)?);
        let sb = sentence_bleu(&hyp, &[reference.as_str()], &scfg)?;
        let rl = super::rouge::rouge_pair(&reference, &hyp, &rcfg);
        generations.push_row(
            json!({
                "model": name, "domain": set.domain, "doc": p.doc,
                "prompt": lm.decode(&p.ids)?, "reference": reference,
                "generation": hyp, "sentence_bleu": sb.score,
                "rougeL": rl[2].fmeasure,
            })
            .as_object()
            .expect("object"),
        )?;
        s.hyps.push(hyp);
        s.refs.push(reference);
    }
    Ok(s)
}

/// Evaluates every `(name, model)` on every domain of `data` (see the module docs). Models are
/// evaluated one after another; a progress bar counts model × domain steps.
pub fn evaluate(
    models: &[(String, &LoadedModel)],
    data: &[DomainDocs],
    cfg: &EvalConfig,
) -> Result<EvalTables> {
    cfg.validate()?;
    let data = select_domains(data, &cfg.domains)?;
    if models.is_empty() || data.is_empty() {
        return Err(EvalError::Config("evaluation: no models or no domains".into()).into());
    }
    let sets: Vec<DomainSet<'_>> = data
        .iter()
        .map(|&d| DomainSet {
            domain: &d.domain,
            docs: cfg.scored_docs(&d.docs),
            prompts: make_prompts(d, cfg),
        })
        .collect();
    let bar = crate::run::progress_bar((models.len() * data.len()) as u64, "evaluating");
    let mut metrics = Table::new();
    let mut generations = Table::new();
    for (name, lm) in models {
        let mut acc = PerplexityAccumulator::new();
        let mut all = Scored {
            hyps: vec![],
            refs: vec![],
        };
        let mut docs_total = 0;
        for set in &sets {
            bar.set_message(format!("{name} / {}", set.domain));
            let eos = lm.config.first_eos();
            add_document_nll(&mut acc, &lm.model, set.domain, set.docs, eos, cfg)?;
            docs_total += set.docs.len();
            let s = continuations(name, lm, set, cfg, &mut generations)?;
            let ppl = acc.domain(set.domain).cloned().unwrap_or_default();
            metrics.push_row(&metric_row(
                name,
                set.domain,
                set.docs.len(),
                &ppl,
                &s,
                cfg,
            )?)?;
            all.hyps.extend(s.hyps);
            all.refs.extend(s.refs);
            bar.inc(1);
        }
        let ppl = acc.overall();
        metrics.push_row(&metric_row(name, OVERALL, docs_total, &ppl, &all, cfg)?)?;
    }
    bar.finish_and_clear();
    Ok(EvalTables {
        metrics,
        generations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_gives_token_weighted_and_macro_perplexities_per_model() {
        let mut metrics = Table::new();
        for (model, domain, ppl) in [
            ("base", "law", 4.0),
            ("base", "news", 16.0),
            ("base", OVERALL, 6.0),
            ("merged", "law", 2.0),
            ("merged", "news", 8.0),
            ("merged", OVERALL, 3.5),
            ("empty", "law", f64::NAN),
            ("empty", "news", 3.0),
            ("empty", OVERALL, 3.0),
        ] {
            let mut row = serde_json::Map::new();
            row.insert("model".into(), model.into());
            row.insert("domain".into(), domain.into());
            row.insert("perplexity".into(), ppl.into());
            metrics.push_row(&row).unwrap();
        }
        let t = EvalTables {
            metrics,
            generations: Table::new(),
        };
        let s = t.summary().unwrap();
        assert_eq!(s.height(), 3);
        let base = s.row(0).unwrap();
        assert_eq!(base["model"], "base");
        assert_eq!(base["domains"], 2);
        assert_eq!(base["perplexity"], 6.0);
        assert!((base["macro_geometric_perplexity"].as_f64().unwrap() - 8.0).abs() < 1e-12);
        assert_eq!(base["macro_arithmetic_perplexity"], 10.0);
        let merged = s.row(1).unwrap();
        assert!((merged["macro_geometric_perplexity"].as_f64().unwrap() - 4.0).abs() < 1e-12);
        assert_eq!(merged["macro_arithmetic_perplexity"], 5.0);
        // A domain without a perplexity makes the macros null, not a mean of the others.
        let empty = s.row(2).unwrap();
        assert_eq!(empty["model"], "empty");
        assert_eq!(empty["macro_geometric_perplexity"], Value::Null);
        assert_eq!(empty["macro_arithmetic_perplexity"], Value::Null);
        assert_eq!(empty["perplexity"], 3.0);
    }

    #[test]
    fn chunks_predict_every_token_but_the_first_once() {
        let doc: Vec<u32> = (0..10).collect();
        for seq_len in 1..12 {
            let cs = chunks(&doc, seq_len);
            let targets: usize = cs.iter().map(|c| c.len() - 1).sum();
            assert_eq!(targets, doc.len() - 1, "seq_len {seq_len}");
            assert!(cs.iter().all(|c| c.len() <= seq_len + 1 && c.len() >= 2));
            // Consecutive chunks share exactly their boundary token.
            for w in cs.windows(2) {
                assert_eq!(w[0].last(), w[1].first());
            }
        }
        assert!(chunks(&[7], 4).is_empty());
    }

    #[test]
    fn prompts_skip_short_documents_and_cut_references() {
        let d = DomainDocs {
            domain: "news".into(),
            docs: vec![vec![1; 3], (0..40).collect(), (0..20).collect()],
        };
        let cfg = EvalConfig {
            prompts: 5,
            prompt_tokens: 4,
            max_new_tokens: 8,
            ..EvalConfig::default()
        };
        let p = make_prompts(&d, &cfg);
        assert_eq!(p.len(), 2, "the 3-token document is too short");
        assert_eq!(p[0].doc, 1);
        assert_eq!(p[0].ids, vec![0, 1, 2, 3]);
        assert_eq!(p[0].reference, (4..12).collect::<Vec<u32>>());
        assert_eq!(p[1].doc, 2);
    }

    #[test]
    fn offset_skips_documents_for_scoring_and_prompts_and_domains_select() {
        let d = DomainDocs {
            domain: "news".into(),
            docs: (0..6).map(|i| (i..i + 30).collect()).collect(),
        };
        let cfg = EvalConfig {
            prompts: 2,
            prompt_tokens: 4,
            max_docs: 3,
            offset: 2,
            ..EvalConfig::default()
        };
        let scored = cfg.scored_docs(&d.docs);
        assert_eq!(scored, &d.docs[2..5]);
        let p = make_prompts(&d, &cfg);
        assert_eq!(p.iter().map(|p| p.doc).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(p[0].ids, vec![2, 3, 4, 5]);
        let past = EvalConfig {
            offset: 9,
            ..cfg.clone()
        };
        assert!(past.scored_docs(&d.docs).is_empty());
        let law = DomainDocs {
            domain: "law".into(),
            docs: vec![],
        };
        let data = vec![d, law];
        let all = select_domains(&data, &[]).unwrap();
        assert_eq!(all.len(), 2);
        let one = select_domains(&data, &["law".into()]).unwrap();
        assert_eq!(one[0].domain, "law");
        let e = select_domains(&data, &["chat".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`chat`") && e.contains("news, law"), "{e}");
    }

    fn tiny_model() -> Llama {
        let cfg = crate::model::LlamaConfig {
            vocab_size: 37,
            hidden_size: 32,
            intermediate_size: 48,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            max_position_embeddings: 64,
            ..crate::model::LlamaConfig::default()
        };
        Llama::init(&cfg, &crate::model::parse_device("cpu").unwrap(), 7).unwrap()
    }

    /// Σ −log softmax(logits)[target] over a whole document in one forward pass.
    fn direct_nll(m: &Llama, doc: &[u32]) -> f64 {
        let logits = m.logits_of(&doc[..doc.len() - 1]).unwrap();
        logits
            .iter()
            .zip(&doc[1..])
            .map(|(l, &t)| {
                let mx = l.iter().cloned().fold(f32::MIN, f32::max) as f64;
                let lse = mx + l.iter().map(|&x| (x as f64 - mx).exp()).sum::<f64>().ln();
                lse - l[t as usize] as f64
            })
            .sum()
    }

    #[test]
    fn document_nll_sums_every_predicted_token() {
        let m = tiny_model();
        let docs: Vec<Vec<u32>> = vec![
            (0..30).map(|i| (i * 7 % 37) as u32).collect(),
            vec![5, 9, 11],
            vec![4],
            (0..17).map(|i| (i * 3 % 37) as u32).collect(),
        ];
        // A window as long as the longest document: one chunk per document, so the sum equals
        // the direct full-context NLL.
        let cfg = EvalConfig {
            seq_len: 40,
            batch: 2,
            ..EvalConfig::default()
        };
        let mut acc = PerplexityAccumulator::new();
        add_document_nll(&mut acc, &m, "d", &docs, None, &cfg).unwrap();
        let row = acc.rows().into_iter().find(|r| r.domain == "d").unwrap();
        assert_eq!(
            row.tokens,
            29 + 2 + 16,
            "the 1-token document predicts nothing"
        );
        let want: f64 = docs
            .iter()
            .filter(|d| d.len() > 1)
            .map(|d| direct_nll(&m, d))
            .sum();
        assert!(
            (row.nll_sum - want).abs() < 1e-3 * want,
            "{} vs {want}",
            row.nll_sum
        );
        // Short windows count the same tokens (context is cut, so the NLL differs).
        let mut short = PerplexityAccumulator::new();
        let cfg = EvalConfig { seq_len: 4, ..cfg };
        add_document_nll(&mut short, &m, "d", &docs, Some(1), &cfg).unwrap();
        let r = short.rows().into_iter().find(|r| r.domain == "d").unwrap();
        assert_eq!(
            r.tokens,
            30 + 3 + 1 + 17,
            "EOS adds one target per document"
        );
    }
}
