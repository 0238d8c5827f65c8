//! The dedup outputs: `dedup_log.csv` (per domain and total), `candidates.json` (verified pairs)
//! and `clusters.jsonl` (one cluster per line). Each is written to a temporary name and renamed.

use super::signatures::DocMeta;
use super::verify::Candidate;
use crate::run::write_atomic;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A cluster of near-duplicates (indices into the signatures' documents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// The kept member.
    pub representative: usize,
    /// Every member, sorted (the representative included).
    pub members: Vec<usize>,
}

/// Documents before and after dedup in one domain (or `total`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainCount {
    /// Domain name, or `total`.
    pub domain: String,
    /// Documents in the input.
    pub before: usize,
    /// Documents kept.
    pub after: usize,
    /// Documents removed.
    pub removed: usize,
    /// removed / before.
    pub rate: f64,
}

/// Per-domain counts (sorted by domain) followed by the total.
pub fn domain_counts(docs: &[DocMeta], removed: &[bool]) -> Vec<DomainCount> {
    let mut m: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (d, &r) in docs.iter().zip(removed) {
        let e = m.entry(d.domain.as_str()).or_default();
        e.0 += 1;
        e.1 += r as usize;
    }
    let row = |domain: &str, before: usize, rem: usize| DomainCount {
        domain: domain.into(),
        before,
        after: before - rem,
        removed: rem,
        rate: if before == 0 {
            0.0
        } else {
            rem as f64 / before as f64
        },
    };
    let mut out: Vec<DomainCount> = m.iter().map(|(d, (b, r))| row(d, *b, *r)).collect();
    let (tb, tr) = m.values().fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1));
    out.push(row("total", tb, tr));
    out
}

/// Writes `dedup_log.csv`: `domain,before,after,removed,rate`.
pub fn write_log_csv(path: &Path, counts: &[DomainCount]) -> Result<()> {
    let mut s = String::from("domain,before,after,removed,rate\n");
    for c in counts {
        let domain = if c.domain.contains([',', '"', '\n']) {
            format!("\"{}\"", c.domain.replace('"', "\"\""))
        } else {
            c.domain.clone()
        };
        s.push_str(&format!(
            "{domain},{},{},{},{:.6}\n",
            c.before, c.after, c.removed, c.rate
        ));
    }
    write_atomic(path, s.as_bytes())
}

/// Writes `candidates.json`: an array of `{a, b, domain_a, domain_b, estimated, exact}` with ids.
pub fn write_candidates_json(path: &Path, docs: &[DocMeta], cands: &[Candidate]) -> Result<()> {
    let v: Vec<serde_json::Value> = cands
        .iter()
        .map(|c| {
            serde_json::json!({
                "a": docs[c.a].id, "b": docs[c.b].id,
                "domain_a": docs[c.a].domain, "domain_b": docs[c.b].domain,
                "estimated": round6(c.estimated), "exact": c.exact.map(round6),
            })
        })
        .collect();
    let bytes = serde_json::to_vec_pretty(&v).map_err(|e| Error::Json {
        path: path.into(),
        source: e,
    })?;
    write_atomic(path, &bytes)
}

/// Writes `clusters.jsonl`: `{representative, size, members, domains}` per line, by first member.
pub fn write_clusters_jsonl(path: &Path, docs: &[DocMeta], clusters: &[Cluster]) -> Result<()> {
    let mut s = String::new();
    for c in clusters {
        let mut domains: Vec<&str> = c.members.iter().map(|&i| docs[i].domain.as_str()).collect();
        domains.sort_unstable();
        domains.dedup();
        let line = serde_json::json!({
            "representative": docs[c.representative].id,
            "size": c.members.len(),
            "members": c.members.iter().map(|&i| docs[i].id.as_str()).collect::<Vec<_>>(),
            "domains": domains,
        });
        s.push_str(&line.to_string());
        s.push('\n');
    }
    write_atomic(path, s.as_bytes())
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_domain_and_total() {
        let d = |dom: &str| DocMeta {
            key: 0,
            id: "x".into(),
            domain: dom.into(),
            tokens: 0,
            chars: 0,
            content: 0,
            bins: 0,
        };
        let docs = vec![d("b"), d("a"), d("b"), d("b")];
        let c = domain_counts(&docs, &[true, false, false, true]);
        assert_eq!(
            c.iter()
                .map(|c| (c.domain.as_str(), c.before, c.after, c.removed))
                .collect::<Vec<_>>(),
            vec![("a", 1, 1, 0), ("b", 3, 1, 2), ("total", 4, 2, 2)]
        );
        let dir = tempfile::tempdir().unwrap();
        write_log_csv(&dir.path().join("l.csv"), &c).unwrap();
        let s = std::fs::read_to_string(dir.path().join("l.csv")).unwrap();
        assert!(s.starts_with("domain,before,after,removed,rate\na,1,1,0,0.000000\nb,3,1,2,0.666667\ntotal,4,2,2,0.500000"), "{s}");
    }
}
