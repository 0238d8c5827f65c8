//! `yunmin bench dedup`: `yunmin dedup` against datasketch and rensa
//! (`scripts/bench/dedup_peers.py`) on short, long and mixed documents of the corpora — one
//! thread each, as processes (start included) and in process — and, with `--full`, the whole
//! corpora on all threads. [`stages`] times dedup's stages against datasketch's MinHashLSH.

pub mod stages;

use crate::peer;
use anyhow::{Result, anyhow, bail};
use serde::Serialize;
use std::path::{Path, PathBuf};
use yunmin_core::dedup::DedupConfig;
use yunmin_core::dedup::eval::{EvalConfig, corpus_files, read_corpus};
use yunmin_core::ingest::{Dataset, DatasetWriter, Document};

/// Arguments of `yunmin bench dedup`.
#[derive(Debug, clap::Args)]
pub struct BenchDedupArgs {
    /// Directory of *.jsonl.zst corpora (default: $YUNMIN_CORPORA).
    #[arg(long)]
    pub corpora: Option<PathBuf>,
    /// Documents per mix (short, long, corpora).
    #[arg(long, default_value_t = 3_000)]
    pub docs: usize,
    /// Short documents have fewer characters than this.
    #[arg(long, default_value_t = 200)]
    pub short_max: usize,
    /// Long documents have at least this many characters.
    #[arg(long, default_value_t = 2_000)]
    pub long_min: usize,
    /// Peers to run: datasketch, rensa (comma-separated; empty for none).
    #[arg(long, default_value = "datasketch,rensa")]
    pub peers: String,
    /// Python with datasketch and rensa (default: $YUNMIN_PYTHON, else .venv/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// CSV to write.
    #[arg(long, default_value = "results/bench/dedup.csv")]
    pub csv: PathBuf,
    /// Also deduplicate the whole corpora with `yunmin dedup` on all threads.
    #[arg(long)]
    pub full: bool,
    /// Work directory (mix datasets, the whole-corpora dataset and its outputs).
    #[arg(long, default_value = "runs/bench_dedup")]
    pub work: PathBuf,
}

/// Every `stride`-th document of all corpora (all of them when `n` is `None`), in corpus
/// order; a document without a domain gets its corpus file's name.
pub fn sample_corpora(dir: &Path, n: Option<usize>) -> Result<Vec<Document>> {
    let cfg = EvalConfig {
        corpora: dir.to_path_buf(),
        ..Default::default()
    };
    let mut all = Vec::new();
    for (stem, path) in corpus_files(&cfg)? {
        read_corpus(&path, |mut d| {
            if d.domain.is_empty() {
                d.domain = stem.clone();
            }
            all.push(d)
        })?;
    }
    Ok(match n {
        Some(n) if n < all.len() => {
            let stride = all.len() as f64 / n as f64;
            (0..n)
                .map(|i| all[(i as f64 * stride) as usize].clone())
                .collect()
        }
        _ => all,
    })
}

/// `docs` as JSONL (the peers' input).
pub fn write_jsonl(path: &Path, docs: &[Document]) -> Result<()> {
    let mut s = String::new();
    for d in docs {
        s.push_str(&serde_json::to_string(d)?);
        s.push('\n');
    }
    std::fs::write(path, s)?;
    Ok(())
}

/// `docs` as a dataset directory of `shard_docs` documents per file.
fn write_dataset(dir: &Path, docs: &[Document], shard_docs: usize) -> Result<Dataset> {
    let mut w = DatasetWriter::create(dir, shard_docs)?;
    for d in docs {
        w.write(d)?;
    }
    Ok(w.finish()?)
}

/// One measurement of `yunmin bench dedup`.
#[derive(Debug, Clone, Serialize)]
struct Row {
    mix: String,
    tool: String,
    docs: usize,
    mb: f64,
    threads: usize,
    seconds: f64,
    seconds_with_start: f64,
    mb_per_s: f64,
    removed: usize,
    peak_mib: f64,
    x_datasketch: f64,
    x_rensa: f64,
    x_datasketch_with_start: f64,
    x_rensa_with_start: f64,
}

impl Row {
    /// A measurement of `tool` on `mix` (in-process `seconds`, the process `f`), its peer
    /// ratios still to fill in.
    fn new(
        mix: &str,
        tool: &str,
        docs: usize,
        mb: f64,
        threads: usize,
        seconds: f64,
        f: &peer::Finished,
    ) -> Self {
        Self {
            mix: mix.into(),
            tool: tool.into(),
            docs,
            mb,
            threads,
            seconds,
            seconds_with_start: f.seconds,
            mb_per_s: mb / seconds,
            removed: 0,
            peak_mib: f.peak_mib,
            x_datasketch: f64::NAN,
            x_rensa: f64::NAN,
            x_datasketch_with_start: f64::NAN,
            x_rensa_with_start: f64::NAN,
        }
    }
}

/// The removed count from `yunmin dedup`'s summary line.
fn removed_of(out: &str) -> Result<usize> {
    let first = out
        .lines()
        .find(|l| l.starts_with("dedup: "))
        .ok_or_else(|| anyhow!("no summary line in `yunmin dedup` output: {out}"))?;
    first
        .split(" removed")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no removed count in {first}"))
}

/// `yunmin dedup` on `input` into `out` (replaced), measured as a process.
fn yunmin_dedup(
    input: &Path,
    out: &Path,
    threads: Option<usize>,
) -> Result<(peer::Finished, usize)> {
    let _ = std::fs::remove_dir_all(out);
    let mut cmd = std::process::Command::new(peer::yunmin()?);
    cmd.arg("dedup");
    if let Some(t) = threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    cmd.arg("--input").arg(input).arg("--out").arg(out);
    let f = peer::run(&mut cmd)?;
    let removed = removed_of(&f.stdout)?;
    Ok((f, removed))
}

/// Runs `yunmin bench dedup`.
pub fn run(b: BenchDedupArgs) -> Result<()> {
    let peers: Vec<&str> = b.peers.split(',').filter(|p| !p.is_empty()).collect();
    for p in &peers {
        if !["datasketch", "rensa"].contains(p) {
            bail!("--peers: unknown peer `{p}` (expected datasketch, rensa)");
        }
    }
    let py = if peers.is_empty() {
        None
    } else {
        Some(peer::python(b.python.as_deref(), "dedup")?)
    };
    let all = sample_corpora(&peer::corpora(b.corpora.as_deref())?, None)?;
    let pick = |f: &dyn Fn(&Document) -> bool| -> Vec<Document> {
        let v: Vec<&Document> = all.iter().filter(|d| f(d)).collect();
        let n = b.docs.min(v.len());
        let stride = v.len() as f64 / n.max(1) as f64;
        (0..n)
            .map(|i| v[(i as f64 * stride) as usize].clone())
            .collect()
    };
    let mixes: Vec<(&str, Vec<Document>)> = vec![
        ("short", pick(&|d| d.text.chars().count() < b.short_max)),
        ("long", pick(&|d| d.text.chars().count() >= b.long_min)),
        ("corpora", pick(&|_| true)),
    ];
    std::fs::create_dir_all(&b.work)?;
    let script = peer::script("dedup_peers.py")?;
    let mut rows: Vec<Row> = Vec::new();
    for (mix, docs) in &mixes {
        let mb = docs.iter().map(|d| d.text.len()).sum::<usize>() as f64 / 1e6;
        let dir = b.work.join(format!("mix_{mix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let jsonl = dir.join("docs.jsonl");
        write_jsonl(&jsonl, docs)?;
        write_dataset(&dir.join("input"), docs, 1_000_000)?;
        let row = |tool: &str, inp: f64, f: &peer::Finished, removed: usize| Row {
            removed,
            ..Row::new(mix, tool, docs.len(), mb, 1, inp, f)
        };
        // yunmin in process, one thread: signing alone, and the whole dedup.
        let r = stages::bench(docs, &DedupConfig::default(), 1, None)?;
        let sign = r.iter().find(|x| x.task == "shingles+signatures");
        let whole = r.iter().find(|x| x.task == "dedup");
        if let (Some(s), Some(wh)) = (sign, whole) {
            let none = peer::Finished {
                stdout: String::new(),
                seconds: f64::NAN,
                peak_mib: f64::NAN,
            };
            rows.push(row("yunmin-sign", s.seconds, &none, 0));
            // yunmin as a process, one thread: reading, dedup and writing every output.
            let (f, removed) = yunmin_dedup(&dir.join("input"), &dir.join("run"), Some(1))?;
            rows.push(row("yunmin", wh.seconds, &f, removed));
        }
        for p in &peers {
            let f = peer::run(
                std::process::Command::new(py.as_ref().expect("python"))
                    .arg(&script)
                    .args(["--tool", p, "--input"])
                    .arg(&jsonl),
            )?;
            let v = f.json()?;
            let removed = v["removed"].as_u64().unwrap_or(0) as usize;
            rows.push(row(
                p,
                v["seconds"].as_f64().unwrap_or(f64::NAN),
                &f,
                removed,
            ));
        }
    }
    if b.full {
        let input = b.work.join("corpora_input");
        let reuse = Dataset::open(&input)
            .ok()
            .and_then(|ds| ds.count().ok())
            .is_some_and(|n| n == all.len() as u64);
        if !reuse {
            let _ = std::fs::remove_dir_all(&input);
            write_dataset(&input, &all, 50_000)?;
        }
        let mb = all.iter().map(|d| d.text.len()).sum::<usize>() as f64 / 1e6;
        let n = all.len();
        drop(all);
        let (f, removed) = yunmin_dedup(&input, &b.work.join("corpora_run"), None)?;
        print!("{}", f.stdout);
        let threads = rayon::current_num_threads();
        rows.push(Row {
            removed,
            mb_per_s: mb / f.seconds,
            ..Row::new("all_corpora", "yunmin", n, mb, threads, f64::NAN, &f)
        });
    }
    let ratio = |r: &Row, t: &str, f: fn(&Row) -> f64| {
        rows.iter()
            .find(|p| p.tool == t && p.mix == r.mix)
            .map(|p| peer::round(f(p) / f(r), 1))
            .unwrap_or(f64::NAN)
    };
    let out: Vec<Row> = rows
        .iter()
        .map(|r| Row {
            mb: peer::round(r.mb, 2),
            seconds: peer::round(r.seconds, 3),
            seconds_with_start: peer::round(r.seconds_with_start, 3),
            mb_per_s: peer::round(r.mb_per_s, 1),
            peak_mib: peer::round(r.peak_mib, 0),
            x_datasketch: ratio(r, "datasketch", |p| p.seconds),
            x_rensa: ratio(r, "rensa", |p| p.seconds),
            x_datasketch_with_start: ratio(r, "datasketch", |p| p.seconds_with_start),
            x_rensa_with_start: ratio(r, "rensa", |p| p.seconds_with_start),
            ..r.clone()
        })
        .collect();
    println!("{}", peer::table(&out)?);
    peer::write_csv(&b.csv, &out)
}
