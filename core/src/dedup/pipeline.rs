//! The dedup pipeline over a [`Dataset`]: signatures → LSH index → candidate pairs →
//! verification → clusters → kept documents and reports.
//!
//! Phases make it run on many machines: `index` (one per worker, `--shard i/N`: signs the
//! dataset's shard files `j` with `j mod N = i`, writes `dedup/signatures/shard-i-of-N.bin`
//! in the run root and inserts into the shared index), then `cluster` (one process: loads every
//! shard's signatures, queries the index, verifies, clusters, writes outputs). `all` does both
//! in one process. Document keys are `(file number << 32) | line number`, the same in every
//! process, so the sharded result equals the single-process one. The `verify`, `merge`, `write`
//! and `gather` phases ([`super::parts`]) split the work after indexing across processes too.

use super::lsh::{self, BucketKey, LshIndex};
use super::params::{self, BandRows};
use super::report::{self, Cluster, DomainCount};
use super::scheme::{Combine, Hashing, Scheme};
use super::select::{Keep, representative};
use super::shingle::ShingleSpec;
use super::signatures::{DocMeta, SigHeader, Signatures};
use super::verify::{self, Band, Candidate, Decision, ShinglePart, ShingleStore, Verify};
use crate::dedup::DedupError;
use crate::ingest::{Dataset, DatasetWriter, Document};
use crate::run::{check_cancelled, hash_str, progress_bar, spinner};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Computes the shingle sets of the given document indices (sorted).
pub type ShinglesOf<'a> = dyn Fn(&[usize]) -> Result<ShingleStore> + 'a;

/// Which part of the pipeline to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Everything in one process (the default).
    #[default]
    All,
    /// Sign this worker's shard and insert it into the index.
    Index,
    /// Query the index for every shard's signatures, verify, cluster, write outputs.
    Cluster,
    /// Query and verify this part's candidate pairs (see [`super::parts`]).
    Verify,
    /// Decide and cluster every verify part's pairs; write the reports and the removed list.
    Merge,
    /// Write this part's kept documents.
    Write,
    /// Join the written parts into the kept dataset.
    Gather,
}

impl Phase {
    /// Whether the phase runs on a shard `i/N` of the work.
    pub fn sharded(self) -> bool {
        matches!(self, Phase::Index | Phase::Verify | Phase::Write)
    }
}

impl std::str::FromStr for Phase {
    type Err = DedupError;
    fn from_str(s: &str) -> Result<Self, DedupError> {
        match s {
            "all" => Ok(Phase::All),
            "index" => Ok(Phase::Index),
            "cluster" => Ok(Phase::Cluster),
            "verify" => Ok(Phase::Verify),
            "merge" => Ok(Phase::Merge),
            "write" => Ok(Phase::Write),
            "gather" => Ok(Phase::Gather),
            _ => Err(DedupError::Config(format!(
                "phase `{s}`: expected all, index, cluster, verify, merge, write or gather"
            ))),
        }
    }
}

/// Worker `index` of `count` (`"i/N"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This worker, `0 ≤ index < count`.
    pub index: usize,
    /// Number of workers.
    pub count: usize,
}

impl Default for Shard {
    /// `0/1`: a single process.
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl std::str::FromStr for Shard {
    type Err = DedupError;
    fn from_str(s: &str) -> Result<Self, DedupError> {
        let bad = || {
            DedupError::Config(format!(
                "shard `{s}`: expected i/N with 0 ≤ i < N, e.g. 0/3"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Settings of a dedup run (the CLI and Rhai fill the same struct).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Similarity at or above which two documents are duplicates. Default 0.8.
    pub threshold: f64,
    /// MinHash permutations. Default 128.
    pub perms: usize,
    /// LSH bands (default: chosen for `threshold` and `recall`).
    pub bands: Option<usize>,
    /// Rows per band (default: chosen with `bands`).
    pub rows: Option<usize>,
    /// Candidate probability at the threshold that the automatic band choice must reach. Default 0.997.
    pub recall: f64,
    /// Shingle kinds: `"jamo3"` (default, the best on the planted evaluation), `"jamo3+word5"`, `"word5"`, other n.
    pub shingles: String,
    /// How jamo and word shingles combine when both are used: `union` (default) or `mean`.
    pub combine: Combine,
    /// Signature computation: `oph` (one-permutation hashing, the default) or `minhash`.
    pub hashing: Hashing,
    /// Weight of the jamo Jaccard in `mean`. Default 0.5.
    pub jamo_weight: f64,
    /// `"memory"` (default) or a `redis://host:port` URL.
    pub index: String,
    /// Redis key prefix (default: derived from the settings and the input's file names and sizes).
    pub namespace: Option<String>,
    /// Which cluster member is kept. Default `most_tokens`.
    pub keep: Keep,
    /// Verification: `exact` (default) or `estimate`.
    pub verify: Verify,
    /// Seed of the permutations. Default 42.
    pub seed: u64,
    /// Kept documents' dataset, relative to the run root. Default `data/deduped`.
    pub kept: String,
    /// Documents per output shard file. Default 100000.
    pub shard_docs: usize,
    /// Redis commands per pipeline. Default 10000.
    pub batch: usize,
    /// Leave the Redis keys in place after clustering. Default false.
    pub keep_index: bool,
    /// Phase: `all` (default), `index`, `cluster`, `verify`, `merge`, `write`, `gather`.
    pub phase: Phase,
    /// This worker's shard in the `index`, `verify` and `write` phases. Default 0/1.
    pub shard: Shard,
}

impl crate::config::Primitive for DedupConfig {
    const NAME: &'static str = "dedup";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[
            opt(
                "threshold",
                "similarity at or above which two documents are duplicates",
            ),
            opt("perms", "MinHash permutations"),
            opt(
                "bands",
                "LSH bands (none: chosen for the threshold and recall)",
            ),
            opt("rows", "rows per band (none: chosen with the bands)"),
            opt(
                "recall",
                "candidate probability at the threshold the automatic band choice must reach",
            ),
            opt(
                "shingles",
                "jamo3 (best on the planted evaluation), jamo3+word5, word5, other n",
            ),
            opt(
                "combine",
                "jamo and word shingles as one set (union) or separate signatures (mean)",
            ),
            opt(
                "hashing",
                "oph (one-permutation hashing, one pass) or minhash (one pass per permutation)",
            ),
            opt(
                "jamo_weight",
                "weight of the jamo Jaccard with combine mean",
            ),
            opt(
                "index",
                "LSH index: memory, or redis://host:port/db shared by several workers",
            ),
            opt(
                "namespace",
                "Redis key prefix (none: derived from the settings and the input files)",
            ),
            opt(
                "keep",
                "cluster member kept: most_tokens, longest, first or smallest_id",
            ),
            opt(
                "verify",
                "exact (exact Jaccard where the estimate is uncertain), exact_all or estimate",
            ),
            opt("seed", "seed of the permutations (Rhai: the run's seed)"),
            opt("kept", "kept documents' dataset, relative to the run root"),
            opt("shard_docs", "documents per output shard file"),
            opt("batch", "Redis commands per pipeline"),
            opt(
                "keep_index",
                "leave the Redis keys in place after clustering",
            ),
        ]
    };
    const FRONT_END_FIELDS: &'static [&'static str] = &["phase", "shard"];
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            threshold: 0.8,
            perms: 128,
            bands: None,
            rows: None,
            recall: 0.997,
            shingles: "jamo3".into(),
            combine: Combine::default(),
            hashing: Hashing::default(),
            jamo_weight: 0.5,
            index: "memory".into(),
            namespace: None,
            keep: Keep::default(),
            verify: Verify::default(),
            seed: 42,
            kept: "data/deduped".into(),
            shard_docs: 100_000,
            batch: 10_000,
            keep_index: false,
            phase: Phase::All,
            shard: Shard::default(),
        }
    }
}

impl DedupConfig {
    /// The similarity scheme these settings define.
    pub fn scheme(&self) -> Result<Scheme> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(DedupError::Config(format!(
                "threshold {}: must lie in (0, 1]",
                self.threshold
            ))
            .into());
        }
        let spec: ShingleSpec = self.shingles.parse()?;
        Ok(
            Scheme::new(spec, self.combine, self.jamo_weight, self.perms, self.seed)?
                .with_hashing(self.hashing),
        )
    }

    /// Bands × rows: as given, or chosen for the threshold (see [`params::choose`]).
    pub fn band_rows(&self, scheme: &Scheme) -> Result<BandRows> {
        let p = scheme.perms();
        let cap = if scheme.split_bands() { p / 2 } else { p };
        let br = match (self.bands, self.rows) {
            (Some(bands), Some(rows)) => BandRows { bands, rows },
            (None, None) => params::choose(self.threshold, p, self.recall, scheme.split_bands()),
            (Some(bands), None) => {
                let per = if scheme.split_bands() {
                    bands.div_ceil(2)
                } else {
                    bands
                };
                BandRows {
                    bands,
                    rows: (cap / per.max(1)).max(1),
                }
            }
            (None, Some(rows)) => {
                let b = cap / rows.max(1);
                BandRows {
                    bands: if scheme.split_bands() { b * 2 } else { b }.max(1),
                    rows,
                }
            }
        };
        scheme.band_offsets(br)?;
        Ok(br)
    }
}

/// Clusters and verified pairs found among signed documents.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Verified pairs ≥ threshold (exact copies after normalisation included, similarity 1).
    pub candidates: Vec<Candidate>,
    /// Clusters of two or more documents.
    pub clusters: Vec<Cluster>,
    /// Per document: whether it is removed.
    pub removed: Vec<bool>,
    /// Candidate pairs checked.
    pub checked: usize,
    /// Of those, pairs verified by exact Jaccard (the others were decided on the estimate or
    /// skipped because union-find had already joined their documents).
    pub exact_checked: usize,
    /// Documents whose shingles were fetched for exact verification.
    pub fetched: usize,
    /// Bands × rows used.
    pub bands: Option<BandRows>,
}

/// Seconds spent per step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Reading, shingling and signing.
    pub sign_s: f64,
    /// Inserting into the index.
    pub index_s: f64,
    /// Querying buckets and forming pairs.
    pub query_s: f64,
    /// Verifying pairs (re-reading documents when exact).
    pub verify_s: f64,
    /// Writing outputs.
    pub write_s: f64,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DedupSummary {
    /// Phase run.
    pub phase: Phase,
    /// Documents considered (this shard's in the index phase).
    pub docs: usize,
    /// Documents kept.
    pub kept: usize,
    /// Documents removed.
    pub removed: usize,
    /// Clusters of two or more.
    pub clusters: usize,
    /// Verified pairs written to `candidates.json`.
    pub candidates: usize,
    /// Candidate pairs checked.
    pub checked: usize,
    /// Of those, pairs verified by exact Jaccard.
    pub exact_checked: usize,
    /// Documents re-read for exact verification.
    pub fetched: usize,
    /// LSH bands.
    pub bands: usize,
    /// LSH rows per band.
    pub rows: usize,
    /// The index backend.
    pub index: String,
    /// Kept dataset directory (cluster / all phases).
    pub kept_dir: Option<PathBuf>,
    /// Signature files written or reused.
    pub signatures: Vec<PathBuf>,
    /// Whether signatures were reused from a previous run.
    pub reused_signatures: bool,
    /// Per-domain counts and total.
    pub domains: Vec<DomainCount>,
    /// Seconds per step.
    pub timings: Timings,
}

/// `(file number, path)` of the dataset's shard files worker `shard` handles.
pub fn shard_files(ds: &Dataset, shard: Shard) -> Result<Vec<(usize, PathBuf)>> {
    Ok(ds
        .shards()?
        .into_iter()
        .enumerate()
        .filter(|(j, _)| j % shard.count == shard.index)
        .collect())
}

/// Fingerprint of a shard's input files: their positions, names and contents (not times, so
/// a rerun elsewhere writes byte-identical signature files).
fn input_fingerprint(files: &[(usize, PathBuf)]) -> Result<String> {
    let hashes = files
        .iter()
        .map(|(_, p)| crate::run::hash_path(p))
        .collect::<Result<Vec<_>>>()?;
    Ok(fingerprint_of(files, &hashes))
}

/// [`input_fingerprint`] from the files' [`crate::run::hash_path`] hashes.
fn fingerprint_of(files: &[(usize, PathBuf)], hashes: &[String]) -> String {
    let mut s = String::new();
    for ((j, p), h) in files.iter().zip(hashes) {
        s.push_str(&format!(
            "{j}:{}:{h};",
            p.file_name().unwrap_or_default().to_string_lossy(),
        ));
    }
    hash_str(&s)
}

/// [`crate::run::hash_path`] of one file, fed its bytes as they are read.
struct FileHash(xxhash_rust::xxh3::Xxh3);

impl FileHash {
    fn new() -> Self {
        // hash_path hashes a file's name relative to itself (empty) and a 0 byte first.
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&[0]);
        Self(h)
    }

    fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> String {
        format!("{:032x}", self.0.digest128())
    }
}

/// Calls `f(key, document)` for every line of one shard file (`file_no` as in [`shard_files`]);
/// `want` limits parsing to some line numbers.
pub fn read_shard_file(
    path: &Path,
    file_no: usize,
    want: Option<&HashSet<u32>>,
    mut f: impl FnMut(u64, Document) -> Result<()>,
) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    for (line_no, line) in std::io::BufReader::with_capacity(1 << 20, file)
        .lines()
        .enumerate()
    {
        let line = line.map_err(|e| Error::io("read", path, e))?;
        if line.trim().is_empty() || want.is_some_and(|w| !w.contains(&(line_no as u32))) {
            continue;
        }
        let doc: Document = serde_json::from_str(&line).map_err(|e| {
            Error::invalid(format!(
                "{}:{}: not a dataset document: {e}",
                path.display(),
                line_no + 1
            ))
        })?;
        f(((file_no as u64) << 32) | line_no as u64, doc)?;
    }
    Ok(())
}

/// Whether a dataset line is blank (skipped by readers), deciding the usual cases on bytes.
fn is_blank_line(line: &[u8]) -> bool {
    match line.iter().find(|b| !b.is_ascii_whitespace()) {
        None => true,
        Some(b'{') => false,
        Some(_) => std::str::from_utf8(line).is_ok_and(|s| s.trim().is_empty()),
    }
}

/// Appends the lines of shard file `file_no` whose keys are not in `removed` to `w` as they
/// are (no parsing or re-serialising; line ends normalised to `\n`, blank lines skipped). The
/// file is read in blocks and each run of kept lines is handed to the writer as one slice.
fn copy_kept_lines(
    path: &Path,
    file_no: usize,
    removed: &HashSet<u64>,
    w: &mut DatasetWriter,
) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let none = Default::default();
    let mut buf: Vec<u8> = Vec::with_capacity(SIGN_BLOCK);
    let mut line_no = 0u64;
    loop {
        let eof = read_block(&mut file, &mut buf).map_err(|e| Error::io("read", path, e))?;
        let Some(end) = lines_end(&buf, eof) else {
            continue;
        };
        // The run of kept lines, taken as they are, not yet written: `buf[run..start]`.
        let (mut run, mut run_lines) = (0, 0u64);
        for (start, e, nl) in block_lines(&buf, end) {
            let key = ((file_no as u64) << 32) | line_no;
            line_no += 1;
            let line = &buf[start..e];
            let skip = is_blank_line(line) || removed.contains(&key);
            if skip || e != nl {
                w.write_lines(&buf[run..start], run_lines, &none)?;
                if !skip {
                    // A line ending in `\r\n`: written with `\n` alone.
                    w.write_serialized(line, &none)?;
                }
                run = (nl + 1).min(end);
                run_lines = 0;
            } else {
                run_lines += 1;
            }
        }
        w.write_lines(&buf[run..end], run_lines, &none)?;
        if eof {
            return Ok(());
        }
        buf.drain(..end);
    }
}

/// Where the whole lines of a block end: after its last newline, or at its end when the file
/// ends there (without a newline); `None` when no line is complete yet.
fn lines_end(buf: &[u8], eof: bool) -> Option<usize> {
    if eof {
        Some(buf.len())
    } else {
        memchr::memrchr(b'\n', buf).map(|i| i + 1)
    }
}

/// The lines of `buf[..end]`, each as `(start, end without trailing \r, its newline's index)`
/// (the last newline index is `end` when the block ends without one).
fn block_lines(buf: &[u8], end: usize) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        (start < end).then(|| {
            let nl = memchr::memchr(b'\n', &buf[start..end]).map_or(end, |i| start + i);
            let mut e = nl;
            while e > start && buf[e - 1] == b'\r' {
                e -= 1;
            }
            let line = (start, e, nl);
            start = nl + 1;
            line
        })
    })
}

/// Appends up to [`SIGN_BLOCK`] bytes of `file` to `buf` (without zeroing the space first);
/// true at the end of the file.
fn read_block(file: &mut std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    use std::io::Read;
    buf.reserve_exact(SIGN_BLOCK);
    let n = file.take(SIGN_BLOCK as u64).read_to_end(buf)?;
    Ok(n == 0)
}

/// Shingles and signs documents in parallel, appending to `docs` and `values`.
fn sign_batch<D: std::borrow::Borrow<Document> + Sync>(
    scheme: &Scheme,
    batch: &[(u64, D)],
    docs: &mut Vec<DocMeta>,
    values: &mut Vec<u32>,
) {
    let p = scheme.perms();
    let base = values.len();
    values.resize(base + batch.len() * p, 0);
    let metas: Vec<DocMeta> = batch
        .par_iter()
        .zip(values[base..].par_chunks_mut(p))
        .map(|((key, d), sig)| {
            let d: &Document = d.borrow();
            let s = scheme.sign_text(&d.text, sig);
            DocMeta {
                key: *key,
                id: d.id.clone(),
                domain: d.domain.clone(),
                tokens: s.tokens,
                chars: s.chars,
                content: s.content,
                bins: s.bins,
            }
        })
        .collect();
    docs.extend(metas);
}

/// Signs in-memory documents (keys are their positions).
pub fn sign_documents(scheme: &Scheme, docs: &[Document]) -> Signatures {
    let batch: Vec<(u64, &Document)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u64, d))
        .collect();
    let mut metas = Vec::with_capacity(docs.len());
    let mut values = Vec::with_capacity(docs.len() * scheme.perms());
    sign_batch(scheme, &batch, &mut metas, &mut values);
    let header = SigHeader {
        scheme: scheme.fingerprint(),
        input: String::new(),
        shard: (0, 1),
        perms: scheme.perms(),
        docs: metas.len(),
    };
    Signatures {
        header,
        docs: metas,
        values,
    }
}

/// The fields signing reads from a dataset line (borrowed where the JSON has no escapes).
#[derive(Deserialize)]
struct SignLine<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    domain: std::borrow::Cow<'a, str>,
}

/// Parses and signs raw dataset lines (`(key, start, end)` in `buf`) in parallel, appending
/// to `docs` and `values`; blank lines are skipped (as [`read_shard_file`] does).
fn sign_lines(
    scheme: &Scheme,
    path: &Path,
    buf: &[u8],
    lines: &[(u64, usize, usize)],
    docs: &mut Vec<DocMeta>,
    values: &mut Vec<u32>,
) -> Result<()> {
    let p = scheme.perms();
    let base = values.len();
    values.resize(base + lines.len() * p, 0);
    let metas: Vec<Result<Option<DocMeta>>> = lines
        .par_iter()
        .zip(values[base..].par_chunks_mut(p))
        .map(|(&(key, start, end), sig)| {
            let at = || format!("{}:{}", path.display(), (key as u32) + 1);
            let line = &buf[start..end];
            let s = match simdutf8::basic::from_utf8(line) {
                Ok(s) => s,
                Err(_) => std::str::from_utf8(line)
                    .map_err(|e| Error::invalid(format!("{}: not UTF-8: {e}", at())))?,
            };
            if s.trim().is_empty() {
                return Ok(None);
            }
            let d: SignLine = serde_json::from_str(s)
                .map_err(|e| Error::invalid(format!("{}: not a dataset document: {e}", at())))?;
            let t = scheme.sign_text(&d.text, sig);
            Ok(Some(DocMeta {
                key,
                id: d.id.into_owned(),
                domain: d.domain.into_owned(),
                tokens: t.tokens,
                chars: t.chars,
                content: t.content,
                bins: t.bins,
            }))
        })
        .collect();
    // Drop the signature slots of blank lines.
    let mut kept = base;
    for (i, m) in metas.into_iter().enumerate() {
        if let Some(m) = m? {
            let from = base + i * p;
            if from != kept {
                values.copy_within(from..from + p, kept);
            }
            docs.push(m);
            kept += p;
        }
    }
    values.truncate(kept);
    Ok(())
}

/// Bytes read from a shard file at a time while signing.
const SIGN_BLOCK: usize = 8 << 20;

/// Signs the documents of `files`: each file is read in blocks, and a block's lines are parsed
/// and signed in parallel without being copied.
pub fn sign_files(scheme: &Scheme, files: &[(usize, PathBuf)], shard: Shard) -> Result<Signatures> {
    let bar = spinner("signing");
    let mut docs = Vec::new();
    let mut values = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut lines: Vec<(u64, usize, usize)> = Vec::new();
    let mut hashes = Vec::with_capacity(files.len());
    for (j, path) in files {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut hash = FileHash::new();
        let mut line_no = 0u64;
        buf.clear();
        loop {
            let old = buf.len();
            let eof = read_block(&mut file, &mut buf).map_err(|e| Error::io("read", path, e))?;
            hash.update(&buf[old..]);
            let Some(end) = lines_end(&buf, eof) else {
                continue;
            };
            lines.clear();
            for (start, e, _) in block_lines(&buf, end) {
                lines.push((((*j as u64) << 32) | line_no, start, e));
                line_no += 1;
            }
            for chunk in lines.chunks(8192) {
                check_cancelled()?;
                sign_lines(scheme, path, &buf, chunk, &mut docs, &mut values)?;
                bar.inc(chunk.len() as u64);
            }
            if eof {
                break;
            }
            buf.drain(..end);
        }
        hashes.push(hash.finish());
    }
    bar.finish_and_clear();
    let header = SigHeader {
        scheme: scheme.fingerprint(),
        input: fingerprint_of(files, &hashes),
        shard: (shard.index, shard.count),
        perms: scheme.perms(),
        docs: docs.len(),
    };
    Ok(Signatures {
        header,
        docs,
        values,
    })
}

/// Path of shard `i/N`'s signature file under the run root.
pub fn signature_path(out: &Path, shard: Shard) -> PathBuf {
    out.join("dedup/signatures").join(format!(
        "shard-{:04}-of-{:04}.bin",
        shard.index, shard.count
    ))
}

/// Signs worker `shard`'s files, reusing a signature file from a previous run when its scheme and
/// input fingerprints match. Returns the signatures and whether they were reused.
pub fn sign_shard(
    ds: &Dataset,
    scheme: &Scheme,
    shard: Shard,
    out: &Path,
) -> Result<(Signatures, bool)> {
    let files = shard_files(ds, shard)?;
    let path = signature_path(out, shard);
    if path.exists()
        && let Ok(h) = Signatures::read_header(&path)
        && h.scheme == scheme.fingerprint()
        && h.input == input_fingerprint(&files)?
        && h.shard == (shard.index, shard.count)
    {
        tracing::info!("reusing signatures {}", path.display());
        return Ok((Signatures::load(&path)?, true));
    }
    let sigs = sign_files(scheme, &files, shard)?;
    sigs.save(&path)?;
    Ok((sigs, false))
}

/// Band hashes of every document (`len × bands`).
pub fn all_band_hashes(sigs: &Signatures, scheme: &Scheme, br: BandRows) -> Result<Vec<u64>> {
    let offsets = scheme.band_offsets(br)?;
    let per: Vec<Vec<u64>> = (0..sigs.len())
        .into_par_iter()
        .map(|i| {
            let mut v = Vec::with_capacity(br.bands);
            lsh::band_hashes(sigs.sig(i), &offsets, br.rows, &mut v);
            v
        })
        .collect();
    Ok(per.concat())
}

/// Inserts every document's buckets into `index`, in batches.
pub fn insert_all(
    index: &mut dyn LshIndex,
    sigs: &Signatures,
    bands: &[u64],
    br: BandRows,
) -> Result<()> {
    let bar = progress_bar(sigs.len() as u64, "indexing");
    let keys: Vec<u64> = sigs.docs.iter().map(|d| d.key).collect();
    for (kc, bc) in keys.chunks(4096).zip(bands.chunks(4096 * br.bands)) {
        check_cancelled()?;
        index.insert(kc, bc)?;
        bar.inc(kc.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Uncertain pairs verified together before union-find is consulted again.
const EXACT_ROUND: usize = 16_384;

/// Finds clusters among signed documents whose buckets are in `index` (inserted first when
/// `insert`). `shingles_of` returns the shingle sets of the given document indices (exact
/// verification only).
pub fn find(
    sigs: &Signatures,
    scheme: &Scheme,
    cfg: &DedupConfig,
    index: &mut dyn LshIndex,
    insert: bool,
    timings: &mut Timings,
    shingles_of: &ShinglesOf<'_>,
) -> Result<Found> {
    let br = cfg.band_rows(scheme)?;
    let t = Instant::now();
    let bands = all_band_hashes(sigs, scheme, br)?;
    if insert {
        insert_all(index, sigs, &bands, br)?;
    }
    timings.index_s += t.elapsed().as_secs_f64();
    let t = Instant::now();
    // An index this call filled holds exactly these documents: list its buckets directly.
    let listed = if insert { index.all_buckets() } else { None };
    let pairs = match listed {
        Some(buckets) => {
            drop(bands);
            pairs_of_buckets(sigs, &*index, buckets)
        }
        None => query_pairs(sigs, br, index, bands)?,
    };
    if insert {
        // This call filled the index, so nothing queries it again: free it before verifying.
        index.release();
    }
    timings.query_s += t.elapsed().as_secs_f64();
    let mut verifier = FromShingles {
        sigs,
        scheme,
        cfg,
        shingles_of,
        store: ShingleStore::default(),
    };
    resolve(sigs, scheme, cfg, br, pairs, &mut verifier, timings)
}

/// Exact verification of candidate pairs, as [`resolve`] asks for it.
pub trait PairVerifier {
    /// Called once with every pair that may be verified; returns the documents fetched.
    fn prepare(&mut self, pairs: &[(usize, usize)]) -> Result<usize>;
    /// The pairs whose exact similarity reaches the threshold.
    fn verify(&self, pairs: &[(usize, usize)]) -> Result<Vec<Candidate>>;
}

/// Verifies by exact Jaccard on shingles fetched with `shingles_of`.
struct FromShingles<'a, 'b> {
    sigs: &'a Signatures,
    scheme: &'a Scheme,
    cfg: &'a DedupConfig,
    shingles_of: &'a ShinglesOf<'b>,
    store: ShingleStore,
}

impl PairVerifier for FromShingles<'_, '_> {
    fn prepare(&mut self, pairs: &[(usize, usize)]) -> Result<usize> {
        let mut need: Vec<usize> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
        need.sort_unstable();
        need.dedup();
        self.store = if need.is_empty() {
            ShingleStore::default()
        } else {
            (self.shingles_of)(&need)?
        };
        Ok(self.store.len())
    }

    fn verify(&self, pairs: &[(usize, usize)]) -> Result<Vec<Candidate>> {
        verify::verify(
            pairs,
            self.sigs,
            self.scheme,
            self.cfg.verify,
            self.cfg.threshold,
            &self.store,
        )
    }
}

/// How the `exact` mode decides a pair on its estimate, and the estimate.
pub(crate) fn decide_pair(
    sigs: &Signatures,
    scheme: &Scheme,
    cfg: &DedupConfig,
    a: usize,
    b: usize,
) -> (Decision, f64) {
    let union = scheme.combine() == super::scheme::Combine::Union;
    let e = scheme.estimate(sigs.sig(a), sigs.sig(b));
    let band = Band::for_pair(
        cfg.threshold,
        scheme.perms(),
        sigs.docs[a].bins,
        sigs.docs[b].bins,
    )
    .filter(|_| union);
    (verify::decide(e, band), e)
}

/// Distinct candidate pairs of content leaders sharing a bucket (see
/// [`verify::pairs_from_buckets`]); `bands` are every document's band hashes.
fn query_pairs(
    sigs: &Signatures,
    br: BandRows,
    index: &mut dyn LshIndex,
    bands: Vec<u64>,
) -> Result<Vec<(usize, usize)>> {
    let mut probes: Vec<BucketKey> = bands
        .iter()
        .enumerate()
        .map(|(x, &h)| ((x % br.bands) as u16, h))
        .collect();
    drop(bands);
    // Backends that answer "the union of a document's buckets" in one request (Redis) are asked
    // per document: each other member pairs with the document. Others are asked per bucket.
    let per_doc: Vec<&[BucketKey]> = probes.chunks(br.bands).collect();
    let mut buckets = Vec::new();
    let bar = progress_bar(sigs.len() as u64, "querying");
    let mut by_doc = false;
    for (c, chunk) in per_doc.chunks(10_000).enumerate() {
        check_cancelled()?;
        let Some(res) = index.union_members(chunk) else {
            break;
        };
        for (d, members) in res?.into_iter().enumerate() {
            let key = sigs.docs[c * 10_000 + d].key;
            buckets.extend(
                members
                    .into_iter()
                    .filter(|&m| m != key)
                    .map(|m| vec![key, m]),
            );
        }
        by_doc = true;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    drop(per_doc);
    if !by_doc {
        probes.par_sort_unstable();
        probes.dedup();
        let bar = progress_bar(probes.len() as u64, "querying");
        for chunk in probes.chunks(100_000) {
            check_cancelled()?;
            buckets.extend(index.members(chunk)?.into_iter().filter(|m| m.len() > 1));
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
    }
    drop(probes);
    Ok(pairs_of_buckets(sigs, &*index, buckets))
}

/// Distinct candidate pairs of content leaders sharing one of `buckets`.
fn pairs_of_buckets(
    sigs: &Signatures,
    index: &dyn LshIndex,
    buckets: Vec<Vec<u64>>,
) -> Vec<(usize, usize)> {
    let leaders = verify::content_leaders(sigs);
    let (pairs, unknown) = verify::pairs_from_buckets(&buckets, sigs, &leaders);
    drop(buckets);
    tracing::debug!(
        "{} candidate pairs; peak {} MB",
        pairs.len(),
        crate::run::peak_rss_bytes(None).unwrap_or(0) >> 20
    );
    if unknown > 0 {
        tracing::warn!(
            "{unknown} bucket members are not in this run's signatures (stale keys in {})",
            index.describe()
        );
    }
    pairs
}

/// Decides candidate `pairs` (estimate, then exact verification through `verifier` where
/// the estimate is uncertain), joins the verified ones and picks each cluster's representative.
pub fn resolve(
    sigs: &Signatures,
    scheme: &Scheme,
    cfg: &DedupConfig,
    br: BandRows,
    pairs: Vec<(usize, usize)>,
    verifier: &mut dyn PairVerifier,
    timings: &mut Timings,
) -> Result<Found> {
    let leaders = verify::content_leaders(sigs);
    let t = Instant::now();
    let mut uf = super::cluster::UnionFind::new(sigs.len());
    let mut candidates = Vec::new();
    for (i, &l) in leaders.iter().enumerate() {
        if l != i {
            uf.union(l, i);
            let exact = (cfg.verify != Verify::Estimate).then_some(1.0);
            candidates.push(Candidate {
                a: l,
                b: i,
                estimated: scheme.estimate(sigs.sig(l), sigs.sig(i)),
                exact,
            });
        }
    }
    let (verified, exact_checked, fetched) = match cfg.verify {
        Verify::Estimate => {
            let none = ShingleStore::default();
            let v = verify::verify(&pairs, sigs, scheme, cfg.verify, cfg.threshold, &none)?;
            (v, 0, 0)
        }
        Verify::ExactAll => {
            let fetched = verifier.prepare(&pairs)?;
            (verifier.verify(&pairs)?, pairs.len(), fetched)
        }
        Verify::Exact => {
            // Far from the threshold the estimate decides; accepted pairs join first, so the
            // uncertain pairs whose documents are already joined need no exact check.
            let decided: Vec<(Decision, f64)> = pairs
                .par_iter()
                .map(|&(a, b)| decide_pair(sigs, scheme, cfg, a, b))
                .collect();
            let mut uncertain: Vec<(usize, usize, f64)> = Vec::new();
            for (&(a, b), &(d, e)) in pairs.iter().zip(&decided) {
                match d {
                    Decision::Accept => {
                        uf.union(a, b);
                        candidates.push(Candidate {
                            a,
                            b,
                            estimated: e,
                            exact: None,
                        });
                    }
                    Decision::Exact => uncertain.push((a, b, e)),
                    Decision::Reject => {}
                }
            }
            drop(decided);
            uncertain.retain(|&(a, b, _)| uf.find(a) != uf.find(b));
            let fetched = verifier.prepare(
                &uncertain
                    .iter()
                    .map(|&(a, b, _)| (a, b))
                    .collect::<Vec<_>>(),
            )?;
            tracing::debug!(
                "exact verification: up to {} pairs, {} documents; peak {} MB",
                uncertain.len(),
                fetched,
                crate::run::peak_rss_bytes(None).unwrap_or(0) >> 20
            );
            // Likeliest duplicates first, in rounds: a pair whose documents an earlier round
            // joined is skipped (it cannot change a cluster).
            uncertain.sort_by(|x, y| y.2.total_cmp(&x.2).then((x.0, x.1).cmp(&(y.0, y.1))));
            let (mut verified, mut checked) = (Vec::new(), 0);
            let mut round = Vec::new();
            for chunk in uncertain.chunks(EXACT_ROUND) {
                round.clear();
                round.extend(
                    chunk
                        .iter()
                        .filter(|&&(a, b, _)| uf.find(a) != uf.find(b))
                        .map(|&(a, b, _)| (a, b)),
                );
                checked += round.len();
                let v = verifier.verify(&round)?;
                for c in &v {
                    uf.union(c.a, c.b);
                }
                verified.extend(v);
            }
            (verified, checked, fetched)
        }
    };
    timings.verify_s += t.elapsed().as_secs_f64();

    for c in &verified {
        uf.union(c.a, c.b);
    }
    candidates.extend(verified);
    candidates.sort_by_key(|c| (c.a, c.b));
    let mut removed = vec![false; sigs.len()];
    let clusters: Vec<Cluster> = uf
        .groups()
        .into_iter()
        .map(|members| {
            let rep = representative(&members, &sigs.docs, cfg.keep);
            for &m in &members {
                removed[m] = m != rep;
            }
            Cluster {
                representative: rep,
                members,
            }
        })
        .collect();
    Ok(Found {
        candidates,
        clusters,
        removed,
        checked: pairs.len(),
        exact_checked,
        fetched,
        bands: Some(br),
    })
}

/// Dedups in-memory documents (evaluation, small inputs) with an in-memory index.
pub fn dedup_documents(docs: &[Document], cfg: &DedupConfig) -> Result<(Signatures, Found)> {
    let scheme = cfg.scheme()?;
    let sigs = sign_documents(&scheme, docs);
    let br = cfg.band_rows(&scheme)?;
    let mut index = lsh::memory::MemoryIndex::new(br.bands);
    let mut t = Timings::default();
    let shingles_of = |need: &[usize]| Ok(shingles_of_texts(&scheme, need, |i| &docs[i].text));
    let found = find(&sigs, &scheme, cfg, &mut index, true, &mut t, &shingles_of)?;
    Ok((sigs, found))
}

/// The shingle sets of documents `need` (indices) whose texts `text` gives.
pub fn shingles_of_texts<'a>(
    scheme: &Scheme,
    need: &[usize],
    text: impl Fn(usize) -> &'a str + Sync,
) -> ShingleStore {
    let parts = need
        .par_iter()
        .map(|&i| (i, scheme.shingle_set(text(i))))
        .collect();
    ShingleStore::from_parts(scheme, parts)
}

/// The shingle sets of documents (by index into `sigs`) re-read from the dataset files: each
/// file that holds some is streamed once, only the wanted lines are parsed, and each document
/// is shingled as it is read (no texts are held).
pub fn fetch_shingles(
    files: &[PathBuf],
    sigs: &Signatures,
    scheme: &Scheme,
    need: &[usize],
) -> Result<ShingleStore> {
    let mut by_file: HashMap<usize, HashMap<u32, usize>> = HashMap::new();
    for &i in need {
        let k = sigs.docs[i].key;
        by_file
            .entry((k >> 32) as usize)
            .or_default()
            .insert(k as u32, i);
    }
    let parts: Vec<Result<ShinglePart>> = by_file
        .par_iter()
        .map(|(&j, lines)| {
            let path = files.get(j).ok_or_else(|| {
                DedupError::Shards(format!(
                    "signatures name shard file #{j}, but the dataset has only {} files",
                    files.len()
                ))
            })?;
            let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
            let mut r = std::io::BufReader::with_capacity(1 << 20, file);
            let mut out = ShinglePart::default();
            let (mut line, mut line_no, mut found) = (Vec::new(), 0u32, 0usize);
            while found < lines.len() {
                line.clear();
                let n = r
                    .read_until(b'\n', &mut line)
                    .map_err(|e| Error::io("read", path, e))?;
                if n == 0 {
                    break;
                }
                if let Some(&i) = lines.get(&line_no) {
                    let doc: SignLine = serde_json::from_slice(&line).map_err(|e| {
                        Error::invalid(format!(
                            "{}:{}: not a dataset document: {e}",
                            path.display(),
                            line_no + 1
                        ))
                    })?;
                    out.push(scheme, i, &scheme.shingle_set(&doc.text));
                    found += 1;
                }
                line_no += 1;
            }
            Ok(out)
        })
        .collect();
    let out = ShingleStore::merge(parts.into_iter().collect::<Result<_>>()?);
    if let Some(&missing) = need.iter().find(|&&i| out.get(i).is_none()) {
        return Err(DedupError::Shards(format!(
            "document {} is no longer in the dataset: rerun the index phase",
            sigs.docs[missing].id
        ))
        .into());
    }
    Ok(out)
}

fn default_namespace(ds: &Dataset, scheme: &Scheme, br: BandRows) -> Result<String> {
    let mut s = format!("{} bands={}x{};", scheme.fingerprint(), br.bands, br.rows);
    for p in ds.shards()? {
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        s.push_str(&format!(
            "{}:{len};",
            p.file_name().unwrap_or_default().to_string_lossy()
        ));
    }
    Ok(format!("yunmin:dedup:{}", &hash_str(&s)[..16]))
}

/// Loads the signature files of every shard of a sharded run, checking they are complete and
/// match the current input.
fn load_all_shards(ds: &Dataset, scheme: &Scheme, out: &Path) -> Result<Vec<Signatures>> {
    let dir = out.join("dedup/signatures");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|_| {
            DedupError::Shards(format!(
                "no signatures in {}: run the index phase first",
                dir.display()
            ))
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    found.sort();
    let headers: Vec<SigHeader> = found
        .iter()
        .map(|p| Signatures::read_header(p))
        .collect::<Result<_>>()?;
    let Some(n) = headers
        .iter()
        .filter(|h| h.scheme == scheme.fingerprint())
        .map(|h| h.shard.1)
        .max()
    else {
        return Err(DedupError::Shards(format!(
            "no signature file in {} was made with these settings ({}): run the index phase with them",
            dir.display(),
            scheme.fingerprint()
        ))
        .into());
    };
    let mut out_sigs = Vec::new();
    for i in 0..n {
        let shard = Shard { index: i, count: n };
        let path = signature_path(out, shard);
        if !path.exists() {
            return Err(DedupError::Shards(format!(
                "shard {i}/{n} has no signatures ({}): did its worker finish?",
                path.display()
            ))
            .into());
        }
        let h = Signatures::read_header(&path)?;
        if h.scheme != scheme.fingerprint() {
            return Err(DedupError::Shards(format!(
                "{} was made with other settings ({})",
                path.display(),
                h.scheme
            ))
            .into());
        }
        if h.input != input_fingerprint(&shard_files(ds, shard)?)? {
            return Err(DedupError::Shards(format!(
                "{}: the dataset changed since it was signed; rerun the index phase",
                path.display()
            ))
            .into());
        }
        out_sigs.push(Signatures::load(&path)?);
    }
    Ok(out_sigs)
}

/// Runs dedup on `input`, writing outputs under the run root `out`.
pub fn run(input: &Dataset, out: &Path, cfg: &DedupConfig) -> Result<DedupSummary> {
    let scheme = cfg.scheme()?;
    let br = cfg.band_rows(&scheme)?;
    let namespace = match &cfg.namespace {
        Some(n) => n.clone(),
        None => default_namespace(input, &scheme, br)?,
    };
    if !cfg.phase.sharded() && cfg.shard != Shard::default() {
        return Err(DedupError::Config(format!(
            "shard {}/{}: only the index, verify and write phases run on a shard; the {:?} phase is one process",
            cfg.shard.index, cfg.shard.count, cfg.phase
        ))
        .into());
    }
    let mut summary = DedupSummary {
        phase: cfg.phase,
        bands: br.bands,
        rows: br.rows,
        ..Default::default()
    };
    let mut timings = Timings::default();

    match cfg.phase {
        Phase::Write => {
            let t = Instant::now();
            let (kept, removed) = super::parts::write_part(input, out, cfg)?;
            summary.kept = kept;
            summary.removed = removed;
            summary.docs = kept + removed;
            summary.timings.write_s = t.elapsed().as_secs_f64();
            return Ok(summary);
        }
        Phase::Gather => {
            let t = Instant::now();
            let kept_dir = out.join(&cfg.kept);
            let kept = super::parts::gather(out, &kept_dir)?;
            // The merge phase's summary, completed by the write phases' output.
            let mut s = super::parts::merged_summary(out)?;
            if s.kept != kept {
                return Err(DedupError::Shards(format!(
                    "the merge kept {} documents, the written parts hold {kept}: rerun the write phase",
                    s.kept
                ))
                .into());
            }
            s.phase = Phase::Gather;
            s.kept_dir = Some(kept_dir);
            s.timings.write_s += t.elapsed().as_secs_f64();
            return Ok(s);
        }
        _ => {}
    }

    // Open the index first so an unreachable Redis fails before any work.
    let mut index = lsh::open(&cfg.index, &namespace, br, cfg.batch)?;
    summary.index = index.describe();

    if matches!(cfg.phase, Phase::Verify | Phase::Merge) {
        let t = Instant::now();
        let sigs = sort_by_key(Signatures::concat(load_all_shards(input, &scheme, out)?)?);
        timings.sign_s = t.elapsed().as_secs_f64();
        summary.docs = sigs.len();
        if cfg.phase == Phase::Verify {
            if cfg.index == "memory" {
                // A memory index does not outlive its process: rebuild it from the signatures.
                let t = Instant::now();
                let bands = all_band_hashes(&sigs, &scheme, br)?;
                insert_all(index.as_mut(), &sigs, &bands, br)?;
                timings.index_s = t.elapsed().as_secs_f64();
            }
            summary.checked = super::parts::verify_part(
                input,
                out,
                cfg,
                &scheme,
                &sigs,
                index.as_mut(),
                &mut timings,
            )?;
            summary.timings = timings;
            return Ok(summary);
        }
        let found = super::parts::merge(out, cfg, &scheme, &sigs, &mut summary, &mut timings)?;
        if cfg.index != "memory"
            && !cfg.keep_index
            && let Err(e) = index.clear()
        {
            tracing::warn!("outputs are complete, but clearing the index failed: {e}");
        }
        summary.removed = found.removed.iter().filter(|r| **r).count();
        summary.kept = summary.docs - summary.removed;
        summary.clusters = found.clusters.len();
        summary.candidates = found.candidates.len();
        summary.checked = found.checked;
        summary.fetched = found.fetched;
        summary.timings = timings;
        super::parts::save_summary(out, &summary)?;
        return Ok(summary);
    }

    let (sigs, insert) = match cfg.phase {
        Phase::Index => {
            let t = Instant::now();
            let (sigs, reused) = sign_shard(input, &scheme, cfg.shard, out)?;
            timings.sign_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let bands = all_band_hashes(&sigs, &scheme, br)?;
            insert_all(index.as_mut(), &sigs, &bands, br)?;
            timings.index_s = t.elapsed().as_secs_f64();
            summary.docs = sigs.len();
            summary.kept = sigs.len();
            summary.reused_signatures = reused;
            summary.signatures = vec![signature_path(out, cfg.shard)];
            summary.timings = timings;
            return Ok(summary);
        }
        Phase::All => {
            let t = Instant::now();
            let (sigs, reused) = sign_shard(input, &scheme, Shard::default(), out)?;
            timings.sign_s = t.elapsed().as_secs_f64();
            summary.reused_signatures = reused;
            summary.signatures = vec![signature_path(out, Shard::default())];
            (sigs, true)
        }
        Phase::Cluster | Phase::Verify | Phase::Merge | Phase::Write | Phase::Gather => {
            let t = Instant::now();
            let parts = load_all_shards(input, &scheme, out)?;
            summary.signatures = (0..parts.len())
                .map(|i| {
                    signature_path(
                        out,
                        Shard {
                            index: i,
                            count: parts.len(),
                        },
                    )
                })
                .collect();
            timings.sign_s = t.elapsed().as_secs_f64();
            // A memory index does not outlive its process: rebuild it from the signatures.
            (Signatures::concat(parts)?, cfg.index == "memory")
        }
    };
    // Documents in dataset order (shards interleave their files).
    let sigs = sort_by_key(sigs);

    let files = input.shards()?;
    let shingles_of = |need: &[usize]| fetch_shingles(&files, &sigs, &scheme, need);
    let found = find(
        &sigs,
        &scheme,
        cfg,
        index.as_mut(),
        insert,
        &mut timings,
        &shingles_of,
    )?;

    let t = Instant::now();
    let kept_dir = out.join(&cfg.kept);
    let removed: HashSet<u64> = sigs
        .docs
        .iter()
        .zip(&found.removed)
        .filter(|(_, r)| **r)
        .map(|(d, _)| d.key)
        .collect();
    let mut w = DatasetWriter::create(&kept_dir, cfg.shard_docs)?;
    for (j, path) in files.iter().enumerate() {
        copy_kept_lines(path, j, &removed, &mut w)?;
    }
    let mut kept_domains: std::collections::BTreeMap<String, u64> = Default::default();
    for (d, &r) in sigs.docs.iter().zip(&found.removed) {
        if !r {
            *kept_domains.entry(d.domain.clone()).or_default() += 1;
        }
    }
    w.write_serialized(&[], &kept_domains)?;
    let kept = w.written() as usize;
    if kept + removed.len() != sigs.len() {
        return Err(DedupError::Shards(format!(
            "the dataset changed during the run: signed {} documents, read {}",
            sigs.len(),
            kept + removed.len()
        ))
        .into());
    }
    w.finish()?;
    report::write_candidates_json(&out.join("candidates.json"), &sigs.docs, &found.candidates)?;
    report::write_clusters_jsonl(&out.join("clusters.jsonl"), &sigs.docs, &found.clusters)?;
    let domains = report::domain_counts(&sigs.docs, &found.removed);
    report::write_log_csv(&out.join("dedup_log.csv"), &domains)?;
    timings.write_s = t.elapsed().as_secs_f64();
    if cfg.index != "memory"
        && !cfg.keep_index
        && let Err(e) = index.clear()
    {
        tracing::warn!("outputs are complete, but clearing the index failed: {e}");
    }

    summary.docs = sigs.len();
    summary.kept = kept;
    summary.removed = removed.len();
    summary.clusters = found.clusters.len();
    summary.candidates = found.candidates.len();
    summary.checked = found.checked;
    summary.exact_checked = found.exact_checked;
    summary.fetched = found.fetched;
    summary.kept_dir = Some(kept_dir);
    summary.domains = domains;
    summary.timings = timings;
    Ok(summary)
}

fn sort_by_key(s: Signatures) -> Signatures {
    if s.docs.windows(2).all(|w| w[0].key < w[1].key) {
        return s;
    }
    let p = s.perms();
    let mut order: Vec<usize> = (0..s.len()).collect();
    order.sort_by_key(|&i| s.docs[i].key);
    let docs = order.iter().map(|&i| s.docs[i].clone()).collect();
    let mut values = Vec::with_capacity(s.values.len());
    for &i in &order {
        values.extend_from_slice(&s.values[i * p..(i + 1) * p]);
    }
    Signatures {
        header: s.header,
        docs,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_signing_reads_lines_and_fingerprints_like_the_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-00000.jsonl");
        let line = |id: &str, text: &str| {
            format!(r#"{{"id":"{id}","text":"{text}","domain":"d","source":"s"}}"#)
        };
        // CRLF and LF endings, a blank line, and no newline at the end.
        let body = format!(
            "{}\r\n{}\n\n{}",
            line("a", "대한민국 헌법"),
            line("b", "대한민국 헌법 제1조"),
            line("c", "짧음")
        );
        std::fs::write(&path, body).unwrap();
        let files = vec![(3usize, path.clone())];
        let scheme = DedupConfig::default().scheme().unwrap();
        let sigs = sign_files(&scheme, &files, Shard::default()).unwrap();
        assert_eq!(sigs.header.input, input_fingerprint(&files).unwrap());
        let keys: Vec<u64> = sigs.docs.iter().map(|d| d.key).collect();
        assert_eq!(keys, vec![3 << 32, (3 << 32) | 1, (3 << 32) | 3]);
        let mut want = Vec::new();
        read_shard_file(&path, 3, None, |k, d| {
            want.push((k, d.text));
            Ok(())
        })
        .unwrap();
        let docs: Vec<Document> = want
            .iter()
            .map(|(_, t)| Document {
                id: String::new(),
                text: t.clone(),
                domain: String::new(),
                source: String::new(),
                extra: Default::default(),
            })
            .collect();
        assert_eq!(sign_documents(&scheme, &docs).values, sigs.values);
    }

    #[test]
    fn kept_lines_are_copied_with_lf_endings_without_blank_or_removed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-00000.jsonl");
        let line = |i: usize| format!(r#"{{"id":"{i}","text":"t{i}","domain":"d","source":"s"}}"#);
        // Lines 0 … 6: LF, CRLF, blank, removed, LF, removed, and the last without a newline.
        let body = format!(
            "{}\n{}\r\n \r\n{}\n{}\n{}\n{}",
            line(0),
            line(1),
            line(3),
            line(4),
            line(5),
            line(6)
        );
        std::fs::write(&path, body).unwrap();
        let removed: HashSet<u64> = [(2u64 << 32) | 3, (2 << 32) | 5].into_iter().collect();
        // Shards of two documents, so runs of kept lines are cut across shard files.
        let mut w = DatasetWriter::create(dir.path().join("kept"), 2).unwrap();
        copy_kept_lines(&path, 2, &removed, &mut w).unwrap();
        assert_eq!(w.written(), 4);
        let ds = w.finish().unwrap();
        let mut text = String::new();
        for f in ds.shards().unwrap() {
            text.push_str(&std::fs::read_to_string(f).unwrap());
        }
        assert_eq!(
            text,
            format!("{}\n{}\n{}\n{}\n", line(0), line(1), line(4), line(6))
        );
    }
}
