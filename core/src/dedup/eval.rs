//! Quality evaluation on planted near-duplicates.
//!
//! Base documents are sampled (seeded reservoir sampling) from the real corpora
//! (`*.jsonl.zst`, one domain per file). Bases identical after normalisation, or similar to
//! another base (jamo-3 Jaccard ≥ 0.6, found by a dedup pass over the bases alone), are
//! dropped so the ground truth is clean. A fraction of the bases then get one or two copies
//! with small Korean-specific edits: spacing (띄어쓰기) changes, particle swaps (은↔는, 이↔가,
//! 을↔를, 와↔과, 로↔으로, 에서↔에게), punctuation added or removed, and — for texts of 20 words
//! or more only, where they leave the meaning mostly intact — a few words replaced by words of
//! other documents and a trimmed tail (2–8 % of the text). Roughly one edit per 40 words, at
//! least one. Hard negatives test the other side: for a fraction of the bases of 10 words or
//! more, a separate document with 40–50 % of the words replaced (its own group, to be kept).
//!
//! Scoring: a removed document is a correct removal when the member kept for its cluster comes
//! from the same planted group, a false removal otherwise. Recall = correct removals / planted
//! copies; false-removal rate = false removals / distinct documents (groups); `hard_removed`
//! counts the false removals that involve a hard negative.

use super::pipeline::{DedupConfig, dedup_documents};
use crate::ingest::Document;
use crate::{Error, Result};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Settings of the planted evaluation set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Directory of `<name>.jsonl.zst` corpora. Default `../shared/data/corpora`.
    pub corpora: PathBuf,
    /// Corpus file stems to use (default: all in the directory).
    pub domains: Vec<String>,
    /// Base documents sampled per domain. Default 400.
    pub per_domain: usize,
    /// Fraction of bases that get near-duplicate copies. Default 0.5.
    pub dup_fraction: f64,
    /// Fraction of bases (of at least 10 words) that also get a hard negative: a different
    /// document made by replacing 40–50 % of the base's words, which must be kept. Default 0.25.
    pub hard_fraction: f64,
    /// Bases longer than this many characters are cut to it (keeps the evaluation quick). Default 20000.
    pub max_chars: usize,
    /// Texts shorter than this many characters are reported as `short`. Default 100.
    pub short_chars: usize,
    /// Seed of sampling and edits. Default 42.
    pub seed: u64,
}

impl crate::config::Primitive for EvalConfig {
    const NAME: &'static str = "dedup_eval_set";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[
            opt(
                "corpora",
                "directory of <name>.jsonl.zst corpora (a relative path missing here is taken from the source tree)",
            ),
            opt(
                "domains",
                "corpus file stems to use (none: all in the directory)",
            ),
            opt("per_domain", "base documents sampled per domain"),
            opt(
                "dup_fraction",
                "fraction of bases that get near-duplicate copies",
            ),
            opt(
                "hard_fraction",
                "fraction of bases (of at least 10 words) that also get a hard negative, which must be kept",
            ),
            opt(
                "max_chars",
                "bases longer than this many characters are cut to it",
            ),
            opt(
                "short_chars",
                "texts shorter than this many characters are reported as short",
            ),
            opt("seed", "seed of sampling and edits (Rhai: the run's seed)"),
        ]
    };
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            corpora: PathBuf::from("../shared/data/corpora"),
            domains: Vec::new(),
            per_domain: 400,
            dup_fraction: 0.5,
            hard_fraction: 0.25,
            max_chars: 20_000,
            short_chars: 100,
            seed: 42,
        }
    }
}

/// A planted evaluation set: documents and the group (base) each belongs to.
#[derive(Debug, Clone)]
pub struct EvalSet {
    /// Bases and their edited copies, shuffled.
    pub docs: Vec<Document>,
    /// Planted group of each document.
    pub group: Vec<usize>,
    /// Whether each document's base is short.
    pub short: Vec<bool>,
    /// Whether each document is a hard negative (its own group, half its words shared with a
    /// base).
    pub hard: Vec<bool>,
}

/// One row of the evaluation: a domain (or `all`) and a length class (`short`, `long`, `all`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// Domain or `all`.
    pub domain: String,
    /// `short`, `long` or `all`.
    pub length: String,
    /// Documents (bases + copies).
    pub docs: usize,
    /// Distinct documents (planted groups).
    pub distinct: usize,
    /// Planted copies (the ideal number of removals).
    pub planted: usize,
    /// Documents removed.
    pub removed: usize,
    /// Removals whose kept document is from the same group.
    pub correct: usize,
    /// Removals whose kept document is from another group.
    pub false_removals: usize,
    /// correct / planted.
    pub recall: f64,
    /// correct / removed.
    pub precision: f64,
    /// false removals / distinct.
    pub false_rate: f64,
    /// Hard negatives among the documents.
    pub hard_negatives: usize,
    /// False removals involving a hard negative (one removed, or a document removed in favour
    /// of one).
    pub hard_removed: usize,
}

/// Reads every document of a `.jsonl.zst` (or plain `.jsonl`) corpus file, calling `f`.
pub fn read_corpus(path: &Path, mut f: impl FnMut(Document)) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let reader: Box<dyn std::io::Read> = if path.extension().is_some_and(|x| x == "zst") {
        Box::new(zstd::stream::Decoder::new(file).map_err(|e| Error::io("decompress", path, e))?)
    } else {
        Box::new(file)
    };
    for (i, line) in std::io::BufReader::with_capacity(1 << 20, reader)
        .lines()
        .enumerate()
    {
        let line = line.map_err(|e| Error::io("read", path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line)
            .map_err(|e| {
                Error::invalid(format!(
                    "{}:{}: not a JSON object: {e}",
                    path.display(),
                    i + 1
                ))
            })?;
        let s = |v: &mut serde_json::Map<String, serde_json::Value>, k: &str| match v.remove(k) {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let text = s(&mut v, "text");
        let id = s(&mut v, "id");
        let domain = s(&mut v, "domain");
        let source = s(&mut v, "source");
        f(Document {
            id: if id.is_empty() {
                format!("{}:{}", path.display(), i + 1)
            } else {
                id
            },
            text,
            domain,
            source,
            extra: v,
        });
        crate::run::check_cancelled()?;
    }
    Ok(())
}

/// The corpus files of `cfg` as `(stem, path)`.
pub fn corpus_files(cfg: &EvalConfig) -> Result<Vec<(String, PathBuf)>> {
    let rd =
        std::fs::read_dir(&cfg.corpora).map_err(|e| Error::io("list corpora", &cfg.corpora, e))?;
    let mut v: Vec<(String, PathBuf)> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            let stem = name
                .strip_suffix(".jsonl.zst")
                .or_else(|| name.strip_suffix(".jsonl"))?
                .to_string();
            Some((stem, p))
        })
        .filter(|(s, _)| cfg.domains.is_empty() || cfg.domains.contains(s))
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(Error::invalid(format!(
            "no *.jsonl.zst corpora in {} (domains {:?})",
            cfg.corpora.display(),
            cfg.domains
        )));
    }
    for d in &cfg.domains {
        if !v.iter().any(|(s, _)| s == d) {
            let have: Vec<&str> = v.iter().map(|(s, _)| s.as_str()).collect();
            return Err(Error::invalid(format!(
                "corpus `{d}` not found in {} (have {})",
                cfg.corpora.display(),
                have.join(", ")
            )));
        }
    }
    Ok(v)
}

const PARTICLES: &[(&str, &str)] = &[
    ("은", "는"),
    ("는", "은"),
    ("이", "가"),
    ("가", "이"),
    ("을", "를"),
    ("를", "을"),
    ("와", "과"),
    ("과", "와"),
    ("으로", "로"),
    ("에서", "에게"),
    ("에게", "에서"),
    ("도", "만"),
];
const PUNCT: &[&str] = &[".", ",", "!", "?", "…", "~", "\""];

fn edit_spacing(words: &mut Vec<String>, rng: &mut ChaCha8Rng) {
    if words.len() >= 2 && rng.random_bool(0.5) {
        let i = rng.random_range(0..words.len() - 1);
        let next = words.remove(i + 1);
        words[i].push_str(&next);
    } else {
        let i = rng.random_range(0..words.len());
        let chars: Vec<char> = words[i].chars().collect();
        if chars.len() >= 2 {
            let cut = rng.random_range(1..chars.len());
            let (a, b): (String, String) =
                (chars[..cut].iter().collect(), chars[cut..].iter().collect());
            words[i] = a;
            words.insert(i + 1, b);
        }
    }
}

fn edit_particle(words: &mut [String], rng: &mut ChaCha8Rng) -> bool {
    let cands: Vec<usize> = (0..words.len())
        .filter(|&i| {
            PARTICLES
                .iter()
                .any(|(p, _)| words[i].ends_with(p) && words[i].chars().count() > p.chars().count())
        })
        .collect();
    let Some(&i) = cands.choose(rng) else {
        return false;
    };
    let (p, q) = PARTICLES
        .iter()
        .find(|(p, _)| words[i].ends_with(p))
        .expect("candidate has a particle");
    let stem = &words[i][..words[i].len() - p.len()];
    words[i] = format!("{stem}{q}");
    true
}

fn edit_punct(words: &mut [String], rng: &mut ChaCha8Rng) {
    let i = rng.random_range(0..words.len());
    let w = &mut words[i];
    if let Some(last) = w
        .chars()
        .last()
        .filter(|c| c.is_ascii_punctuation() || *c == '…')
    {
        w.truncate(w.len() - last.len_utf8());
        if rng.random_bool(0.5) {
            w.push_str(PUNCT.choose(rng).expect("punct"));
        }
    } else {
        w.push_str(PUNCT.choose(rng).expect("punct"));
    }
}

/// An edited copy of `text` (see the module docs); `vocab` supplies replacement words.
pub fn plant_copy(text: &str, vocab: &[String], rng: &mut ChaCha8Rng) -> String {
    let mut words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    if words.is_empty() {
        return format!("{text}.");
    }
    let long = words.len() >= 20;
    let edits = (1 + words.len() / 40).min(12);
    for _ in 0..edits {
        let kind = rng.random_range(0..if long { 4 } else { 3 });
        match kind {
            0 => edit_spacing(&mut words, rng),
            1 => {
                if !edit_particle(&mut words, rng) {
                    edit_spacing(&mut words, rng)
                }
            }
            2 => edit_punct(&mut words, rng),
            _ => {
                let i = rng.random_range(0..words.len());
                if let Some(w) = vocab.choose(rng) {
                    words[i] = w.clone();
                }
            }
        }
    }
    if long && rng.random_bool(0.3) {
        let cut = (words.len() as f64 * rng.random_range(0.02..0.08)).ceil() as usize;
        words.truncate(words.len() - cut.min(words.len() - 1));
    }
    let out = words.join(" ");
    // Edits can cancel out (a space removed where one was added); a planted copy always differs.
    if out == text { format!("{text}.") } else { out }
}

/// A hard negative of `text`: 40–50 % of its words (at least one) replaced by other words of
/// `vocab`, so it shares about half its content with the base and is not a near-duplicate.
pub fn plant_hard_negative(text: &str, vocab: &[String], rng: &mut ChaCha8Rng) -> String {
    let mut words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    let n = words.len();
    let k = ((n as f64 * rng.random_range(0.40..=0.50)).round() as usize).clamp(1, n.max(1));
    let mut positions: Vec<usize> = (0..n).collect();
    positions.shuffle(rng);
    for &i in positions.iter().take(k) {
        for _ in 0..8 {
            if let Some(w) = vocab.choose(rng)
                && *w != words[i]
            {
                words[i] = w.clone();
                break;
            }
        }
    }
    words.join(" ")
}

/// Samples bases and plants near-duplicates and hard negatives.
pub fn build_set(cfg: &EvalConfig) -> Result<EvalSet> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut bases: Vec<(Document, bool)> = Vec::new();
    for (stem, path) in corpus_files(cfg)? {
        // Reservoir sampling of per_domain documents.
        let mut res: Vec<Document> = Vec::with_capacity(cfg.per_domain);
        let mut seen = 0usize;
        read_corpus(&path, |mut d| {
            if d.text.trim().is_empty() {
                return;
            }
            if d.domain.is_empty() {
                d.domain = stem.clone();
            }
            seen += 1;
            if res.len() < cfg.per_domain {
                res.push(d);
            } else {
                let j = rng.random_range(0..seen);
                if j < cfg.per_domain {
                    res[j] = d;
                }
            }
        })?;
        for mut d in res {
            if d.text.chars().count() > cfg.max_chars {
                d.text = d.text.chars().take(cfg.max_chars).collect();
            }
            let short = d.text.chars().count() < cfg.short_chars;
            bases.push((d, short));
        }
    }
    // Clean truth: drop bases that are near-duplicates of each other.
    let docs: Vec<Document> = bases.iter().map(|(d, _)| d.clone()).collect();
    let clean_cfg = DedupConfig {
        shingles: "jamo3".into(),
        threshold: 0.6,
        ..Default::default()
    };
    let (_, found) = dedup_documents(&docs, &clean_cfg)?;
    let bases: Vec<(Document, bool)> = bases
        .into_iter()
        .zip(&found.clusters_flag(docs.len()))
        .filter(|(_, c)| !**c)
        .map(|(b, _)| b)
        .collect();

    let vocab: Vec<String> = bases
        .iter()
        .flat_map(|(d, _)| d.text.split_whitespace().take(50).map(str::to_string))
        .collect();
    let mut out: Vec<(Document, usize, bool, bool)> = Vec::new();
    for (g, (base, short)) in bases.iter().enumerate() {
        out.push((base.clone(), g, *short, false));
        if rng.random_bool(cfg.dup_fraction) {
            let copies = rng.random_range(1..=2);
            for c in 0..copies {
                let mut d = base.clone();
                d.id = format!("{}#dup{c}", base.id);
                d.text = plant_copy(&base.text, &vocab, &mut rng);
                out.push((d, g, *short, false));
            }
        }
    }
    // Hard negatives from their own generator, so the bases and copies above do not move.
    let mut hard_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x4841_5244);
    let mut next_group = bases.len();
    for (base, short) in &bases {
        let words = base.text.split_whitespace().count();
        if words >= 10 && hard_rng.random_bool(cfg.hard_fraction) {
            let mut d = base.clone();
            d.id = format!("{}#hard", base.id);
            d.text = plant_hard_negative(&base.text, &vocab, &mut hard_rng);
            out.push((d, next_group, *short, true));
            next_group += 1;
        }
    }
    // Shuffle so copies are not next to their bases (order affects nothing but `first`).
    for i in (1..out.len()).rev() {
        let j = rng.random_range(0..=i);
        out.swap(i, j);
    }
    Ok(EvalSet {
        group: out.iter().map(|x| x.1).collect(),
        short: out.iter().map(|x| x.2).collect(),
        hard: out.iter().map(|x| x.3).collect(),
        docs: out.into_iter().map(|x| x.0).collect(),
    })
}

impl super::pipeline::Found {
    /// Per document: whether it belongs to a cluster of two or more.
    pub fn clusters_flag(&self, n: usize) -> Vec<bool> {
        let mut v = vec![false; n];
        for c in &self.clusters {
            for &m in &c.members {
                v[m] = true;
            }
        }
        v
    }
}

/// Runs dedup with `cfg` on the set and scores it per domain and length class.
pub fn evaluate(set: &EvalSet, cfg: &DedupConfig) -> Result<Vec<EvalRow>> {
    let (_, found) = dedup_documents(&set.docs, cfg)?;
    let n = set.docs.len();
    let mut kept_by = (0..n).collect::<Vec<_>>();
    for c in &found.clusters {
        for &m in &c.members {
            kept_by[m] = c.representative;
        }
    }
    #[derive(Default)]
    struct Acc {
        docs: usize,
        groups: HashSet<usize>,
        removed: usize,
        correct: usize,
        false_r: usize,
        hard: usize,
        hard_removed: usize,
    }
    let mut acc: BTreeMap<(String, String), Acc> = BTreeMap::new();
    #[allow(clippy::needless_range_loop)] // `i` indexes four parallel arrays of the set
    for i in 0..n {
        let len = if set.short[i] { "short" } else { "long" };
        for key in [
            (set.docs[i].domain.clone(), len.to_string()),
            (set.docs[i].domain.clone(), "all".into()),
            ("all".into(), len.to_string()),
            ("all".into(), "all".into()),
        ] {
            let a = acc.entry(key).or_default();
            a.docs += 1;
            a.hard += usize::from(set.hard[i]);
            a.groups.insert(set.group[i]);
            if found.removed[i] {
                a.removed += 1;
                if set.group[kept_by[i]] == set.group[i] {
                    a.correct += 1;
                } else {
                    a.false_r += 1;
                    if set.hard[i] || set.hard[kept_by[i]] {
                        a.hard_removed += 1;
                    }
                }
            }
        }
    }
    Ok(acc
        .into_iter()
        .map(|((domain, length), a)| {
            let distinct = a.groups.len();
            let planted = a.docs - distinct;
            EvalRow {
                domain,
                length,
                docs: a.docs,
                distinct,
                planted,
                removed: a.removed,
                correct: a.correct,
                false_removals: a.false_r,
                recall: if planted == 0 {
                    1.0
                } else {
                    a.correct as f64 / planted as f64
                },
                precision: if a.removed == 0 {
                    1.0
                } else {
                    a.correct as f64 / a.removed as f64
                },
                false_rate: if distinct == 0 {
                    0.0
                } else {
                    a.false_r as f64 / distinct as f64
                },
                hard_negatives: a.hard,
                hard_removed: a.hard_removed,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_negatives_share_about_half_the_words_and_are_far_below_the_threshold() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let text = "오늘은 날씨가 정말 좋아서 친구와 함께 공원에서 산책을 하고 맛있는 점심을 먹었다. 저녁에는 집으로 돌아와 책을 읽었다. 내일은 비가 온다고 하니 우산을 챙겨야겠다.";
        let vocab: Vec<String> = [
            "바다",
            "학교",
            "컴퓨터",
            "음악",
            "기차",
            "도서관",
            "시장",
            "영화",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let spec = "jamo3+word5".parse().unwrap();
        let base = crate::dedup::shingle::shingles(text, &spec);
        for _ in 0..20 {
            let h = plant_hard_negative(text, &vocab, &mut rng);
            let words: Vec<&str> = text.split_whitespace().collect();
            let same = h
                .split_whitespace()
                .zip(&words)
                .filter(|(a, b)| a == *b)
                .count();
            let changed = words.len() - same;
            assert!(
                changed * 100 >= words.len() * 35 && changed * 100 <= words.len() * 55,
                "{changed} of {} words changed: {h}",
                words.len()
            );
            let s = crate::dedup::shingle::shingles(&h, &spec);
            let j = crate::dedup::shingle::jaccard(&base.jamo, &s.jamo);
            assert!(j < 0.7, "{h}: jamo Jaccard {j}");
        }
    }

    #[test]
    fn planted_copies_stay_close_and_differ() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let text = "오늘은 날씨가 정말 좋아서 친구와 함께 공원에서 산책을 하고 맛있는 점심을 먹었다. 저녁에는 집으로 돌아와 책을 읽었다.";
        let vocab = vec!["바다".to_string(), "학교".to_string()];
        for _ in 0..20 {
            let c = plant_copy(text, &vocab, &mut rng);
            assert_ne!(c, text);
            let spec = "jamo3".parse().unwrap();
            let j = crate::dedup::shingle::jaccard(
                &crate::dedup::shingle::shingles(text, &spec).jamo,
                &crate::dedup::shingle::shingles(&c, &spec).jamo,
            );
            assert!(j > 0.6, "{c}: {j}");
        }
    }
}
