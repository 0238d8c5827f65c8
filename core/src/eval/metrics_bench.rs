//! Metric speed benchmark and parity data: BLEU and ROUGE over many (hypothesis, reference)
//! pairs built from real Korean text, timed here and in the Python peers (sacreBLEU,
//! rouge-score) in the same run, with the scores of both sides recorded next to the times.
//!
//! Pairs: each reference is a document of the corpora (`*.jsonl.zst`, one JSON object with a
//! `text` field per line); its hypothesis is a seeded perturbation of it (words dropped,
//! repeated, swapped or replaced by words of other documents, or an unrelated document), so
//! scores cover the whole range from 0 to 100. Newlines are kept (ROUGE-Lsum sentences).

use super::EvalError;
use super::bleu::{BleuConfig, BleuTokenize, corpus_bleu};
use super::rouge::{RougeConfig, RougeTokenizer, rouge};
use crate::report::Table;
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Benchmark options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsBenchConfig {
    /// Number of pairs (default 100 000).
    pub pairs: usize,
    /// Directory of `*.jsonl.zst` corpora (default `../shared/data/corpora`).
    pub corpora: PathBuf,
    /// Corpus files to draw documents from, in order (default movie_reviews, news_comments,
    /// chat_qa: short texts, chat_qa with two lines each).
    pub files: Vec<String>,
    /// Python interpreter with sacrebleu and rouge-score (default `$YUNMIN_PYTHON`, else
    /// `.venv/bin/python`, else `python3`).
    pub python: Option<String>,
    /// Seed of the perturbations (default 42).
    pub seed: u64,
    /// Timed repetitions of each Rust measurement; the fastest is reported (default 3).
    pub repeats: usize,
}

impl Default for MetricsBenchConfig {
    fn default() -> Self {
        Self {
            pairs: 100_000,
            corpora: PathBuf::from("../shared/data/corpora"),
            files: vec![
                "movie_reviews.jsonl.zst".into(),
                "news_comments.jsonl.zst".into(),
                "chat_qa.jsonl.zst".into(),
            ],
            python: None,
            seed: 42,
            repeats: 3,
        }
    }
}

/// The Python interpreter to use: `explicit`, else `$YUNMIN_PYTHON`, else `.venv/bin/python`
/// if it exists, else `python3`.
pub fn python_interpreter(explicit: Option<&str>) -> String {
    crate::run::python(explicit.map(Path::new))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "python3".into())
}

/// Reads up to `limit` non-empty `text` fields from a `.jsonl.zst` (or plain `.jsonl`) file.
pub fn read_texts(path: &Path, limit: usize) -> Result<Vec<String>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "zst") {
        Box::new(BufReader::new(
            zstd::Decoder::new(f).map_err(|e| Error::io("decompress", path, e))?,
        ))
    } else {
        Box::new(BufReader::new(f))
    };
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        if out.len() >= limit {
            break;
        }
        let line = line.map_err(|e| Error::io("read", path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| Error::invalid(format!("{}: line {}: {e}", path.display(), n + 1)))?;
        if let Some(t) = v.get("text").and_then(|t| t.as_str())
            && !t.trim().is_empty()
        {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

fn perturb_line(line: &str, pool: &[&str], rng: &mut ChaCha8Rng) -> String {
    let mut words: Vec<&str> = line.split_whitespace().collect();
    let edits = rng.random_range(0..=words.len().div_ceil(2));
    for _ in 0..edits {
        if words.is_empty() {
            break;
        }
        let i = rng.random_range(0..words.len());
        match rng.random_range(0..4) {
            0 => {
                words.remove(i);
            }
            1 => words.insert(i, words[i]),
            2 if i + 1 < words.len() => words.swap(i, i + 1),
            _ => words[i] = pool[rng.random_range(0..pool.len())],
        }
    }
    words.join(" ")
}

/// `n` (hypothesis, reference) pairs from `texts`: references cycle through the texts; each
/// hypothesis is a perturbed copy (one in ten is an unrelated text, one in twenty an exact copy).
pub fn make_pairs(texts: &[String], n: usize, seed: u64) -> Result<(Vec<String>, Vec<String>)> {
    if texts.is_empty() {
        return Err(EvalError::Config("metric pairs: no source texts".into()).into());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pool: Vec<&str> = texts
        .iter()
        .take(5000)
        .flat_map(|t| t.split_whitespace())
        .collect();
    let mut hyps = Vec::with_capacity(n);
    let mut refs = Vec::with_capacity(n);
    for i in 0..n {
        let r = &texts[i % texts.len()];
        let h = match rng.random_range(0..20) {
            0 => r.clone(),
            1 | 2 => texts[rng.random_range(0..texts.len())].clone(),
            _ => r
                .split('\n')
                .map(|l| perturb_line(l, &pool, &mut rng))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        hyps.push(h);
        refs.push(r.clone());
    }
    Ok((hyps, refs))
}

/// Pairs from the configured corpora (documents interleaved across the files).
pub fn corpus_pairs(cfg: &MetricsBenchConfig) -> Result<(Vec<String>, Vec<String>)> {
    let per_file = cfg.pairs.div_ceil(cfg.files.len().max(1)).max(1);
    let mut lists = Vec::new();
    for f in &cfg.files {
        lists.push(read_texts(&cfg.corpora.join(f), per_file)?);
    }
    let mut texts = Vec::new();
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for l in &lists {
            if let Some(t) = l.get(i) {
                texts.push(t.clone());
            }
        }
    }
    make_pairs(&texts, cfg.pairs, cfg.seed)
}

/// The Python side: reads hypotheses and references (JSON arrays), times sacreBLEU corpus BLEU
/// (13a, char) and rouge-score (whitespace tokenizer object, rouge1/2/L/Lsum), prints JSON.
const PY_BENCH: &str = r#"
import json, sys, time
import sacrebleu
from rouge_score import rouge_scorer
hyps = json.load(open(sys.argv[1], encoding="utf-8"))
refs = json.load(open(sys.argv[2], encoding="utf-8"))
out = {"sacrebleu": sacrebleu.__version__}
for tok in ["13a", "char"]:
    t = time.perf_counter()
    s = sacrebleu.corpus_bleu(hyps, [refs], tokenize=tok)
    out["bleu_" + tok] = {"seconds": time.perf_counter() - t, "score": s.score}
class Whitespace:
    def tokenize(self, text):
        return text.split()
types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
scorer = rouge_scorer.RougeScorer(types, tokenizer=Whitespace())
t = time.perf_counter()
scores = [scorer.score(r, h) for h, r in zip(hyps, refs)]
dt = time.perf_counter() - t
out["rouge_whitespace"] = {"seconds": dt, "score": {k: sum(s[k].fmeasure for s in scores) / len(scores) for k in types}}
print(json.dumps(out))
"#;

fn run_python(python: &str, hyps: &[String], refs: &[String]) -> Result<serde_json::Value> {
    let dir = tempfile_dir()?;
    let hp = dir.join("hyps.json");
    let rp = dir.join("refs.json");
    let sp = dir.join("bench.py");
    let write =
        |p: &Path, bytes: &[u8]| std::fs::write(p, bytes).map_err(|e| Error::io("write", p, e));
    write(
        &hp,
        &serde_json::to_vec(hyps).map_err(|e| Error::Json {
            path: hp.clone(),
            source: e,
        })?,
    )?;
    write(
        &rp,
        &serde_json::to_vec(refs).map_err(|e| Error::Json {
            path: rp.clone(),
            source: e,
        })?,
    )?;
    write(&sp, PY_BENCH.as_bytes())?;
    let out = std::process::Command::new(python)
        .arg(&sp)
        .arg(&hp)
        .arg(&rp)
        .output()
        .map_err(|e| EvalError::Python {
            python: python.into(),
            message: format!("cannot start: {e}"),
        })?;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        return Err(EvalError::Python {
            python: python.into(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
        .into());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        EvalError::Python {
            python: python.into(),
            message: format!(
                "unreadable output ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            ),
        }
        .into()
    })
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "yunmin-metrics-bench-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    ));
    std::fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
    Ok(d)
}

fn best_of<T>(repeats: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeats.max(1) {
        crate::run::check_cancelled()?;
        let t = Instant::now();
        let v = f()?;
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(v);
    }
    Ok((best, last.expect("at least one repeat")))
}

/// Runs the benchmark and returns one row per measurement: `metric, tokenizer, pairs,
/// threads, rust_seconds, python_seconds, speedup, rust_score, python_score, abs_diff`.
pub fn run_metrics_bench(cfg: &MetricsBenchConfig) -> Result<Table> {
    let sp = crate::run::spinner(format!("building {} pairs", cfg.pairs));
    let (hyps, refs) = corpus_pairs(cfg)?;
    let streams = [refs.clone()];
    let threads = rayon::current_num_threads() as i64;
    let mut rows: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
    let mut rust = Vec::new();
    for tok in [BleuTokenize::Thirteen, BleuTokenize::Char] {
        sp.set_message(format!("Rust corpus BLEU ({})", tok.as_str()));
        let bc = BleuConfig {
            tokenize: tok,
            ..Default::default()
        };
        let (secs, s) = best_of(cfg.repeats, || corpus_bleu(&hyps, &streams, &bc))?;
        rust.push((
            format!("bleu_{}", tok.as_str()),
            "bleu",
            tok.as_str(),
            secs,
            vec![("bleu".to_string(), s.score)],
        ));
    }
    sp.set_message("Rust ROUGE 1/2/L/Lsum (whitespace)");
    let rc = RougeConfig {
        tokenizer: RougeTokenizer::Whitespace,
        ..Default::default()
    };
    let (secs, r) = best_of(cfg.repeats, || rouge(&hyps, &streams, &rc))?;
    let rouge_scores: Vec<(String, f64)> = r
        .types
        .iter()
        .zip(&r.mean)
        .map(|(t, s)| (t.to_string(), s.fmeasure))
        .collect();
    rust.push((
        "rouge_whitespace".into(),
        "rouge",
        "whitespace",
        secs,
        rouge_scores,
    ));
    let python = python_interpreter(cfg.python.as_deref());
    sp.set_message(format!(
        "Python peers ({python}): sacreBLEU and rouge-score on {} pairs",
        cfg.pairs
    ));
    let py = run_python(&python, &hyps, &refs)?;
    sp.finish_and_clear();
    for (key, metric, tok, secs, scores) in rust {
        let p = &py[&key];
        let psecs = p["seconds"].as_f64().unwrap_or(f64::NAN);
        for (name, score) in scores {
            let pscore = if metric == "bleu" {
                p["score"].as_f64()
            } else {
                p["score"][&name].as_f64()
            }
            .unwrap_or(f64::NAN);
            let row = serde_json::json!({
                "metric": if metric == "bleu" { "corpus_bleu".to_string() } else { format!("{name}_f_mean") },
                "tokenizer": tok,
                "pairs": cfg.pairs as i64,
                "threads": threads,
                "rust_seconds": secs,
                "python_seconds": psecs,
                "speedup": psecs / secs,
                "rust_score": score,
                "python_score": pscore,
                "abs_diff": (score - pscore).abs(),
            });
            if let serde_json::Value::Object(m) = row {
                rows.push(m);
            }
        }
    }
    Table::from_rows(rows.iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_deterministic_and_keep_lines() {
        let texts: Vec<String> = ["가 나 다 라\n마 바", "one two three", "하나 둘 셋 넷 다섯"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = make_pairs(&texts, 50, 7).unwrap();
        let b = make_pairs(&texts, 50, 7).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0.len(), 50);
        assert_eq!(a.1[3], texts[0]);
        assert!(a.0.iter().any(|h| h.contains('\n')));
        assert_ne!(a, make_pairs(&texts, 50, 8).unwrap());
    }
}
