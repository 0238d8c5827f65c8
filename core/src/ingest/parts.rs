//! An ingest cut into parts: each part ingests a contiguous range of the resolved inputs into
//! its own run root (a `yunmin ingest --part I/N`, e.g. one Ray task per input object), and
//! [`gather`] joins the parts into the outputs one process would have written: the same shard
//! files and rejects in input order, the same preview (the reservoir's draws depend only on the
//! document count) and the same report.

use super::pipeline::{Paths, Preview, REJECTS_FILE, report_of, write_json, write_preview};
use super::{Dataset, DatasetWriter, IngestConfig, IngestError, IngestReport};
use crate::run::AtomicDir;
use crate::source::SourceItem;
use crate::{Error, Result};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Part `index` of `count` of an ingest: the inputs `range(len)` of the `len` resolved ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// 0-based part number.
    pub index: usize,
    /// Number of parts.
    pub count: usize,
}

impl Part {
    /// The contiguous range of the `len` resolved inputs this part reads (parts beyond the
    /// inputs read none).
    pub fn range(&self, len: usize) -> Range<usize> {
        len * self.index / self.count..len * (self.index + 1) / self.count
    }

    /// The part's run root under the main run root `root`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join("parts")
            .join(format!("ingest-{:04}-of-{:04}", self.index, self.count))
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Part {
    type Err = Error;

    /// `I/N` with `I < N`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid(format!("part `{s}`: expected I/N with 0 ≤ I < N"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// A part's report, checked to cover exactly the inputs `items` (in order).
fn part_report(
    root: &Path,
    cfg: &IngestConfig,
    part: Part,
    items: &[SourceItem],
) -> Result<IngestReport> {
    let dir = part.dir(root);
    let p = dir.join(&cfg.report);
    let text = std::fs::read_to_string(&p).map_err(|e| IngestError::Part {
        part: part.to_string(),
        problem: format!(
            "no report at {} ({e}); ingest it first (`yunmin ingest --part {part}` with the same inputs and options)",
            p.display()
        ),
    })?;
    let r: IngestReport = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: p.clone(),
        source: e,
    })?;
    let have: Vec<&str> = r.sources.iter().map(|s| s.source.as_str()).collect();
    let want: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
    if have != want {
        return Err(IngestError::Part {
            part: part.to_string(),
            problem: format!(
                "{} holds the inputs {have:?}, not {want:?}; ingest the part again",
                p.display()
            ),
        }
        .into());
    }
    Ok(r)
}

/// Line `t` (0-based) of the dataset `ds` whose shards hold `shard_docs` documents each (the
/// last one fewer); `cache` keeps the shard last read.
fn dataset_line(
    ds: &Dataset,
    shards: &[PathBuf],
    shard_docs: usize,
    t: u64,
    cache: &mut Option<(usize, Vec<u8>)>,
) -> Result<Vec<u8>> {
    let s = (t / shard_docs as u64) as usize;
    let path = shards.get(s).ok_or_else(|| {
        Error::invalid(format!(
            "{}: document {t} should be in shard {s}, which is missing",
            ds.dir().display()
        ))
    })?;
    if cache.as_ref().is_none_or(|(at, _)| *at != s) {
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        *cache = Some((s, bytes));
    }
    let bytes = &cache.as_ref().expect("loaded").1;
    let l = (t % shard_docs as u64) as usize;
    bytes
        .split(|b| *b == b'\n')
        .nth(l)
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            Error::invalid(format!(
                "{}: line {} missing (shards of {shard_docs} documents expected)",
                path.display(),
                l + 1
            ))
        })
}

/// Joins the outputs of `parts` (each ingested into [`Part::dir`] of `root`) into `paths`.
/// `items` are all the resolved inputs; each part must hold exactly its range of them.
pub(super) fn gather(
    items: &[SourceItem],
    cfg: &IngestConfig,
    paths: &Paths,
    seed: u64,
    root: &Path,
    parts: &[Part],
) -> Result<IngestReport> {
    let t0 = Instant::now();
    let reports: Vec<IngestReport> = parts
        .iter()
        .map(|p| part_report(root, cfg, *p, &items[p.range(items.len())]))
        .collect::<Result<_>>()?;
    let part_path = |p: &Part, rel: &str| p.dir(root).join(rel);

    // Documents: every part's in order, re-cut into the shards one process writes (the same
    // files, so what reads them shard by shard — dedup's write phase — gives the same files).
    let mut w = DatasetWriter::create(&paths.dataset, cfg.shard_docs)?;
    let mut datasets = Vec::new();
    for (p, r) in parts.iter().zip(&reports) {
        let ds = Dataset::open(part_path(p, &r.outputs.dataset))?;
        let shards = ds.shards()?;
        for s in &shards {
            let bytes = std::fs::read(s).map_err(|e| Error::io("read", s, e))?;
            w.write_serialized(&bytes, &Default::default())?;
        }
        w.write_serialized(&[], &ds.stats()?.domains)?;
        datasets.push((ds, shards));
    }
    let stats = w.finish()?.stats()?;

    // Rejects, in part order.
    let rej = AtomicDir::new(&paths.rejected)?;
    std::fs::create_dir_all(rej.path())
        .map_err(|e| Error::io("create directory", rej.path(), e))?;
    let rej_path = rej.path().join(REJECTS_FILE);
    let mut w = std::fs::File::create(&rej_path).map_err(|e| Error::io("create", &rej_path, e))?;
    for (p, r) in parts.iter().zip(&reports) {
        let from = part_path(p, &r.outputs.rejected).join(REJECTS_FILE);
        let mut f = std::fs::File::open(&from).map_err(|e| Error::io("open", &from, e))?;
        std::io::copy(&mut f, &mut w).map_err(|e| Error::io("copy", &from, e))?;
    }
    drop(w);
    rej.commit()?;

    // The preview: the reservoir over the documents in order, reading only the picked ones.
    let mut preview = Preview::new(cfg.preview_docs, seed);
    for ((ds, shards), r) in datasets.iter().zip(&reports) {
        let mut cache = None;
        preview.offer_with(r.totals.valid, |t| {
            dataset_line(ds, shards, cfg.shard_docs.max(1), t, &mut cache)
        })?;
    }
    write_preview(&paths.preview, preview)?;

    // The report.
    let mut sources = Vec::new();
    let mut domains = std::collections::BTreeMap::new();
    for r in reports {
        for (d, n) in r.domains {
            *domains.entry(d).or_default() += n;
        }
        sources.extend(r.sources);
    }
    let report = report_of(paths, root, seed, t0, sources, domains);
    if report.totals.valid != stats.documents {
        return Err(Error::invalid(format!(
            "ingest parts: the reports count {} valid documents, the datasets hold {}",
            report.totals.valid, stats.documents
        )));
    }
    write_json(&paths.report, &report)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::super::{Plan, ingest, ingest_with};
    use super::*;
    use crate::run::RunContext;

    fn inputs(dir: &Path) -> Vec<String> {
        let mut v = Vec::new();
        for (f, n) in [("law", 7), ("news", 1), ("chat", 12)] {
            let mut body = String::new();
            for i in 0..n {
                body.push_str(&format!(
                    "{{\"id\":\"{f}{i}\",\"text\":\"{f} 문서 {i} 번째 글\",\"extra\":{i}}}\n"
                ));
                if i % 5 == 2 {
                    body.push_str("{\"id\": 1, \"text\": \n");
                }
            }
            let p = dir.join(format!("{f}.jsonl"));
            std::fs::write(&p, body).unwrap();
            v.push(p.display().to_string());
        }
        v
    }

    /// `(file name, content)` of each shard of the dataset at `dir`.
    fn shards(dir: &Path) -> Vec<(String, String)> {
        Dataset::open(dir)
            .unwrap()
            .shards()
            .unwrap()
            .iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(p).unwrap())
            })
            .collect()
    }

    #[test]
    fn parts_give_the_outputs_of_one_process() {
        let d = tempfile::tempdir().unwrap();
        let ins = inputs(d.path());
        let cfg = IngestConfig {
            shard_docs: 3,
            preview_docs: 4,
            ..Default::default()
        };
        let whole = RunContext::new(d.path().join("whole"), 7, false).unwrap();
        ingest(&whole, &ins, &cfg).unwrap();
        for count in [2, 3, 5] {
            let root = d.path().join(format!("parts{count}"));
            let ctx = RunContext::new(&root, 7, false).unwrap();
            let mut ran = Vec::new();
            let mut run = |parts: &[Part]| {
                for p in parts {
                    let pctx = RunContext::new(p.dir(&root), 7, false)?;
                    ingest_with(&pctx, &ins, &cfg, Plan::Part(*p))?;
                    ran.push(*p);
                }
                Ok(())
            };
            let plan = Plan::Parts {
                count: Some(count),
                run: &mut run,
            };
            let out = ingest_with(&ctx, &ins, &cfg, plan).unwrap();
            assert_eq!(ran.len(), count);
            assert!(!out.cached);
            for f in [
                "ingest_report.json",
                "sample_preview.json",
                "data/rejected/rejected.jsonl",
                "data/dedup_ready/dataset.json",
            ] {
                let a = std::fs::read_to_string(whole.path(f)).unwrap();
                let b = std::fs::read_to_string(ctx.path(f)).unwrap();
                assert_eq!(a, b, "{f} with {count} parts");
            }
            let (a, b) = (
                shards(&whole.path("data/dedup_ready")),
                shards(&ctx.path("data/dedup_ready")),
            );
            assert_eq!(a.iter().map(|s| s.1.lines().count()).sum::<usize>(), 20);
            assert_eq!(a.len(), 7, "shards of 3 documents");
            assert_eq!(a, b, "the same shard files with {count} parts");
            assert!(!root.join("parts").join("ingest-0000-of-0002").exists());
        }
        // One part per input object by default; the stage key is the one-process key.
        let ctx = RunContext::new(d.path().join("whole"), 7, false).unwrap();
        let mut run = |_: &[Part]| -> Result<()> { panic!("cached: nothing to run") };
        let plan = Plan::Parts {
            count: None,
            run: &mut run,
        };
        assert!(ingest_with(&ctx, &ins, &cfg, plan).unwrap().cached);
    }

    #[test]
    fn a_missing_or_stale_part_is_named() {
        let d = tempfile::tempdir().unwrap();
        let ins = inputs(d.path());
        let cfg = IngestConfig::default();
        let root = d.path().join("r");
        let ctx = RunContext::new(&root, 1, false).unwrap();
        let mut run = |parts: &[Part]| {
            let p = parts[0];
            let pctx = RunContext::new(p.dir(&root), 1, false)?;
            ingest_with(&pctx, &ins, &cfg, Plan::Part(p))?;
            Ok(())
        };
        let plan = Plan::Parts {
            count: None,
            run: &mut run,
        };
        let e = ingest_with(&ctx, &ins, &cfg, plan).unwrap_err().to_string();
        assert!(
            e.contains("ingest part 1/3") && e.contains("--part 1/3"),
            "{e}"
        );
        assert!(!ctx.path("data/dedup_ready").exists());
        // Part 0 of 3 holding part 1 of 2 (other inputs): refused.
        let p = Part { index: 1, count: 2 };
        let stale = RunContext::new(p.dir(&root), 1, false).unwrap();
        ingest_with(&stale, &ins, &cfg, Plan::Part(p)).unwrap();
        let p03 = Part { index: 0, count: 3 }.dir(&root);
        std::fs::remove_dir_all(&p03).unwrap();
        std::fs::rename(p.dir(&root), &p03).unwrap();
        let mut none = |_: &[Part]| Ok(());
        let plan = Plan::Parts {
            count: None,
            run: &mut none,
        };
        let e = ingest_with(&ctx, &ins, &cfg, plan).unwrap_err().to_string();
        assert!(
            e.contains("ingest part 0/3") && e.contains("holds the inputs"),
            "{e}"
        );
    }

    #[test]
    fn parts_parse_and_cover_the_inputs_once() {
        assert_eq!("2/5".parse::<Part>().unwrap(), Part { index: 2, count: 5 });
        for bad in ["5/5", "1", "a/2", "1/0"] {
            assert!(bad.parse::<Part>().is_err(), "{bad}");
        }
        for (len, n) in [(0, 3), (3, 3), (7, 3), (2, 5)] {
            let mut all = Vec::new();
            for index in 0..n {
                all.extend(Part { index, count: n }.range(len));
            }
            assert_eq!(all, (0..len).collect::<Vec<_>>());
        }
    }
}
