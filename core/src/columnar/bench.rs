//! Benchmarks: conversion (yunmin vs pyarrow at equal codecs), the text codec trade-off, and
//! the training loader (Parquet `tokens` projection vs JSONL parse + tokenise, with pyarrow and
//! polars reading the same files as peers). Results go to CSV files under `benchmark/`.

use super::ColumnarError;
use super::config::{BrotliEncoder, ConvertConfig, parse_codec};
use super::convert::convert;
use super::memory::{peak_rss_mb, reset_peak_rss};
use super::reader::{ParquetSet, Split};
use super::report::ConversionReport;
use crate::ingest::Dataset;
use crate::report::Table;
use crate::run::{check_cancelled, write_atomic};
use crate::text::{Tokenizer, TokenizerConfig};
use crate::{Error, Result};
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What to benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BenchConfig {
    /// A directory of `*.jsonl.zst` / `*.jsonl` files of `{id, text, domain, source}` lines
    /// (default `../shared/data/corpora`).
    pub corpora: PathBuf,
    /// At most this many documents per corpus file (0 = all, the default).
    pub max_docs: usize,
    /// A `tokenizer.json` to use; when empty one is trained on a sample of the input.
    pub tokenizer: Option<PathBuf>,
    /// Vocabulary size of the trained tokenizer (default 8000).
    pub vocab_size: usize,
    /// Fraction of documents the tokenizer is trained on (default 0.05).
    pub tokenizer_sample: f64,
    /// Codecs of the conversion (defaults as [`ConvertConfig`]).
    pub convert: ConvertConfig,
    /// Python with pyarrow and polars for the peer rows; peers are skipped when `None`.
    pub python: Option<PathBuf>,
    /// A `yunmin` executable. When set, each conversion round runs as its own
    /// `yunmin parquet convert` process, as the pyarrow peer does, and its seconds and peak
    /// memory are that process's own (from its `parquet_report.json`); when `None` the rounds
    /// run in this process, whose peak memory then includes what earlier work left allocated.
    pub converter: Option<PathBuf>,
    /// Documents per loader batch (default 1024).
    pub batch_docs: usize,
    /// Rounds of the conversion comparison, yunmin and pyarrow alternating; the rows report
    /// the median seconds and the highest peak memory (default 3).
    pub rounds: usize,
    /// Documents per corpus for the codec trade-off table (default 4000; 0 skips it).
    pub sweep_docs: usize,
    /// Text codecs compared in the trade-off table.
    pub sweep_codecs: Vec<String>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            corpora: PathBuf::from("../shared/data/corpora"),
            max_docs: 0,
            tokenizer: None,
            vocab_size: 8000,
            tokenizer_sample: 0.05,
            convert: ConvertConfig::default(),
            python: None,
            converter: None,
            batch_docs: 1024,
            rounds: 3,
            sweep_docs: 4000,
            sweep_codecs: [
                "brotli:1", "brotli:5", "brotli:9", "zstd:1", "zstd:3", "zstd:9", "snappy", "none",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }
}

/// One measured row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    /// `convert`, `load` or `codec`.
    pub bench: String,
    /// `yunmin`, `pyarrow` or `polars`.
    pub engine: String,
    /// What was measured (`parquet tokens`, `jsonl parse+tokenize`, `text brotli:5`, …).
    pub variant: String,
    /// Documents.
    pub docs: u64,
    /// Tokens (0 when not applicable).
    pub tokens: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written (conversion) or of the measured column (codec table).
    pub bytes_out: u64,
    /// Wall seconds.
    pub seconds: f64,
    /// Documents per second.
    pub docs_per_s: f64,
    /// Tokens per second.
    pub tokens_per_s: f64,
    /// Input megabytes (MiB) per second.
    pub mb_per_s: f64,
    /// Peak resident memory of the measured phase (MiB).
    pub peak_rss_mb: f64,
    /// Speed relative to the row's baseline (`load`: JSONL parse+tokenise; `convert`: pyarrow;
    /// `codec`: the configured text codec's write time over this codec's).
    pub ratio: f64,
}

impl BenchRow {
    fn finish(mut self) -> Self {
        let s = self.seconds.max(1e-9);
        self.docs_per_s = self.docs as f64 / s;
        self.tokens_per_s = self.tokens as f64 / s;
        self.mb_per_s = self.bytes_in as f64 / s / (1 << 20) as f64;
        self
    }
}

/// Decompresses (`.zst`) or copies the corpus files into a dataset directory, one shard per
/// corpus, at most `max_docs` lines each.
fn prepare_input(corpora: &Path, out: &Path, max_docs: usize) -> Result<Dataset> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpora)
        .map_err(|e| Error::io("list", corpora, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".jsonl") || n.ends_with(".jsonl.zst")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ColumnarError::Config(format!(
            "no *.jsonl or *.jsonl.zst files in {}",
            corpora.display()
        ))
        .into());
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io("create directory", out, e))?;
    for (i, f) in files.iter().enumerate() {
        let file = std::fs::File::open(f).map_err(|e| Error::io("open", f, e))?;
        let reader: Box<dyn BufRead> = if f.to_string_lossy().ends_with(".zst") {
            Box::new(BufReader::new(
                zstd::Decoder::new(file).map_err(|e| Error::io("decompress", f, e))?,
            ))
        } else {
            Box::new(BufReader::new(file))
        };
        let p = out.join(format!("part-{i:05}.jsonl"));
        let mut w =
            BufWriter::new(std::fs::File::create(&p).map_err(|e| Error::io("create", &p, e))?);
        for (n, line) in reader.lines().enumerate() {
            if max_docs > 0 && n >= max_docs {
                break;
            }
            let line = line.map_err(|e| Error::io("read", f, e))?;
            w.write_all(line.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| Error::io("write", &p, e))?;
        }
        w.flush().map_err(|e| Error::io("write", &p, e))?;
    }
    Dataset::open(out)
}

fn dir_bytes(ds: &Dataset) -> Result<u64> {
    Ok(ds
        .shards()?
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum())
}

const PEER: &str = r#"
import json, os, sys, time
mode = sys.argv[1]
docs = tokens = out_bytes = 0
# Each mode starts its clock after its imports: the work is timed, not the interpreter's start.
if mode == "convert":
    import pyarrow as pa, pyarrow.json as pj, pyarrow.parquet as pq
    t0 = time.perf_counter()
    out, tc, tl, oc, ol = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("domain", pa.string()), ("source", pa.string())])
    opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    cols = ["id", "text", "domain", "source"]
    comp = {c: (tc if c == "text" else oc) for c in cols}
    lvl = {c: (tl if c == "text" else ol) for c in cols if (tl if c == "text" else ol) != "-"}
    lvl = {c: int(v) for c, v in lvl.items()}
    for i, f in enumerate(sys.argv[7:]):
        # the default 1 MiB block cannot hold the corpora's largest document (2.4 MB)
        t = pj.read_json(f, read_options=pj.ReadOptions(block_size=32 << 20), parse_options=opts)
        docs += t.num_rows
        p = os.path.join(out, "%d.parquet" % i)
        pq.write_table(t, p, compression=comp, compression_level=lvl or None,
                       use_dictionary=["domain", "source"], write_statistics=True)
        out_bytes += os.path.getsize(p)
        del t
elif mode == "pyarrow":
    import pyarrow.compute as pc, pyarrow.parquet as pq
    t0 = time.perf_counter()
    for f in sys.argv[2:]:
        t = pq.read_table(f, columns=["tokens"])
        docs += t.num_rows
        tokens += pc.sum(pc.list_value_length(t["tokens"])).as_py() or 0
elif mode == "polars":
    import polars as pl
    t0 = time.perf_counter()
    for f in sys.argv[2:]:
        df = pl.read_parquet(f, columns=["tokens"])
        docs += df.height
        tokens += int(df["tokens"].list.len().sum() or 0)
secs = time.perf_counter() - t0
# VmHWM (not ru_maxrss, which a child inherits from its parent across fork + exec)
rss = 0.0
with open("/proc/self/status") as st:
    for line in st:
        if line.startswith("VmHWM:"):
            rss = int(line.split()[1]) / 1024.0
print(json.dumps({"docs": docs, "tokens": tokens, "seconds": secs, "bytes_out": out_bytes, "peak_rss_mb": rss}))
"#;

/// Runs `cmd` (the program named `peer` in errors) to completion: its output when it succeeds,
/// its standard error as the error otherwise.
fn run_process(cmd: &mut Command, peer: &str) -> Result<std::process::Output> {
    let out = cmd.output().map_err(|e| ColumnarError::Peer {
        peer: peer.into(),
        msg: format!("cannot run {}: {e}", cmd.get_program().to_string_lossy()),
    })?;
    if !out.status.success() {
        return Err(ColumnarError::Peer {
            peer: peer.into(),
            msg: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
        .into());
    }
    Ok(out)
}

fn run_peer(
    python: &Path,
    script: &Path,
    peer: &str,
    args: &[String],
) -> Result<serde_json::Value> {
    let out = run_process(Command::new(python).arg(script).args(args), peer)?;
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default()).map_err(|e| {
        ColumnarError::Peer {
            peer: peer.into(),
            msg: format!("unreadable output {text:?}: {e}"),
        }
        .into()
    })
}

fn codec_args(spec: &str) -> Result<(String, String)> {
    parse_codec(spec)?;
    Ok(match spec.split_once(':') {
        Some((c, l)) => (c.to_lowercase(), l.to_string()),
        None => (spec.to_lowercase(), "-".into()),
    })
}

/// Compressed bytes of one column path over a conversion's files.
fn column_bytes(dir: &Path, column: &str) -> Result<(u64, u64)> {
    let set = ParquetSet::open(dir)?;
    let (mut comp, mut raw) = (0u64, 0u64);
    for p in set.report().paths(dir, None, "all") {
        let f = std::fs::File::open(&p).map_err(|e| Error::io("open", &p, e))?;
        let r = SerializedFileReader::new(f).map_err(|e| ColumnarError::parquet(&p, e))?;
        for rg in r.metadata().row_groups() {
            for c in rg.columns() {
                if c.column_path().string() == column {
                    comp += c.compressed_size() as u64;
                    raw += c.uncompressed_size() as u64;
                }
            }
        }
    }
    Ok((comp, raw))
}

/// The summary of several rounds of one engine: median seconds, highest peak memory.
fn median_row(rounds: &[BenchRow], variant: String) -> BenchRow {
    let mut secs: Vec<f64> = rounds.iter().map(|r| r.seconds).collect();
    secs.sort_by(f64::total_cmp);
    let first = rounds.first().cloned().unwrap_or_default();
    BenchRow {
        bench: "convert".into(),
        variant: format!("{variant}, median of {}", rounds.len()),
        seconds: secs.get(secs.len() / 2).copied().unwrap_or(0.0),
        peak_rss_mb: rounds.iter().map(|r| r.peak_rss_mb).fold(0.0, f64::max),
        ..first
    }
    .finish()
}

/// Runs `exe parquet convert` (no tokens) on `input` as a separate process: its report, the
/// conversion's seconds and the process's peak memory, both as the process measured them.
fn convert_as_process(
    exe: &Path,
    input: &Dataset,
    out: &Path,
    c: &ConvertConfig,
) -> Result<(ConversionReport, f64, f64)> {
    let o = run_process(
        Command::new(exe)
            .args([
                "parquet",
                "convert",
                "--quiet",
                "--no-tokens",
                "--stats-json",
                "--dataset",
            ])
            .arg(input.dir())
            .arg("--out")
            .arg(out)
            .args(c.cli_args()),
        "yunmin",
    )?;
    let text = String::from_utf8_lossy(&o.stdout);
    let stats: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or_default())
        .map_err(|e| ColumnarError::Peer {
            peer: "yunmin".into(),
            msg: format!("unreadable --stats-json output {text:?}: {e}"),
        })?;
    let rep = ParquetSet::open(out)?.report().clone();
    let secs = stats["seconds"].as_f64().unwrap_or(0.0);
    let rss = stats["peak_rss_mb"].as_f64().unwrap_or(0.0);
    Ok((rep, secs, rss))
}

fn measure<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64, f64)> {
    reset_peak_rss();
    let t0 = Instant::now();
    let v = f()?;
    Ok((v, t0.elapsed().as_secs_f64(), peak_rss_mb().unwrap_or(0.0)))
}

/// The JSONL loader: parse each line and tokenise its text, in batches (the alternative to
/// reading the `tokens` column). Returns (docs, tokens).
pub fn load_jsonl(dataset: &Dataset, tok: &Tokenizer, batch_docs: usize) -> Result<(u64, u64)> {
    #[derive(Deserialize)]
    struct TextOnly {
        text: String,
    }
    let (mut docs, mut tokens) = (0u64, 0u64);
    let mut texts: Vec<String> = Vec::with_capacity(batch_docs);
    let mut flush = |texts: &mut Vec<String>| -> Result<()> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let batch = tok.encode_batch(&refs)?;
        docs += batch.len() as u64;
        tokens += batch.iter().map(|v| v.len() as u64).sum::<u64>();
        texts.clear();
        Ok(())
    };
    for shard in dataset.shards()? {
        let f = std::fs::File::open(&shard).map_err(|e| Error::io("open", &shard, e))?;
        for line in BufReader::with_capacity(1 << 20, f).lines() {
            let line = line.map_err(|e| Error::io("read", &shard, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let d: TextOnly = serde_json::from_str(&line)
                .map_err(|e| Error::invalid(format!("{}: not a document: {e}", shard.display())))?;
            texts.push(d.text);
            if texts.len() >= batch_docs {
                check_cancelled()?;
                flush(&mut texts)?;
            }
        }
    }
    if !texts.is_empty() {
        flush(&mut texts)?;
    }
    Ok((docs, tokens))
}

/// Runs the benchmarks under `root/benchmark/` and writes `io_speed.csv` (loader),
/// `convert_speed.csv` (conversion vs pyarrow) and `codec_tradeoff.csv` (text codecs).
pub fn bench(root: &Path, cfg: &BenchConfig) -> Result<Vec<BenchRow>> {
    cfg.convert.check()?;
    let dir = root.join("benchmark");
    let work = dir.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| Error::io("remove", &work, e))?;
    }
    std::fs::create_dir_all(&work).map_err(|e| Error::io("create directory", &work, e))?;
    let script = work.join("peer.py");
    write_atomic(&script, PEER.as_bytes())?;
    tracing::info!("preparing input from {}", cfg.corpora.display());
    let input = prepare_input(&cfg.corpora, &work.join("input"), cfg.max_docs)?;
    let in_bytes = dir_bytes(&input)?;
    let shards: Vec<String> = input
        .shards()?
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut rows = Vec::new();

    // 1. Conversion at equal codecs, without tokens (what pyarrow does), then with tokens.
    let notok = ConvertConfig {
        heldout: 0.0,
        ..cfg.convert.clone()
    };
    let rounds = cfg.rounds.max(1);
    let codecs = format!("text {} + others {}", cfg.convert.text, cfg.convert.other);
    // With Brotli text, parquet's own Rust encoder is measured too (same codec and level).
    let rust = ConvertConfig {
        brotli_encoder: BrotliEncoder::Rust,
        ..notok.clone()
    };
    let brotli_text = matches!(parse_codec(&cfg.convert.text)?, Compression::BROTLI(_))
        && notok.brotli_encoder == BrotliEncoder::C;
    let (mut ours, mut ours_rust, mut peers) = (Vec::new(), Vec::new(), Vec::new());
    let run_ours = |c: &ConvertConfig, variant: String| -> Result<BenchRow> {
        let out = work.join("parquet_notok");
        let (rep, secs, rss) = match &cfg.converter {
            Some(exe) => convert_as_process(exe, &input, &out, c)?,
            None => measure(|| convert(&input, &out, c, None))?,
        };
        Ok(BenchRow {
            bench: "convert_round".into(),
            engine: "yunmin".into(),
            variant,
            docs: rep.rows_written,
            bytes_in: in_bytes,
            bytes_out: rep.output_bytes,
            seconds: secs,
            peak_rss_mb: rss,
            ..Default::default()
        }
        .finish())
    };
    for round in 1..=rounds {
        tracing::info!("conversion (no tokens), round {round}/{rounds}");
        ours.push(run_ours(
            &notok,
            format!("{codecs}, no tokens, round {round}"),
        )?);
        if brotli_text {
            let v = format!("{codecs}, no tokens, rust brotli encoder, round {round}");
            ours_rust.push(run_ours(&rust, v)?);
        }
        let Some(py) = &cfg.python else { continue };
        tracing::info!("conversion: pyarrow peer, round {round}/{rounds}");
        let out = work.join("pyarrow_out");
        if out.exists() {
            std::fs::remove_dir_all(&out).map_err(|e| Error::io("remove", &out, e))?;
        }
        std::fs::create_dir_all(&out).map_err(|e| Error::io("create directory", &out, e))?;
        let (tc, tl) = codec_args(&cfg.convert.text)?;
        let (oc, ol) = codec_args(&cfg.convert.other)?;
        let mut args = vec![
            "convert".to_string(),
            out.display().to_string(),
            tc,
            tl,
            oc,
            ol,
        ];
        args.extend(shards.iter().cloned());
        let v = run_peer(py, &script, "pyarrow", &args)?;
        peers.push(
            BenchRow {
                bench: "convert_round".into(),
                engine: "pyarrow".into(),
                variant: format!("read_json + write_table, {codecs}, round {round}"),
                docs: v["docs"].as_u64().unwrap_or(0),
                bytes_in: in_bytes,
                bytes_out: v["bytes_out"].as_u64().unwrap_or(0),
                seconds: v["seconds"].as_f64().unwrap_or(0.0),
                peak_rss_mb: v["peak_rss_mb"].as_f64().unwrap_or(0.0),
                ..Default::default()
            }
            .finish(),
        );
    }
    let mut convert_rows = vec![median_row(&ours, format!("{codecs}, no tokens"))];
    if !ours_rust.is_empty() {
        let v = format!("{codecs}, no tokens, rust brotli encoder");
        convert_rows.push(median_row(&ours_rust, v));
    }
    if !peers.is_empty() {
        let peer = median_row(&peers, format!("read_json + write_table, {codecs}"));
        for r in convert_rows.iter_mut() {
            r.ratio = peer.seconds / r.seconds.max(1e-9);
        }
        convert_rows.push(BenchRow { ratio: 1.0, ..peer });
    }

    let tok = match &cfg.tokenizer {
        Some(p) => Tokenizer::load(p)?,
        None => {
            tracing::info!(
                "training a tokenizer (vocab {}, sample {})",
                cfg.vocab_size,
                cfg.tokenizer_sample
            );
            let tc = TokenizerConfig {
                vocab_size: cfg.vocab_size,
                sample: cfg.tokenizer_sample,
                ..Default::default()
            };
            let mut t = Tokenizer::train(&input, &tc)?;
            t.save(&work.join("tokenizer.json"))?;
            t
        }
    };
    tracing::info!("conversion (with tokens)");
    let pq_dir = work.join("parquet");
    let (rep, secs, rss) = measure(|| convert(&input, &pq_dir, &cfg.convert, Some(&tok)))?;
    convert_rows.push(
        BenchRow {
            bench: "convert".into(),
            engine: "yunmin".into(),
            variant: format!(
                "text {}, tokens {}, tokenised (vocab {})",
                cfg.convert.text,
                cfg.convert.tokens,
                tok.vocab_size()
            ),
            docs: rep.rows_written,
            tokens: rep.tokens_written,
            bytes_in: in_bytes,
            bytes_out: rep.output_bytes,
            seconds: secs,
            peak_rss_mb: rss,
            ratio: 0.0,
            ..Default::default()
        }
        .finish(),
    );
    convert_rows.extend(ours.into_iter().chain(ours_rust).chain(peers));
    write_table(&dir.join("convert_speed.csv"), &convert_rows)?;
    rows.extend(convert_rows);

    // 2. Loader: Parquet tokens vs JSONL parse + tokenise, peers reading the same files.
    let set = ParquetSet::open(&pq_dir)?;
    let files = set.files(None, Split::All)?;
    let pq_bytes: u64 = files
        .paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    tracing::info!("loader: JSONL parse + tokenise");
    let ((docs, tokens), secs, rss) = measure(|| load_jsonl(&input, &tok, cfg.batch_docs))?;
    let base = BenchRow {
        bench: "load".into(),
        engine: "yunmin".into(),
        variant: "jsonl parse+tokenize".into(),
        docs,
        tokens,
        bytes_in: in_bytes,
        seconds: secs,
        peak_rss_mb: rss,
        ratio: 1.0,
        ..Default::default()
    }
    .finish();
    tracing::info!("loader: Parquet tokens");
    let ((docs, tokens), secs, rss) = measure(|| {
        let (mut d, mut t) = (0u64, 0u64);
        for b in files.batches(cfg.batch_docs) {
            let b = b?;
            d += b.len() as u64;
            t += b.iter().map(|v| v.len() as u64).sum::<u64>();
        }
        Ok((d, t))
    })?;
    let mut load_rows = vec![
        base.clone(),
        BenchRow {
            bench: "load".into(),
            engine: "yunmin".into(),
            variant: "parquet tokens (projection) → Vec<Vec<u32>>".into(),
            docs,
            tokens,
            bytes_in: pq_bytes,
            seconds: secs,
            peak_rss_mb: rss,
            ..Default::default()
        }
        .finish(),
    ];
    if let Some(py) = &cfg.python {
        for peer in ["pyarrow", "polars"] {
            tracing::info!("loader: {peer} peer");
            let mut args = vec![peer.to_string()];
            args.extend(files.paths.iter().map(|p| p.display().to_string()));
            let v = run_peer(py, &script, peer, &args)?;
            load_rows.push(
                BenchRow {
                    bench: "load".into(),
                    engine: peer.into(),
                    variant: "parquet tokens (projection) → arrow list column".into(),
                    docs: v["docs"].as_u64().unwrap_or(0),
                    tokens: v["tokens"].as_u64().unwrap_or(0),
                    bytes_in: pq_bytes,
                    seconds: v["seconds"].as_f64().unwrap_or(0.0),
                    peak_rss_mb: v["peak_rss_mb"].as_f64().unwrap_or(0.0),
                    ..Default::default()
                }
                .finish(),
            );
        }
    }
    for r in load_rows.iter_mut() {
        r.ratio = r.docs_per_s / base.docs_per_s.max(1e-9);
    }
    write_table(&root.join("benchmark/io_speed.csv"), &load_rows)?;
    rows.extend(load_rows);

    // 3. Text codec trade-off on a sample.
    if cfg.sweep_docs > 0 {
        let sample = prepare_input(&cfg.corpora, &work.join("sweep_input"), cfg.sweep_docs)?;
        let sample_bytes = dir_bytes(&sample)?;
        let mut sweep = Vec::new();
        for codec in &cfg.sweep_codecs {
            check_cancelled()?;
            tracing::info!("codec trade-off: text {codec}");
            let c = ConvertConfig {
                text: codec.clone(),
                heldout: 0.0,
                ..cfg.convert.clone()
            };
            let out = work.join("sweep_out");
            let (rep, secs, rss) = measure(|| convert(&sample, &out, &c, None))?;
            let (comp, _raw) = column_bytes(&out, "text")?;
            sweep.push(
                BenchRow {
                    bench: "codec".into(),
                    engine: "yunmin".into(),
                    variant: format!("text {codec}"),
                    docs: rep.rows_written,
                    bytes_in: sample_bytes,
                    bytes_out: comp,
                    seconds: secs,
                    peak_rss_mb: rss,
                    ..Default::default()
                }
                .finish(),
            );
        }
        // Relative to the configured text codec (default brotli:5).
        let reference = format!("text {}", cfg.convert.text);
        let base = sweep
            .iter()
            .find(|r| r.variant == reference)
            .or(sweep.first())
            .map(|r| r.seconds)
            .unwrap_or(1.0);
        for r in sweep.iter_mut() {
            r.ratio = base / r.seconds.max(1e-9);
        }
        write_table(&dir.join("codec_tradeoff.csv"), &sweep)?;
        rows.extend(sweep);
    }
    let _ = std::fs::remove_dir_all(work.join("sweep_out"));
    Ok(rows)
}

fn write_table(path: &Path, rows: &[BenchRow]) -> Result<()> {
    let mut t = Table::new();
    for r in rows {
        let mut v = serde_json::to_value(r).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        let m = v.as_object_mut().expect("a row is an object");
        for x in m.values_mut() {
            if let Some(f) = x.as_f64().filter(|_| x.is_f64()) {
                *x = serde_json::json!(if f.is_finite() {
                    (f * 1000.0).round() / 1000.0
                } else {
                    0.0
                });
            }
        }
        t.push_row(m)?;
    }
    t.write_csv(path)
}
