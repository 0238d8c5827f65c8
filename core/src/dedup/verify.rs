//! Candidate pairs from LSH buckets, and their verification.
//!
//! Documents identical after normalisation (same shingle-set hash) are grouped first and
//! represented by their first member, so a bucket with thousands of copies of one short review
//! yields one entry instead of millions of pairs. Candidate pairs between group leaders are
//! then decided in two steps (the default, `exact`):
//!
//! 1. **By the estimate where it cannot be wrong in practice**: when both documents filled every
//!    signature bin with their own shingles, the estimate is a binomial proportion around the
//!    Jaccard similarity with σ = √(J(1−J)/k); a pair whose estimate lies more than
//!    [`BAND_Z`]·σ(t) + 1/k from the threshold t is accepted or rejected on it (for t = 0.8,
//!    k = 128: accepted at ≥ 0.949, rejected below 0.651; a pair exactly at the threshold lands
//!    on the wrong side with probability ≈ 10⁻⁵).
//! 2. **Exactly inside that uncertain band** (and for every pair with a short document, whose
//!    densified signature is less reliable): pairs whose documents union-find has already
//!    joined are skipped — they cannot change a cluster — and the rest get exact Jaccard on
//!    sorted 64-bit shingle hashes held in one compact [`ShingleStore`].
//!
//! `exact_all` computes exact Jaccard for every pair (the reference the band is checked
//! against: `yunmin bench dedup` reports how many decisions differ); `estimate` decides every
//! pair on the estimate.

use super::scheme::{Combine, Scheme};
use super::shingle::{Shingles, jaccard};
use super::signatures::Signatures;
use crate::Result;
use crate::dedup::DedupError;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How candidates are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    /// Exact similarity wherever the estimate could fall on either side of the threshold; the
    /// estimate far from it (see the module docs). The default.
    #[default]
    Exact,
    /// Exact similarity for every candidate pair (re-reads every candidate document).
    ExactAll,
    /// The signature estimate only.
    Estimate,
}

impl std::str::FromStr for Verify {
    type Err = DedupError;
    fn from_str(s: &str) -> Result<Self, DedupError> {
        match s {
            "exact" => Ok(Verify::Exact),
            "exact_all" => Ok(Verify::ExactAll),
            "estimate" => Ok(Verify::Estimate),
            _ => Err(DedupError::Config(format!(
                "verify `{s}`: expected \"exact\", \"exact_all\" or \"estimate\""
            ))),
        }
    }
}

/// Densified signatures with fewer real values than this are always verified exactly.
pub const MIN_BINS: usize = 32;

/// Width of the uncertain band in binomial standard deviations at the threshold.
pub const BAND_Z: f64 = 4.0;

/// The estimates at or above `hi` are accepted and below `lo` rejected without exact
/// verification (for documents whose signatures are not densified).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Rejected below.
    pub lo: f64,
    /// Accepted at or above.
    pub hi: f64,
}

impl Band {
    /// The band for a pair of documents whose signatures of `perms` positions have `bins_a`
    /// and `bins_b` positions filled by their own shingles. Full signatures use `k = perms`;
    /// a densified signature copies its few real values into the empty bins, so its estimate
    /// varies more: it counts as `min(bins)/2` independent positions, and below
    /// [`MIN_BINS`] real values the pair is always checked exactly.
    pub fn for_pair(threshold: f64, perms: usize, bins_a: u32, bins_b: u32) -> Option<Self> {
        let m = bins_a.min(bins_b) as usize;
        if m >= perms {
            Some(Band::new(threshold, perms))
        } else if m >= MIN_BINS {
            Some(Band::new(threshold, m / 2))
        } else {
            None
        }
    }

    /// The band for `threshold` with `k` signature positions.
    pub fn new(threshold: f64, k: usize) -> Self {
        let k = k.max(1) as f64;
        let d = BAND_Z * (threshold * (1.0 - threshold) / k).sqrt() + 1.0 / k;
        Band {
            lo: threshold - d,
            hi: threshold + d,
        }
    }
}

/// What the estimate says about a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Similar: far above the threshold.
    Accept,
    /// Not similar: far below it.
    Reject,
    /// Needs exact Jaccard.
    Exact,
}

/// Decides a pair on its estimate when `band` allows; `None` (a `combine: "mean"` signature, or
/// documents too short for a usable estimate) always needs exact Jaccard.
pub fn decide(estimate: f64, band: Option<Band>) -> Decision {
    let Some(band) = band else {
        return Decision::Exact;
    };
    if estimate >= band.hi {
        Decision::Accept
    } else if estimate < band.lo {
        Decision::Reject
    } else {
        Decision::Exact
    }
}

/// Sorted 64-bit shingle hashes of some documents, kept in a few large vectors (one per part
/// they were built in): per document one set (`union`) or two (`mean`: jamo, word). 8 bytes per
/// shingle plus 24 per document.
#[derive(Debug, Clone, Default)]
pub struct ShingleStore {
    /// Document indices, sorted.
    docs: Vec<usize>,
    /// Per document: part, start in the part, lengths of the first and second set.
    spans: Vec<(u32, u32, u32, u32)>,
    parts: Vec<Vec<u64>>,
}

/// Shingle sets of some documents in one vector, as a worker builds them; merged into a
/// [`ShingleStore`] without copying.
#[derive(Debug, Clone, Default)]
pub struct ShinglePart {
    docs: Vec<(usize, u32, u32, u32)>,
    hashes: Vec<u64>,
}

impl ShinglePart {
    /// Adds document `i`'s sets as `scheme`'s exact similarity reads them.
    pub fn push(&mut self, scheme: &Scheme, i: usize, sh: &Shingles) {
        let start = self.hashes.len();
        let (a, b) = match scheme.combine() {
            Combine::Union => {
                self.hashes.extend_from_slice(&sh.union());
                (self.hashes.len() - start, 0)
            }
            Combine::Mean => {
                self.hashes.extend_from_slice(&sh.jamo);
                self.hashes.extend_from_slice(&sh.word);
                (sh.jamo.len(), sh.word.len())
            }
        };
        self.docs.push((i, start as u32, a as u32, b as u32));
    }
}

impl ShingleStore {
    /// Builds the store from `(document, shingles)` in any order.
    pub fn from_parts(scheme: &Scheme, parts: Vec<(usize, Shingles)>) -> Self {
        let mut part = ShinglePart::default();
        for (i, sh) in parts {
            part.push(scheme, i, &sh);
        }
        Self::merge(vec![part])
    }

    /// Joins parts (each document in one part only).
    pub fn merge(parts: Vec<ShinglePart>) -> Self {
        let mut index: Vec<(usize, (u32, u32, u32, u32))> = Vec::new();
        let mut hashes = Vec::with_capacity(parts.len());
        for (p, part) in parts.into_iter().enumerate() {
            index.extend(
                part.docs
                    .iter()
                    .map(|&(i, s, a, b)| (i, (p as u32, s, a, b))),
            );
            hashes.push(part.hashes);
        }
        index.sort_unstable_by_key(|x| x.0);
        ShingleStore {
            docs: index.iter().map(|x| x.0).collect(),
            spans: index.into_iter().map(|x| x.1).collect(),
            parts: hashes,
        }
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Bytes held (hashes and index).
    pub fn bytes(&self) -> usize {
        self.parts.iter().map(|p| p.len() * 8).sum::<usize>() + self.docs.len() * 24
    }

    /// The sets of document `i`, if held.
    pub fn get(&self, i: usize) -> Option<(&[u64], &[u64])> {
        let x = self.docs.binary_search(&i).ok()?;
        let (p, s, a, b) = self.spans[x];
        let (s, a, b) = (s as usize, a as usize, b as usize);
        let h = &self.parts[p as usize];
        Some((&h[s..s + a], &h[s + a..s + a + b]))
    }
}

/// Exact similarities of `pairs` (every document of which `shingles` must hold).
pub fn exact_similarities(
    pairs: &[(usize, usize)],
    scheme: &Scheme,
    shingles: &ShingleStore,
) -> Result<Vec<f64>> {
    pairs
        .par_iter()
        .map(|&(a, b)| match (shingles.get(a), shingles.get(b)) {
            (Some(x), Some(y)) => Ok(exact_of(scheme, x, y)),
            _ => Err(DedupError::Shards(format!(
                "no shingles for pair {a}, {b}: the caller fetched too few"
            ))
            .into()),
        })
        .collect()
}

/// Exact similarity of two stored documents under `scheme`.
fn exact_of(scheme: &Scheme, a: (&[u64], &[u64]), b: (&[u64], &[u64])) -> f64 {
    match scheme.combine() {
        Combine::Union => jaccard(a.0, b.0),
        Combine::Mean => {
            let w = scheme.jamo_weight();
            w * jaccard(a.0, b.0) + (1.0 - w) * jaccard(a.1, b.1)
        }
    }
}

/// A verified pair (indices into the signatures' documents, `a < b`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// First document.
    pub a: usize,
    /// Second document.
    pub b: usize,
    /// Signature estimate.
    pub estimated: f64,
    /// Exact similarity (absent when verifying by estimate).
    pub exact: Option<f64>,
}

/// For each document, the first document (smallest index) with the same content hash.
pub fn content_leaders(sigs: &Signatures) -> Vec<usize> {
    let mut first: HashMap<u64, usize> = HashMap::with_capacity(sigs.len());
    sigs.docs
        .iter()
        .enumerate()
        .map(|(i, d)| *first.entry(d.content).or_insert(i))
        .collect()
}

/// Distinct candidate pairs `(a, b)`, `a < b`, between content leaders sharing a bucket,
/// sorted. `buckets` hold document keys; keys not in `sigs` are ignored (and counted).
pub fn pairs_from_buckets(
    buckets: &[Vec<u64>],
    sigs: &Signatures,
    leaders: &[usize],
) -> (Vec<(usize, usize)>, usize) {
    let index: HashMap<u64, usize> = sigs
        .docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.key, i))
        .collect();
    let mut unknown = 0;
    // Pairs packed as `a << 32 | b`, sorted and deduplicated whenever the vector grows large,
    // so a pair found in many bands costs 8 bytes once, not once per band.
    let mut packed: Vec<u64> = Vec::new();
    let mut compact_at = 1usize << 24;
    let mut members = Vec::new();
    for b in buckets {
        members.clear();
        for k in b {
            match index.get(k) {
                Some(&i) => members.push(leaders[i] as u64),
                None => unknown += 1,
            }
        }
        members.sort_unstable();
        members.dedup();
        for x in 0..members.len() {
            for y in x + 1..members.len() {
                packed.push((members[x] << 32) | members[y]);
            }
        }
        if packed.len() >= compact_at {
            packed.par_sort_unstable();
            packed.dedup();
            compact_at = (packed.len() * 2).max(1 << 24);
        }
    }
    packed.par_sort_unstable();
    packed.dedup();
    let pairs = packed
        .into_iter()
        .map(|p| ((p >> 32) as usize, (p & 0xffff_ffff) as usize))
        .collect();
    (pairs, unknown)
}

/// Verifies `pairs` of documents given as indices; returns those with similarity ≥
/// `threshold`. `mode` is
/// [`Verify::Estimate`] (the estimate only) or an exact mode, for which `shingles` must hold
/// every document of `pairs`.
pub fn verify(
    pairs: &[(usize, usize)],
    sigs: &Signatures,
    scheme: &Scheme,
    mode: Verify,
    threshold: f64,
    shingles: &ShingleStore,
) -> Result<Vec<Candidate>> {
    pairs
        .par_iter()
        .filter_map(|&(a, b)| {
            let estimated = scheme.estimate(sigs.sig(a), sigs.sig(b));
            let exact = match mode {
                Verify::Estimate => None,
                Verify::Exact | Verify::ExactAll => match (shingles.get(a), shingles.get(b)) {
                    (Some(x), Some(y)) => Some(exact_of(scheme, x, y)),
                    _ => {
                        return Some(Err(DedupError::Shards(format!(
                            "no shingles for pair {a}, {b}: the caller fetched too few"
                        ))
                        .into()));
                    }
                },
            };
            (exact.unwrap_or(estimated) >= threshold).then_some(Ok(Candidate {
                a,
                b,
                estimated,
                exact,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_decides_far_from_the_threshold_only() {
        let b = Band::new(0.8, 128);
        assert!(
            (b.hi - 0.9492).abs() < 1e-3 && (b.lo - 0.6508).abs() < 1e-3,
            "{b:?}"
        );
        assert_eq!(Band::for_pair(0.8, 128, 128, 200), Some(b));
        assert_eq!(decide(0.95, Some(b),), Decision::Accept);
        assert_eq!(decide(0.6, Some(b)), Decision::Reject);
        assert_eq!(decide(0.8, Some(b)), Decision::Exact);
        assert_eq!(decide(0.93, Some(b)), Decision::Exact);
        // Densified signatures (short documents) get a wider band, the shortest none.
        let short = Band::for_pair(0.8, 128, 128, 60).unwrap();
        assert!(short.lo < b.lo - 0.1 && short.hi > 1.0, "{short:?}");
        assert_eq!(decide(0.4, Some(short)), Decision::Reject);
        assert_eq!(decide(1.0, Some(short)), Decision::Exact);
        assert_eq!(Band::for_pair(0.8, 128, 20, 128), None);
        assert_eq!(decide(0.0, None), Decision::Exact);
    }

    #[test]
    fn store_returns_each_documents_sorted_set() {
        let s = Scheme::new("jamo3".parse().unwrap(), Combine::Union, 0.5, 16, 1).unwrap();
        let a = s.shingle("대한민국 헌법").shingles;
        let b = s.shingle("민주공화국").shingles;
        let st = ShingleStore::from_parts(&s, vec![(7, b.clone()), (2, a.clone())]);
        assert_eq!(st.len(), 2);
        assert_eq!(st.get(2).unwrap().0, &a.jamo[..]);
        assert_eq!(st.get(7).unwrap().0, &b.jamo[..]);
        assert!(st.get(3).is_none());
        assert_eq!(exact_of(&s, st.get(2).unwrap(), st.get(2).unwrap()), 1.0);
    }
}

#[cfg(test)]
mod band_tests {
    use super::*;
    use crate::dedup::pipeline::{DedupConfig, dedup_documents};
    use crate::ingest::Document;
    use rand::{Rng, SeedableRng};

    /// Long random Hangul texts and copies with 1–45 % of their syllables replaced: pairs on
    /// both sides of the threshold and far from it.
    fn docs() -> Vec<Document> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut out = Vec::new();
        for b in 0..40 {
            let base: Vec<char> = (0..1500)
                .map(|_| char::from_u32(0xAC00 + rng.random_range(0..400)).unwrap())
                .collect();
            for (c, rate) in [0.0, 0.01, 0.03, 0.05, 0.07, 0.09, 0.12, 0.2, 0.45]
                .into_iter()
                .enumerate()
            {
                let text: String = base
                    .iter()
                    .map(|&ch| {
                        if rng.random_bool(rate) {
                            char::from_u32(0xAC00 + rng.random_range(0..400)).unwrap()
                        } else {
                            ch
                        }
                    })
                    .collect();
                out.push(Document {
                    id: format!("{b}-{c}"),
                    text,
                    domain: "d".into(),
                    source: String::new(),
                    extra: Default::default(),
                });
            }
        }
        out
    }

    #[test]
    fn banded_verification_equals_exact_for_every_pair() {
        let docs = docs();
        let run = |verify| {
            let cfg = DedupConfig {
                verify,
                ..DedupConfig::default()
            };
            dedup_documents(&docs, &cfg).unwrap().1
        };
        let (banded, all) = (run(Verify::Exact), run(Verify::ExactAll));
        assert_eq!(banded.removed, all.removed);
        assert_eq!(banded.clusters, all.clusters);
        assert!(all.removed.iter().any(|&r| r), "some copies are duplicates");
        assert_eq!(all.exact_checked, all.checked);
        // The band decided some pairs on the estimate and left some to exact Jaccard.
        assert!(
            banded.exact_checked > 0 && banded.exact_checked < banded.checked,
            "{} of {}",
            banded.exact_checked,
            banded.checked
        );
    }
}
