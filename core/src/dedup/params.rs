//! Choosing LSH bands × rows for a similarity threshold.
//!
//! A pair of Jaccard similarity `s` becomes a candidate with probability
//! `P(s) = 1 − (1 − s^r)^b`. datasketch picks `(b, r)` minimising the equally weighted areas of
//! false positives (`∫₀ᵗ P`) and false negatives (`∫ₜ¹ 1 − P`), which for t = 0.8 and 128
//! permutations gives 9 × 13 and a candidate probability of only ~0.40 at s = 0.8: most true
//! pairs just above the threshold are never compared. Here every candidate is verified, so false
//! positives cost only verification time while false negatives lose duplicates for good. The
//! choice is therefore: among `(b, r)` with `b·r ≤ perms` and `P(t) ≥ recall`, the one with the
//! smallest false-positive area (ties: fewer rows used). For t = 0.8, 128 permutations and the
//! default recall 0.997 that is 20 × 6 (`P(0.8) = 0.9977`).

use serde::{Deserialize, Serialize};

/// Bands and rows of an LSH index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandRows {
    /// Number of bands.
    pub bands: usize,
    /// Rows (signature positions) per band.
    pub rows: usize,
}

impl BandRows {
    /// Probability that a pair of similarity `s` shares at least one band.
    pub fn candidate_probability(&self, s: f64) -> f64 {
        1.0 - (1.0 - s.powi(self.rows as i32)).powi(self.bands as i32)
    }

    /// ∫₀ᵗ P(s) ds: the false-positive area below the threshold.
    pub fn false_positive_area(&self, t: f64) -> f64 {
        integrate(|s| self.candidate_probability(s), 0.0, t)
    }

    /// ∫ₜ¹ 1 − P(s) ds: the false-negative area above the threshold.
    pub fn false_negative_area(&self, t: f64) -> f64 {
        integrate(|s| 1.0 - self.candidate_probability(s), t, 1.0)
    }
}

fn integrate(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    let n = 256;
    let h = (b - a) / n as f64;
    (0..n).map(|i| f(a + (i as f64 + 0.5) * h)).sum::<f64>() * h
}

/// The `(b, r)` for `threshold` with `perms` permutations: smallest false-positive area among
/// choices whose candidate probability at the threshold is at least `recall`; when none reaches
/// it, the choice with the highest probability there. `even_bands` restricts to an even number
/// of bands whose halves each fit in half the permutations (separate signatures per shingle
/// kind).
pub fn choose(threshold: f64, perms: usize, recall: f64, even_bands: bool) -> BandRows {
    let mut best: Option<(bool, f64, BandRows)> = None;
    for bands in 1..=perms {
        if even_bands && bands % 2 == 1 {
            continue;
        }
        let max_rows = if even_bands {
            (perms / 2) / (bands / 2)
        } else {
            perms / bands
        };
        for rows in 1..=max_rows {
            let br = BandRows { bands, rows };
            let p = br.candidate_probability(threshold);
            let ok = p >= recall;
            // Score: meeting the recall first, then less FP area (or more recall when unmet).
            let score = if ok {
                -br.false_positive_area(threshold)
            } else {
                p
            };
            let better = match &best {
                None => true,
                Some((bok, bscore, bbr)) => {
                    (ok && !bok)
                        || (ok == *bok
                            && (score > *bscore + 1e-12
                                || ((score - bscore).abs() <= 1e-12
                                    && bands * rows < bbr.bands * bbr.rows)))
                }
            };
            if better {
                best = Some((ok, score, br));
            }
        }
    }
    best.map(|b| b.2).unwrap_or(BandRows { bands: 1, rows: 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_threshold_gets_recall_weighted_bands() {
        let br = choose(0.8, 128, 0.997, false);
        assert!(br.bands * br.rows <= 128);
        assert!(br.candidate_probability(0.8) >= 0.997, "{br:?}");
        assert_eq!(br, BandRows { bands: 20, rows: 6 });
        // datasketch's 9 × 13 finds far fewer pairs at the threshold.
        let ds = BandRows { bands: 9, rows: 13 };
        assert!(ds.candidate_probability(0.8) < 0.5);
        assert!(ds.false_negative_area(0.8) > br.false_negative_area(0.8));
    }

    #[test]
    fn higher_thresholds_use_more_rows_and_even_split_fits() {
        let lo = choose(0.5, 128, 0.997, false);
        let hi = choose(0.9, 128, 0.997, false);
        assert!(hi.rows > lo.rows, "{lo:?} {hi:?}");
        let even = choose(0.8, 128, 0.997, true);
        assert_eq!(even.bands % 2, 0);
        assert!((even.bands / 2) * even.rows <= 64);
        // Unreachable recall falls back to the best probability.
        let few = choose(0.8, 4, 0.999, false);
        assert!(few.bands * few.rows <= 4);
    }
}
