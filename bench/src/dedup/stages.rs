//! `yunmin bench dedup-stages`: dedup's stages timed in this process (signing, the whole dedup
//! on the memory index and on Redis) on one thread and on all, against datasketch's MinHashLSH
//! on the same documents (`scripts/bench/dedup_datasketch.py`).

use crate::peer;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use yunmin_core::dedup::lsh::{self, LshIndex};
use yunmin_core::dedup::pipeline::{
    DedupConfig, Timings, all_band_hashes, find, shingles_of_texts, sign_documents,
};
use yunmin_core::dedup::scheme::Hashing;
use yunmin_core::dedup::verify::Verify;
use yunmin_core::ingest::Document;

/// One timed measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    /// What was timed: `shingles+signatures`, `dedup`, `dedup_redis`.
    pub task: String,
    /// Documents processed.
    pub docs: usize,
    /// rayon threads.
    pub threads: usize,
    /// Wall seconds.
    pub seconds: f64,
    /// Documents per second.
    pub docs_per_s: f64,
    /// Documents removed (dedup tasks).
    pub removed: usize,
}

fn row(task: &str, docs: usize, threads: usize, seconds: f64, removed: usize) -> BenchRow {
    BenchRow {
        task: task.into(),
        docs,
        threads,
        seconds,
        docs_per_s: docs as f64 / seconds.max(1e-9),
        removed,
    }
}

/// Times signing and whole dedup (memory index, and Redis when `redis` is given) of `docs` on
/// `threads` rayon threads.
pub fn bench(
    docs: &[Document],
    cfg: &DedupConfig,
    threads: usize,
    redis: Option<&str>,
) -> Result<Vec<BenchRow>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    pool.install(|| {
        let scheme = cfg.scheme()?;
        let mut out = Vec::new();
        let t = Instant::now();
        let sigs = sign_documents(&scheme, docs);
        out.push(row(
            "shingles+signatures",
            docs.len(),
            threads,
            t.elapsed().as_secs_f64(),
            0,
        ));

        let shingles_of = |need: &[usize]| Ok(shingles_of_texts(&scheme, need, |i| &docs[i].text));
        let br = cfg.band_rows(&scheme)?;
        let mut backends: Vec<(&str, Box<dyn LshIndex>)> =
            vec![("dedup", lsh::open("memory", "", br, cfg.batch)?)];
        if let Some(url) = redis {
            let ns = format!("yunmin:bench:{}", std::process::id());
            backends.push(("dedup_redis", lsh::open(url, &ns, br, cfg.batch)?));
        }
        for (task, mut index) in backends {
            let t = Instant::now();
            let sigs = sign_documents(&scheme, docs);
            let mut timings = Timings::default();
            let found = find(
                &sigs,
                &scheme,
                cfg,
                index.as_mut(),
                true,
                &mut timings,
                &shingles_of,
            )?;
            let secs = t.elapsed().as_secs_f64();
            index.clear()?;
            out.push(row(
                task,
                docs.len(),
                threads,
                secs,
                found.removed.iter().filter(|r| **r).count(),
            ));
        }
        let _ = all_band_hashes(&sigs, &scheme, br)?;
        Ok(out)
    })
}

/// Arguments of `yunmin bench dedup-stages`.
#[derive(Debug, clap::Args)]
pub struct StagesArgs {
    /// Directory of *.jsonl.zst corpora (default: $YUNMIN_CORPORA).
    #[arg(long)]
    pub corpora: Option<PathBuf>,
    /// Documents sampled (evenly spaced over all corpora).
    #[arg(long, default_value_t = 20_000)]
    pub docs: usize,
    /// Documents for the Redis comparison (datasketch's Redis storage is slow).
    #[arg(long, default_value_t = 3_000)]
    pub redis_docs: usize,
    /// Redis URL for the Redis comparison (e.g. redis://127.0.0.1:6399); omitted: no Redis rows.
    #[arg(long)]
    pub redis: Option<String>,
    /// Python with datasketch (default: $YUNMIN_PYTHON, else .venv/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// CSV to write.
    #[arg(long, default_value = "results/bench/dedup_stages.csv")]
    pub csv: PathBuf,
}

/// datasketch on `input` (and on Redis when `redis` is given): its rows, one JSON line each.
fn datasketch(py: &Path, input: &Path, redis: Option<&str>) -> Result<Vec<BenchRow>> {
    let mut cmd = std::process::Command::new(py);
    cmd.arg(peer::script("dedup_datasketch.py")?)
        .arg("--input")
        .arg(input)
        .args(["--perms", "128", "--threshold", "0.8"]);
    if let Some(r) = redis {
        cmd.arg("--redis").arg(r);
    }
    let out = peer::run(&mut cmd)?.stdout;
    Ok(out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// One CSV row.
#[derive(Serialize)]
struct CsvRow<'a> {
    tool: &'a str,
    task: &'a str,
    docs: usize,
    threads: usize,
    seconds: f64,
    docs_per_s: f64,
    removed: usize,
    speedup_vs_datasketch: f64,
}

/// Runs `yunmin bench dedup-stages`: MinHash and OPH with exact verification and OPH deciding
/// on the signature estimate alone (the same work as datasketch's MinHashLSH), on one thread
/// and on all, and on Redis when given.
pub fn run(b: StagesArgs) -> Result<()> {
    let py = peer::python(b.python.as_deref(), "dedup")?;
    let docs = super::sample_corpora(&peer::corpora(b.corpora.as_deref())?, Some(b.docs))?;
    let tmp = tempfile::tempdir()?;
    let threads = rayon::current_num_threads();
    let mut rows: Vec<(String, BenchRow)> = Vec::new();
    let sample = tmp.path().join("sample.jsonl");
    super::write_jsonl(&sample, &docs)?;
    let small: Vec<_> = docs.iter().take(b.redis_docs).cloned().collect();
    let rs = tmp.path().join("redis.jsonl");
    super::write_jsonl(&rs, &small)?;
    for (tool, hashing, verify) in [
        ("yunmin", Hashing::Minhash, Verify::Exact),
        ("yunmin-oph", Hashing::Oph, Verify::Exact),
        ("yunmin-oph-estimate", Hashing::Oph, Verify::Estimate),
    ] {
        let cfg = DedupConfig {
            hashing,
            verify,
            ..DedupConfig::default()
        };
        for r in bench(&docs, &cfg, 1, None)? {
            rows.push((tool.into(), r));
        }
        if threads > 1 {
            for r in bench(&docs, &cfg, threads, None)? {
                rows.push((tool.into(), r));
            }
        }
        if let Some(url) = &b.redis {
            for r in bench(&small, &cfg, 1, Some(url))? {
                if r.task == "dedup_redis" {
                    rows.push((tool.into(), r));
                }
            }
        }
    }
    for r in datasketch(&py, &sample, None)? {
        rows.push(("datasketch".into(), r));
    }
    if let Some(url) = &b.redis {
        for r in datasketch(&py, &rs, Some(url))? {
            if r.task == "dedup_redis" {
                rows.push(("datasketch".into(), r));
            }
        }
    }
    let csv: Vec<CsvRow> = rows
        .iter()
        .map(|(tool, r)| {
            let peer = rows
                .iter()
                .find(|(t, p)| t == "datasketch" && p.task == r.task && p.docs == r.docs);
            CsvRow {
                tool,
                task: &r.task,
                docs: r.docs,
                threads: r.threads,
                seconds: peer::round(r.seconds, 3),
                docs_per_s: peer::round(r.docs_per_s, 1),
                removed: r.removed,
                speedup_vs_datasketch: peer::round(
                    peer.map(|(_, p)| r.docs_per_s / p.docs_per_s)
                        .unwrap_or(f64::NAN),
                    1,
                ),
            }
        })
        .collect();
    println!("{}", peer::table(&csv)?);
    peer::write_csv(&b.csv, &csv)
}
