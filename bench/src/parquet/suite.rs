//! Benchmarks: conversion (yunmin vs pyarrow at equal codecs), the text codec trade-off, and
//! the training loader (Parquet `tokens` projection vs JSONL parse + tokenise, with pyarrow and
//! polars reading the same files as peers). Results go to CSV files under `benchmark/`.

use crate::peer;
use anyhow::{Context, Result, bail};
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use yunmin_cli::CliOptions;
use yunmin_core::columnar::{
    BrotliEncoder, ConversionReport, ConvertConfig, ParquetSet, Split, convert, parse_codec,
    reset_peak_rss,
};
use yunmin_core::ingest::Dataset;
use yunmin_core::report::Table;
use yunmin_core::run::check_cancelled;
use yunmin_core::text::{Tokenizer, TokenizerConfig};

/// Arguments of `yunmin bench parquet`.
#[derive(Debug, clap::Args)]
pub struct ParquetBenchArgs {
    /// A directory of `*.jsonl.zst` / `*.jsonl` files of `{id, text, domain, source}` lines
    /// (default: $YUNMIN_CORPORA).
    #[arg(long)]
    pub corpora: Option<PathBuf>,
    /// Run root; CSVs go to <out>/benchmark/.
    #[arg(long, default_value = "runs/bench_parquet")]
    pub out: PathBuf,
    /// At most this many documents per corpus file (0 = all).
    #[arg(long, default_value_t = 0)]
    pub max_docs: usize,
    /// A tokenizer.json; trained on a sample when absent.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Vocabulary size of the trained tokenizer.
    #[arg(long, default_value_t = 8000)]
    pub vocab_size: usize,
    /// Fraction of documents the tokenizer is trained on.
    #[arg(long, default_value_t = 0.05)]
    pub tokenizer_sample: f64,
    /// Python with pyarrow and polars for the peer rows (default: $YUNMIN_PYTHON, else
    /// .venv/bin/python; peers are skipped when there is none).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Documents per loader batch.
    #[arg(long, default_value_t = 1024)]
    pub batch_docs: usize,
    /// Documents per corpus for the text codec table (0 skips it).
    #[arg(long, default_value_t = 4000)]
    pub sweep_docs: usize,
    /// Text codecs compared in the codec table.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "brotli:1,brotli:5,brotli:9,zstd:1,zstd:3,zstd:9,snappy,none"
    )]
    pub sweep_codecs: Vec<String>,
    /// Rounds of the conversion comparison (yunmin and pyarrow alternating; the summary
    /// rows give the median seconds and the highest peak memory).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The conversion's options (every `yunmin parquet convert` option).
    #[command(flatten)]
    pub codecs: Box<CliOptions<ConvertConfig>>,
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
        .with_context(|| format!("list {}", corpora.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".jsonl") || n.ends_with(".jsonl.zst")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.jsonl or *.jsonl.zst files in {}", corpora.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("create directory {}", out.display()))?;
    for (i, f) in files.iter().enumerate() {
        let file = std::fs::File::open(f).with_context(|| format!("open {}", f.display()))?;
        let reader: Box<dyn BufRead> = if f.to_string_lossy().ends_with(".zst") {
            Box::new(BufReader::new(
                zstd::Decoder::new(file).with_context(|| format!("decompress {}", f.display()))?,
            ))
        } else {
            Box::new(BufReader::new(file))
        };
        let p = out.join(format!("part-{i:05}.jsonl"));
        let mut w = BufWriter::new(
            std::fs::File::create(&p).with_context(|| format!("create {}", p.display()))?,
        );
        for (n, line) in reader.lines().enumerate() {
            if max_docs > 0 && n >= max_docs {
                break;
            }
            let line = line.with_context(|| format!("read {}", f.display()))?;
            w.write_all(line.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .with_context(|| format!("write {}", p.display()))?;
        }
        w.flush()
            .with_context(|| format!("write {}", p.display()))?;
    }
    Ok(Dataset::open(out)?)
}

fn dir_bytes(ds: &Dataset) -> Result<u64> {
    Ok(ds
        .shards()?
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum())
}

/// The peer script in `mode` with `args`: its JSON result line.
fn run_peer(python: &Path, args: &[String]) -> Result<serde_json::Value> {
    peer::run(
        Command::new(python)
            .arg(peer::script("parquet_peers.py")?)
            .args(args),
    )?
    .json()
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
        let f = std::fs::File::open(&p).with_context(|| format!("open {}", p.display()))?;
        let r = SerializedFileReader::new(f).with_context(|| format!("reading {}", p.display()))?;
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

/// Runs `exe parquet convert` (no tokens, always rerun) on `input` into `out` as a separate
/// process: its report, the conversion's seconds and the process's peak memory, both as the
/// process measured them.
fn convert_as_process(
    exe: &Path,
    input: &Dataset,
    out: &Path,
    c: &ConvertConfig,
) -> Result<(ConversionReport, f64, f64)> {
    let out = std::path::absolute(out)?;
    let f = peer::run(
        Command::new(exe)
            .args([
                "parquet",
                "convert",
                "--quiet",
                "--no-tokens",
                "--stats-json",
                "--force",
                "--dataset",
            ])
            .arg(input.dir())
            .arg("--out")
            .arg(out.with_extension("run"))
            .arg("--dir")
            .arg(&out)
            .args(c.cli_args()),
    )?;
    let stats = f.json()?;
    let rep = ParquetSet::open(&out)?.report().clone();
    let secs = stats["seconds"].as_f64().unwrap_or(0.0);
    let rss = stats["peak_rss_mb"].as_f64().unwrap_or(0.0);
    Ok((rep, secs, rss))
}

fn measure<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64, f64)> {
    reset_peak_rss();
    let t0 = Instant::now();
    let v = f()?;
    Ok((v, t0.elapsed().as_secs_f64(), peer::own_peak_mib()))
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
        let f = std::fs::File::open(&shard).with_context(|| format!("open {}", shard.display()))?;
        for line in BufReader::with_capacity(1 << 20, f).lines() {
            let line = line.with_context(|| format!("read {}", shard.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let d: TextOnly = serde_json::from_str(&line)
                .with_context(|| format!("{}: not a document", shard.display()))?;
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
pub fn bench(cfg: &ParquetBenchArgs) -> Result<Vec<BenchRow>> {
    let conv = cfg.codecs.config(ConvertConfig::default())?;
    conv.check()?;
    let corpora = peer::corpora(cfg.corpora.as_deref())?;
    let python = yunmin_core::run::python(cfg.python.as_deref());
    if python.is_none() {
        eprintln!("warning: no Python (set YUNMIN_PYTHON or --python): peer rows are skipped");
    }
    let exe = peer::yunmin()?;
    let root = &cfg.out;
    let dir = root.join("benchmark");
    let work = dir.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("remove {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)
        .with_context(|| format!("create directory {}", work.display()))?;
    tracing::info!("preparing input from {}", corpora.display());
    let input = prepare_input(&corpora, &work.join("input"), cfg.max_docs)?;
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
        ..conv.clone()
    };
    let rounds = cfg.rounds.max(1);
    let codecs = format!("text {} + others {}", conv.text, conv.other);
    // With Brotli text, parquet's own Rust encoder is measured too (same codec and level).
    let rust = ConvertConfig {
        brotli_encoder: BrotliEncoder::Rust,
        ..notok.clone()
    };
    let brotli_text = matches!(parse_codec(&conv.text)?, Compression::BROTLI(_))
        && notok.brotli_encoder == BrotliEncoder::C;
    let (mut ours, mut ours_rust, mut peers) = (Vec::new(), Vec::new(), Vec::new());
    let run_ours = |c: &ConvertConfig, variant: String| -> Result<BenchRow> {
        let out = work.join("parquet_notok");
        let (rep, secs, rss) = convert_as_process(&exe, &input, &out, c)?;
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
        let Some(py) = &python else { continue };
        tracing::info!("conversion: pyarrow peer, round {round}/{rounds}");
        let out = work.join("pyarrow_out");
        if out.exists() {
            std::fs::remove_dir_all(&out).with_context(|| format!("remove {}", out.display()))?;
        }
        std::fs::create_dir_all(&out)
            .with_context(|| format!("create directory {}", out.display()))?;
        let (tc, tl) = codec_args(&conv.text)?;
        let (oc, ol) = codec_args(&conv.other)?;
        let mut args = vec![
            "convert".to_string(),
            out.display().to_string(),
            tc,
            tl,
            oc,
            ol,
        ];
        args.extend(shards.iter().cloned());
        let v = run_peer(py, &args)?;
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
    let (rep, secs, rss) = measure(|| Ok(convert(&input, &pq_dir, &conv, Some(&tok))?))?;
    convert_rows.push(
        BenchRow {
            bench: "convert".into(),
            engine: "yunmin".into(),
            variant: format!(
                "text {}, tokens {}, tokenised (vocab {})",
                conv.text,
                conv.tokens,
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
    if let Some(py) = &python {
        for peer in ["pyarrow", "polars"] {
            tracing::info!("loader: {peer} peer");
            let mut args = vec![peer.to_string()];
            args.extend(files.paths.iter().map(|p| p.display().to_string()));
            let v = run_peer(py, &args)?;
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
        let sample = prepare_input(&corpora, &work.join("sweep_input"), cfg.sweep_docs)?;
        let sample_bytes = dir_bytes(&sample)?;
        let mut sweep = Vec::new();
        for codec in &cfg.sweep_codecs {
            check_cancelled()?;
            tracing::info!("codec trade-off: text {codec}");
            let c = ConvertConfig {
                text: codec.clone(),
                heldout: 0.0,
                ..conv.clone()
            };
            let out = work.join("sweep_out");
            let (rep, secs, rss) = measure(|| Ok(convert(&sample, &out, &c, None)?))?;
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
        let reference = format!("text {}", conv.text);
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
        let mut v = serde_json::to_value(r)?;
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
    Ok(t.write_csv(path)?)
}
