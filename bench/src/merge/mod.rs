//! `yunmin bench merge`: diff and merge throughput and peak memory on a random ≥100M-parameter
//! checkpoint ([`synthetic`]) against the NumPy/safetensors reference
//! (`scripts/bench/merge_reference.py`), beside this machine's copy and write ceilings
//! ([`bandwidth`]), and the in-memory merge of a weight sweep.

pub mod bandwidth;
pub mod synthetic;

use crate::peer;
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use yunmin_core::merge::{DiffConfig, DiffSet, MergeConfig, Merger as CoreMerger, compute_diff};

/// `yunmin bench merge`: merge throughput and peak memory on a random checkpoint, against the
/// NumPy/safetensors reference script.
#[derive(Debug, Args)]
pub struct MergeBenchArgs {
    /// Working directory for the generated checkpoint, adapters, diffs and outputs (not committed).
    #[arg(long, default_value = "runs/bench_merge")]
    pub dir: PathBuf,
    /// Number of domain adapters.
    #[arg(long, default_value_t = 3)]
    pub domains: usize,
    /// LoRA rank of the adapters.
    #[arg(long, default_value_t = 16)]
    pub rank: usize,
    /// Decoder layers of the random checkpoint (12 → about 110M parameters with the defaults).
    #[arg(long, default_value_t = 12)]
    pub layers: usize,
    /// Hidden size.
    #[arg(long, default_value_t = 768)]
    pub hidden: usize,
    /// Repetitions of each timed merge (the best is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Documents per domain scored at the in-memory sweep point (merge, model, perplexity).
    #[arg(long, default_value_t = 30)]
    pub sweep_docs: usize,
    /// Tokens per scored document (seeded random ids; the checkpoint has no EOS, so 128 is one
    /// window of the evaluation's default length, 127 predicted tokens).
    #[arg(long, default_value_t = 128)]
    pub doc_tokens: usize,
    /// Python with numpy + safetensors for the peer (default: $YUNMIN_PYTHON, else .venv/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// CSV of results (default: DIR/merge_bench.csv).
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// One CSV row.
#[derive(Serialize)]
struct CsvRow {
    tool: String,
    operation: String,
    seconds: f64,
    gb_per_s: f64,
    peak_rss_mb: f64,
    params: usize,
}

/// Runs `yunmin bench merge`.
pub fn run(a: MergeBenchArgs) -> Result<()> {
    std::fs::create_dir_all(&a.dir)?;
    // Absolute: mergekit reads a relative model path as a Hub id first.
    let dir = a.dir.canonicalize()?;
    let shape = synthetic::SyntheticShape {
        layers: a.layers,
        hidden: a.hidden,
        ..Default::default()
    };
    let base = dir.join("base");
    let params = shape.num_params();
    let gb = params as f64 * 4.0 / 1e9;
    println!(
        "checkpoint: {params} parameters ({gb:.3} GB f32), {} adapters of rank {}",
        a.domains, a.rank
    );
    if !base.join("model.safetensors").exists() {
        let t = Instant::now();
        synthetic::write_checkpoint(&base, &shape, 1)?;
        println!("  generated base in {:.1}s", t.elapsed().as_secs_f64());
    }
    let mut rows: Vec<(String, String, f64, f64, f64)> = Vec::new();
    let mut diff_dirs = Vec::new();
    let mut diff_s = 0.0;
    for i in 0..a.domains {
        let name = format!("d{i}");
        let ad = dir.join(format!("lora_{name}"));
        if !ad.join("adapter_model.safetensors").exists() {
            synthetic::write_adapter(&ad, &shape, a.rank, 2.0 * a.rank as f64, 100 + i as u64)?;
        }
        let cfg = DiffConfig {
            domain: Some(name.clone()),
            diffs_dir: dir.join("diffs"),
            stats_dir: dir.join("diff_stats"),
        };
        let t = Instant::now();
        let out = compute_diff(&base, &ad, &cfg)?;
        let s = t.elapsed().as_secs_f64();
        diff_s += s;
        let dgb = out.diff.numel() as f64 * 4.0 / 1e9;
        println!(
            "  diff {name}: {:.3} GB of ΔW in {s:.2}s ({:.2} GB/s)",
            dgb,
            dgb / s
        );
        rows.push((
            "yunmin".into(),
            format!("diff_{name}"),
            s,
            dgb / s,
            f64::NAN,
        ));
        diff_dirs.push(out.diff.dir);
    }
    let bw = bandwidth::memcpy_bandwidth(512 << 20, 3);
    println!(
        "memcpy bandwidth (512 MiB): {:.2} GB/s one thread, {:.2} GB/s {} threads",
        bw.single_gbs, bw.parallel_gbs, bw.threads
    );
    rows.push((
        "memcpy".into(),
        "copy_1thread".into(),
        bw.bytes as f64 / 1e9 / bw.single_gbs,
        bw.single_gbs,
        f64::NAN,
    ));
    rows.push((
        "memcpy".into(),
        format!("copy_{}threads", bw.threads),
        bw.bytes as f64 / 1e9 / bw.parallel_gbs,
        bw.parallel_gbs,
        f64::NAN,
    ));

    let fw = bandwidth::file_write_bandwidth(&dir.join("write_probe.bin"), (gb * 1e9) as usize, 3)?;
    println!("file write ceiling ({gb:.3} GB, 4 MiB writes, one thread): {fw:.2} GB/s");
    rows.push((
        "write".into(),
        "file_write_1thread".into(),
        gb / fw,
        fw,
        f64::NAN,
    ));

    let weights: Vec<String> = (0..a.domains)
        .map(|i| format!("{:.2}", 1.0 / (i as f64 + 2.0)))
        .collect();
    let diffs_arg = diff_dirs
        .iter()
        .map(|d| d.to_string_lossy().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let exe = peer::yunmin()?;
    let mut best =
        |label: &str, op: &str, mk: &dyn Fn() -> std::process::Command| -> Result<(f64, f64)> {
            let mut t = f64::MAX;
            let mut rss: f64 = 0.0;
            for _ in 0..a.reps.max(1) {
                let r = peer::run(&mut mk())?;
                t = t.min(r.seconds);
                rss = rss.max(r.peak_mib);
            }
            println!(
                "  {label}: {t:.3}s, {:.2} GB/s written, peak RSS {rss:.0} MB",
                gb / t
            );
            rows.push((label.into(), op.into(), t, gb / t, rss));
            Ok((t, rss))
        };
    let ours_out = dir.join("merged_yunmin");
    let (ours_t, _) = best("yunmin", "merge_task_arithmetic", &|| {
        let mut c = std::process::Command::new(&exe);
        c.args(["-q", "merge", "--base"]).arg(&base).args([
            "--diffs",
            &diffs_arg,
            "--weights",
            &weights.join(","),
        ]);
        c.arg("--out")
            .arg(&dir)
            .args(["--model-dir", "merged_yunmin"]);
        c
    })?;
    let mut ratio = None;
    match yunmin_core::run::python(a.python.as_deref()) {
        Some(py) => {
            let script = peer::script("merge_reference.py")?;
            let peer_out = dir.join("merged_numpy");
            let (peer_t, _) = best("numpy_reference", "merge_task_arithmetic", &|| {
                let mut c = std::process::Command::new(&py);
                c.arg(&script)
                    .arg("--base")
                    .arg(&base)
                    .args(["--diffs"])
                    .args(&diff_dirs);
                c.args(["--weights", &weights.join(",")])
                    .arg("--out")
                    .arg(&peer_out);
                c
            })?;
            ratio = Some(peer_t / ours_t);
            let worst = worst_relative_l2(&ours_out, &peer_out)?;
            println!("  outputs agree: worst per-tensor relative L2 difference {worst:.2e}");
            // mergekit: the same result from the base and the adapters (it folds each adapter
            // into a whole model with PEFT first; its cache is emptied so each run does that).
            let mk = std::process::Command::new(&py)
                .args(["-c", "import mergekit"])
                .output()?;
            if mk.status.success() {
                let script = peer::script("merge_mergekit.py")?;
                let (mk_out, cache) = (dir.join("merged_mergekit"), dir.join("mergekit_cache"));
                let adapters: Vec<PathBuf> = (0..a.domains)
                    .map(|i| dir.join(format!("lora_d{i}")))
                    .collect();
                let (mk_t, _) = best("mergekit", "merge_task_arithmetic_from_adapters", &|| {
                    let _ = std::fs::remove_dir_all(&cache);
                    let mut c = std::process::Command::new(&py);
                    c.env("HF_HUB_OFFLINE", "1")
                        .arg(&script)
                        .arg("--base")
                        .arg(&base)
                        .arg("--adapters")
                        .args(&adapters)
                        .args(["--weights", &weights.join(",")])
                        .arg("--out")
                        .arg(&mk_out)
                        .arg("--cache")
                        .arg(&cache);
                    c
                })?;
                let worst = worst_relative_l2(&ours_out, &mk_out)?;
                println!(
                    "  yunmin vs mergekit: diff + merge {:.2}s vs {mk_t:.2}s ({:.1}× faster), merge \
                     alone {:.1}× faster; outputs agree: worst per-tensor relative L2 difference \
                     {worst:.2e} (mergekit)",
                    diff_s + ours_t,
                    mk_t / (diff_s + ours_t),
                    mk_t / ours_t
                );
            } else {
                println!(
                    "  (mergekit is not importable by {}: its row is skipped; \
                     pip install -r scripts/python-requirements/models.txt)",
                    py.display()
                );
            }
        }
        None => println!("  (no Python with numpy + safetensors: peer skipped; set YUNMIN_PYTHON)"),
    }

    // In-memory merge for sweeps: base loaded once, then one merge per grid point.
    let sets = diff_dirs
        .iter()
        .map(|d| DiffSet::open(d))
        .collect::<yunmin_core::Result<Vec<_>>>()?;
    let t = Instant::now();
    let merger = CoreMerger::new(&base, sets)?;
    let load_s = t.elapsed().as_secs_f64();
    let w: Vec<f64> = weights.iter().map(|x| x.parse().unwrap_or(0.0)).collect();
    let mut out = merger.merge(&MergeConfig {
        weights: w.clone(),
        ..Default::default()
    })?;
    let n_points = 5;
    let t = Instant::now();
    for k in 0..n_points {
        let mut wk = w.clone();
        wk[0] += 0.1 * k as f64;
        merger.merge_into(
            &MergeConfig {
                weights: wk,
                ..Default::default()
            },
            &mut out,
        )?;
    }
    let per = t.elapsed().as_secs_f64() / n_points as f64;
    println!(
        "  in-memory: base load {load_s:.2}s once, then {per:.3}s per grid point (merge_into)"
    );
    let point = sweep_point(&merger, &w, &mut out, &shape, &a)?;
    rows.push((
        "yunmin".into(),
        "in_memory_load".into(),
        load_s,
        gb / load_s,
        f64::NAN,
    ));
    rows.push((
        "yunmin".into(),
        "in_memory_merge_point".into(),
        per,
        gb / per,
        f64::NAN,
    ));
    rows.push((
        "yunmin".into(),
        format!("in_memory_sweep_point_{}x{}docs", a.domains, a.sweep_docs),
        point,
        f64::NAN,
        f64::NAN,
    ));
    if let Some(r) = ratio {
        println!(
            "yunmin vs numpy reference: {r:.2}× faster; yunmin at {:.0}% of parallel memcpy, {:.0}% of \
             the file write ceiling; in-memory merge at {:.0}% of parallel memcpy",
            100.0 * (gb / ours_t) / bw.parallel_gbs,
            100.0 * (gb / ours_t) / fw,
            100.0 * (gb / per) / bw.parallel_gbs
        );
    }
    let csv = a.csv.clone().unwrap_or_else(|| dir.join("merge_bench.csv"));
    let out: Vec<CsvRow> = rows
        .into_iter()
        .map(|(tool, operation, s, g, rss)| CsvRow {
            tool,
            operation,
            seconds: peer::round(s, 4),
            gb_per_s: peer::round(g, 3),
            peak_rss_mb: peer::round(rss, 0),
            params,
        })
        .collect();
    peer::write_csv(&csv, &out)
}

/// One point of a weight sweep as the product runs it in memory: `merge_into` the weights, the
/// merged model built on the CPU, and its perplexity on `--sweep-docs` documents of each domain
/// (seeded random token ids of `--doc-tokens`). Returns the seconds of the whole point.
fn sweep_point(
    merger: &CoreMerger,
    w: &[f64],
    out: &mut yunmin_core::merge::MergedWeights,
    shape: &synthetic::SyntheticShape,
    a: &MergeBenchArgs,
) -> Result<f64> {
    use rand::{Rng, SeedableRng};
    use yunmin_core::eval::perplexity::PerplexityAccumulator;
    use yunmin_core::eval::runner::{EvalConfig, add_document_nll};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let docs: Vec<Vec<Vec<u32>>> = (0..a.domains)
        .map(|_| {
            (0..a.sweep_docs)
                .map(|_| {
                    (0..a.doc_tokens)
                        .map(|_| rng.random_range(0..shape.vocab as u32))
                        .collect()
                })
                .collect()
        })
        .collect();
    let mut wk = w.to_vec();
    wk[0] += 0.05;
    let t = Instant::now();
    merger.merge_into(
        &MergeConfig {
            weights: wk,
            ..Default::default()
        },
        out,
    )?;
    let merged_s = t.elapsed().as_secs_f64();
    let lm = out.to_model(&yunmin_core::model::parse_device("cpu")?)?;
    let built_s = t.elapsed().as_secs_f64();
    let cfg = EvalConfig::default();
    let mut acc = PerplexityAccumulator::new();
    for (i, d) in docs.iter().enumerate() {
        add_document_nll(
            &mut acc,
            &lm.model,
            &format!("d{i}"),
            d,
            lm.config.first_eos(),
            &cfg,
        )?;
    }
    let s = t.elapsed().as_secs_f64();
    let tokens = acc.overall().tokens();
    println!(
        "  in-memory sweep point: merge {merged_s:.2}s, model {:.2}s, perplexity of {} documents \
         ({tokens} tokens) {:.2}s ({:.0} tokens/s): {s:.2}s (perplexity {:.1})",
        built_s - merged_s,
        a.domains * a.sweep_docs,
        s - built_s,
        tokens as f64 / (s - built_s),
        acc.overall().perplexity()
    );
    Ok(s)
}

/// The worst per-tensor relative L2 difference between two checkpoints' tensors (those of `a`).
fn worst_relative_l2(a: &std::path::Path, b: &std::path::Path) -> Result<f64> {
    let a_ck = yunmin_core::merge::checkpoint::Checkpoint::open(a, "ours")?;
    let b_ck = yunmin_core::merge::checkpoint::Checkpoint::open(b, "peer")?;
    let mut worst = 0.0f64;
    for n in a_ck.names() {
        let (x, y) = (a_ck.f32(n)?, b_ck.f32(n)?);
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for (p, q) in x.as_slice().iter().zip(y.as_slice()) {
            num += ((p - q) as f64).powi(2);
            den += (*q as f64).powi(2);
        }
        worst = worst.max((num / den.max(1e-300)).sqrt());
    }
    Ok(worst)
}
