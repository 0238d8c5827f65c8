//! Candidate pairs from LSH buckets, and their verification.
//!
//! Documents identical after normalisation (same shingle-set hash) are grouped first and
//! represented by their first member, so a bucket with thousands of copies of one short review
//! yields one entry instead of millions of pairs. Candidate pairs between group leaders are
//! verified by exact similarity on the shingle sets (or the signature estimate when configured).

use super::scheme::Scheme;
use super::shingle::Shingles;
use super::signatures::Signatures;
use crate::Result;
use crate::dedup::DedupError;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How candidates are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// Exact similarity on the shingle sets (re-reads the candidate documents).
    #[default]
    Exact,
    /// The signature estimate only.
    Estimate,
}

impl std::str::FromStr for Verify {
    type Err = DedupError;
    fn from_str(s: &str) -> Result<Self, DedupError> {
        match s {
            "exact" => Ok(Verify::Exact),
            "estimate" => Ok(Verify::Estimate),
            _ => Err(DedupError::Config(format!(
                "verify `{s}`: expected \"exact\" or \"estimate\""
            ))),
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
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut members = Vec::new();
    for b in buckets {
        members.clear();
        for k in b {
            match index.get(k) {
                Some(&i) => members.push(leaders[i]),
                None => unknown += 1,
            }
        }
        members.sort_unstable();
        members.dedup();
        for x in 0..members.len() {
            for y in x + 1..members.len() {
                pairs.push((members[x], members[y]));
            }
        }
    }
    pairs.par_sort_unstable();
    pairs.dedup();
    (pairs, unknown)
}

/// Verifies `pairs`; returns those with similarity ≥ `threshold`. `shingles` supplies the
/// shingle sets of the documents involved (exact mode only).
pub fn verify(
    pairs: &[(usize, usize)],
    sigs: &Signatures,
    scheme: &Scheme,
    mode: Verify,
    threshold: f64,
    shingles: &HashMap<usize, Shingles>,
) -> Result<Vec<Candidate>> {
    let out: Vec<Candidate> = pairs
        .par_iter()
        .filter_map(|&(a, b)| {
            let estimated = scheme.estimate(sigs.sig(a), sigs.sig(b));
            let exact = match mode {
                Verify::Estimate => None,
                Verify::Exact => Some(scheme.exact(&shingles[&a], &shingles[&b])),
            };
            (exact.unwrap_or(estimated) >= threshold).then_some(Candidate {
                a,
                b,
                estimated,
                exact,
            })
        })
        .collect();
    Ok(out)
}
