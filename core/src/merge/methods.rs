//! Merge methods on one tensor, shared by the streaming (file) and in-memory merges. With base
//! `W`, diffs `τᵢ` and weights `wᵢ` (see `docs/merging.md`):
//!
//! - **task arithmetic** (DEM): `W + Σᵢ wᵢ τᵢ`, weights unnormalised (any sign, any sum);
//! - **TIES**: trim each `τᵢ` to its top-`density` fraction by magnitude (`τ̂ᵢ`), elect the sign
//!   `γ = sgn(Σᵢ wᵢ τ̂ᵢ)` per element, average the agreeing entries
//!   `Σ_{i∈A} wᵢ τ̂ᵢ / Σ_{i∈A} |wᵢ|` with `A = {i : sgn(wᵢ τ̂ᵢ) = γ}`, and add `λ` times that;
//! - **DARE**: drop each element of `τᵢ` with probability `p` (seeded), rescale the kept ones by
//!   `1/(1−p)`, then task arithmetic.
//!
//! Diffs with weight exactly 0 are skipped, so a zero weight returns the base bit for bit.

use super::MergeError;
use crate::Result;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Elements per parallel work item.
pub const CHUNK: usize = 1 << 14;
/// Elements per DARE random stream: element `j` of a tensor uses the stream of block
/// `j / DARE_BLOCK`, so the mask does not depend on the number of threads.
pub const DARE_BLOCK: usize = 1 << 16;

/// The merge method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeMethod {
    /// `W + Σ wᵢ τᵢ` (DEM's merge; mergekit `task_arithmetic` with `normalize: false`).
    #[default]
    TaskArithmetic,
    /// Trim, elect sign, disjoint mean, scale by λ.
    Ties,
    /// Random drop with probability p and rescale by 1/(1−p), then task arithmetic.
    Dare,
}

impl std::str::FromStr for MergeMethod {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "task_arithmetic" | "dem" | "linear_unnormalized" => Ok(Self::TaskArithmetic),
            "ties" => Ok(Self::Ties),
            "dare" => Ok(Self::Dare),
            _ => Err(MergeError::Config(format!(
                "method `{s}`: expected task_arithmetic, ties or dare"
            ))
            .into()),
        }
    }
}

impl std::fmt::Display for MergeMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TaskArithmetic => "task_arithmetic",
            Self::Ties => "ties",
            Self::Dare => "dare",
        })
    }
}

/// Options of a merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MergeConfig {
    /// The method. Default task arithmetic.
    pub method: MergeMethod,
    /// One weight per diff, in order; empty means 1.0 for every diff. Any sign, any sum.
    pub weights: Vec<f64>,
    /// TIES: fraction of each diff's entries kept (by magnitude), in (0, 1]. Default 0.2.
    pub density: f64,
    /// TIES: scale λ of the merged diff. Default 1.0.
    pub lambda: f64,
    /// DARE: drop probability p, in [0, 1). Default 0.5.
    pub drop: f64,
    /// DARE: seed of the drop masks. Default 42.
    pub seed: u64,
    /// Refuse diffs whose recorded base-tensor hash differs from the base's. Default true.
    pub check_base: bool,
}

impl Default for MergeConfig {
    fn default() -> Self {
        Self {
            method: MergeMethod::TaskArithmetic,
            weights: Vec::new(),
            density: 0.2,
            lambda: 1.0,
            drop: 0.5,
            seed: 42,
            check_base: true,
        }
    }
}

impl crate::config::Primitive for MergeConfig {
    const NAME: &'static str = "merge";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[
            opt("method", "task_arithmetic, ties or dare"),
            opt(
                "weights",
                "one weight per diff, in order (any sign, any sum); empty: 1 each",
            ),
            opt(
                "density",
                "TIES: fraction of each diff's entries kept, in (0, 1]",
            ),
            opt("lambda", "TIES: scale of the merged diff"),
            opt("drop", "DARE: drop probability, in [0, 1)"),
            opt(
                "seed",
                "DARE: seed of the drop masks (Rhai: the run's seed)",
            ),
            opt(
                "check_base",
                "refuse diffs made from another base (hashes every base tensor)",
            ),
        ]
    };
}

impl MergeConfig {
    /// The weights for `n` diffs (1.0 each when none were given), after checking every option.
    pub fn resolved_weights(&self, n: usize) -> Result<Vec<f32>> {
        let w = if self.weights.is_empty() {
            vec![1.0; n]
        } else {
            self.weights.clone()
        };
        if w.len() != n {
            return Err(MergeError::WeightCount {
                expected: n,
                got: w.len(),
            }
            .into());
        }
        if let Some((i, x)) = w.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(MergeError::Config(format!("weights[{i}] = {x} is not finite")).into());
        }
        if self.method == MergeMethod::Ties && !(self.density > 0.0 && self.density <= 1.0) {
            return Err(MergeError::Config(format!(
                "density = {} must be in (0, 1]",
                self.density
            ))
            .into());
        }
        if self.method == MergeMethod::Ties && !self.lambda.is_finite() {
            return Err(
                MergeError::Config(format!("lambda = {} must be finite", self.lambda)).into(),
            );
        }
        if self.method == MergeMethod::Dare && !(0.0..1.0).contains(&self.drop) {
            return Err(
                MergeError::Config(format!("drop = {} must be in [0, 1)", self.drop)).into(),
            );
        }
        Ok(w.into_iter().map(|x| x as f32).collect())
    }
}

/// One diff's contribution to a tensor: its position in the diff list (DARE streams depend on
/// it), weight and values.
#[derive(Debug, Clone, Copy)]
pub struct Term<'a> {
    /// Index of the diff in the merge's diff list.
    pub index: usize,
    /// Its weight (non-zero).
    pub weight: f32,
    /// Its values for this tensor.
    pub values: &'a [f32],
}

/// Per-term values a method needs over the whole tensor before working on parts of it: TIES's
/// magnitude thresholds (empty for the other methods).
pub fn prepare(terms: &[Term<'_>], cfg: &MergeConfig) -> Vec<f32> {
    match cfg.method {
        MergeMethod::Ties => terms
            .iter()
            .map(|t| ties_threshold(t.values, cfg.density))
            .collect(),
        _ => Vec::new(),
    }
}

/// Writes the merge of `base` and `terms` for tensor `name` into `out` (same length), in parallel.
pub fn merge_tensor(
    name: &str,
    base: &[f32],
    terms: &[Term<'_>],
    cfg: &MergeConfig,
    out: &mut [f32],
) {
    let prep = prepare(terms, cfg);
    merge_range(name, base, terms, cfg, &prep, 0, out);
}

/// Writes elements `offset..offset + out.len()` of the merged tensor `name` into `out`, given
/// the same elements of the base (`base_part`), whole-tensor `terms` and [`prepare`]'s output.
/// DARE needs `offset` to be a multiple of [`DARE_BLOCK`].
pub fn merge_range(
    name: &str,
    base_part: &[f32],
    terms: &[Term<'_>],
    cfg: &MergeConfig,
    prep: &[f32],
    offset: usize,
    out: &mut [f32],
) {
    debug_assert!(
        terms
            .iter()
            .all(|t| t.values.len() >= offset + base_part.len())
    );
    debug_assert_eq!(out.len(), base_part.len());
    if terms.is_empty() {
        out.copy_from_slice(base_part);
        return;
    }
    match cfg.method {
        MergeMethod::TaskArithmetic => task_arithmetic(base_part, terms, offset, out),
        MergeMethod::Ties => ties(base_part, terms, prep, offset, cfg.lambda as f32, out),
        MergeMethod::Dare => {
            assert_eq!(
                offset % DARE_BLOCK,
                0,
                "DARE ranges start on a block boundary"
            );
            dare(name, base_part, terms, cfg.drop, cfg.seed, offset, out)
        }
    }
}

fn task_arithmetic(base: &[f32], terms: &[Term<'_>], offset: usize, out: &mut [f32]) {
    out.par_chunks_mut(CHUNK)
        .zip(base.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(c, (o, b))| {
            let s = offset + c * CHUNK;
            let e = s + o.len();
            o.copy_from_slice(b);
            for t in terms {
                let w = t.weight;
                for (x, d) in o.iter_mut().zip(&t.values[s..e]) {
                    *x += w * d;
                }
            }
        });
}

/// Magnitude threshold keeping the `density` fraction of largest-|x| entries (ties at the
/// threshold are all kept); 0 keeps everything.
pub fn ties_threshold(values: &[f32], density: f64) -> f32 {
    let n = values.len();
    let keep = ((density * n as f64).ceil() as usize).min(n);
    if keep >= n || n == 0 {
        return 0.0;
    }
    if keep == 0 {
        return f32::INFINITY;
    }
    let mut mags: Vec<f32> = values.par_iter().map(|x| x.abs()).collect();
    let k = n - keep;
    let (_, t, _) = mags.select_nth_unstable_by(k, f32::total_cmp);
    *t
}

fn ties(
    base: &[f32],
    terms: &[Term<'_>],
    thresholds: &[f32],
    offset: usize,
    lambda: f32,
    out: &mut [f32],
) {
    out.par_chunks_mut(CHUNK)
        .zip(base.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(c, (o, b))| {
            let s = offset + c * CHUNK;
            let mut v = vec![0.0f32; terms.len()];
            for (j, (x, &bj)) in o.iter_mut().zip(b).enumerate() {
                let mut total = 0.0f32;
                for (k, t) in terms.iter().enumerate() {
                    let d = t.values[s + j];
                    v[k] = if d != 0.0 && d.abs() >= thresholds[k] {
                        t.weight * d
                    } else {
                        0.0
                    };
                    total += v[k];
                }
                let (mut num, mut den) = (0.0f32, 0.0f32);
                if total != 0.0 {
                    for (k, t) in terms.iter().enumerate() {
                        if v[k] != 0.0 && (v[k] > 0.0) == (total > 0.0) {
                            num += v[k];
                            den += t.weight.abs();
                        }
                    }
                }
                *x = if den > 0.0 {
                    bj + lambda * (num / den)
                } else {
                    bj
                };
            }
        });
}

/// The seed of DARE's random stream for diff `index`, tensor `name`, block `block`.
pub fn dare_stream_seed(seed: u64, index: usize, name: &str, block: usize) -> u64 {
    let mut key = Vec::with_capacity(name.len() + 24);
    key.extend_from_slice(&seed.to_le_bytes());
    key.extend_from_slice(&(index as u64).to_le_bytes());
    key.extend_from_slice(&(block as u64).to_le_bytes());
    key.extend_from_slice(name.as_bytes());
    xxhash_rust::xxh3::xxh3_64(&key)
}

/// DARE's keep mask for `len` elements of one block: element kept when the next `u32` of
/// ChaCha8 seeded with [`dare_stream_seed`] is ≥ `p·2³²`.
pub fn dare_mask(stream_seed: u64, len: usize, drop: f64) -> impl Iterator<Item = bool> {
    let cut = (drop * 4_294_967_296.0) as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed);
    (0..len).map(move |_| rng.next_u32() as u64 >= cut)
}

fn dare(
    name: &str,
    base: &[f32],
    terms: &[Term<'_>],
    drop: f64,
    seed: u64,
    offset: usize,
    out: &mut [f32],
) {
    let rescale = (1.0 / (1.0 - drop)) as f32;
    out.par_chunks_mut(DARE_BLOCK)
        .zip(base.par_chunks(DARE_BLOCK))
        .enumerate()
        .for_each(|(local, (o, b))| {
            let blk = offset / DARE_BLOCK + local;
            let s = blk * DARE_BLOCK;
            let e = s + o.len();
            o.copy_from_slice(b);
            for t in terms {
                let w = t.weight * rescale;
                let mask = dare_mask(dare_stream_seed(seed, t.index, name, blk), o.len(), drop);
                for ((x, d), keep) in o.iter_mut().zip(&t.values[s..e]).zip(mask) {
                    if keep {
                        *x += w * d;
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(method: MergeMethod) -> MergeConfig {
        MergeConfig {
            method,
            ..MergeConfig::default()
        }
    }

    #[test]
    fn task_arithmetic_by_hand() {
        let base = [1.0, -2.0, 0.5];
        let d1 = [0.5, 0.5, -1.0];
        let d2 = [2.0, 0.0, 4.0];
        let terms = [
            Term {
                index: 0,
                weight: 2.0,
                values: &d1,
            },
            Term {
                index: 1,
                weight: -0.5,
                values: &d2,
            },
        ];
        let mut out = [0.0; 3];
        merge_tensor(
            "t",
            &base,
            &terms,
            &cfg(MergeMethod::TaskArithmetic),
            &mut out,
        );
        assert_eq!(out, [1.0 + 1.0 - 1.0, -2.0 + 1.0, 0.5 - 2.0 - 2.0]);
    }

    #[test]
    fn ties_by_hand() {
        // density 0.5 of 4 entries keeps the top 2 magnitudes of each diff.
        let base = [0.0, 0.0, 0.0, 10.0];
        let d1 = [3.0, -1.0, 0.5, 2.0]; // keeps 3.0 and 2.0
        let d2 = [-1.0, -4.0, 0.1, 6.0]; // keeps -4.0 and 6.0
        let d3 = [-5.0, 0.2, 0.3, -1.0]; // keeps -5.0 and -1.0 (0.3 < 1.0)
        let terms = [
            Term {
                index: 0,
                weight: 1.0,
                values: &d1,
            },
            Term {
                index: 1,
                weight: 1.0,
                values: &d2,
            },
            Term {
                index: 2,
                weight: 1.0,
                values: &d3,
            },
        ];
        let c = MergeConfig {
            density: 0.5,
            lambda: 2.0,
            ..cfg(MergeMethod::Ties)
        };
        let mut out = [0.0; 4];
        merge_tensor("t", &base, &terms, &c, &mut out);
        // elem 0: trimmed 3, 0, -5 → sum -2 → sign −; agreeing {-5} → mean -5 → ×2 = -10
        // elem 1: 0, -4, 0 → − ; {-4} → -4 → -8
        // elem 2: all trimmed → 0
        // elem 3: 2, 6, -1 → +; {2, 6} → 4 → 8 → 10 + 8
        assert_eq!(out, [-10.0, -8.0, 0.0, 18.0]);
        // Weighted: w = [1, 0.5, 3] on elem 0: 3, 0, -15 → −; {-15}/|3| = -5.
        let terms_w = [
            Term {
                index: 0,
                weight: 1.0,
                values: &d1,
            },
            Term {
                index: 1,
                weight: 0.5,
                values: &d2,
            },
            Term {
                index: 2,
                weight: 3.0,
                values: &d3,
            },
        ];
        merge_tensor("t", &base, &terms_w, &c, &mut out);
        // elem 3: 2, 3, -3 → + ; {2, 3} / (1 + 0.5) = 10/3 → ×2
        assert_eq!(out[0], -10.0);
        assert!((out[3] - (10.0 + 2.0 * 5.0 / 1.5)).abs() < 1e-6);
    }

    #[test]
    fn ties_threshold_keeps_top_fraction() {
        let v = [0.1, -0.9, 0.5, 0.3, -0.7];
        assert_eq!(ties_threshold(&v, 0.4), 0.7);
        assert_eq!(ties_threshold(&v, 1.0), 0.0);
        assert_eq!(ties_threshold(&v, 0.01), 0.9);
    }

    #[test]
    fn dare_by_hand_and_deterministic() {
        let n = DARE_BLOCK + 1000;
        let base = vec![1.0f32; n];
        let d: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
        let terms = [Term {
            index: 0,
            weight: 0.5,
            values: &d,
        }];
        let c = MergeConfig {
            drop: 0.75,
            ..cfg(MergeMethod::Dare)
        };
        let mut out = vec![0.0; n];
        merge_tensor("w", &base, &terms, &c, &mut out);
        let mut kept = 0;
        for blk in 0..2 {
            let s = blk * DARE_BLOCK;
            let len = DARE_BLOCK.min(n - s);
            for (j, keep) in dare_mask(dare_stream_seed(42, 0, "w", blk), len, 0.75).enumerate() {
                let i = s + j;
                let want = if keep { 1.0 + 0.5 * 4.0 * d[i] } else { 1.0 };
                assert_eq!(out[i], want, "element {i}");
                kept += keep as usize;
            }
        }
        let frac = kept as f64 / n as f64;
        assert!((frac - 0.25).abs() < 0.01, "kept fraction {frac}");
        let mut again = vec![0.0; n];
        merge_tensor("w", &base, &terms, &c, &mut again);
        assert_eq!(out, again);
        let mut other = vec![0.0; n];
        merge_tensor(
            "w",
            &base,
            &terms,
            &MergeConfig {
                seed: 7,
                ..c.clone()
            },
            &mut other,
        );
        assert_ne!(out, other);
        // p = 0 is plain task arithmetic.
        merge_tensor(
            "w",
            &base,
            &terms,
            &MergeConfig { drop: 0.0, ..c },
            &mut other,
        );
        assert!(other.iter().zip(&d).all(|(o, d)| *o == 1.0 + 0.5 * d));
    }

    #[test]
    fn ranges_equal_the_whole_tensor_for_every_method() {
        let n = 3 * DARE_BLOCK + 123;
        let base: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 0.1).collect();
        let d1: Vec<f32> = (0..n).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let d2: Vec<f32> = (0..n).map(|i| ((i * 3) % 17) as f32 - 8.0).collect();
        let terms = [
            Term {
                index: 0,
                weight: 0.7,
                values: &d1,
            },
            Term {
                index: 1,
                weight: -0.4,
                values: &d2,
            },
        ];
        for method in [
            MergeMethod::TaskArithmetic,
            MergeMethod::Ties,
            MergeMethod::Dare,
        ] {
            let c = MergeConfig {
                method,
                density: 0.3,
                ..MergeConfig::default()
            };
            let mut whole = vec![0.0; n];
            merge_tensor("t", &base, &terms, &c, &mut whole);
            let prep = prepare(&terms, &c);
            let mut parts = vec![0.0; n];
            let cut = 2 * DARE_BLOCK;
            let (a, b) = parts.split_at_mut(cut);
            merge_range("t", &base[..cut], &terms, &c, &prep, 0, a);
            merge_range("t", &base[cut..], &terms, &c, &prep, cut, b);
            assert_eq!(whole, parts, "{method}");
        }
    }

    #[test]
    fn config_checks() {
        let c = MergeConfig {
            weights: vec![1.0, 2.0],
            ..MergeConfig::default()
        };
        assert!(
            c.resolved_weights(3)
                .unwrap_err()
                .to_string()
                .contains("got 2 weight(s) for 3 diff(s)")
        );
        assert_eq!(
            MergeConfig::default().resolved_weights(2).unwrap(),
            vec![1.0, 1.0]
        );
        let c = MergeConfig {
            drop: 1.0,
            ..cfg(MergeMethod::Dare)
        };
        assert!(c.resolved_weights(1).is_err());
        assert!("foo".parse::<MergeMethod>().is_err());
    }
}
