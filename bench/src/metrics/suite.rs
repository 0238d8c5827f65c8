//! Metric speed benchmark and parity data: BLEU and ROUGE over many (hypothesis, reference)
//! pairs built from real Korean text, timed here and in the Python peers (sacreBLEU,
//! rouge-score) in the same run, with the scores of both sides recorded next to the times.
//!
//! Pairs: each reference is a document of the corpora (`*.jsonl.zst`, one JSON object with a
//! `text` field per line); its hypothesis is a seeded perturbation of it (words dropped,
//! repeated, swapped or replaced by words of other documents, or an unrelated document), so
//! scores cover the whole range from 0 to 100. Newlines are kept (ROUGE-Lsum sentences).

use crate::peer;
use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::time::Instant;
use yunmin_core::eval::bleu::{BleuConfig, BleuTokenize, corpus_bleu};
use yunmin_core::eval::rouge::{RougeConfig, RougeTokenizer, rouge};
use yunmin_core::report::Table;

/// Arguments of `yunmin bench metrics`.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsBenchArgs {
    /// Number of (hypothesis, reference) pairs.
    #[arg(long, default_value_t = 100_000)]
    pub pairs: usize,
    /// Directory of `*.jsonl.zst` corpora (default: $YUNMIN_CORPORA).
    #[arg(long)]
    pub corpora: Option<PathBuf>,
    /// Corpus files to draw documents from, in order (short texts, chat_qa with two lines
    /// each).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "movie_reviews.jsonl.zst,news_comments.jsonl.zst,chat_qa.jsonl.zst"
    )]
    pub files: Vec<String>,
    /// Python with sacrebleu and rouge-score (default: $YUNMIN_PYTHON, else .venv/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Seed of the perturbations.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Timed repetitions of each Rust measurement (the fastest is reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// CSV to write.
    #[arg(long, default_value = "results/bench/eval_metrics.csv")]
    pub csv: PathBuf,
}

/// Up to `limit` non-empty texts of a corpus file (`.jsonl.zst` or `.jsonl`).
pub fn read_texts(path: &Path, limit: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    yunmin_core::dedup::eval::read_corpus(path, |d| {
        if out.len() < limit && !d.text.trim().is_empty() {
            out.push(d.text);
        }
    })
    .with_context(|| format!("reading {}", path.display()))?;
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
        bail!("metric pairs: no source texts");
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
pub fn corpus_pairs(cfg: &MetricsBenchArgs) -> Result<(Vec<String>, Vec<String>)> {
    let corpora = peer::corpora(cfg.corpora.as_deref())?;
    let per_file = cfg.pairs.div_ceil(cfg.files.len().max(1)).max(1);
    let mut lists = Vec::new();
    for f in &cfg.files {
        lists.push(read_texts(&corpora.join(f), per_file)?);
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

/// The peers on the same pairs (`scripts/bench/metrics_peers.py`): their seconds and scores.
fn run_python(python: &Path, hyps: &[String], refs: &[String]) -> Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let hp = dir.path().join("hyps.json");
    let rp = dir.path().join("refs.json");
    std::fs::write(&hp, serde_json::to_vec(hyps)?)?;
    std::fs::write(&rp, serde_json::to_vec(refs)?)?;
    peer::run(
        std::process::Command::new(python)
            .arg(peer::script("metrics_peers.py")?)
            .arg(&hp)
            .arg(&rp),
    )?
    .json()
}

fn best_of<T>(repeats: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeats.max(1) {
        yunmin_core::run::check_cancelled()?;
        let t = Instant::now();
        let v = f()?;
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(v);
    }
    Ok((best, last.expect("at least one repeat")))
}

/// Runs the benchmark and returns one row per measurement: `metric, tokenizer, pairs,
/// threads, rust_seconds, python_seconds, speedup, rust_score, python_score, abs_diff`.
pub fn run_metrics_bench(cfg: &MetricsBenchArgs) -> Result<Table> {
    let sp = yunmin_core::run::spinner(format!("building {} pairs", cfg.pairs));
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
        let (secs, s) = best_of(cfg.repeats, || Ok(corpus_bleu(&hyps, &streams, &bc)?))?;
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
    let (secs, r) = best_of(cfg.repeats, || Ok(rouge(&hyps, &streams, &rc)?))?;
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
    let python = peer::python(cfg.python.as_deref(), "eval")?;
    sp.set_message(format!(
        "Python peers ({}): sacreBLEU and rouge-score on {} pairs",
        python.display(),
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
    Ok(Table::from_rows(rows.iter())?)
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
