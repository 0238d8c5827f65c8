//! ROUGE-N, ROUGE-L and ROUGE-Lsum compatible with Google's `rouge-score` (`RougeScorer`):
//!
//! - ROUGE-N: clipped n-gram overlap; precision = overlap / max(prediction n-grams, 1), recall =
//!   overlap / max(target n-grams, 1).
//! - ROUGE-L: longest common subsequence of the two token lists (0 when either is empty).
//! - ROUGE-Lsum: texts split on `\n` (empty lines dropped), union-LCS of every target sentence
//!   against every prediction sentence, hits counted at most as often as the token occurs on
//!   both sides (ROUGE-1.5.5 / `_summary_level_lcs`), LCS read back with rouge-score's
//!   tie-breaking so the union is the same.
//! - F = 2PR / (P + R); with several references the one with the highest F per type wins (its
//!   `score_multi`, first maximum on ties).
//!
//! The arithmetic is done in the same order as rouge-score, so scores agree to the last bits.
//! Tokenizers: see [`RougeTokenizer`]; `hangul` is the default because rouge-score's own
//! tokenizer (`rouge`) deletes every Hangul character. Porter stemming (`use_stemmer`) is not
//! implemented: asking for it is an error rather than a silently different score.

use super::EvalError;
use super::ngram::{NgramKey, Vocab, count, for_each_common, push_keys};
use super::tokenize::{
    Tokens, char_tokens, hangul_tokens, jamo_tokens, rouge_default_tokens, whitespace_tokens,
};
use crate::report::Table;
use crate::{Error, Result};
use polars::prelude::{Column, DataFrame, NamedFrom, Series};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// ROUGE tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RougeTokenizer {
    /// rouge-score's default: lowercase, runs of `[a-z0-9]` (Korean text has no tokens).
    Rouge,
    /// Python `str.split()`, case kept.
    Whitespace,
    /// Every non-whitespace character.
    Char,
    /// Lowercased runs of Unicode letters and digits: Hangul words are kept (the default).
    #[default]
    Hangul,
    /// Hangul decomposed into jamo, every jamo or other character a token.
    Jamo,
}

impl RougeTokenizer {
    /// The option name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rouge => "rouge",
            Self::Whitespace => "whitespace",
            Self::Char => "char",
            Self::Hangul => "hangul",
            Self::Jamo => "jamo",
        }
    }

    /// Tokens of `text`.
    pub fn tokens(self, text: &str) -> Tokens<'_> {
        match self {
            Self::Rouge => rouge_default_tokens(text),
            Self::Whitespace => whitespace_tokens(text),
            Self::Char => char_tokens(text),
            Self::Hangul => hangul_tokens(text),
            Self::Jamo => jamo_tokens(text),
        }
    }
}

impl std::str::FromStr for RougeTokenizer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "rouge" | "default" => Self::Rouge,
            "whitespace" => Self::Whitespace,
            "char" => Self::Char,
            "hangul" => Self::Hangul,
            "jamo" => Self::Jamo,
            _ => {
                return Err(EvalError::Unknown {
                    what: "ROUGE tokenizer",
                    got: s.into(),
                    expected: "hangul, rouge, whitespace, char, jamo",
                }
                .into());
            }
        })
    }
}

/// A ROUGE variant: `rouge1`…`rouge9`, `rougeL`, `rougeLsum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RougeType {
    /// ROUGE-N with n in 1..=9.
    N(u8),
    /// Sentence-level LCS.
    L,
    /// Summary-level (union) LCS over newline-separated sentences.
    Lsum,
}

impl std::fmt::Display for RougeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::N(n) => write!(f, "rouge{n}"),
            Self::L => f.write_str("rougeL"),
            Self::Lsum => f.write_str("rougeLsum"),
        }
    }
}

impl std::str::FromStr for RougeType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rougeL" => return Ok(Self::L),
            "rougeLsum" => return Ok(Self::Lsum),
            _ => {}
        }
        if let Some(d) = s.strip_prefix("rouge")
            && d.len() == 1
            && let Some(n) = d.chars().next().and_then(|c| c.to_digit(10))
            && n > 0
        {
            return Ok(Self::N(n as u8));
        }
        Err(EvalError::Unknown {
            what: "ROUGE type",
            got: s.into(),
            expected: "rouge1 … rouge9, rougeL, rougeLsum",
        }
        .into())
    }
}

impl Serialize for RougeType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RougeType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// ROUGE options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RougeConfig {
    /// Tokenizer (default `hangul`; `rouge` for rouge-score's own).
    pub tokenizer: RougeTokenizer,
    /// Variants to compute (default rouge1, rouge2, rougeL, rougeLsum).
    pub types: Vec<RougeType>,
    /// Porter stemming as rouge-score's `use_stemmer` (default false; true is not supported).
    pub use_stemmer: bool,
}

impl crate::config::Primitive for RougeConfig {
    const NAME: &'static str = "rouge";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[
            opt(
                "tokenizer",
                "hangul (keeps Korean), rouge (rouge-score's own; deletes Hangul), whitespace, char or jamo",
            ),
            opt("types", "ROUGE variants: rouge1…rouge9, rougeL, rougeLsum"),
            opt(
                "use_stemmer",
                "Porter stemming as rouge-score's use_stemmer (true is not supported)",
            ),
        ]
    };
}

impl Default for RougeConfig {
    fn default() -> Self {
        Self {
            tokenizer: RougeTokenizer::Hangul,
            types: vec![
                RougeType::N(1),
                RougeType::N(2),
                RougeType::L,
                RougeType::Lsum,
            ],
            use_stemmer: false,
        }
    }
}

impl RougeConfig {
    fn validate(&self) -> Result<()> {
        if self.use_stemmer {
            return Err(EvalError::Config(
                "ROUGE `use_stemmer`: Porter stemming is not implemented; scores would differ from rouge-score".into(),
            )
            .into());
        }
        if self.types.is_empty() {
            return Err(EvalError::Config("ROUGE `types` is empty".into()).into());
        }
        Ok(())
    }
}

/// Precision, recall and F-measure of one ROUGE variant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RougeScore {
    /// Overlap relative to the prediction.
    pub precision: f64,
    /// Overlap relative to the target.
    pub recall: f64,
    /// Harmonic mean (rouge-score's `fmeasure`).
    pub fmeasure: f64,
}

impl RougeScore {
    /// A score from precision and recall (rouge-score's `scoring.fmeasure`).
    pub fn new(precision: f64, recall: f64) -> Self {
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            fmeasure,
        }
    }
}

/// Per-item and mean ROUGE scores of a corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RougeResult {
    /// The variants, in the order of the score vectors.
    pub types: Vec<RougeType>,
    /// Scores per item (outer) and variant (inner).
    pub items: Vec<Vec<RougeScore>>,
    /// Arithmetic mean of precision, recall and F over items, per variant.
    pub mean: Vec<RougeScore>,
    /// The tokenizer used.
    pub tokenizer: RougeTokenizer,
}

impl RougeResult {
    /// Per-item scores as a table: `index`, then `<type>_precision`, `<type>_recall`,
    /// `<type>_fmeasure` for each variant.
    pub fn table(&self) -> Result<Table> {
        let n = self.items.len();
        let mut cols: Vec<Column> =
            vec![Series::new("index".into(), (0..n as u64).collect::<Vec<_>>()).into()];
        for (k, t) in self.types.iter().enumerate() {
            let get = |f: fn(&RougeScore) -> f64| {
                self.items.iter().map(|s| f(&s[k])).collect::<Vec<f64>>()
            };
            cols.push(Series::new(format!("{t}_precision").into(), get(|s| s.precision)).into());
            cols.push(Series::new(format!("{t}_recall").into(), get(|s| s.recall)).into());
            cols.push(Series::new(format!("{t}_fmeasure").into(), get(|s| s.fmeasure)).into());
        }
        Ok(Table::from_df(DataFrame::new(n, cols)?))
    }

    /// Mean scores as a table: one row per variant with `type, precision, recall, fmeasure`.
    pub fn mean_table(&self) -> Result<Table> {
        let cols: Vec<Column> = vec![
            Series::new(
                "type".into(),
                self.types.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            )
            .into(),
            Series::new(
                "precision".into(),
                self.mean.iter().map(|s| s.precision).collect::<Vec<_>>(),
            )
            .into(),
            Series::new(
                "recall".into(),
                self.mean.iter().map(|s| s.recall).collect::<Vec<_>>(),
            )
            .into(),
            Series::new(
                "fmeasure".into(),
                self.mean.iter().map(|s| s.fmeasure).collect::<Vec<_>>(),
            )
            .into(),
        ];
        Ok(Table::from_df(DataFrame::new(self.types.len(), cols)?))
    }
}

fn ids<'a>(toks: &'a Tokens<'_>, vocab: &mut Vocab<'a>) -> Vec<u32> {
    toks.iter().map(|t| vocab.intern(t)).collect()
}

/// Target and prediction n-gram counts and their overlap, keys packed as `K`.
fn overlap<K: NgramKey>(target: &[u32], pred: &[u32], n: usize) -> (usize, usize, u64) {
    let mut tk: Vec<K> = Vec::new();
    let mut pk: Vec<K> = Vec::new();
    push_keys(target, n, n, &mut tk);
    push_keys(pred, n, n, &mut pk);
    let (t, p) = (tk.len(), pk.len());
    let (a, b) = (count(&mut tk), count(&mut pk));
    let mut inter = 0u64;
    for_each_common(&a, &b, |_, c| inter += c as u64);
    (t, p, inter)
}

fn score_ngrams(target: &[u32], pred: &[u32], n: usize) -> RougeScore {
    let max_id = target.iter().chain(pred).copied().max().unwrap_or(0);
    let (tc, pc, mut inter) = if n <= super::ngram::MAX_ORDER && max_id <= u64::MAX_ID {
        overlap::<u64>(target, pred, n)
    } else if n <= super::ngram::MAX_ORDER {
        overlap::<u128>(target, pred, n)
    } else {
        // Orders above 4 (rouge5…rouge9): compare token windows directly.
        let mut a: Vec<&[u32]> = target.windows(n).collect();
        let mut b: Vec<&[u32]> = pred.windows(n).collect();
        a.sort_unstable();
        b.sort_unstable();
        let (mut i, mut j, mut inter) = (0, 0, 0u64);
        while i < a.len() && j < b.len() {
            match a[i].cmp(b[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    inter += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        (a.len(), b.len(), inter)
    };
    if tc == 0 || pc == 0 {
        inter = 0;
    }
    RougeScore::new(
        inter as f64 / pc.max(1) as f64,
        inter as f64 / tc.max(1) as f64,
    )
}

/// Length of the longest common subsequence (two rolling rows).
fn lcs_len(a: &[u32], b: &[u32]) -> usize {
    let (a, b) = if a.len() < b.len() { (b, a) } else { (a, b) };
    let mut prev = vec![0u32; b.len() + 1];
    let mut cur = vec![0u32; b.len() + 1];
    for &x in a {
        for (j, &y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()] as usize
}

fn score_lcs(target: &[u32], pred: &[u32]) -> RougeScore {
    if target.is_empty() || pred.is_empty() {
        return RougeScore::default();
    }
    let l = lcs_len(target, pred) as f64;
    RougeScore::new(l / pred.len() as f64, l / target.len() as f64)
}

/// Marks in `hit` the positions of `r` on one LCS with `c`, read back exactly as rouge-score's
/// `_backtrack_norec` does (full table, same tie-breaking).
fn mark_lcs(r: &[u32], c: &[u32], table: &mut Vec<u32>, hit: &mut [bool]) {
    let w = c.len() + 1;
    table.clear();
    table.resize((r.len() + 1) * w, 0);
    for i in 1..=r.len() {
        for j in 1..=c.len() {
            table[i * w + j] = if r[i - 1] == c[j - 1] {
                table[(i - 1) * w + j - 1] + 1
            } else {
                table[(i - 1) * w + j].max(table[i * w + j - 1])
            };
        }
    }
    let (mut i, mut j) = (r.len(), c.len());
    while i > 0 && j > 0 {
        if r[i - 1] == c[j - 1] {
            hit[i - 1] = true;
            i -= 1;
            j -= 1;
        } else if table[i * w + j - 1] > table[(i - 1) * w + j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
}

fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').filter(|s| !s.is_empty())
}

fn score_lsum(target: &str, pred: &str, tok: RougeTokenizer) -> RougeScore {
    let tt: Vec<Tokens<'_>> = sentences(target).map(|s| tok.tokens(s)).collect();
    let pt: Vec<Tokens<'_>> = sentences(pred).map(|s| tok.tokens(s)).collect();
    if tt.is_empty() || pt.is_empty() {
        return RougeScore::default();
    }
    let mut vocab = Vocab::new();
    let r: Vec<Vec<u32>> = tt.iter().map(|t| ids(t, &mut vocab)).collect();
    let c: Vec<Vec<u32>> = pt.iter().map(|t| ids(t, &mut vocab)).collect();
    let m: usize = r.iter().map(Vec::len).sum();
    let n: usize = c.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return RougeScore::default();
    }
    let mut cnt_r = vec![0i64; vocab.len()];
    let mut cnt_c = vec![0i64; vocab.len()];
    r.iter().flatten().for_each(|&t| cnt_r[t as usize] += 1);
    c.iter().flatten().for_each(|&t| cnt_c[t as usize] += 1);
    let mut hits = 0u64;
    let mut table = Vec::new();
    for rs in &r {
        let mut hit = vec![false; rs.len()];
        for cs in &c {
            mark_lcs(rs, cs, &mut table, &mut hit);
        }
        for (i, _) in hit.iter().enumerate().filter(|(_, h)| **h) {
            let t = rs[i] as usize;
            if cnt_c[t] > 0 && cnt_r[t] > 0 {
                hits += 1;
                cnt_c[t] -= 1;
                cnt_r[t] -= 1;
            }
        }
    }
    RougeScore::new(hits as f64 / n as f64, hits as f64 / m as f64)
}

/// ROUGE scores of one prediction against one target, per variant of `cfg.types`
/// (rouge-score's `RougeScorer.score(target, prediction)`).
pub fn rouge_pair(target: &str, prediction: &str, cfg: &RougeConfig) -> Vec<RougeScore> {
    let needs_whole = cfg.types.iter().any(|t| *t != RougeType::Lsum);
    let (tt, pt) = if needs_whole {
        (
            cfg.tokenizer.tokens(target),
            cfg.tokenizer.tokens(prediction),
        )
    } else {
        (Tokens::default(), Tokens::default())
    };
    let mut vocab = Vocab::new();
    let t = ids(&tt, &mut vocab);
    let p = ids(&pt, &mut vocab);
    cfg.types
        .iter()
        .map(|ty| match ty {
            RougeType::N(n) => score_ngrams(&t, &p, *n as usize),
            RougeType::L => score_lcs(&t, &p),
            RougeType::Lsum => score_lsum(target, prediction, cfg.tokenizer),
        })
        .collect()
}

/// ROUGE of one prediction against several targets: per variant, the target with the highest F
/// (rouge-score's `score_multi`).
pub fn rouge_multi(targets: &[&str], prediction: &str, cfg: &RougeConfig) -> Vec<RougeScore> {
    let all: Vec<Vec<RougeScore>> = targets
        .iter()
        .map(|t| rouge_pair(t, prediction, cfg))
        .collect();
    (0..cfg.types.len())
        .map(|k| {
            let mut best = all[0][k];
            for s in &all[1..] {
                if s[k].fmeasure > best.fmeasure {
                    best = s[k];
                }
            }
            best
        })
        .collect()
}

/// ROUGE of every prediction (`hyps[i]`) against its references (`refs[k][i]`, reference
/// streams as in BLEU), in parallel, with per-variant means.
pub fn rouge<H, R, S>(hyps: &[H], refs: &[S], cfg: &RougeConfig) -> Result<RougeResult>
where
    H: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
    S: AsRef<[R]> + Sync,
{
    cfg.validate()?;
    if refs.is_empty() {
        return Err(
            EvalError::Config("ROUGE: at least one reference stream is needed".into()).into(),
        );
    }
    for (k, s) in refs.iter().enumerate() {
        if s.as_ref().len() != hyps.len() {
            return Err(EvalError::LengthMismatch {
                what: "ROUGE",
                left: "hypotheses".into(),
                left_len: hyps.len(),
                right: format!("reference stream {k}"),
                right_len: s.as_ref().len(),
            }
            .into());
        }
    }
    let items: Vec<Vec<RougeScore>> = hyps
        .par_iter()
        .enumerate()
        .with_min_len(16)
        .map(|(i, h)| {
            let targets: Vec<&str> = refs.iter().map(|s| s.as_ref()[i].as_ref()).collect();
            if targets.len() == 1 {
                rouge_pair(targets[0], h.as_ref(), cfg)
            } else {
                rouge_multi(&targets, h.as_ref(), cfg)
            }
        })
        .collect();
    let n = items.len().max(1) as f64;
    let mean = (0..cfg.types.len())
        .map(|k| {
            let (mut p, mut r, mut f) = (0.0, 0.0, 0.0);
            for s in &items {
                p += s[k].precision;
                r += s[k].recall;
                f += s[k].fmeasure;
            }
            RougeScore {
                precision: p / n,
                recall: r / n,
                fmeasure: f / n,
            }
        })
        .collect();
    Ok(RougeResult {
        types: cfg.types.clone(),
        items,
        mean,
        tokenizer: cfg.tokenizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(tok: RougeTokenizer) -> RougeConfig {
        RougeConfig {
            tokenizer: tok,
            ..Default::default()
        }
    }

    #[test]
    fn identical_scores_1_and_no_overlap_scores_0() {
        let s = rouge_pair("the cat sat", "the cat sat", &cfg(RougeTokenizer::Rouge));
        assert!(s.iter().all(|x| *x
            == RougeScore {
                precision: 1.0,
                recall: 1.0,
                fmeasure: 1.0
            }));
        let z = rouge_pair("the cat sat", "a dog ran", &cfg(RougeTokenizer::Rouge));
        assert!(z.iter().all(|x| *x == RougeScore::default()));
        let e = rouge_pair("the cat sat", "", &cfg(RougeTokenizer::Rouge));
        assert!(e.iter().all(|x| *x == RougeScore::default()));
    }

    #[test]
    fn korean_is_empty_with_rouge_tokenizer_but_scored_with_hangul() {
        let r = rouge_pair(
            "오늘 날씨가 좋다",
            "오늘 날씨가 나쁘다",
            &cfg(RougeTokenizer::Rouge),
        );
        assert_eq!(r[0], RougeScore::default());
        let h = rouge_pair(
            "오늘 날씨가 좋다",
            "오늘 날씨가 나쁘다",
            &cfg(RougeTokenizer::Hangul),
        );
        assert_eq!(h[0].precision, 2.0 / 3.0);
        assert_eq!(h[1].recall, 1.0 / 2.0);
    }

    #[test]
    fn hand_computed_lcs_and_lsum() {
        // target "a b c d e", prediction "a c e x": LCS = a c e (3); P = 3/4, R = 3/5.
        let s = rouge_pair("a b c d e", "a c e x", &cfg(RougeTokenizer::Whitespace));
        assert_eq!(s[2], RougeScore::new(0.75, 0.6));
        // rouge-score docstring example of summary-level LCS: ref sentences "w1 w2 w3 w4 w5" and
        // candidate sentences "w1 w2 w6 w7 w8" / "w1 w3 w8 w9 w5": union LCS = w1 w2 w3 w5 → 4 hits.
        let l = rouge_pair(
            "w1 w2 w3 w4 w5",
            "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5",
            &cfg(RougeTokenizer::Whitespace),
        );
        assert_eq!(l[3], RougeScore::new(4.0 / 10.0, 4.0 / 5.0));
    }

    #[test]
    fn multi_reference_takes_best_f_and_types_parse() {
        let c = cfg(RougeTokenizer::Whitespace);
        let m = rouge_multi(&["x y z", "a b c"], "a b c", &c);
        assert_eq!(m[0].fmeasure, 1.0);
        assert_eq!("rouge3".parse::<RougeType>().unwrap(), RougeType::N(3));
        assert!("rouge0".parse::<RougeType>().is_err());
        assert!(
            "rougeX"
                .parse::<RougeType>()
                .unwrap_err()
                .to_string()
                .contains("rougeLsum")
        );
        let r = rouge(&["a b", "c"], &[vec!["a b"]], &c).unwrap_err();
        assert!(r.to_string().contains("hypotheses has 2 segments"), "{r}");
    }
}
