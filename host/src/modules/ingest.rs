//! Rhai module `ingest` and the `yunmin ingest` subcommand: both call
//! `yunmin_core::ingest::ingest` with an `IngestConfig`.

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::state::Host;
use anyhow::Context;
use rhai::{Array, Dynamic, Map};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yunmin_core::ingest::{Dataset, IngestConfig, Part, Plan, ingest, ingest_with};
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

/// An error naming `flags` (given on the command line) when they do not apply because of
/// `why` (e.g. "--tokens reads token ids"): a flag that would be silently unused is refused.
pub fn reject_flags(flags: &[String], why: &str) -> anyhow::Result<()> {
    match flags {
        [] => Ok(()),
        [one] => anyhow::bail!("{one} does not apply here: {why}; it is for raw --input"),
        many => anyhow::bail!(
            "{} do not apply here: {why}; they are for raw --input",
            many.join(", ")
        ),
    }
}

/// The documents a phase command reads: a dataset directory, or raw inputs ingested first into
/// `<run root>/ingest/` (`yunmin dedup`, `yunmin parquet convert`, `yunmin tokenizer train`),
/// one of the two required.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("documents").required(true).args(["dataset", "input"])))]
pub struct DocInputs {
    #[command(flatten)]
    pub sources: DocSources,
}

impl DocInputs {
    /// The dataset: `--dataset`, else `--input` ingested into `root/ingest/`.
    pub fn open(&self, root: &Path, seed: u64) -> anyhow::Result<Dataset> {
        self.sources.open(root, seed)
    }
}

/// The flags of [`DocInputs`] without the requirement, for commands that take other inputs
/// besides documents (`yunmin train`).
#[derive(Debug, clap::Args)]
pub struct DocSources {
    /// The dataset directory (part-*.jsonl with dataset.json, as ingest or dedup wrote it;
    /// the same as --input DIR).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Input: a dataset directory, or JSONL/Parquet files, directories (Hugging Face layouts
    /// included), globs or s3:// prefixes, ingested first into <out>/ingest/; repeatable.
    #[arg(long, short = 'i', value_name = "PATH|GLOB|S3URL")]
    pub input: Vec<String>,
    /// S3-compatible endpoint for s3:// inputs.
    #[arg(long = "endpoint-url")]
    pub endpoint_url: Option<String>,
    #[command(flatten)]
    pub fields: FieldArgs,
}

impl DocSources {
    /// Whether documents were named (`--dataset` or `--input`).
    pub fn given(&self) -> bool {
        self.dataset.is_some() || !self.input.is_empty()
    }

    /// The flags given that apply only to raw `--input`s: the field mapping and
    /// `--endpoint-url`.
    pub fn raw_input_flags(&self) -> Vec<String> {
        let mut f = self.fields.given_flags();
        if self.endpoint_url.is_some() {
            f.push("--endpoint-url".into());
        }
        f
    }

    /// The dataset: `--dataset`, else `--input` ingested into `root/ingest/`. A field-mapping
    /// flag given with a dataset directory (already ingested) is an error naming it.
    pub fn open(&self, root: &Path, seed: u64) -> anyhow::Result<Dataset> {
        let ingested = match (&self.dataset, self.input.as_slice()) {
            (Some(d), _) => Some(d.display().to_string()),
            (None, [one]) if is_dataset_dir(Path::new(one)) => Some(one.clone()),
            _ => None,
        };
        if let Some(d) = ingested {
            // The field mapping only (`--endpoint-url` may serve the command's uploads).
            let why = format!("{d} is a dataset directory, already ingested");
            reject_flags(&self.fields.given_flags(), &why)?;
        }
        match &self.dataset {
            Some(d) => Ok(Dataset::open(d)?),
            None if self.input.is_empty() => {
                anyhow::bail!("give the documents with --dataset DIR or --input PATH")
            }
            None => dataset_from_inputs(
                &self.input,
                &root.join("ingest"),
                &self.fields,
                self.endpoint_url.clone(),
                seed,
            ),
        }
    }
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

/// Runs the ingest `args` describe; prints its summary.
fn ingest_cli(args: &IngestArgs) -> anyhow::Result<()> {
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
    let ctx = RunContext::new(&root, args.seed, args.force)?;
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
    Ok(())
}

/// Runs `yunmin ingest`.
pub fn run_cli(args: IngestArgs) -> anyhow::Result<()> {
    ingest_cli(&args)
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
