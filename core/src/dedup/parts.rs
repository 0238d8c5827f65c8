//! The phases that split the work after indexing across processes, so a scheduler (Ray,
//! Slurm, a shell loop) can run each as an independent task on a directory every task shares:
//!
//! 1. `verify --shard i/N`: queries the index for the documents whose content leader `l` has
//!    `l mod N = i`, keeps the pairs `(l, m)` with `l < m` (so every candidate pair falls in
//!    exactly one part), decides each on its estimate and computes the exact similarity of
//!    those the estimate leaves uncertain; writes `dedup/verify/part-i-of-N.json`.
//! 2. `merge` (one process): reads every part, replays the single-process decisions in the same
//!    order with the precomputed similarities, clusters, and writes `candidates.json`,
//!    `clusters.jsonl`, `dedup_log.csv` and `dedup/removed.json`.
//! 3. `write --shard i/N`: writes the kept documents of the `i`-th contiguous range of the
//!    dataset's files to `dedup/kept/part-i-of-N/`.
//! 4. `gather` (one process, renames only): joins the parts, in order, into the kept dataset.
//!
//! Every output is written under a temporary name and renamed when complete, so a task killed
//! midway leaves nothing that looks finished and its rerun starts clean. The outputs equal those
//! of one `all` process: the same pairs are decided in the same order with the same similarities.

use super::lsh::{BucketKey, LshIndex};
use super::params::BandRows;
use super::pipeline::{
    DedupConfig, DedupSummary, Found, PairVerifier, Shard, Timings, all_band_hashes,
    fetch_shingles, read_shard_file, resolve,
};
use super::report;
use super::scheme::Scheme;
use super::signatures::Signatures;
use super::verify::{self, Candidate, Decision, Verify};
use crate::dedup::DedupError;
use crate::ingest::{Dataset, DatasetStats, DatasetWriter, STATS_FILE};
use crate::run::{AtomicDir, check_cancelled, hash_str, write_atomic};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One verify part's file.
#[derive(Debug, Serialize, Deserialize)]
struct VerifyPart {
    /// `[i, N]`.
    shard: (usize, usize),
    /// [`fingerprint`] of the signatures and settings.
    input: String,
    /// `[key a, key b, exact similarity as f64 bits or null]`, sorted by `(a, b)` index.
    pairs: Vec<(u64, u64, Option<u64>)>,
}

/// The merge phase's list of removed documents, read by the write phase.
#[derive(Debug, Serialize, Deserialize)]
struct Removed {
    input: String,
    docs: usize,
    removed: Vec<u64>,
}

/// Identity of a sharded run's signatures and of the settings that decide pairs.
fn fingerprint(sigs: &Signatures, cfg: &DedupConfig, br: BandRows) -> String {
    hash_str(&format!(
        "{} docs={} keys={} verify={:?} threshold={} bands={}x{}",
        sigs.header.scheme,
        sigs.len(),
        hash_str(
            &sigs
                .docs
                .iter()
                .map(|d| format!("{}:{}:{};", d.key, d.content, d.id))
                .collect::<String>()
        ),
        cfg.verify,
        cfg.threshold,
        br.bands,
        br.rows
    ))
}

/// Path of verify part `i/N`.
pub fn verify_part_path(out: &Path, part: Shard) -> PathBuf {
    out.join("dedup/verify")
        .join(format!("part-{:04}-of-{:04}.json", part.index, part.count))
}

fn kept_part_path(out: &Path, part: Shard) -> PathBuf {
    out.join("dedup/kept")
        .join(format!("part-{:04}-of-{:04}", part.index, part.count))
}

fn removed_path(out: &Path) -> PathBuf {
    out.join("dedup/removed.json")
}

/// Candidate pairs `(l, m)`, `l < m`, of content leaders where `l mod N = i`: each document
/// whose leader is such an `l` is asked for the members of its buckets.
fn part_pairs(
    sigs: &Signatures,
    br: BandRows,
    index: &mut dyn LshIndex,
    bands: &[u64],
    leaders: &[usize],
    part: Shard,
) -> Result<Vec<(usize, usize)>> {
    let at: HashMap<u64, usize> = sigs
        .docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.key, i))
        .collect();
    let mine: Vec<usize> = (0..sigs.len())
        .filter(|&x| leaders[x] % part.count == part.index)
        .collect();
    let mut packed: Vec<u64> = Vec::new();
    let mut unknown = 0usize;
    for chunk in mine.chunks(10_000) {
        check_cancelled()?;
        let probes: Vec<Vec<BucketKey>> = chunk
            .iter()
            .map(|&x| {
                (0..br.bands)
                    .map(|j| (j as u16, bands[x * br.bands + j]))
                    .collect()
            })
            .collect();
        let refs: Vec<&[BucketKey]> = probes.iter().map(|p| p.as_slice()).collect();
        let per_doc = match index.union_members(&refs) {
            Some(r) => r?,
            None => index
                .members(&probes.concat())?
                .chunks(br.bands)
                .map(|c| c.concat())
                .collect(),
        };
        for (&x, members) in chunk.iter().zip(per_doc) {
            // Every document is in its own buckets; one missing means an empty or cleared
            // index, whose answers would silently find no duplicates.
            if !members.contains(&sigs.docs[x].key) {
                return Err(DedupError::Shards(format!(
                    "the index {} lacks document {}: run the index phase first (the merge phase clears the index)",
                    index.describe(),
                    sigs.docs[x].id
                ))
                .into());
            }
            let l = leaders[x];
            for m in members {
                match at.get(&m) {
                    Some(&y) if leaders[y] > l => {
                        packed.push(((l as u64) << 32) | leaders[y] as u64)
                    }
                    Some(_) => {}
                    None => unknown += 1,
                }
            }
        }
    }
    if unknown > 0 {
        tracing::warn!(
            "{unknown} bucket members are not in this run's signatures (stale keys in {})",
            index.describe()
        );
    }
    packed.sort_unstable();
    packed.dedup();
    Ok(packed
        .into_iter()
        .map(|p| ((p >> 32) as usize, (p & 0xffff_ffff) as usize))
        .collect())
}

/// The `verify` phase for part `cfg.shard` over every shard's signatures (`sigs`, in key
/// order); `index` holds every document's buckets.
pub fn verify_part(
    input: &Dataset,
    out: &Path,
    cfg: &DedupConfig,
    scheme: &Scheme,
    sigs: &Signatures,
    index: &mut dyn LshIndex,
    timings: &mut Timings,
) -> Result<usize> {
    let br = cfg.band_rows(scheme)?;
    let part = cfg.shard;
    let t = Instant::now();
    let bands = all_band_hashes(sigs, scheme, br)?;
    let leaders = verify::content_leaders(sigs);
    let pairs = part_pairs(sigs, br, index, &bands, &leaders, part)?;
    drop(bands);
    timings.query_s += t.elapsed().as_secs_f64();

    let t = Instant::now();
    let exact_needed: Vec<bool> = pairs
        .iter()
        .map(|&(a, b)| match cfg.verify {
            Verify::Estimate => false,
            Verify::ExactAll => true,
            Verify::Exact => {
                super::pipeline::decide_pair(sigs, scheme, cfg, a, b).0 == Decision::Exact
            }
        })
        .collect();
    let uncertain: Vec<(usize, usize)> = pairs
        .iter()
        .zip(&exact_needed)
        .filter(|(_, e)| **e)
        .map(|(p, _)| *p)
        .collect();
    let mut need: Vec<usize> = uncertain.iter().flat_map(|&(a, b)| [a, b]).collect();
    need.sort_unstable();
    need.dedup();
    let exact = if need.is_empty() {
        Vec::new()
    } else {
        let files = input.shards()?;
        let store = fetch_shingles(&files, sigs, scheme, &need)?;
        verify::exact_similarities(&uncertain, scheme, &store)?
    };
    let mut exact = exact.into_iter();
    let rows = pairs
        .iter()
        .zip(&exact_needed)
        .map(|(&(a, b), &e)| {
            let x = if e {
                exact.next().map(f64::to_bits)
            } else {
                None
            };
            (sigs.docs[a].key, sigs.docs[b].key, x)
        })
        .collect();
    let file = VerifyPart {
        shard: (part.index, part.count),
        input: fingerprint(sigs, cfg, br),
        pairs: rows,
    };
    let path = verify_part_path(out, part);
    let bytes = serde_json::to_vec(&file).map_err(|e| Error::Json {
        path: path.clone(),
        source: e,
    })?;
    write_atomic(&path, &bytes)?;
    timings.verify_s += t.elapsed().as_secs_f64();
    Ok(pairs.len())
}

/// Verifies from the similarities the verify parts computed.
struct Precomputed<'a> {
    sigs: &'a Signatures,
    scheme: &'a Scheme,
    cfg: &'a DedupConfig,
    exact: HashMap<(usize, usize), f64>,
}

impl PairVerifier for Precomputed<'_> {
    fn prepare(&mut self, _pairs: &[(usize, usize)]) -> Result<usize> {
        Ok(0)
    }

    fn verify(&self, pairs: &[(usize, usize)]) -> Result<Vec<Candidate>> {
        let mut out = Vec::new();
        for &(a, b) in pairs {
            let estimated = self.scheme.estimate(self.sigs.sig(a), self.sigs.sig(b));
            let exact = *self.exact.get(&(a, b)).ok_or_else(|| {
                DedupError::Shards(format!(
                    "verify parts hold no similarity for {} / {}: rerun the verify phase",
                    self.sigs.docs[a].id, self.sigs.docs[b].id
                ))
            })?;
            if exact >= self.cfg.threshold {
                out.push(Candidate {
                    a,
                    b,
                    estimated,
                    exact: Some(exact),
                });
            }
        }
        Ok(out)
    }
}

/// The `merge` phase: every verify part's pairs, decided and clustered as one process would,
/// and the reports.
pub fn merge(
    out: &Path,
    cfg: &DedupConfig,
    scheme: &Scheme,
    sigs: &Signatures,
    summary: &mut DedupSummary,
    timings: &mut Timings,
) -> Result<Found> {
    let br = cfg.band_rows(scheme)?;
    let t = Instant::now();
    let want = fingerprint(sigs, cfg, br);
    let count = part_count(&out.join("dedup/verify"), ".json", "verify", "verify")?;
    let at: HashMap<u64, usize> = sigs
        .docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.key, i))
        .collect();
    let idx = |k: u64| {
        at.get(&k).copied().ok_or_else(|| {
            DedupError::Shards(format!(
                "a verify part names document key {k:#x}, which the signatures lack"
            ))
        })
    };
    let mut pairs = Vec::new();
    let mut exact = HashMap::new();
    for i in 0..count {
        let part = Shard { index: i, count };
        let path = verify_part_path(out, part);
        let bytes = std::fs::read(&path).map_err(|_| {
            DedupError::Shards(format!(
                "verify part {i}/{count} is missing ({}): did its task finish?",
                path.display()
            ))
        })?;
        let p: VerifyPart = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            path: path.clone(),
            source: e,
        })?;
        if p.input != want || p.shard != (i, count) {
            return Err(DedupError::Shards(format!(
                "{} was made for other signatures or settings: rerun the verify phase",
                path.display()
            ))
            .into());
        }
        for (a, b, x) in p.pairs {
            let (a, b) = (idx(a)?, idx(b)?);
            pairs.push((a, b));
            if let Some(x) = x {
                exact.insert((a, b), f64::from_bits(x));
            }
        }
    }
    pairs.sort_unstable();
    timings.sign_s += t.elapsed().as_secs_f64();
    let mut verifier = Precomputed {
        sigs,
        scheme,
        cfg,
        exact,
    };
    let found = resolve(sigs, scheme, cfg, br, pairs, &mut verifier, timings)?;
    summary.exact_checked = found.exact_checked;

    let t = Instant::now();
    report::write_candidates_json(&out.join("candidates.json"), &sigs.docs, &found.candidates)?;
    report::write_clusters_jsonl(&out.join("clusters.jsonl"), &sigs.docs, &found.clusters)?;
    let domains = report::domain_counts(&sigs.docs, &found.removed);
    report::write_log_csv(&out.join("dedup_log.csv"), &domains)?;
    let removed = Removed {
        input: want,
        docs: sigs.len(),
        removed: sigs
            .docs
            .iter()
            .zip(&found.removed)
            .filter(|(_, r)| **r)
            .map(|(d, _)| d.key)
            .collect(),
    };
    let path = removed_path(out);
    let bytes = serde_json::to_vec(&removed).map_err(|e| Error::Json {
        path: path.clone(),
        source: e,
    })?;
    write_atomic(&path, &bytes)?;
    timings.write_s += t.elapsed().as_secs_f64();
    summary.domains = domains;
    Ok(found)
}

fn summary_path(out: &Path) -> PathBuf {
    out.join("dedup/summary.json")
}

/// Saves the merge phase's summary for the gather phase.
pub fn save_summary(out: &Path, s: &DedupSummary) -> Result<()> {
    let path = summary_path(out);
    let bytes = serde_json::to_vec_pretty(s).map_err(|e| Error::Json {
        path: path.clone(),
        source: e,
    })?;
    write_atomic(&path, &bytes)
}

/// The merge phase's summary.
pub fn merged_summary(out: &Path) -> Result<DedupSummary> {
    let path = summary_path(out);
    let bytes = std::fs::read(&path).map_err(|_| {
        DedupError::Shards(format!(
            "{} is missing: run the merge phase first",
            path.display()
        ))
    })?;
    let mut s: DedupSummary = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.clone(),
        source: e,
    })?;
    // JSON text may move a float's last digit: recompute the rates from the counts.
    for d in &mut s.domains {
        d.rate = if d.before == 0 {
            0.0
        } else {
            d.removed as f64 / d.before as f64
        };
    }
    Ok(s)
}

/// The files of write part `part`: a contiguous range, so the parts joined in order keep the
/// dataset's order.
/// N of the `part-…-of-N<ext>` entries in `dir` (the `what` parts the `phase` phase writes);
/// an error saying to run that phase first when there are none.
fn part_count(dir: &Path, ext: &str, what: &str, phase: &str) -> Result<usize> {
    let missing = || {
        DedupError::Shards(format!(
            "no {what} parts in {}: run the {phase} phase first",
            dir.display()
        ))
    };
    std::fs::read_dir(dir)
        .map_err(|_| missing())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("part-"))
        .filter_map(|n| n.strip_suffix(ext)?.rsplit("-of-").next()?.parse().ok())
        .max()
        .ok_or_else(|| missing().into())
}

fn part_range(files: usize, part: Shard) -> std::ops::Range<usize> {
    files * part.index / part.count..files * (part.index + 1) / part.count
}

/// The `write` phase: the kept documents of part `part`'s files. Returns (kept, removed).
pub fn write_part(input: &Dataset, out: &Path, cfg: &DedupConfig) -> Result<(usize, usize)> {
    let part = cfg.shard;
    let path = removed_path(out);
    let bytes = std::fs::read(&path).map_err(|_| {
        DedupError::Shards(format!(
            "{} is missing: run the merge phase first",
            path.display()
        ))
    })?;
    let r: Removed = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.clone(),
        source: e,
    })?;
    let removed: HashSet<u64> = r.removed.into_iter().collect();
    let files = input.shards()?;
    let mut w = DatasetWriter::create(kept_part_path(out, part), cfg.shard_docs)?;
    let mut dropped = 0usize;
    for j in part_range(files.len(), part) {
        check_cancelled()?;
        read_shard_file(&files[j], j, None, |key, doc| {
            if removed.contains(&key) {
                dropped += 1;
                Ok(())
            } else {
                w.write(&doc)
            }
        })?;
    }
    let kept = w.written() as usize;
    w.finish()?;
    Ok((kept, dropped))
}

/// The `gather` phase: joins the write parts, in order, into the kept dataset `kept_dir` (hard
/// links where possible). Returns the number of kept documents.
pub fn gather(out: &Path, kept_dir: &Path) -> Result<usize> {
    let path = removed_path(out);
    let bytes = std::fs::read(&path).map_err(|_| {
        DedupError::Shards(format!(
            "{} is missing: run the merge phase first",
            path.display()
        ))
    })?;
    let r: Removed = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.clone(),
        source: e,
    })?;
    let count = part_count(&out.join("dedup/kept"), "", "kept", "write")?;
    let target = AtomicDir::new(kept_dir)?;
    std::fs::create_dir_all(target.path())
        .map_err(|e| Error::io("create directory", target.path(), e))?;
    let mut stats = DatasetStats::default();
    let mut seq = 0usize;
    for i in 0..count {
        let part = kept_part_path(out, Shard { index: i, count });
        let ds = Dataset::open(&part).map_err(|_| {
            DedupError::Shards(format!(
                "kept part {i}/{count} is missing ({}): did its task finish?",
                part.display()
            ))
        })?;
        let sp = part.join(STATS_FILE);
        let s: DatasetStats =
            serde_json::from_slice(&std::fs::read(&sp).map_err(|e| Error::io("read", &sp, e))?)
                .map_err(|e| Error::Json {
                    path: sp.clone(),
                    source: e,
                })?;
        stats.documents += s.documents;
        for (d, n) in s.domains {
            *stats.domains.entry(d).or_default() += n;
        }
        for f in ds.shards()? {
            let to = target.path().join(format!("part-{seq:05}.jsonl"));
            crate::run::link_or_copy(&f, &to)?;
            seq += 1;
        }
    }
    if stats.documents as usize + r.removed.len() != r.docs {
        return Err(DedupError::Shards(format!(
            "kept parts hold {} documents and {} were removed, but {} were signed: rerun the write phase",
            stats.documents,
            r.removed.len(),
            r.docs
        ))
        .into());
    }
    let sp = target.path().join(STATS_FILE);
    let bytes = serde_json::to_vec_pretty(&stats).map_err(|e| Error::Json {
        path: sp.clone(),
        source: e,
    })?;
    std::fs::write(&sp, bytes).map_err(|e| Error::io("write", &sp, e))?;
    target.commit()?;
    Ok(stats.documents as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::pipeline::{Phase, run};
    use crate::ingest::Document;

    /// Near-duplicate families spread over many shard files, plus exact copies.
    fn dataset(dir: &Path) -> Dataset {
        let mut w = DatasetWriter::create(dir, 7).unwrap();
        let base: Vec<String> = (0..12)
            .map(|f| {
                (0..300)
                    .map(|i| char::from_u32(0xAC00 + ((i * 37 + f * 101) % 700) as u32).unwrap())
                    .collect()
            })
            .collect();
        for i in 0..60usize {
            let mut t: Vec<char> = base[i % 12].chars().collect();
            for k in 0..(i / 12) * 4 {
                t[(k * 13 + i) % 300] = '가';
            }
            w.write(&Document {
                id: format!("d{i}"),
                text: t.into_iter().collect(),
                domain: ["a", "b"][i % 2].into(),
                source: String::new(),
                extra: Default::default(),
            })
            .unwrap();
        }
        w.finish().unwrap()
    }

    fn read(p: &Path) -> Vec<u8> {
        std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn kept(out: &Path) -> Vec<Document> {
        Dataset::open(out.join("data/deduped"))
            .unwrap()
            .read_all()
            .unwrap()
    }

    #[test]
    fn split_phases_equal_one_process() {
        let d = tempfile::tempdir().unwrap();
        let ds = dataset(&d.path().join("ds"));
        assert!(ds.shards().unwrap().len() >= 8);
        let one = d.path().join("one");
        let s = run(&ds, &one, &DedupConfig::default()).unwrap();
        assert!(s.removed > 0 && s.candidates > 0, "{s:?}");

        let many = d.path().join("many");
        let n = 3;
        let phase = |phase, index| {
            let cfg = DedupConfig {
                phase,
                shard: if phase.sharded() {
                    Shard { index, count: n }
                } else {
                    Shard::default()
                },
                ..DedupConfig::default()
            };
            run(&ds, &many, &cfg).unwrap()
        };
        for ph in [Phase::Index, Phase::Verify] {
            for i in 0..n {
                phase(ph, i);
            }
        }
        // Every pair falls in exactly one verify part.
        let parts: Vec<VerifyPart> = (0..n)
            .map(|i| {
                serde_json::from_slice(&read(&verify_part_path(
                    &many,
                    Shard { index: i, count: n },
                )))
                .unwrap()
            })
            .collect();
        let mut all: Vec<(u64, u64)> = parts
            .iter()
            .flat_map(|p| p.pairs.iter().map(|&(a, b, _)| (a, b)))
            .collect();
        let len = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), len, "a pair in two parts");
        assert!(parts.iter().all(|p| !p.pairs.is_empty()));
        // Some pairs needed exact verification, and the parts computed it.
        assert!(parts.iter().flat_map(|p| &p.pairs).any(|x| x.2.is_some()));

        let m = phase(Phase::Merge, 0);
        assert_eq!((m.kept, m.removed), (s.kept, s.removed));
        for i in 0..n {
            phase(Phase::Write, i);
        }
        let g = phase(Phase::Gather, 0);
        assert_eq!(
            (g.docs, g.kept, g.removed, g.clusters, g.candidates),
            (s.docs, s.kept, s.removed, s.clusters, s.candidates)
        );
        assert_eq!(g.domains, s.domains);
        for f in ["candidates.json", "clusters.jsonl", "dedup_log.csv"] {
            assert_eq!(read(&one.join(f)), read(&many.join(f)), "{f}");
        }
        assert_eq!(kept(&one), kept(&many));
        assert_eq!(
            read(&one.join("data/deduped/dataset.json")),
            read(&many.join("data/deduped/dataset.json"))
        );

        // A missing verify part is named; one made for other settings is refused.
        std::fs::remove_file(verify_part_path(&many, Shard { index: 1, count: n })).unwrap();
        let e = run(
            &ds,
            &many,
            &DedupConfig {
                phase: Phase::Merge,
                ..DedupConfig::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("verify part 1/3 is missing"), "{e}");
        let cfg = DedupConfig {
            phase: Phase::Verify,
            shard: Shard { index: 1, count: n },
            threshold: 0.7,
            ..DedupConfig::default()
        };
        run(&ds, &many, &cfg).unwrap();
        let e = run(
            &ds,
            &many,
            &DedupConfig {
                phase: Phase::Merge,
                ..DedupConfig::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("other signatures or settings"), "{e}");
        // A one-process phase refuses a shard.
        let e = run(
            &ds,
            &many,
            &DedupConfig {
                phase: Phase::Merge,
                shard: Shard { index: 0, count: 2 },
                ..DedupConfig::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("one process"), "{e}");
    }
}
