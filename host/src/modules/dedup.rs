//! Rhai module `dedup` and the `yunmin dedup` subcommand: near-duplicate removal
//! (`yunmin_core::dedup`), its pieces for researchers, the planted evaluation and the benchmark.

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::options::Options;
use crate::state::Host;
use rhai::{Array, Dynamic, Map};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use yunmin_core::dedup::eval::{EvalConfig, EvalSet};
use yunmin_core::dedup::lsh::{self, LshIndex};
use yunmin_core::dedup::params::BandRows;
use yunmin_core::dedup::pipeline::{self, Found, Timings};
use yunmin_core::dedup::scheme::{Hashing, Scheme};
use yunmin_core::dedup::shingle;
use yunmin_core::dedup::signatures::Signatures;
use yunmin_core::dedup::{DedupConfig, DedupSummary, Phase, Shard};
use yunmin_core::ingest::Dataset;
use yunmin_core::report::Table;

/// Option keys of `lsh_index`.
pub const LSH_INDEX_KEYS: &[&str] = &[
    "bands",
    "rows",
    "threshold",
    "recall",
    "index",
    "namespace",
    "batch",
];

/// Option keys of `candidates`.
pub const CANDIDATES_KEYS: &[&str] = &["threshold", "verify", "keep"];

/// Option keys of `dedup_eval_set`.
pub const DEDUP_EVAL_SET_KEYS: &[&str] = &[
    "corpora",
    "domains",
    "per_domain",
    "dup_fraction",
    "hard_fraction",
    "max_chars",
    "short_chars",
    "seed",
];

/// Option keys of `shingles`.
pub const SHINGLES_KEYS: &[&str] = &["shingles"];

/// A dataset directory (JSONL shards) as a script sees it.
#[derive(Debug, Clone)]
pub struct DatasetHandle(pub Arc<Dataset>);
// The Rhai `Dataset` type is the core `Dataset` (registered by the ingest module);
// `DatasetHandle` only shares one opened dataset between the native pieces here.

/// The result of `dedup(…)`.
#[derive(Debug, Clone)]
pub struct DedupResult(pub Arc<DedupSummary>);

/// Signatures of a dataset with the scheme that made them.
#[derive(Debug, Clone)]
pub struct SignaturesHandle {
    sigs: Arc<Signatures>,
    scheme: Arc<Scheme>,
    cfg: Arc<DedupConfig>,
    dataset: Arc<Dataset>,
}

/// A filled LSH index over some signatures.
#[derive(Clone)]
pub struct IndexHandle {
    index: Arc<Mutex<Box<dyn LshIndex>>>,
    sigs: SignaturesHandle,
    cfg: Arc<DedupConfig>,
    bands: BandRows,
}

/// Verified candidate pairs and the clusters they form.
#[derive(Debug, Clone)]
pub struct CandidatesHandle {
    found: Arc<Found>,
    sigs: SignaturesHandle,
}

/// A planted evaluation set.
#[derive(Debug, Clone)]
pub struct EvalSetHandle(pub Arc<EvalSet>);

/// Option keys of `dedup` and the pieces.
pub fn dedup_keys() -> Vec<&'static str> {
    crate::primitive::keys::<DedupConfig>()
}

fn parse<T: std::str::FromStr<Err = yunmin_core::dedup::DedupError>>(v: &str) -> RhaiResult<T> {
    v.parse::<T>().map_err(|e| msg_err(e.to_string()))
}

/// A [`DedupConfig`] from an option map (defaults documented on the struct).
pub fn config_from(func: &'static str, opts: Map, seed: u64) -> RhaiResult<DedupConfig> {
    let base = DedupConfig {
        seed,
        ..Default::default()
    };
    crate::primitive::from_rhai_as(func, base, opts)
}

fn open_dataset(host: &Host, path: &str) -> RhaiResult<DatasetHandle> {
    let p = host.ctx.input_path(path).rhai()?;
    Ok(DatasetHandle(Arc::new(Dataset::open(p).rhai()?)))
}

fn to_table<T: serde::Serialize>(rows: &[T]) -> RhaiResult<Table> {
    let mut t = Table::new();
    for r in rows {
        match serde_json::to_value(r).map_err(|e| msg_err(e.to_string()))? {
            serde_json::Value::Object(m) => t.push_row(&m).rhai()?,
            _ => return Err(msg_err("table row is not an object")),
        }
    }
    Ok(t)
}

/// Option keys of `dedup` beyond [`dedup_keys`]: where it runs.
pub const ENGINE_KEYS: &[&str] = &["engine", "shards"];

/// Where `dedup` runs: in this process, or as Ray tasks (`scripts/ray/yunmin_ray.py`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Engine {
    Local,
    Ray { shards: usize },
}

/// Takes `engine` ("local" | "ray") and `shards` (ray only, default 4) out of `opts`.
fn take_engine(opts: &mut Map) -> RhaiResult<Engine> {
    let ray = crate::ray::take_engine("dedup", opts)?;
    let shards = crate::ray::take_count("dedup", "shards", ray, opts)?;
    Ok(if ray {
        Engine::Ray {
            shards: shards.unwrap_or(4),
        }
    } else {
        Engine::Local
    })
}

/// Runs dedup's phases as Ray tasks through `scripts/ray/yunmin_ray.py` (cluster from
/// `RAY_ADDRESS`, Python from `YUNMIN_PYTHON` or `.venv`) on the run root `root`.
fn ray_dedup(
    ds: &Dataset,
    root: &Path,
    cfg: &DedupConfig,
    shards: usize,
) -> yunmin_core::Result<DedupSummary> {
    use yunmin_core::Error;
    if !cfg.index.starts_with("redis://") {
        return Err(Error::invalid(format!(
            "dedup with engine \"ray\": the tasks share the LSH index, so `index` must be redis://…, not `{}`",
            cfg.index
        )));
    }
    if cfg.shard_docs != DedupConfig::default().shard_docs {
        return Err(Error::invalid(
            "dedup with engine \"ray\": `shard_docs` is not supported (the kept parts keep the input's files)",
        ));
    }
    let v = serde_json::to_value(cfg).map_err(|e| Error::invalid(e.to_string()))?;
    let mut extra: Vec<String> = Vec::new();
    for (k, flag) in [
        ("threshold", "--threshold"),
        ("perms", "--perms"),
        ("bands", "--bands"),
        ("rows", "--rows"),
        ("recall", "--recall"),
        ("shingles", "--shingles"),
        ("combine", "--combine"),
        ("hashing", "--hashing"),
        ("jamo_weight", "--jamo-weight"),
        ("namespace", "--namespace"),
        ("keep", "--keep"),
        ("verify", "--verify"),
        ("seed", "--seed"),
        ("kept", "--kept"),
        ("batch", "--batch"),
    ] {
        match &v[k] {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) => extra.extend([flag.to_string(), s.clone()]),
            x => extra.extend([flag.to_string(), x.to_string()]),
        }
    }
    if cfg.keep_index {
        extra.push("--keep-index".into());
    }
    let mut c = crate::ray::command("dedup")?;
    c.args(["dedup", "--input"])
        .arg(ds.dir())
        .arg("--out")
        .arg(root)
        .args(["--shards", &shards.to_string(), "--index", &cfg.index])
        .arg("--")
        .args(&extra);
    crate::ray::run("dedup", c)?;
    let mut s = yunmin_core::dedup::parts::merged_summary(root)?;
    s.phase = Phase::All;
    s.kept_dir = Some(root.join(&cfg.kept));
    Ok(s)
}

fn run_dedup(host: &Host, ds: &DatasetHandle, opts: Map) -> RhaiResult<DedupResult> {
    let mut opts = opts;
    let engine = take_engine(&mut opts)?;
    let cfg = config_from("dedup", opts, host.ctx.seed())?;
    let params = serde_json::to_value(&cfg).map_err(|e| msg_err(e.to_string()))?;
    let root = host.ctx.root().to_path_buf();
    let outputs = [
        host.ctx.write_path(&cfg.kept).rhai()?,
        root.join("candidates.json"),
        root.join("clusters.jsonl"),
        root.join("dedup_log.csv"),
    ];
    let (summary, _cached) = host
        .ctx
        .stage(
            "dedup",
            &params,
            &[ds.0.dir().to_path_buf()],
            &outputs,
            "dedup-v1",
            || match engine {
                Engine::Local => pipeline::run(&ds.0, &root, &cfg),
                Engine::Ray { shards } => ray_dedup(&ds.0, &root, &cfg, shards),
            },
        )
        .rhai()?;
    Ok(DedupResult(Arc::new(summary)))
}

fn signatures(host: &Host, ds: &DatasetHandle, opts: Map) -> RhaiResult<SignaturesHandle> {
    let cfg = config_from("minhash", opts, host.ctx.seed())?;
    let scheme = cfg.scheme().rhai()?;
    let (sigs, _) =
        pipeline::sign_shard(&ds.0, &scheme, Shard::default(), host.ctx.root()).rhai()?;
    Ok(SignaturesHandle {
        sigs: Arc::new(sigs),
        scheme: Arc::new(scheme),
        cfg: Arc::new(cfg),
        dataset: ds.0.clone(),
    })
}

fn build_index(s: &SignaturesHandle, opts: Map) -> RhaiResult<IndexHandle> {
    let o = Options::new("lsh_index", opts, LSH_INDEX_KEYS)?;
    let mut cfg = (*s.cfg).clone();
    cfg.threshold = o.float("threshold", cfg.threshold)?;
    cfg.recall = o.float("recall", cfg.recall)?;
    if o.has("bands") {
        cfg.bands = Some(o.usize("bands", 0)?);
    }
    if o.has("rows") {
        cfg.rows = Some(o.usize("rows", 0)?);
    }
    cfg.index = o.str("index", &cfg.index)?;
    cfg.namespace = o.opt_str("namespace")?.or(cfg.namespace);
    cfg.batch = o.usize("batch", cfg.batch)?;
    let br = cfg.band_rows(&s.scheme).rhai()?;
    let ns = cfg
        .namespace
        .clone()
        .unwrap_or_else(|| format!("yunmin:dedup:script:{}", std::process::id()));
    let mut index = lsh::open(&cfg.index, &ns, br, cfg.batch).rhai()?;
    let bands = pipeline::all_band_hashes(&s.sigs, &s.scheme, br).rhai()?;
    pipeline::insert_all(index.as_mut(), &s.sigs, &bands, br).rhai()?;
    Ok(IndexHandle {
        index: Arc::new(Mutex::new(index)),
        sigs: s.clone(),
        cfg: Arc::new(cfg),
        bands: br,
    })
}

fn find_candidates(ix: &IndexHandle, opts: Map) -> RhaiResult<CandidatesHandle> {
    let o = Options::new("candidates", opts, CANDIDATES_KEYS)?;
    let mut cfg = (*ix.cfg).clone();
    cfg.threshold = o.float("threshold", cfg.threshold)?;
    // Settings not given stay those the signatures were made with.
    if o.has("verify") {
        cfg.verify = parse(&o.str("verify", "")?)?;
    }
    if o.has("keep") {
        cfg.keep = parse(&o.str("keep", "")?)?;
    }
    cfg.bands = Some(ix.bands.bands);
    cfg.rows = Some(ix.bands.rows);
    let s = &ix.sigs;
    let files = s.dataset.shards().rhai()?;
    let need_map = |need: &[usize]| pipeline::fetch_shingles(&files, &s.sigs, &s.scheme, need);
    let mut index = ix
        .index
        .lock()
        .map_err(|_| msg_err("candidates: index lock poisoned"))?;
    let mut t = Timings::default();
    let found = pipeline::find(
        &s.sigs,
        &s.scheme,
        &cfg,
        &mut **index,
        false,
        &mut t,
        &need_map,
    )
    .rhai()?;
    Ok(CandidatesHandle {
        found: Arc::new(found),
        sigs: s.clone(),
    })
}

fn candidates_table(c: &CandidatesHandle) -> RhaiResult<Table> {
    let docs = &c.sigs.sigs.docs;
    let rows: Vec<serde_json::Value> = c
        .found
        .candidates
        .iter()
        .map(|x| serde_json::json!({"a": docs[x.a].id, "b": docs[x.b].id, "estimated": x.estimated, "exact": x.exact.unwrap_or(f64::NAN)}))
        .collect();
    to_table(&rows)
}

fn clusters_table(c: &CandidatesHandle) -> RhaiResult<Table> {
    let docs = &c.sigs.sigs.docs;
    let rows: Vec<serde_json::Value> = c
        .found
        .clusters
        .iter()
        .map(|x| {
            let members: Vec<&str> = x.members.iter().map(|&i| docs[i].id.as_str()).collect();
            serde_json::json!({"representative": docs[x.representative].id, "size": x.members.len(), "members": members.join(" "), "domain": docs[x.representative].domain})
        })
        .collect();
    to_table(&rows)
}

fn eval_set(opts: Map, seed: u64) -> RhaiResult<EvalSetHandle> {
    let o = Options::new("dedup_eval_set", opts, DEDUP_EVAL_SET_KEYS)?;
    let d = EvalConfig::default();
    let corpora = o.str("corpora", &d.corpora.to_string_lossy())?;
    let corpora = {
        let p = PathBuf::from(&corpora);
        if p.is_relative() && !p.exists() {
            crate_root().join(&p)
        } else {
            p
        }
    };
    let cfg = EvalConfig {
        corpora,
        domains: o.str_list("domains", &[])?,
        per_domain: o.usize("per_domain", d.per_domain)?,
        dup_fraction: o.float("dup_fraction", d.dup_fraction)?,
        hard_fraction: o.float("hard_fraction", d.hard_fraction)?,
        max_chars: o.usize("max_chars", d.max_chars)?,
        short_chars: o.usize("short_chars", d.short_chars)?,
        seed: o.int("seed", seed as i64)? as u64,
    };
    Ok(EvalSetHandle(Arc::new(
        yunmin_core::dedup::eval::build_set(&cfg).rhai()?,
    )))
}

/// The directory `../shared/data/corpora` is resolved against when the working directory lacks it:
/// the repository root of the binary's source tree.
fn crate_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Registers the `dedup` module.
pub fn register(api: &mut Api, host: &Arc<Host>) {
    let e = api.engine();
    e.register_type_with_name::<DedupResult>("DedupResult");
    e.register_get("docs", |r: &mut DedupResult| r.0.docs as i64);
    e.register_get("kept_count", |r: &mut DedupResult| r.0.kept as i64);
    e.register_get("removed", |r: &mut DedupResult| r.0.removed as i64);
    e.register_get("clusters", |r: &mut DedupResult| r.0.clusters as i64);
    e.register_get("candidates", |r: &mut DedupResult| r.0.candidates as i64);
    e.register_get("bands", |r: &mut DedupResult| r.0.bands as i64);
    e.register_get("rows", |r: &mut DedupResult| r.0.rows as i64);
    e.register_fn("to_string", |r: &mut DedupResult| {
        format!(
            "DedupResult(docs={}, kept={}, removed={}, clusters={})",
            r.0.docs, r.0.kept, r.0.removed, r.0.clusters
        )
    });
    e.register_type_with_name::<SignaturesHandle>("Signatures");
    e.register_get("len", |s: &mut SignaturesHandle| s.sigs.len() as i64);
    e.register_get("perms", |s: &mut SignaturesHandle| s.sigs.perms() as i64);
    e.register_type_with_name::<IndexHandle>("LshIndex");
    e.register_get("bands", |s: &mut IndexHandle| s.bands.bands as i64);
    e.register_get("rows", |s: &mut IndexHandle| s.bands.rows as i64);
    e.register_type_with_name::<CandidatesHandle>("Candidates");
    e.register_get("len", |c: &mut CandidatesHandle| {
        c.found.candidates.len() as i64
    });
    e.register_get("checked", |c: &mut CandidatesHandle| c.found.checked as i64);
    e.register_type_with_name::<EvalSetHandle>("EvalSet");
    e.register_get("len", |s: &mut EvalSetHandle| s.0.docs.len() as i64);

    let h = host.clone();
    api.func(
        "dedup",
        &["dataset", "opts"],
        "Removes near-duplicates (MinHash-LSH over hybrid Korean shingles) as the cached stage `dedup`.\n\
         Writes in the run root: the kept dataset (`kept`, default `data/deduped/`), `candidates.json`,\n\
         `clusters.jsonl`, `dedup_log.csv`, and reusable signatures under `dedup/signatures/`.\n\
         Options (defaults): threshold 0.8, perms 128, bands/rows (chosen for the threshold so that\n\
         P(candidate at threshold) ≥ recall 0.997), shingles \"jamo3\" (or \"jamo3+word5\", \"word5\" …),\n\
         combine \"union\" | \"mean\", hashing \"oph\" (one-permutation hashing) | \"minhash\",\n\
         jamo_weight 0.5, index \"memory\" | \"redis://host:port\", namespace, keep \"most_tokens\" |\n\
         \"longest\" | \"first\" | \"smallest_id\", verify \"exact\" | \"exact_all\" | \"estimate\", seed (the run's), kept,\n\
         shard_docs 100000, batch 10000, keep_index false; engine \"local\" | \"ray\" (the phases as Ray\n\
         tasks on the cluster in RAY_ADDRESS through scripts/ray/yunmin_ray.py, `shards` tasks per\n\
         phase, default 4; needs a redis:// index; same outputs).",
        move |ds: Dataset, opts: Map| run_dedup(&h, &DatasetHandle(Arc::new(ds)), opts),
    );
    let h = host.clone();
    api.func(
        "dedup",
        &["dataset", "opts"],
        "`dedup` on a dataset directory path.",
        move |ds: &str, opts: Map| {
            let d = open_dataset(&h, ds)?;
            run_dedup(&h, &d, opts)
        },
    );
    api.func(
        "kept",
        &["result"],
        "The kept documents as a Dataset.",
        |r: &mut DedupResult| {
            let dir =
                r.0.kept_dir
                    .clone()
                    .ok_or_else(|| msg_err("kept: this dedup result has no kept dataset"))?;
            Dataset::open(dir).rhai()
        },
    );
    api.func(
        "log",
        &["result"],
        "Per-domain counts (domain, before, after, removed, rate) as a Table.",
        |r: &mut DedupResult| to_table(&r.0.domains),
    );
    api.func(
        "summary",
        &["result"],
        "Everything the run reported (counts, bands, timings) as a map.",
        |r: &mut DedupResult| rhai::serde::to_dynamic(&*r.0),
    );
    api.func(
        "shingles",
        &["text", "opts"],
        "Normalised text and shingle hashes of one text: `#{normalized, jamo: [..], word: [..]}`.\n\
         Options: shingles (default \"jamo3+word5\").",
        |text: &str, opts: Map| {
            let o = Options::new("shingles", opts, SHINGLES_KEYS)?;
            let spec: shingle::ShingleSpec = parse(&o.str("shingles", "jamo3+word5")?)?;
            let norm = shingle::normalize(text);
            let s = shingle::shingles_of_normalized(&norm, &spec);
            let arr = |v: &[u64]| {
                v.iter()
                    .map(|&x| Dynamic::from_int(x as i64))
                    .collect::<Array>()
            };
            let mut m = Map::new();
            m.insert("normalized".into(), norm.into());
            m.insert("jamo".into(), arr(&s.jamo).into());
            m.insert("word".into(), arr(&s.word).into());
            Ok::<_, crate::errors::RhaiError>(m)
        },
    );
    api.func(
        "jaccard",
        &["a", "b", "opts"],
        "Exact similarity of two texts under the scheme of `opts` (shingles, combine, jamo_weight).",
        |a: &str, b: &str, opts: Map| {
            let cfg = config_from("jaccard", opts, 42)?;
            let s = cfg.scheme().rhai()?;
            Ok::<_, crate::errors::RhaiError>(s.exact(&s.shingle(a).shingles, &s.shingle(b).shingles))
        },
    );
    let h = host.clone();
    api.func(
        "minhash",
        &["dataset", "opts"],
        "MinHash signatures of every document (options as `dedup`: shingles, combine, perms, seed …).\n\
         Saved under `dedup/signatures/` in the run root and reused when settings and input are unchanged.",
        move |ds: Dataset, opts: Map| signatures(&h, &DatasetHandle(Arc::new(ds)), opts),
    );
    api.func(
        "lsh_index",
        &["signatures", "opts"],
        "An LSH index filled with the signatures. Options: bands, rows (default: chosen for threshold\n\
         and recall), threshold, recall, index (\"memory\" or redis://…), namespace, batch.",
        |s: SignaturesHandle, opts: Map| build_index(&s, opts),
    );
    api.func(
        "candidates",
        &["index", "opts"],
        "Verified candidate pairs from the index's buckets (and the clusters they form).\n\
         Options: threshold, verify (\"exact\" | \"exact_all\" | \"estimate\"), keep (for `clusters`).",
        |ix: IndexHandle, opts: Map| find_candidates(&ix, opts),
    );
    api.func(
        "table",
        &["candidates"],
        "Pairs as a Table: a, b (ids), estimated, exact.",
        |c: &mut CandidatesHandle| candidates_table(c),
    );
    api.func(
        "clusters",
        &["candidates"],
        "Clusters (union-find over the pairs) as a Table: representative, size, members, domain.",
        |c: CandidatesHandle| clusters_table(&c),
    );
    let h = host.clone();
    api.func(
        "dedup_eval_set",
        &["opts"],
        "Planted near-duplicate evaluation set from real corpora. Options: corpora\n\
         (\"../shared/data/corpora\"), domains (all), per_domain 400, dup_fraction 0.5,\n\
         hard_fraction 0.25 (bases that also get a hard negative: 40–50 % of the words replaced, to be\n\
         kept), max_chars 20000, short_chars 100, seed (the run's).",
        move |opts: Map| eval_set(opts, h.ctx.seed()),
    );
    let h = host.clone();
    api.func(
        "dedup_eval",
        &["set", "opts"],
        "Dedups the evaluation set with `opts` (as `dedup`) and scores removals against the planted\n\
         truth: a Table of domain, length (short/long/all), docs, distinct, planted, removed, correct,\n\
         false_removals, recall, precision, false_rate, hard_negatives, hard_removed.",
        move |set: EvalSetHandle, opts: Map| {
            let cfg = config_from("dedup_eval", opts, h.ctx.seed())?;
            to_table(&yunmin_core::dedup::eval::evaluate(&set.0, &cfg).rhai()?)
        },
    );
}

/// `yunmin dedup`: near-duplicate removal of a dataset, or `yunmin dedup bench`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DedupCli {
    /// Benchmark instead of deduplicating.
    #[command(subcommand)]
    pub bench: Option<DedupSub>,
    #[command(flatten)]
    pub args: DedupArgs,
}

/// Subcommands of `yunmin dedup`.
#[derive(Debug, clap::Subcommand)]
pub enum DedupSub {
    /// Side-by-side benchmark with datasketch (also the full-corpus run with --full).
    Bench(BenchArgs),
}

/// Arguments of `yunmin dedup`.
#[derive(Debug, clap::Args)]
pub struct DedupArgs {
    /// Input: a dataset directory (`part-00000.jsonl` … with `dataset.json`), or JSONL/Parquet
    /// files, directories, globs or s3:// prefixes, ingested first into <out>/ingest/.
    #[arg(long, short = 'i', value_name = "PATH|GLOB|S3URL")]
    pub input: Vec<String>,
    /// S3-compatible endpoint for s3:// inputs.
    #[arg(long = "endpoint-url")]
    pub endpoint_url: Option<String>,
    #[command(flatten)]
    pub fields: super::ingest::FieldArgs,
    /// Run root: kept dataset, candidates.json, clusters.jsonl, dedup_log.csv, dedup/signatures/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Dedup options (the same as Rhai's `dedup` options).
    #[command(flatten)]
    pub opts: crate::primitive::CliOptions<DedupConfig>,
    /// Phase: all (one process); index (this worker's shard into the shared index), then
    /// cluster (the rest in one process), or verify (this part's pairs), merge (clusters and
    /// reports), write (this part's kept documents) and gather (joins the parts).
    #[arg(long, default_value = "all")]
    pub phase: String,
    /// This worker's shard i/N: of the dataset's files (index, write) or of the pairs (verify).
    #[arg(long, default_value = "0/1")]
    pub shard: String,
    /// Upload the phase's finished outputs to s3://bucket/prefix/ (reports after merge,
    /// cluster or all; the kept dataset after gather, cluster or all).
    #[arg(long, value_name = "S3URL")]
    pub upload: Option<String>,
    /// Files of at least this many MiB are uploaded in parts (multipart upload).
    #[arg(long, default_value_t = 64)]
    pub multipart_threshold_mib: u64,
    /// Part size of multipart uploads in KiB (S3 requires 5120 – 5242880).
    #[arg(long, default_value_t = 16 * 1024)]
    pub part_kib: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Arguments of `yunmin dedup bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Directory of *.jsonl.zst corpora.
    #[arg(long, default_value = "../shared/data/corpora")]
    pub corpora: PathBuf,
    /// Documents sampled (evenly spaced over all corpora) for the side-by-side run.
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
    #[arg(long, default_value = "bench/dedup.csv")]
    pub csv: PathBuf,
    /// Also run the whole corpora through `yunmin dedup` (all threads) and report per domain.
    #[arg(long)]
    pub full: bool,
    /// Work directory for the full run (dataset and outputs).
    #[arg(long, default_value = "runs/bench_dedup")]
    pub work: PathBuf,
    /// Signatures for the full run: oph or minhash (the side-by-side rows time both).
    #[arg(long, default_value = "oph")]
    pub hashing: String,
}

fn cli_config(a: &DedupArgs) -> anyhow::Result<DedupConfig> {
    let mut cfg = a.opts.config(DedupConfig::default())?;
    cfg.phase = a.phase.parse()?;
    cfg.shard = a.shard.parse()?;
    Ok(cfg)
}

/// Runs `yunmin dedup …`.
pub fn run_cli(cli: DedupCli) -> anyhow::Result<()> {
    if let Some(DedupSub::Bench(b)) = cli.bench {
        return run_bench(b);
    }
    let a = cli.args;
    if a.input.is_empty() {
        anyhow::bail!("--input is required (a dataset directory, or JSONL/Parquet inputs)");
    }
    let out = a
        .out
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--out RUN_ROOT is required"))?;
    let cfg = cli_config(&a)?;
    // Connect before any work, so a bad destination or setting fails first.
    let store = match &a.upload {
        Some(dest) => Some(upload_store(&a, cfg.phase, dest)?),
        None => None,
    };
    let ds = super::ingest::dataset_from_inputs(
        &a.input,
        &out.join("ingest"),
        &a.fields,
        a.endpoint_url.clone(),
        cfg.seed,
    )?;
    let go = || pipeline::run(&ds, &out, &cfg);
    let s = match a.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()?
            .install(go)?,
        None => go()?,
    };
    if let (Some(dest), Some(store)) = (&a.upload, &store) {
        upload_outputs(store, &out, &s, dest)?;
    }
    let peak = yunmin_core::dedup::bench::peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0;
    match s.phase {
        Phase::Verify => println!(
            "dedup verify part {}: {} candidate pairs among {} documents in {:.2}s",
            a.shard,
            s.checked,
            s.docs,
            s.timings.query_s + s.timings.verify_s
        ),
        Phase::Write => println!(
            "dedup write part {}: {} kept, {} removed in {:.2}s",
            a.shard, s.kept, s.removed, s.timings.write_s
        ),
        Phase::Gather => println!(
            "dedup gather: {} kept documents in {}",
            s.kept,
            s.kept_dir
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
        Phase::Index => println!(
            "dedup index shard {}: {} documents signed{} and inserted into {} in {:.2}s (peak {peak:.0} MiB)",
            a.shard,
            s.docs,
            if s.reused_signatures {
                " (signatures reused)"
            } else {
                ""
            },
            s.index,
            s.timings.sign_s + s.timings.index_s
        ),
        _ => {
            println!(
                "dedup: {} documents, {} kept, {} removed in {} clusters ({} pairs checked, {} by exact Jaccard over {} re-read documents, {} verified; bands {}×{}; index {})",
                s.docs,
                s.kept,
                s.removed,
                s.clusters,
                s.checked,
                s.exact_checked,
                s.fetched,
                s.candidates,
                s.bands,
                s.rows,
                s.index
            );
            for d in &s.domains {
                println!(
                    "  {:<20} {:>9} → {:>9}  removed {:>8} ({:.2}%)",
                    d.domain,
                    d.before,
                    d.after,
                    d.removed,
                    d.rate * 100.0
                );
            }
            let t = &s.timings;
            println!(
                "  time: sign {:.2}s, index {:.2}s, query {:.2}s, verify {:.2}s, write {:.2}s; peak memory {peak:.0} MiB",
                t.sign_s, t.index_s, t.query_s, t.verify_s, t.write_s
            );
        }
    }
    Ok(())
}

/// Whether phase `p` finishes (reports, kept dataset).
fn uploads_of(p: Phase) -> (bool, bool) {
    (
        matches!(p, Phase::All | Phase::Cluster | Phase::Merge),
        matches!(p, Phase::All | Phase::Cluster | Phase::Gather),
    )
}

/// The S3 client `--upload` uses, checked against the phase.
fn upload_store(
    a: &DedupArgs,
    phase: Phase,
    dest: &str,
) -> anyhow::Result<yunmin_core::source::S3Store> {
    use yunmin_core::source::{Multipart, S3Store, S3Url, SourceConfig};
    S3Url::parse(dest)?;
    if uploads_of(phase) == (false, false) {
        anyhow::bail!(
            "--upload: the {phase:?} phase writes no final outputs (upload after merge or gather)"
        );
    }
    Ok(S3Store::connect(&SourceConfig {
        endpoint_url: a.endpoint_url.clone(),
        ..Default::default()
    })?
    .with_multipart(Multipart {
        threshold: a.multipart_threshold_mib << 20,
        part_size: a.part_kib << 10,
    })?)
}

/// Uploads what phase `s` finished under `out` to `dest` (relative paths kept).
fn upload_outputs(
    store: &yunmin_core::source::S3Store,
    out: &Path,
    s: &DedupSummary,
    dest: &str,
) -> anyhow::Result<()> {
    let url = yunmin_core::source::S3Url::parse(dest)?;
    let (reports, kept) = uploads_of(s.phase);
    let mut n = 0;
    if reports {
        for f in ["candidates.json", "clusters.jsonl", "dedup_log.csv"] {
            n += store.upload_dir(&out.join(f), &url)?;
        }
    }
    if kept && let Some(k) = &s.kept_dir {
        let rel = k.strip_prefix(out).unwrap_or(k).to_string_lossy();
        let key = if url.key.is_empty() || url.key.ends_with('/') {
            format!("{}{rel}", url.key)
        } else {
            format!("{}/{rel}", url.key)
        };
        n += store.upload_dir(k, &url.with_key(key))?;
    }
    println!("uploaded {n} files to {dest}");
    Ok(())
}

fn python(explicit: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = yunmin_core::run::python(explicit.as_deref()) {
        return Ok(p);
    }
    anyhow::bail!(
        "no Python with datasketch: set YUNMIN_PYTHON or create .venv \
         (python3 -m venv .venv && .venv/bin/pip install -r scripts/python-requirements/dedup.txt)"
    )
}

/// Every `stride`-th document of all corpora, in corpus order.
fn sample_corpora(
    dir: &Path,
    n: Option<usize>,
) -> anyhow::Result<Vec<yunmin_core::ingest::Document>> {
    let cfg = EvalConfig {
        corpora: dir.to_path_buf(),
        ..Default::default()
    };
    let mut all = Vec::new();
    for (stem, path) in yunmin_core::dedup::eval::corpus_files(&cfg)? {
        yunmin_core::dedup::eval::read_corpus(&path, |mut d| {
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

fn run_python(
    py: &Path,
    input: &Path,
    redis: Option<&str>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let script = crate_root().join("scripts/bench/dedup_datasketch.py");
    let mut cmd = std::process::Command::new(py);
    cmd.arg(&script)
        .arg("--input")
        .arg(input)
        .arg("--perms")
        .arg("128")
        .arg("--threshold")
        .arg("0.8");
    if let Some(r) = redis {
        cmd.arg("--redis").arg(r);
    }
    let o = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("running {} {}: {e}", py.display(), script.display()))?;
    if !o.status.success() {
        anyhow::bail!(
            "datasketch benchmark failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn write_jsonl(path: &Path, docs: &[yunmin_core::ingest::Document]) -> anyhow::Result<()> {
    let mut s = String::new();
    for d in docs {
        s.push_str(&serde_json::to_string(d)?);
        s.push('\n');
    }
    std::fs::write(path, s)?;
    Ok(())
}

/// `yunmin dedup bench`: native (1 thread and all threads) vs datasketch on the same documents.
pub fn run_bench(b: BenchArgs) -> anyhow::Result<()> {
    use yunmin_core::dedup::bench::{BenchRow, bench};
    let py = python(&b.python)?;
    let docs = sample_corpora(&b.corpora, Some(b.docs))?;
    let tmp = tempfile::tempdir()?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut rows: Vec<(String, BenchRow)> = Vec::new();
    let sample = tmp.path().join("sample.jsonl");
    write_jsonl(&sample, &docs)?;
    let small: Vec<_> = docs.iter().take(b.redis_docs).cloned().collect();
    let rs = tmp.path().join("redis.jsonl");
    write_jsonl(&rs, &small)?;
    // Both signature methods, labelled `yunmin` (MinHash) and `yunmin-oph`.
    // MinHash and OPH (the default) with exact verification of candidates, and OPH deciding on
    // the signature estimate alone — the same work as datasketch's MinHashLSH.
    use yunmin_core::dedup::verify::Verify;
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
    for v in run_python(&py, &sample, None)? {
        rows.push(("datasketch".into(), serde_json::from_value(v)?));
    }
    if let Some(url) = &b.redis {
        for v in run_python(&py, &rs, Some(url))? {
            let r: BenchRow = serde_json::from_value(v)?;
            if r.task == "dedup_redis" {
                rows.push(("datasketch".into(), r));
            }
        }
    }
    let mut csv =
        String::from("tool,task,docs,threads,seconds,docs_per_s,removed,speedup_vs_datasketch\n");
    for (tool, r) in &rows {
        let peer = rows
            .iter()
            .find(|(t, p)| t == "datasketch" && p.task == r.task && p.docs == r.docs);
        let speed = peer
            .map(|(_, p)| r.docs_per_s / p.docs_per_s)
            .unwrap_or(f64::NAN);
        let line = format!(
            "{tool},{},{},{},{:.3},{:.1},{},{:.1}",
            r.task, r.docs, r.threads, r.seconds, r.docs_per_s, r.removed, speed
        );
        println!("{line}");
        csv.push_str(&line);
        csv.push('\n');
    }
    yunmin_core::run::write_atomic(&b.csv, csv.as_bytes())?;
    println!("wrote {}", b.csv.display());
    if b.full {
        let all = sample_corpora(&b.corpora, None)?;
        let input = b.work.join("input");
        let mut w = yunmin_core::ingest::DatasetWriter::create(&input, 50_000)?;
        for d in &all {
            w.write(d)?;
        }
        let ds = w.finish()?;
        let cfg = DedupConfig {
            hashing: b.hashing.parse()?,
            ..DedupConfig::default()
        };
        let t = std::time::Instant::now();
        let s = pipeline::run(&ds, &b.work, &cfg)?;
        let peak = yunmin_core::dedup::bench::peak_rss_bytes().unwrap_or(0) as f64 / 1048576.0;
        println!(
            "full corpora: {} docs in {:.1}s ({} threads): {} removed, {} clusters, {} pairs checked; peak {peak:.0} MiB",
            s.docs,
            t.elapsed().as_secs_f64(),
            threads,
            s.removed,
            s.clusters,
            s.checked
        );
        let tm = &s.timings;
        println!(
            "  sign {:.1}s index {:.1}s query {:.1}s verify {:.1}s write {:.1}s",
            tm.sign_s, tm.index_s, tm.query_s, tm.verify_s, tm.write_s
        );
        for d in &s.domains {
            println!(
                "  {},{},{},{},{:.4}",
                d.domain, d.before, d.after, d.removed, d.rate
            );
        }
    }
    Ok(())
}

/// Arguments of `yunmin bench dedup`.
#[derive(Debug, clap::Args)]
pub struct BenchDedupArgs {
    /// Directory of *.jsonl.zst corpora.
    #[arg(long, default_value = "../shared/data/corpora")]
    pub corpora: PathBuf,
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
    #[arg(long, default_value = "bench/dedup.csv")]
    pub csv: PathBuf,
    /// Also deduplicate the whole corpora with `yunmin dedup` on all threads.
    #[arg(long)]
    pub full: bool,
    /// Work directory (mix datasets, the whole-corpora dataset and its outputs).
    #[arg(long, default_value = "runs/bench_dedup")]
    pub work: PathBuf,
}

/// One measurement of `yunmin bench dedup`.
struct MixRow {
    mix: String,
    tool: String,
    docs: usize,
    bytes: usize,
    threads: usize,
    in_process_s: f64,
    with_start_s: f64,
    removed: usize,
    peak_mib: f64,
}

/// Runs `cmd`, returning its stdout and wall seconds (process start included).
fn timed(cmd: &mut std::process::Command) -> anyhow::Result<(String, f64)> {
    let t = std::time::Instant::now();
    let o = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("running {cmd:?}: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    if !o.status.success() {
        anyhow::bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok((String::from_utf8_lossy(&o.stdout).into_owned(), secs))
}

/// Removed count and peak memory from `yunmin dedup`'s summary lines.
fn parse_dedup_stdout(out: &str) -> anyhow::Result<(usize, f64)> {
    let first = out
        .lines()
        .find(|l| l.starts_with("dedup: "))
        .ok_or_else(|| anyhow::anyhow!("no summary line in `yunmin dedup` output: {out}"))?;
    let removed = first
        .split(" removed")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no removed count in {first}"))?;
    let peak = out
        .split("peak memory ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no peak memory in `yunmin dedup` output: {out}"))?;
    Ok((removed, peak))
}

/// `yunmin bench dedup`.
pub fn run_bench_dedup(b: BenchDedupArgs) -> anyhow::Result<()> {
    use yunmin_core::ingest::Document;
    let exe = std::env::current_exe()?;
    let peers: Vec<&str> = b.peers.split(',').filter(|p| !p.is_empty()).collect();
    for p in &peers {
        if !["datasketch", "rensa"].contains(p) {
            anyhow::bail!("--peers: unknown peer `{p}` (expected datasketch, rensa)");
        }
    }
    let py = if peers.is_empty() {
        None
    } else {
        Some(python(&b.python)?)
    };
    let all = sample_corpora(&b.corpora, None)?;
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
    let script = crate_root().join("scripts/bench/dedup_peers.py");
    let mut rows: Vec<MixRow> = Vec::new();
    for (mix, docs) in &mixes {
        let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
        let dir = b.work.join(format!("mix_{mix}"));
        let _ = std::fs::remove_dir_all(&dir);
        let jsonl = dir.join("docs.jsonl");
        std::fs::create_dir_all(&dir)?;
        write_jsonl(&jsonl, docs)?;
        let mut w = yunmin_core::ingest::DatasetWriter::create(dir.join("input"), 1_000_000)?;
        for d in docs {
            w.write(d)?;
        }
        w.finish()?;
        let row =
            |tool: &str, threads: usize, inp: f64, start: f64, removed: usize, peak: f64| MixRow {
                mix: mix.to_string(),
                tool: tool.into(),
                docs: docs.len(),
                bytes,
                threads,
                in_process_s: inp,
                with_start_s: start,
                removed,
                peak_mib: peak,
            };
        // yunmin in process, one thread: signing alone, and the whole dedup.
        let cfg = DedupConfig::default();
        let r = yunmin_core::dedup::bench::bench(docs, &cfg, 1, None)?;
        let sign = r.iter().find(|x| x.task == "shingles+signatures");
        let whole = r.iter().find(|x| x.task == "dedup");
        if let (Some(s), Some(wh)) = (sign, whole) {
            rows.push(row("yunmin-sign", 1, s.seconds, f64::NAN, 0, f64::NAN));
            // yunmin as a process, one thread: reading, dedup and writing every output.
            let out = dir.join("run");
            let _ = std::fs::remove_dir_all(&out);
            let (stdout, secs) = timed(
                std::process::Command::new(&exe)
                    .args(["dedup", "--threads", "1", "--input"])
                    .arg(dir.join("input"))
                    .arg("--out")
                    .arg(&out),
            )?;
            let (removed, peak) = parse_dedup_stdout(&stdout)?;
            rows.push(row("yunmin", 1, wh.seconds, secs, removed, peak));
        }
        for p in &peers {
            let (stdout, secs) = timed(
                std::process::Command::new(py.as_ref().expect("python"))
                    .arg(&script)
                    .args(["--tool", p, "--input"])
                    .arg(&jsonl),
            )?;
            let v: serde_json::Value = serde_json::from_str(
                stdout
                    .lines()
                    .last()
                    .ok_or_else(|| anyhow::anyhow!("{p}: no output"))?,
            )?;
            rows.push(row(
                p,
                1,
                v["seconds"].as_f64().unwrap_or(f64::NAN),
                secs,
                v["removed"].as_u64().unwrap_or(0) as usize,
                f64::NAN,
            ));
        }
    }
    if b.full {
        let input = b.work.join("corpora_input");
        let ds = match Dataset::open(&input) {
            Ok(ds) if ds.count().ok() == Some(all.len() as u64) => ds,
            _ => {
                let _ = std::fs::remove_dir_all(&input);
                let mut w = yunmin_core::ingest::DatasetWriter::create(&input, 50_000)?;
                for d in &all {
                    w.write(d)?;
                }
                w.finish()?
            }
        };
        drop(ds);
        let bytes: usize = all.iter().map(|d| d.text.len()).sum();
        let n = all.len();
        drop(all);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let out = b.work.join("corpora_run");
        let _ = std::fs::remove_dir_all(&out);
        let (stdout, secs) = timed(
            std::process::Command::new(&exe)
                .args(["dedup", "--input"])
                .arg(&input)
                .arg("--out")
                .arg(&out),
        )?;
        let (removed, peak) = parse_dedup_stdout(&stdout)?;
        print!("{stdout}");
        rows.push(MixRow {
            mix: "all_corpora".into(),
            tool: "yunmin".into(),
            docs: n,
            bytes,
            threads,
            in_process_s: f64::NAN,
            with_start_s: secs,
            removed,
            peak_mib: peak,
        });
    }
    let mut csv = String::from(
        "mix,tool,docs,mb,threads,seconds,seconds_with_start,mb_per_s,removed,peak_mib,\
         x_datasketch,x_rensa,x_datasketch_with_start,x_rensa_with_start\n",
    );
    for r in &rows {
        let peer = |t: &str, f: fn(&MixRow) -> f64| {
            rows.iter()
                .find(|p| p.tool == t && p.mix == r.mix)
                .map(|p| f(p) / f(r))
                .unwrap_or(f64::NAN)
        };
        let mb = r.bytes as f64 / 1e6;
        let line = format!(
            "{},{},{},{:.2},{},{:.3},{:.3},{:.1},{},{:.0},{:.1},{:.1},{:.1},{:.1}",
            r.mix,
            r.tool,
            r.docs,
            mb,
            r.threads,
            r.in_process_s,
            r.with_start_s,
            mb / r.in_process_s,
            r.removed,
            r.peak_mib,
            peer("datasketch", |p| p.in_process_s),
            peer("rensa", |p| p.in_process_s),
            peer("datasketch", |p| p.with_start_s),
            peer("rensa", |p| p.with_start_s),
        );
        println!("{line}");
        csv.push_str(&line);
        csv.push('\n');
    }
    yunmin_core::run::write_atomic(&b.csv, csv.as_bytes())?;
    println!("wrote {}", b.csv.display());
    Ok(())
}
