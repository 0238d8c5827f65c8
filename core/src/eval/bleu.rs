//! BLEU compatible with sacreBLEU 2.x (`sacrebleu.metrics.bleu.BLEU`): the same tokenizers
//! (`13a`, `char`, `none`), clipped n-gram counts against one or more references (the maximum
//! count over references), the closest reference length (ties → the shorter), the four
//! smoothing methods and effective order, computed with the same floating-point operations in
//! the same order so scores agree to the last bits. Corpus BLEU sums per-segment statistics
//! computed in parallel (rayon).
//!
//! References follow sacreBLEU's layout: a list of reference *streams*, each as long as the
//! hypotheses (`refs[k][i]` is the k-th reference of segment i).

use super::EvalError;
use super::ngram::{
    MAX_ORDER, NgramKey, Vocab, count, for_each_common, max_merge, order, push_keys,
};
use super::tokenize::{Tokens, char_tokens, lower, py_rstrip, tokenize_13a};
use crate::report::Table;
use crate::{Error, Result};
use polars::prelude::{Column, DataFrame, NamedFrom, Series};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The sacreBLEU version whose behaviour and signature format this module reproduces.
pub const SACREBLEU_VERSION: &str = "2.6.0";

/// BLEU tokenizer (sacreBLEU's `tokenize=` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BleuTokenize {
    /// `13a`: mteval-v13a punctuation splitting (sacreBLEU's default).
    #[default]
    #[serde(rename = "13a")]
    Thirteen,
    /// `char`: every non-whitespace character is a token (good for Korean).
    #[serde(rename = "char")]
    Char,
    /// `none`: split on whitespace only.
    #[serde(rename = "none")]
    None,
}

impl BleuTokenize {
    /// The name as sacreBLEU spells it (and as it appears in the signature).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thirteen => "13a",
            Self::Char => "char",
            Self::None => "none",
        }
    }

    /// Tokens of one (already lowercased if requested) segment, after `rstrip()`.
    pub fn tokens<'a>(self, text: &'a str) -> Tokens<'a> {
        let text = py_rstrip(text);
        match self {
            Self::Thirteen => tokenize_13a(text),
            Self::Char => char_tokens(text),
            Self::None => Tokens::split_whitespace(Cow::Borrowed(text)),
        }
    }
}

impl std::str::FromStr for BleuTokenize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "13a" => Self::Thirteen,
            "char" => Self::Char,
            "none" => Self::None,
            _ => {
                return Err(EvalError::Unknown {
                    what: "BLEU tokenizer",
                    got: s.into(),
                    expected: "13a, char, none",
                }
                .into());
            }
        })
    }
}

/// Smoothing method (sacreBLEU's `smooth_method=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Smooth {
    /// No smoothing.
    None,
    /// Zero counts get `smooth_value` (default 0.1) matches.
    Floor,
    /// Add `smooth_value` (default 1) to counts and totals of orders ≥ 2.
    AddK,
    /// NIST/mteval exponential smoothing (sacreBLEU's default).
    #[default]
    Exp,
}

impl Smooth {
    /// The name as sacreBLEU spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Floor => "floor",
            Self::AddK => "add-k",
            Self::Exp => "exp",
        }
    }

    /// sacreBLEU's `SMOOTH_DEFAULTS`.
    pub fn default_value(self) -> Option<f64> {
        match self {
            Self::Floor => Some(0.1),
            Self::AddK => Some(1.0),
            Self::None | Self::Exp => None,
        }
    }
}

impl std::str::FromStr for Smooth {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "none" => Self::None,
            "floor" => Self::Floor,
            "add-k" => Self::AddK,
            "exp" => Self::Exp,
            _ => {
                return Err(EvalError::Unknown {
                    what: "smoothing method",
                    got: s.into(),
                    expected: "exp, floor, add-k, none",
                }
                .into());
            }
        })
    }
}

/// BLEU options. `Default` is sacreBLEU's `corpus_bleu`: `13a`, case-sensitive, `exp`
/// smoothing, no effective order, n-grams up to 4. [`BleuConfig::sentence`] is its
/// `sentence_bleu` (effective order on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BleuConfig {
    /// Tokenizer (default `13a`).
    pub tokenize: BleuTokenize,
    /// Lowercase hypotheses and references first (default false).
    pub lowercase: bool,
    /// Smoothing method (default `exp`).
    pub smooth_method: Smooth,
    /// Value for `floor` (default 0.1) and `add-k` (default 1); ignored otherwise.
    pub smooth_value: Option<f64>,
    /// Highest n-gram order, 1 to 4 (default 4).
    pub max_ngram_order: usize,
    /// Average only over orders that have hypothesis n-grams (default false; true for
    /// sentence BLEU).
    pub effective_order: bool,
}

impl crate::config::Primitive for BleuConfig {
    const NAME: &'static str = "bleu";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[
            opt(
                "tokenize",
                "13a (sacreBLEU's default), char (one token per character; Korean) or none",
            ),
            opt("lowercase", "lowercase hypotheses and references first"),
            opt("smooth_method", "exp, floor, add-k or none"),
            opt(
                "smooth_value",
                "value for floor (0.1 when not given) and add-k (1)",
            ),
            opt("max_ngram_order", "highest n-gram order, 1 to 4"),
            opt(
                "effective_order",
                "average only over orders with hypothesis n-grams (sentence BLEU: true)",
            ),
        ]
    };
}

impl Default for BleuConfig {
    fn default() -> Self {
        Self {
            tokenize: BleuTokenize::Thirteen,
            lowercase: false,
            smooth_method: Smooth::Exp,
            smooth_value: None,
            max_ngram_order: 4,
            effective_order: false,
        }
    }
}

impl BleuConfig {
    /// sacreBLEU's `sentence_bleu` defaults: as corpus BLEU but with effective order.
    pub fn sentence() -> Self {
        Self {
            effective_order: true,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if !(1..=MAX_ORDER).contains(&self.max_ngram_order) {
            return Err(EvalError::Config(format!(
                "BLEU `max_ngram_order` must be 1 to {MAX_ORDER}, got {}",
                self.max_ngram_order
            ))
            .into());
        }
        if let Some(v) = self.smooth_value
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(EvalError::Config(format!(
                "BLEU `smooth_value` must be a finite number ≥ 0, got {v}"
            ))
            .into());
        }
        Ok(())
    }

    /// sacreBLEU's signature, e.g. `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`.
    /// `nrefs` is `None` for a variable number of references (`nrefs:var`).
    pub fn signature(&self, nrefs: Option<usize>) -> String {
        let nrefs = nrefs.map_or("var".to_string(), |n| n.to_string());
        let case = if self.lowercase { "lc" } else { "mixed" };
        let eff = if self.effective_order { "yes" } else { "no" };
        let mut smooth = self.smooth_method.as_str().to_string();
        if let Some(def) = self.smooth_method.default_value() {
            smooth.push_str(&format!("[{:.2}]", self.smooth_value.unwrap_or(def)));
        }
        format!(
            "nrefs:{nrefs}|case:{case}|eff:{eff}|tok:{}|smooth:{smooth}|version:{SACREBLEU_VERSION}",
            self.tokenize.as_str()
        )
    }

    fn tokens<'a>(&self, text: &'a str) -> Tokens<'a> {
        if self.lowercase {
            match lower(text) {
                Cow::Borrowed(t) => self.tokenize.tokens(t),
                Cow::Owned(t) => self.tokenize.tokens(&t).into_owned(),
            }
        } else {
            self.tokenize.tokens(text)
        }
    }
}

/// Sufficient statistics of BLEU for one segment or a sum of segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BleuStats {
    /// Hypothesis length in tokens.
    pub sys_len: u64,
    /// Closest reference length in tokens.
    pub ref_len: u64,
    /// Clipped matching n-grams per order (1-based order at index order − 1).
    pub correct: [u64; MAX_ORDER],
    /// Hypothesis n-grams per order.
    pub total: [u64; MAX_ORDER],
}

impl std::ops::Add for BleuStats {
    type Output = Self;
    fn add(mut self, o: Self) -> Self {
        self.sys_len += o.sys_len;
        self.ref_len += o.ref_len;
        for n in 0..MAX_ORDER {
            self.correct[n] += o.correct[n];
            self.total[n] += o.total[n];
        }
        self
    }
}

/// A BLEU score with everything sacreBLEU's `BLEUScore` exposes, plus the signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BleuScore {
    /// BLEU in [0, 100].
    pub score: f64,
    /// Matching n-grams per order.
    pub counts: Vec<u64>,
    /// Hypothesis n-grams per order.
    pub totals: Vec<u64>,
    /// Precisions per order, in percent (smoothed as configured).
    pub precisions: Vec<f64>,
    /// Brevity penalty.
    pub bp: f64,
    /// Total hypothesis length.
    pub sys_len: u64,
    /// Total (closest) reference length.
    pub ref_len: u64,
    /// `sys_len / ref_len` (0 when `ref_len` is 0).
    pub ratio: f64,
    /// sacreBLEU signature of the configuration.
    pub signature: String,
}

impl BleuScore {
    /// sacreBLEU's printed form: `BLEU|sig = 12.34 50.0/20.0/… (BP = 1.000 ratio = …)`.
    pub fn format(&self) -> String {
        let prec: Vec<String> = self.precisions.iter().map(|p| format!("{p:.1}")).collect();
        format!(
            "BLEU|{} = {:.2} {} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
            self.signature,
            self.score,
            prec.join("/"),
            self.bp,
            self.ratio,
            self.sys_len,
            self.ref_len
        )
    }
}

/// sacreBLEU's `my_log`: `log`, with `log(0)` floored to −9999999999.
fn my_log(x: f64) -> f64 {
    if x == 0.0 { -9_999_999_999.0 } else { x.ln() }
}

/// BLEU from statistics: a port of sacreBLEU's `BLEU.compute_bleu` (same operation order).
pub fn compute_bleu(stats: &BleuStats, cfg: &BleuConfig, signature: String) -> BleuScore {
    let max = cfg.max_ngram_order;
    let (sys_len, ref_len) = (stats.sys_len, stats.ref_len);
    let mut bp = 1.0;
    if sys_len < ref_len {
        bp = if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        };
    }
    let counts = stats.correct[..max].to_vec();
    let totals = stats.total[..max].to_vec();
    let ratio = if ref_len > 0 {
        sys_len as f64 / ref_len as f64
    } else {
        0.0
    };
    let mut precisions = vec![0.0f64; max];
    let mut score = 0.0;
    if counts.iter().any(|&c| c != 0) {
        let sv = cfg
            .smooth_value
            .or(cfg.smooth_method.default_value())
            .unwrap_or(0.0);
        let mut correct: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
        let mut total: Vec<f64> = totals.iter().map(|&c| c as f64).collect();
        let mut smooth_mteval = 1.0f64;
        let mut eff_order = max;
        for n in 1..=max {
            if cfg.smooth_method == Smooth::AddK && n > 1 {
                correct[n - 1] += sv;
                total[n - 1] += sv;
            }
            if total[n - 1] == 0.0 {
                break;
            }
            if cfg.effective_order {
                eff_order = n;
            }
            if correct[n - 1] == 0.0 {
                match cfg.smooth_method {
                    Smooth::Exp => {
                        smooth_mteval *= 2.0;
                        precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1]);
                    }
                    Smooth::Floor => precisions[n - 1] = 100.0 * sv / total[n - 1],
                    _ => {}
                }
            } else {
                precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1];
            }
        }
        let mut s = 0.0f64;
        for p in &precisions[..eff_order] {
            s += my_log(*p);
        }
        score = bp * (s / eff_order as f64).exp();
    }
    BleuScore {
        score,
        counts,
        totals,
        precisions,
        bp,
        sys_len,
        ref_len,
        ratio,
        signature,
    }
}

/// Statistics of one hypothesis against its references (sacreBLEU's
/// `_compute_segment_statistics`).
pub fn segment_stats(hyp: &str, refs: &[&str], cfg: &BleuConfig) -> BleuStats {
    let ref_toks: Vec<Tokens<'_>> = refs.iter().map(|r| cfg.tokens(r)).collect();
    let hyp_toks = cfg.tokens(hyp);
    let mut vocab = Vocab::new();
    let ref_ids: Vec<Vec<u32>> = ref_toks
        .iter()
        .map(|rt| rt.iter().map(|t| vocab.intern(t)).collect())
        .collect();
    let hyp_ids: Vec<u32> = hyp_toks.iter().map(|t| vocab.lookup(t)).collect();
    if vocab.len() <= u64::MAX_ID as usize {
        stats_of::<u64>(&hyp_ids, &ref_ids, cfg.max_ngram_order)
    } else {
        stats_of::<u128>(&hyp_ids, &ref_ids, cfg.max_ngram_order)
    }
}

/// [`segment_stats`] on token ids, n-grams packed as `K`.
fn stats_of<K: NgramKey>(hyp_ids: &[u32], ref_ids: &[Vec<u32>], max_n: usize) -> BleuStats {
    let mut keys: Vec<K> = Vec::new();
    let mut ref_counts: Vec<(K, u32)> = Vec::new();
    for (k, ids) in ref_ids.iter().enumerate() {
        keys.clear();
        push_keys(ids, 1, max_n, &mut keys);
        let c = count(&mut keys);
        ref_counts = if k == 0 {
            c
        } else {
            max_merge(&ref_counts, &c)
        };
    }
    keys.clear();
    push_keys(hyp_ids, 1, max_n, &mut keys);
    let hyp_counts = count(&mut keys);
    let hyp_len = hyp_ids.len() as u64;
    let mut st = BleuStats {
        sys_len: hyp_len,
        ..Default::default()
    };
    for n in 1..=max_n {
        st.total[n - 1] = (hyp_len + 1).saturating_sub(n as u64);
    }
    for_each_common(&hyp_counts, &ref_counts, |key, c| {
        st.correct[order(key) - 1] += c as u64
    });
    // Closest reference length; ties go to the shorter reference.
    let mut best: Option<(u64, u64)> = None;
    for rl in ref_ids.iter().map(|r| r.len() as u64) {
        let diff = hyp_len.abs_diff(rl);
        best = match best {
            None => Some((diff, rl)),
            Some((bd, bl)) if diff < bd || (diff == bd && rl < bl) => Some((diff, rl)),
            b => b,
        };
    }
    st.ref_len = best.map_or(0, |b| b.1);
    st
}

fn check_streams<H: AsRef<str>, R: AsRef<str>, S: AsRef<[R]>>(
    what: &'static str,
    hyps: &[H],
    refs: &[S],
) -> Result<()> {
    if refs.is_empty() {
        return Err(
            EvalError::Config(format!("{what}: at least one reference stream is needed")).into(),
        );
    }
    for (k, s) in refs.iter().enumerate() {
        if s.as_ref().len() != hyps.len() {
            return Err(EvalError::LengthMismatch {
                what,
                left: "hypotheses".into(),
                left_len: hyps.len(),
                right: format!("reference stream {k}"),
                right_len: s.as_ref().len(),
            }
            .into());
        }
    }
    Ok(())
}

fn refs_of<'a, R: AsRef<str> + 'a, S: AsRef<[R]>>(refs: &'a [S], i: usize) -> Vec<&'a str> {
    refs.iter().map(|s| s.as_ref()[i].as_ref()).collect()
}

/// Corpus BLEU (sacreBLEU's `corpus_bleu` / `BLEU(...).corpus_score`). `refs` are reference
/// streams, each as long as `hyps`.
pub fn corpus_bleu<H, R, S>(hyps: &[H], refs: &[S], cfg: &BleuConfig) -> Result<BleuScore>
where
    H: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
    S: AsRef<[R]> + Sync,
{
    cfg.validate()?;
    check_streams("corpus BLEU", hyps, refs)?;
    let stats = hyps
        .par_iter()
        .enumerate()
        .with_min_len(64)
        .map(|(i, h)| segment_stats(h.as_ref(), &refs_of(refs, i), cfg))
        .reduce(BleuStats::default, |a, b| a + b);
    Ok(compute_bleu(&stats, cfg, cfg.signature(Some(refs.len()))))
}

/// Sentence BLEU of one hypothesis against its references (sacreBLEU's `sentence_bleu` when
/// `cfg` is [`BleuConfig::sentence`]).
pub fn sentence_bleu(hyp: &str, refs: &[&str], cfg: &BleuConfig) -> Result<BleuScore> {
    cfg.validate()?;
    if refs.is_empty() {
        return Err(
            EvalError::Config("sentence BLEU: at least one reference is needed".into()).into(),
        );
    }
    let stats = segment_stats(hyp, refs, cfg);
    Ok(compute_bleu(&stats, cfg, cfg.signature(Some(refs.len()))))
}

/// Sentence BLEU of every hypothesis (in parallel), in input order.
pub fn sentence_bleu_all<H, R, S>(
    hyps: &[H],
    refs: &[S],
    cfg: &BleuConfig,
) -> Result<Vec<BleuScore>>
where
    H: AsRef<str> + Sync,
    R: AsRef<str> + Sync,
    S: AsRef<[R]> + Sync,
{
    cfg.validate()?;
    check_streams("sentence BLEU", hyps, refs)?;
    let sig = cfg.signature(Some(refs.len()));
    Ok(hyps
        .par_iter()
        .enumerate()
        .with_min_len(64)
        .map(|(i, h)| {
            compute_bleu(
                &segment_stats(h.as_ref(), &refs_of(refs, i), cfg),
                cfg,
                sig.clone(),
            )
        })
        .collect())
}

/// Per-item sentence BLEU as a table: `index, bleu, bp, sys_len, ref_len, precision_1…n`.
pub fn sentence_bleu_table(scores: &[BleuScore]) -> Result<Table> {
    let n = scores.first().map_or(MAX_ORDER, |s| s.precisions.len());
    let mut cols: Vec<Column> = vec![
        Series::new("index".into(), (0..scores.len() as u64).collect::<Vec<_>>()).into(),
        Series::new(
            "bleu".into(),
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
        )
        .into(),
        Series::new("bp".into(), scores.iter().map(|s| s.bp).collect::<Vec<_>>()).into(),
        Series::new(
            "sys_len".into(),
            scores.iter().map(|s| s.sys_len).collect::<Vec<_>>(),
        )
        .into(),
        Series::new(
            "ref_len".into(),
            scores.iter().map(|s| s.ref_len).collect::<Vec<_>>(),
        )
        .into(),
    ];
    for k in 0..n {
        let v: Vec<f64> = scores
            .iter()
            .map(|s| s.precisions.get(k).copied().unwrap_or(0.0))
            .collect();
        cols.push(Series::new(format!("precision_{}", k + 1).into(), v).into());
    }
    Ok(Table::from_df(DataFrame::new(scores.len(), cols)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(h: &[&str], r: &[&str]) -> BleuScore {
        corpus_bleu(h, &[r.to_vec()], &BleuConfig::default()).unwrap()
    }

    #[test]
    fn wide_and_narrow_ngram_keys_count_the_same() {
        // 70 000 distinct tokens need 32-bit lanes; the same statistics with 16-bit lanes on
        // the first 1 000 tokens, computed both ways.
        let words: Vec<String> = (0..70_000).map(|i| format!("w{i}")).collect();
        let mut hyp = words.clone();
        hyp.swap(10, 11);
        let (h, r) = (hyp.join(" "), words.join(" "));
        let st = segment_stats(&h, &[r.as_str()], &BleuConfig::default());
        assert_eq!(st.sys_len, 70_000);
        assert_eq!(st.correct[0], 70_000);
        assert_eq!(st.correct[1], 70_000 - 1 - 3, "the swap breaks 3 bigrams");
        let ids: Vec<u32> = (0..1000).collect();
        let mut hid = ids.clone();
        hid.swap(10, 11);
        let refs = vec![ids];
        assert_eq!(
            stats_of::<u64>(&hid, &refs, 4),
            stats_of::<u128>(&hid, &refs, 4)
        );
    }

    #[test]
    fn identical_is_100() {
        let s = corpus(&["the cat sat on the mat"], &["the cat sat on the mat"]);
        // exp(ln(100)) in f64, exactly what sacreBLEU prints for a perfect match.
        assert_eq!(s.score, 100.00000000000004);
        assert_eq!(s.counts, vec![6, 5, 4, 3]);
        assert_eq!(s.totals, vec![6, 5, 4, 3]);
        assert_eq!(s.bp, 1.0);
        assert_eq!(
            s.signature,
            "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
        );
    }

    #[test]
    fn no_overlap_and_empty_hypothesis_score_0() {
        let s = corpus(&["a b c d"], &["w x y z"]);
        assert_eq!(s.score, 0.0);
        assert_eq!(s.precisions, vec![0.0; 4]);
        let e = corpus(&[""], &["w x y z"]);
        assert_eq!((e.score, e.sys_len, e.ref_len, e.bp), (0.0, 0, 4, 0.0));
    }

    #[test]
    fn hand_computed_exp_smoothing_and_brevity_penalty() {
        // hyp "the cat sat" vs ref "the cat sat down": 3/3 unigrams, 2/2 bigrams, 1/1 trigram,
        // no 4-grams (total 0 → loop stops, precision stays 0 → log floor → score ≈ 0 without
        // effective order). With effective order: exp((ln100*3)/3) * bp, bp = exp(1 - 4/3).
        let c = corpus(&["the cat sat"], &["the cat sat down"]);
        assert_eq!(c.counts, vec![3, 2, 1, 0]);
        assert_eq!(c.totals, vec![3, 2, 1, 0]);
        assert!(c.score < 1e-100);
        let s = sentence_bleu(
            "the cat sat",
            &["the cat sat down"],
            &BleuConfig::sentence(),
        )
        .unwrap();
        let bp = (1.0f64 - 4.0 / 3.0).exp();
        assert!((s.score - 100.0 * bp).abs() < 1e-12, "{}", s.score);
        // exp smoothing: hyp "a b x c" vs ref "a b y c": 3/4, 1/3, 0/2 → 100/(2*2), 0/1 → 100/(4*1)
        let e = sentence_bleu("a b x c", &["a b y c"], &BleuConfig::sentence()).unwrap();
        assert_eq!(e.precisions, vec![75.0, 100.0 / 3.0, 25.0, 25.0]);
        let want =
            ((75.0f64.ln() + (100.0f64 / 3.0).ln() + 25.0f64.ln() + 25.0f64.ln()) / 4.0).exp();
        assert!((e.score - want).abs() < 1e-12);
    }

    #[test]
    fn multiple_references_clip_with_max_and_pick_closest_length() {
        let cfg = BleuConfig::default();
        let r1 = vec!["the the cat"];
        let r2 = vec!["the cat is here now"];
        let s = corpus_bleu(&["the the the cat"], &[r1, r2], &cfg).unwrap();
        assert_eq!(s.counts[0], 3); // "the" clipped at max(2, 1) = 2, plus "cat"
        assert_eq!(s.ref_len, 3); // |4-3| = 1 < |4-5| = 1? tie → shorter (3)
        assert!(s.signature.starts_with("nrefs:2|"));
    }

    #[test]
    fn length_mismatch_and_bad_config_are_errors() {
        let e = corpus_bleu(&["a", "b"], &[vec!["a"]], &BleuConfig::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("hypotheses has 2 segments but reference stream 0 has 1"),
            "{e}"
        );
        let cfg = BleuConfig {
            max_ngram_order: 5,
            ..Default::default()
        };
        assert!(corpus_bleu(&["a"], &[vec!["a"]], &cfg).is_err());
        assert!(
            "14a"
                .parse::<BleuTokenize>()
                .unwrap_err()
                .to_string()
                .contains("13a, char, none")
        );
    }

    #[test]
    fn signature_variants() {
        let c = BleuConfig {
            lowercase: true,
            tokenize: BleuTokenize::Char,
            smooth_method: Smooth::Floor,
            effective_order: true,
            ..Default::default()
        };
        assert_eq!(
            c.signature(Some(1)),
            "nrefs:1|case:lc|eff:yes|tok:char|smooth:floor[0.10]|version:2.6.0"
        );
        let a = BleuConfig {
            smooth_method: Smooth::AddK,
            ..Default::default()
        };
        assert_eq!(
            a.signature(None),
            "nrefs:var|case:mixed|eff:no|tok:13a|smooth:add-k[1.00]|version:2.6.0"
        );
    }
}
