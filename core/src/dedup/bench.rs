//! Timing the native dedup on one thread, for the side-by-side comparison with datasketch.

use super::lsh::{self, LshIndex};
use super::pipeline::{DedupConfig, Timings, all_band_hashes, find, sign_documents};
use crate::Result;
use crate::ingest::Document;
use serde::{Deserialize, Serialize};
use std::time::Instant;

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
        .build()
        .map_err(|e| crate::Error::invalid(format!("thread pool: {e}")))?;
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

        let shingles_of = |need: &[usize]| {
            Ok(super::pipeline::shingles_of_texts(&scheme, need, |i| {
                &docs[i].text
            }))
        };
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

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    crate::run::peak_rss_bytes(None)
}
