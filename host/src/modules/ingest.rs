//! Rhai module `ingest` and the `yunmin ingest` subcommand: both call
//! `yunmin_core::ingest::ingest` with an `IngestConfig`.

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::state::Host;
use anyhow::Context;
use rhai::{Array, Dynamic, Map};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yunmin_core::ingest::{Dataset, IngestConfig, IngestReport, Part, Plan, ingest, ingest_with};
use yunmin_core::run::RunContext;

fn config_from(opts: Map) -> RhaiResult<IngestConfig> {
    let c = crate::primitive::from_rhai(IngestConfig::default(), opts)?;
    c.validate().map_err(|e| msg_err(format!("ingest: {e}")))?;
    Ok(c)
}

fn sources(v: Dynamic) -> RhaiResult<Vec<String>> {
    if v.is_string() {
        return Ok(vec![v.into_string().unwrap_or_default()]);
    }
    if v.is_array() {
        return v
            .into_array()
            .unwrap_or_default()
            .into_iter()
            .map(|x| {
                x.into_string()
                    .map_err(|t| msg_err(format!("ingest: sources must be strings, got {t}")))
            })
            .collect();
    }
    Err(msg_err(format!(
        "ingest: source must be a path, glob, s3:// URL or an array of them, got {}",
        v.type_name()
    )))
}

/// Option keys of the Rhai `ingest` beyond its config's: where it runs.
pub const ENGINE_KEYS: &[&str] = &["engine", "parts"];

/// The `yunmin ingest --part I/N` invocations of `parts`, as Ray tasks writing under `root`.
fn part_tasks(
    inputs: &[String],
    cfg: &IngestConfig,
    root: &Path,
    seed: u64,
    parts: &[Part],
) -> Vec<crate::ray::Task> {
    parts
        .iter()
        .map(|p| {
            let mut args: Vec<String> = vec!["ingest".into()];
            for i in inputs {
                args.extend(["--input".into(), i.clone()]);
            }
            args.extend(["--out".into(), root.display().to_string()]);
            args.extend(["--seed".into(), seed.to_string()]);
            args.extend(["--part".into(), p.to_string()]);
            args.extend(yunmin_core::config::cli_args(cfg));
            let dir = p.dir(root);
            crate::ray::Task {
                name: format!("ingest_{:04}", p.index),
                args,
                started: dir.join("pipeline_run.log"),
                output: dir.join(&cfg.report),
            }
        })
        .collect()
}

fn run_ingest(host: &Host, src: Dynamic, mut opts: Map) -> RhaiResult<Dataset> {
    let ray = crate::ray::take_engine("ingest", &mut opts)?;
    // Parts on Ray: default one per input object.
    let parts = crate::ray::take_count("ingest", "parts", ray, &mut opts)?;
    let cfg = config_from(opts)?;
    let inputs = sources(src)?;
    let out = if ray {
        let root = host.ctx.root().to_path_buf();
        let seed = host.ctx.seed();
        let mut run = |parts: &[Part]| {
            let tasks = part_tasks(&inputs, &cfg, &root, seed, parts);
            crate::ray::run_tasks("ingest", &root, &tasks)
        };
        let plan = Plan::Parts {
            count: parts,
            run: &mut run,
        };
        ingest_with(&host.ctx, &inputs, &cfg, plan).rhai()?
    } else {
        ingest(&host.ctx, &inputs, &cfg).rhai()?
    };
    Ok(out.dataset)
}

/// Registers the `ingest` module: the `Dataset` type, `ingest`, `dataset`, `ingest_report`.
pub fn register(api: &mut Api, host: &Arc<Host>) {
    api.engine().register_type_with_name::<Dataset>("Dataset");
    api.engine().register_get("dir", |d: &mut Dataset| {
        d.dir().to_string_lossy().to_string()
    });
    api.engine().register_fn("to_string", |d: &mut Dataset| {
        format!("Dataset({})", d.dir().display())
    });
    api.engine().register_fn("to_debug", |d: &mut Dataset| {
        format!("Dataset({})", d.dir().display())
    });
    let h = host.clone();
    api.func(
        "ingest",
        &["source", "opts"],
        &format!(
            "Streams JSONL and Parquet from `source` (a path, directory, glob or `s3://bucket/prefix/`,\n\
         or an array of them; `.gz`/`.zst` decompressed; Parquet read by row group; Hugging Face\n\
         datasets directories such as `kowiki/data/train-00000-of-00004.parquet` give the domain\n\
         `kowiki` and the split `train`), validates every line or row and returns the dataset of\n\
         valid documents. Writes, in the run root: `data/dedup_ready/` (documents `id, text,\n\
         domain, source` (+ `split`) + extra fields), `data/rejected/rejected.jsonl` (source, line\n\
         or row_group and row, reason, raw line or text),\n\
         `sample_preview.json` (5 documents chosen with the run's seed) and `ingest_report.json`\n\
         (counts per source and per reason). A cached stage: unchanged inputs skip the work.\n\
         `engine`: \"local\" (default) or \"ray\": one `yunmin ingest --part I/N` Ray task per\n\
         part of the input objects (`parts`, default one per object), joined here into the same\n\
         outputs. Options (defaults):\n{}",
            yunmin_core::config::describe::<IngestConfig>()
        ),
        move |src: Dynamic, opts: Map| run_ingest(&h, src, opts),
    );
    let h = host.clone();
    api.func(
        "ingest",
        &["source"],
        "`ingest(source, #{})`: every option at its default.",
        move |src: Dynamic| run_ingest(&h, src, Map::new()),
    );
    let h = host.clone();
    api.func(
        "dataset",
        &["dir"],
        "Opens an existing dataset directory (relative paths are inside the run root).",
        move |dir: &str| -> RhaiResult<Dataset> {
            Dataset::open(h.ctx.input_path(dir).rhai()?).rhai()
        },
    );
    let h = host.clone();
    api.func(
        "ingest_report",
        &[],
        "The run's `ingest_report.json` as a map (sources, totals with per-reason counts, domains).",
        move || {
            let p = h.ctx.read_path("ingest_report.json").rhai()?;
            let text = std::fs::read_to_string(&p).map_err(|e| msg_err(format!("ingest_report: {}: {e}", p.display())))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| msg_err(format!("ingest_report: {}: {e}", p.display())))?;
            rhai::serde::to_dynamic(v)
        },
    );
    api.func(
        "count",
        &["dataset"],
        "Number of documents.",
        |d: &mut Dataset| d.count().rhai().map(|n| n as i64),
    );
    api.func(
        "dir",
        &["dataset"],
        "The dataset directory.",
        |d: &mut Dataset| d.dir().to_string_lossy().to_string(),
    );
    api.func(
        "domains",
        &["dataset"],
        "Domains present, sorted.",
        |d: &mut Dataset| {
            d.domains()
                .rhai()
                .map(|v| v.into_iter().map(Dynamic::from).collect::<Array>())
        },
    );
    api.func(
        "domain_counts",
        &["dataset"],
        "Documents per domain, as a map.",
        |d: &mut Dataset| {
            let st = d.stats().rhai()?;
            let mut m = Map::new();
            for (k, v) in st.domains {
                m.insert(k.into(), Dynamic::from_int(v as i64));
            }
            Ok::<_, crate::errors::RhaiError>(m)
        },
    );
    api.func(
        "shards",
        &["dataset"],
        "Shard files in order.",
        |d: &mut Dataset| {
            d.shards().rhai().map(|v| {
                v.into_iter()
                    .map(|p| Dynamic::from(p.to_string_lossy().to_string()))
                    .collect::<Array>()
            })
        },
    );
}

/// The ingest's field mapping, offered as the same flags (same names, defaults and docs) by
/// the commands that ingest raw inputs first (`yunmin dedup`, `yunmin parquet convert`).
#[derive(Debug, Clone, Copy)]
pub struct FieldKeys;

impl crate::primitive::OptionSet for FieldKeys {
    const KEYS: Option<&'static [&'static str]> = Some(&[
        "text_field",
        "id_field",
        "domain_field",
        "keep_extras",
        "batch_rows",
    ]);
}

/// `--text-field`, `--id-field`, `--domain-field`, `--keep-extras`, `--batch-rows`.
pub type FieldArgs = crate::primitive::CliOptions<IngestConfig, FieldKeys>;

/// Whether `p` is a dataset directory: it holds `dataset.json` or `part-*.jsonl` shards.
fn is_dataset_dir(p: &Path) -> bool {
    p.join(yunmin_core::ingest::STATS_FILE).is_file()
        || std::fs::read_dir(p).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("part-") && n.ends_with(".jsonl")
            })
        })
}

/// The dataset `inputs` name, for commands that work on a dataset (`yunmin dedup`, `yunmin
/// parquet convert`): one dataset directory (`dataset.json` or `part-*.jsonl` shards) is opened
/// as it is; any
/// other inputs — JSONL or Parquet files, directories, globs, `s3://` prefixes — are ingested
/// first (a cached stage) into the run root `work`, with the field mapping of `fields`.
pub fn dataset_from_inputs(
    inputs: &[String],
    work: &Path,
    fields: &FieldArgs,
    endpoint_url: Option<String>,
    seed: u64,
) -> anyhow::Result<Dataset> {
    if let [one] = inputs
        && is_dataset_dir(Path::new(one))
    {
        return Ok(Dataset::open(one)?);
    }
    let mut cfg = fields.config(IngestConfig::default())?;
    cfg.source.endpoint_url = endpoint_url;
    let ctx = RunContext::new(work, seed, false)?;
    let res = ingest(&ctx, inputs, &cfg);
    ctx.finish(res.is_ok()).ok();
    let out = res.with_context(|| format!("ingest of {}", inputs.join(", ")))?;
    println!("{}", out.report.summary_line());
    Ok(out.dataset)
}

/// `yunmin ingest`: validate JSONL and Parquet from local paths or S3 into a run root.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// Input: a JSONL (.jsonl/.ndjson/.json, optionally .gz/.zst) or Parquet file, a directory
    /// (Hugging Face datasets layouts included), a glob (quote it) or s3://bucket/prefix/;
    /// repeatable, formats may be mixed.
    #[arg(
        long = "input",
        short = 'i',
        required = true,
        value_name = "PATH|GLOB|S3URL"
    )]
    pub input: Vec<String>,
    #[command(flatten)]
    pub opts: crate::primitive::CliOptions<IngestConfig>,
    /// Run root for the outputs (data/dedup_ready/, data/rejected/, sample_preview.json,
    /// ingest_report.json). An s3://bucket/prefix/ writes locally under --work and uploads.
    #[arg(long, default_value = "runs/ingest")]
    pub out: String,
    /// Local run root when --out is an s3:// URL.
    #[arg(long, default_value = "runs/ingest")]
    pub work: PathBuf,
    /// Seed for the preview sample.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Redo the ingest even when its cached outputs are up to date.
    #[arg(long)]
    pub force: bool,
    /// Ingest only part I of N of the inputs (a contiguous range of the resolved input
    /// objects), into OUT/parts/ingest-I-of-N/; `--gather N` joins the parts. This is how the
    /// Ray driver runs one task per part.
    #[arg(long, value_name = "I/N", conflicts_with = "gather")]
    pub part: Option<yunmin_core::ingest::Part>,
    /// Join the N parts ingested with `--part I/N` (same inputs and options) into the outputs
    /// one process would write: the same shard files, rejects, preview and report.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub gather: Option<u64>,
}

/// `yunmin bench ingest`: the ingest on the given inputs, always rerun, with a CSV row per run.
#[derive(Debug, clap::Args)]
pub struct BenchIngestArgs {
    /// The ingest to measure (every `yunmin ingest` option; `--part`/`--gather` are refused).
    #[command(flatten)]
    pub run: IngestArgs,
    /// Append the rows (label, MB/s, docs/s, peak memory, …) to this CSV.
    #[arg(
        long,
        value_name = "CSV",
        default_value = "results/bench/ingest_bench.csv"
    )]
    pub csv: PathBuf,
    /// Label of the row (default: the first input).
    #[arg(long)]
    pub label: Option<String>,
    /// On local Parquet inputs: add a row for pyarrow reading the same columns of the same
    /// files in batches of the same size (a peer process; $YUNMIN_PYTHON), with its peak memory.
    #[arg(long)]
    pub pyarrow: bool,
}

impl IngestArgs {
    /// The core config these arguments describe: the options given laid over the defaults,
    /// with `upload` set when `--out` is an `s3://` prefix.
    pub fn config(&self) -> anyhow::Result<IngestConfig> {
        let mut c = self.opts.config(IngestConfig::default())?;
        if self.out.starts_with("s3://") {
            c.upload = Some(self.out.clone());
        }
        c.validate()?;
        Ok(c)
    }
}

/// One row of the ingest benchmark CSV.
struct BenchRow<'a> {
    label: &'a str,
    sources: usize,
    lines: u64,
    valid: u64,
    rejected: u64,
    mb: f64,
    input_mb: f64,
    seconds: f64,
    resumes: u64,
    peak_rss_mb: f64,
}

fn bench_row(
    path: &PathBuf,
    args: &IngestArgs,
    cfg: &IngestConfig,
    r: &BenchRow<'_>,
) -> anyhow::Result<()> {
    let new = !path.exists();
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if new {
        writeln!(
            f,
            "label,inputs,sources,lines,valid,rejected,mb,input_mb,seconds,mb_per_s,docs_per_s,threads,in_flight,resumes,peak_rss_mb"
        )?;
    }
    let secs = r.seconds.max(1e-9);
    writeln!(
        f,
        "{},{},{},{},{},{},{:.2},{:.2},{:.3},{:.1},{:.0},{},{},{},{:.0}",
        r.label,
        args.input.join(" "),
        r.sources,
        r.lines,
        r.valid,
        r.rejected,
        r.mb,
        r.input_mb,
        r.seconds,
        r.mb / secs,
        r.valid as f64 / secs,
        rayon_threads(),
        cfg.source.in_flight,
        r.resumes,
        r.peak_rss_mb
    )?;
    Ok(())
}

/// The pyarrow peer of the Parquet benchmark: reads the same columns of the same files in
/// batches of the same size, in a fresh process; prints rows, seconds and peak RSS.
const PYARROW_PEER: &str = r#"
import json, sys, time
import pyarrow.parquet as pq
cols = json.loads(sys.argv[1]); batch = int(sys.argv[2]); files = sys.argv[3:]
t = time.perf_counter(); rows = 0
for f in files:
    pf = pq.ParquetFile(f)
    have = set(pf.schema_arrow.names)
    use = None if cols is None else [c for c in cols if c in have]
    for b in pf.iter_batches(batch_size=batch, columns=use):
        rows += b.num_rows
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec.
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t,
                  "peak_rss_mb": int(hwm.split()[1]) / 1024}))
"#;

fn pyarrow_peer(
    cfg: &IngestConfig,
    report: &IngestReport,
    python: &Path,
) -> anyhow::Result<serde_json::Value> {
    let files: Vec<&str> = report
        .sources
        .iter()
        .filter(|s| s.format == Some(yunmin_core::source::Format::Parquet))
        .map(|s| s.source.as_str())
        .collect();
    anyhow::ensure!(
        !files.is_empty() && files.iter().all(|f| !f.starts_with("s3://")),
        "--pyarrow needs local Parquet inputs"
    );
    let cols = if !cfg.keep_extras {
        let tops = |f: &str| f.split('.').next().unwrap_or(f).to_string();
        serde_json::json!([
            tops(&cfg.text_field),
            tops(&cfg.id_field),
            tops(&cfg.domain_field)
        ])
    } else {
        serde_json::Value::Null
    };
    let o = std::process::Command::new(python)
        .arg("-c")
        .arg(PYARROW_PEER)
        .arg(cols.to_string())
        .arg(cfg.source.batch_rows.to_string())
        .args(&files)
        .output()?;
    anyhow::ensure!(
        o.status.success(),
        "pyarrow peer failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(serde_json::from_slice(&o.stdout)?)
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Runs the ingest `args` describe (`force`: even when cached); prints its summary.
fn ingest_cli(args: &IngestArgs, force: bool) -> anyhow::Result<(IngestConfig, IngestReport)> {
    let cfg = args.config()?;
    let root = if args.out.starts_with("s3://") {
        args.work.clone()
    } else {
        PathBuf::from(&args.out)
    };
    let root = match &args.part {
        Some(p) => p.dir(&root),
        None => root,
    };
    let ctx = RunContext::new(&root, args.seed, args.force || force)?;
    let mut parts_done = |_: &[Part]| Ok(());
    let plan = match (args.part, args.gather) {
        (Some(p), _) => Plan::Part(p),
        (None, Some(n)) => Plan::Parts {
            count: Some(n as usize),
            run: &mut parts_done,
        },
        (None, None) => Plan::Whole,
    };
    let res = ingest_with(&ctx, &args.input, &cfg, plan);
    ctx.finish(res.is_ok()).ok();
    let out = res.with_context(|| format!("ingest of {}", args.input.join(", ")))?;
    println!(
        "{}{}",
        out.report.summary_line(),
        if out.cached {
            " (cached: inputs unchanged)"
        } else {
            ""
        }
    );
    println!("documents: {}", out.dataset.dir().display());
    println!("report:    {}", ctx.path(&cfg.report).display());
    if let Some(u) = &out.report.outputs.uploaded_to {
        println!("uploaded:  {u}");
    }
    Ok((cfg, out.report))
}

/// Runs `yunmin ingest`.
pub fn run_cli(args: IngestArgs) -> anyhow::Result<()> {
    ingest_cli(&args, false).map(|_| ())
}

/// Runs `yunmin bench ingest`: the ingest, always rerun, then a CSV row for it and, with
/// `--pyarrow`, one for pyarrow reading the same columns.
pub fn run_bench(b: BenchIngestArgs) -> anyhow::Result<()> {
    let args = &b.run;
    anyhow::ensure!(
        args.part.is_none() && args.gather.is_none(),
        "bench ingest measures a whole ingest: --part and --gather are not for it"
    );
    let (cfg, report) = ingest_cli(args, true)?;
    let csv = &b.csv;
    let label = b.label.clone().unwrap_or_else(|| args.input[0].clone());
    let t = &report.totals;
    let row = BenchRow {
        label: &label,
        sources: report.sources.len(),
        lines: t.lines,
        valid: t.valid,
        rejected: t.rejected,
        mb: t.bytes as f64 / 1e6,
        input_mb: t.input_bytes as f64 / 1e6,
        seconds: report.seconds,
        resumes: t.resumes,
        peak_rss_mb: yunmin_core::columnar::peak_rss_mb().unwrap_or(0.0),
    };
    bench_row(csv, args, &cfg, &row)?;
    if b.pyarrow {
        let python = super::columnar::default_python().ok_or_else(|| {
            anyhow::anyhow!("--pyarrow needs Python with pyarrow ($YUNMIN_PYTHON)")
        })?;
        let p = pyarrow_peer(&cfg, &report, &python)?;
        let rows = p["rows"].as_u64().unwrap_or(0);
        anyhow::ensure!(
            rows == t.lines,
            "pyarrow read {rows} rows, ingest {}",
            t.lines
        );
        let peer_label = format!("{label} pyarrow-read");
        bench_row(
            csv,
            args,
            &cfg,
            &BenchRow {
                label: &peer_label,
                valid: rows,
                rejected: 0,
                seconds: p["seconds"].as_f64().unwrap_or(0.0),
                resumes: 0,
                peak_rss_mb: p["peak_rss_mb"].as_f64().unwrap_or(0.0),
                ..row
            },
        )?;
    }
    println!("bench rows appended to {}", csv.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command, FromArgMatches};

    fn fields(args: &[&str]) -> Result<IngestConfig, String> {
        let cmd = FieldArgs::augment_args(Command::new("t").no_binary_name(true));
        let m = cmd.try_get_matches_from(args).map_err(|e| e.to_string())?;
        let o = FieldArgs::from_arg_matches(&m).map_err(|e| e.to_string())?;
        o.config(IngestConfig::default()).map_err(|e| e.to_string())
    }

    /// The field flags are the ingest's own options: the five mapped keys reach the config,
    /// nothing else of the ingest is offered, and the defaults are the ingest's.
    #[test]
    fn field_flags_are_the_ingest_options() {
        assert_eq!(fields(&[]).unwrap(), IngestConfig::default());
        let c = fields(&[
            "--text-field",
            "content",
            "--id-field",
            "meta.doc_id",
            "--domain-field",
            "metadata.domain",
            "--keep-extras",
            "false",
            "--batch-rows",
            "77",
        ])
        .unwrap();
        assert_eq!(
            (
                c.text_field.as_str(),
                c.id_field.as_str(),
                c.domain_field.as_str(),
                c.keep_extras,
                c.source.batch_rows
            ),
            ("content", "meta.doc_id", "metadata.domain", false, 77)
        );
        for other in ["--shard-docs", "--in-flight", "--out"] {
            let e = fields(&[other, "3"]).unwrap_err();
            assert!(e.contains(other), "{other}: {e}");
        }
        assert!(
            fields(&["--batch-rows", "many"])
                .unwrap_err()
                .contains("--batch-rows")
        );
    }
}
