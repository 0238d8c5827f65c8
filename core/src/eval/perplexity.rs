//! Perplexity from token negative log-likelihoods: `exp(Σ NLL / N)` over every predicted token
//! of a corpus (no strided-window approximation), per domain and overall. Model-independent:
//! whatever runs the model feeds NLL sums (or per-token NLLs) with their token counts.
//!
//! Sums are exact: [`ExactSum`] keeps Shewchuk's non-overlapping partials (Python's
//! `math.fsum`), so the result is the correctly rounded sum of every value added, whatever the
//! order of additions or the way partial accumulators are split across threads and merged.

use super::EvalError;
use crate::Result;
use crate::report::Table;
use polars::prelude::{Column, DataFrame, NamedFrom, Series};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An exactly rounded floating-point sum (Shewchuk's algorithm, as `math.fsum`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactSum {
    partials: Vec<f64>,
}

impl ExactSum {
    /// An empty sum (0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `x` (must be finite).
    pub fn add(&mut self, mut x: f64) {
        let mut i = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.partials.truncate(i);
        self.partials.push(x);
    }

    /// Adds every partial of `other` (exact, so merging is order-independent).
    pub fn merge(&mut self, other: &ExactSum) {
        for &p in &other.partials {
            self.add(p);
        }
    }

    /// The correctly rounded value of the sum.
    pub fn value(&self) -> f64 {
        let p = &self.partials;
        let Some(mut n) = p.len().checked_sub(1) else {
            return 0.0;
        };
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            n -= 1;
            let x = hi;
            let y = p[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        // Half-way case: make the rounding exact (as math.fsum does).
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            let yr = x - hi;
            if y == yr {
                hi = x;
            }
        }
        hi
    }
}

/// NLL total and token count of one domain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NllSum {
    nll: ExactSum,
    tokens: u64,
}

impl NllSum {
    /// Total negative log-likelihood (nats).
    pub fn nll(&self) -> f64 {
        self.nll.value()
    }

    /// Number of predicted tokens.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Mean NLL per token (NaN with no tokens).
    pub fn mean_nll(&self) -> f64 {
        if self.tokens == 0 {
            f64::NAN
        } else {
            self.nll() / self.tokens as f64
        }
    }

    /// `exp(mean NLL)` (NaN with no tokens).
    pub fn perplexity(&self) -> f64 {
        self.mean_nll().exp()
    }

    fn merge(&mut self, o: &NllSum) {
        self.nll.merge(&o.nll);
        self.tokens += o.tokens;
    }
}

/// One row of [`PerplexityAccumulator::rows`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerplexityRow {
    /// Domain name, or [`OVERALL`] for the corpus.
    pub domain: String,
    /// Predicted tokens.
    pub tokens: u64,
    /// Total NLL in nats.
    pub nll_sum: f64,
    /// Mean NLL per token.
    pub mean_nll: f64,
    /// Perplexity.
    pub perplexity: f64,
}

/// The domain name of the corpus-wide row.
pub const OVERALL: &str = "overall";

/// Accumulates token NLLs per domain; cheap to merge, so each worker can keep its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerplexityAccumulator {
    domains: BTreeMap<String, NllSum>,
}

impl PerplexityAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n_tokens` predicted tokens whose NLLs (natural log) sum to `nll_sum`.
    pub fn add(&mut self, domain: &str, nll_sum: f64, n_tokens: u64) -> Result<()> {
        let bad = |reason: String| EvalError::BadNll {
            domain: domain.into(),
            reason,
        };
        if !nll_sum.is_finite() || nll_sum < 0.0 {
            return Err(bad(format!("NLL sum must be finite and ≥ 0, got {nll_sum}")).into());
        }
        if n_tokens == 0 && nll_sum != 0.0 {
            return Err(bad(format!("NLL sum {nll_sum} given for 0 tokens")).into());
        }
        if domain == OVERALL {
            return Err(bad(format!("`{OVERALL}` is reserved for the corpus-wide row")).into());
        }
        let d = self.domains.entry(domain.to_string()).or_default();
        d.nll.add(nll_sum);
        d.tokens += n_tokens;
        Ok(())
    }

    /// Adds per-token NLLs (one value per predicted token).
    pub fn add_tokens(&mut self, domain: &str, nlls: &[f64]) -> Result<()> {
        let mut s = ExactSum::new();
        for (i, &x) in nlls.iter().enumerate() {
            if !x.is_finite() || x < 0.0 {
                return Err(EvalError::BadNll {
                    domain: domain.into(),
                    reason: format!("token {i}: NLL must be finite and ≥ 0, got {x}"),
                }
                .into());
            }
            s.add(x);
        }
        self.add(domain, 0.0, 0)?;
        let d = self.domains.get_mut(domain).expect("domain just added");
        d.nll.merge(&s);
        d.tokens += nlls.len() as u64;
        Ok(())
    }

    /// Merges another accumulator (e.g. from another thread or shard) into this one.
    pub fn merge(&mut self, other: &PerplexityAccumulator) {
        for (k, v) in &other.domains {
            self.domains.entry(k.clone()).or_default().merge(v);
        }
    }

    /// Sums of one domain.
    pub fn domain(&self, name: &str) -> Option<&NllSum> {
        self.domains.get(name)
    }

    /// Domain names, sorted.
    pub fn domains(&self) -> Vec<String> {
        self.domains.keys().cloned().collect()
    }

    /// Sums over every domain (token-weighted: every token counts once).
    pub fn overall(&self) -> NllSum {
        let mut all = NllSum::default();
        for v in self.domains.values() {
            all.merge(v);
        }
        all
    }

    /// One row per domain (sorted) followed by the [`OVERALL`] row.
    pub fn rows(&self) -> Vec<PerplexityRow> {
        let row = |domain: &str, s: &NllSum| PerplexityRow {
            domain: domain.to_string(),
            tokens: s.tokens(),
            nll_sum: s.nll(),
            mean_nll: s.mean_nll(),
            perplexity: s.perplexity(),
        };
        let mut out: Vec<PerplexityRow> = self.domains.iter().map(|(k, v)| row(k, v)).collect();
        out.push(row(OVERALL, &self.overall()));
        out
    }

    /// [`Self::rows`] as a table: `domain, tokens, nll_sum, mean_nll, perplexity`.
    pub fn table(&self) -> Result<Table> {
        let rows = self.rows();
        let cols: Vec<Column> = vec![
            Series::new(
                "domain".into(),
                rows.iter().map(|r| r.domain.as_str()).collect::<Vec<_>>(),
            )
            .into(),
            Series::new(
                "tokens".into(),
                rows.iter().map(|r| r.tokens).collect::<Vec<_>>(),
            )
            .into(),
            Series::new(
                "nll_sum".into(),
                rows.iter().map(|r| r.nll_sum).collect::<Vec<_>>(),
            )
            .into(),
            Series::new(
                "mean_nll".into(),
                rows.iter().map(|r| r.mean_nll).collect::<Vec<_>>(),
            )
            .into(),
            Series::new(
                "perplexity".into(),
                rows.iter().map(|r| r.perplexity).collect::<Vec<_>>(),
            )
            .into(),
        ];
        Ok(Table::from_df(DataFrame::new(rows.len(), cols)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sum_is_order_independent_and_correctly_rounded() {
        let xs = [1e16, 1.0, -1e16, 1e-3, 3.0, 1e100, -1e100, 0.1, 0.2];
        let mut a = ExactSum::new();
        xs.iter().for_each(|&x| a.add(x));
        // math.fsum([1e16, 1.0, -1e16, 1e-3, 3.0, 1e100, -1e100, 0.1, 0.2]) == 4.301
        assert_eq!(a.value(), 4.301);
        let mut b = ExactSum::new();
        xs.iter().rev().for_each(|&x| b.add(x));
        assert_eq!(a.value(), b.value());
        let mut halves = ExactSum::new();
        let mut h2 = ExactSum::new();
        xs[..4].iter().for_each(|&x| halves.add(x));
        xs[4..].iter().for_each(|&x| h2.add(x));
        halves.merge(&h2);
        assert_eq!(halves.value(), a.value());
        assert_eq!(ExactSum::new().value(), 0.0);
    }

    #[test]
    fn perplexity_per_domain_and_overall() {
        let mut acc = PerplexityAccumulator::new();
        acc.add("law", 2.0 * 10.0, 10).unwrap(); // mean 2
        acc.add_tokens("chat", &[1.0, 1.0, 1.0, 1.0]).unwrap(); // mean 1
        let mut other = PerplexityAccumulator::new();
        other.add("chat", 6.0, 6).unwrap(); // chat: 10 nats / 10 tokens
        acc.merge(&other);
        let rows = acc.rows();
        assert_eq!(
            rows.iter().map(|r| r.domain.as_str()).collect::<Vec<_>>(),
            ["chat", "law", "overall"]
        );
        assert_eq!(rows[0].perplexity, 1.0f64.exp());
        assert_eq!(rows[1].perplexity, 2.0f64.exp());
        assert_eq!(rows[2].tokens, 20);
        assert_eq!(rows[2].perplexity, 1.5f64.exp());
        let t = acc.table().unwrap();
        assert_eq!(t.height(), 3);
        assert_eq!(
            t.columns(),
            ["domain", "tokens", "nll_sum", "mean_nll", "perplexity"]
        );
    }

    #[test]
    fn bad_values_are_rejected_and_name_the_domain() {
        let mut acc = PerplexityAccumulator::new();
        let e = acc.add("law", f64::NAN, 3).unwrap_err().to_string();
        assert!(e.contains("law") && e.contains("finite"), "{e}");
        assert!(acc.add("law", 1.0, 0).is_err());
        assert!(
            acc.add_tokens("x", &[0.5, -1.0])
                .unwrap_err()
                .to_string()
                .contains("token 1")
        );
        assert!(acc.add("overall", 1.0, 1).is_err());
        assert!(acc.overall().perplexity().is_nan());
    }
}
