//! Rhai module `dedup` and the `yunmin dedup` subcommand: near-duplicate removal
//! (`yunmin_core::dedup`), its pieces for researchers and the planted evaluation.

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::primitive::from_rhai_subset;
use crate::state::Host;
use rhai::{Array, Dynamic, Map};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use yunmin_core::dedup::eval::{EvalConfig, EvalSet};
use yunmin_core::dedup::lsh::{self, LshIndex};
use yunmin_core::dedup::params::BandRows;
use yunmin_core::dedup::pipeline::{self, Found, Timings};
use yunmin_core::dedup::scheme::Scheme;
use yunmin_core::dedup::shingle;
use yunmin_core::dedup::signatures::Signatures;
use yunmin_core::dedup::staged::staged_with;
use yunmin_core::dedup::{DedupConfig, DedupSummary, Phase, Shard};
use yunmin_core::ingest::Dataset;
use yunmin_core::report::Table;
use yunmin_core::run::RunContext;

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

/// Rhai option keys of `shingles`: [`DedupConfig`]'s `shingles`.
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
    let root = host.ctx.root().to_path_buf();
    let (summary, _cached) = staged_with(&host.ctx, &ds.0, &cfg, || match engine {
        Engine::Local => pipeline::run(&ds.0, &root, &cfg),
        Engine::Ray { shards } => ray_dedup(&ds.0, &root, &cfg, shards),
    })
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
    // Settings not given stay those the signatures were made with.
    let cfg = from_rhai_subset("lsh_index", (*s.cfg).clone(), opts, LSH_INDEX_KEYS)?;
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
    // Settings not given stay those the index was built with.
    let mut cfg = from_rhai_subset("candidates", (*ix.cfg).clone(), opts, CANDIDATES_KEYS)?;
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
    let base = EvalConfig {
        seed,
        ..Default::default()
    };
    let mut cfg: EvalConfig = crate::primitive::from_rhai(base, opts)?;
    if cfg.corpora.is_relative() && !cfg.corpora.exists() {
        cfg.corpora = crate_root().join(&cfg.corpora);
    }
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
        &format!(
            "Removes near-duplicates (MinHash-LSH over hybrid Korean shingles) as the cached stage\n\
             `dedup`. Writes in the run root: the kept dataset (`kept`), `candidates.json`,\n\
             `clusters.jsonl`, `dedup_log.csv`, and reusable signatures under `dedup/signatures/`.\n\
             `engine` \"local\" | \"ray\" (the phases as Ray tasks on the cluster in RAY_ADDRESS\n\
             through scripts/ray/yunmin_ray.py, `shards` tasks per phase, default 4; needs a\n\
             redis:// index; same outputs). Options (defaults; `seed`: the run's):\n{}",
            yunmin_core::config::describe::<DedupConfig>()
        ),
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
        &format!(
            "Normalised text and shingle hashes of one text: `#{{normalized, jamo: [..], word: [..]}}`.\n\
             Options: shingles (default {:?}, as `minhash`'s).",
            DedupConfig::default().shingles
        ),
        |text: &str, opts: Map| {
            let cfg = from_rhai_subset("shingles", DedupConfig::default(), opts, SHINGLES_KEYS)?;
            let spec: shingle::ShingleSpec = parse(&cfg.shingles)?;
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
    let h = host.clone();
    api.func(
        "minhash",
        &["dataset", "opts"],
        "`minhash` on a dataset directory path.",
        move |ds: &str, opts: Map| {
            let d = open_dataset(&h, ds)?;
            signatures(&h, &d, opts)
        },
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

/// Arguments of `yunmin dedup`.
#[derive(Debug, clap::Args)]
pub struct DedupArgs {
    #[command(flatten)]
    pub inputs: super::ingest::DocInputs,
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
    /// Redo the dedup even when the run root holds its outputs for the same dataset content
    /// and options (phase `all` is the cached stage `dedup`, as in a script).
    #[arg(long)]
    pub force: bool,
}

fn cli_config(a: &DedupArgs) -> anyhow::Result<DedupConfig> {
    let mut cfg = a.opts.config(DedupConfig::default())?;
    cfg.phase = a.phase.parse()?;
    cfg.shard = a.shard.parse()?;
    Ok(cfg)
}

/// Runs `yunmin dedup …`.
pub fn run_cli(a: DedupArgs) -> anyhow::Result<()> {
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
    let ds = a.inputs.open(&out, cfg.seed)?;
    let mut cached = false;
    let mut go = || -> anyhow::Result<DedupSummary> {
        if cfg.phase != Phase::All {
            return Ok(pipeline::run(&ds, &out, &cfg)?);
        }
        let ctx = RunContext::new(&out, cfg.seed, a.force)?;
        let res = yunmin_core::dedup::staged::staged(&ctx, &ds, &cfg);
        ctx.finish(res.is_ok())?;
        let (s, hit) = res?;
        cached = hit;
        Ok(s)
    };
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
    let peak = yunmin_core::run::peak_rss_bytes(None).unwrap_or(0) as f64 / 1048576.0;
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
            if cached {
                println!("  (cached: dataset and options unchanged; --force reruns)");
            }
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
        endpoint_url: a.inputs.sources.endpoint_url.clone(),
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
        // Both absolute: the cached stage reports the kept directory under the absolute root.
        let (k, root) = (std::path::absolute(k)?, std::path::absolute(out)?);
        let rel = k.strip_prefix(&root).unwrap_or(&k).to_string_lossy();
        let key = if url.key.is_empty() || url.key.ends_with('/') {
            format!("{}{rel}", url.key)
        } else {
            format!("{}/{rel}", url.key)
        };
        n += store.upload_dir(&k, &url.with_key(key))?;
    }
    println!("uploaded {n} files to {dest}");
    Ok(())
}
