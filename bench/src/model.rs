//! `yunmin bench train`, `bench eval` and `bench generate`: yunmin against PyTorch +
//! transformers (+ PEFT) (`scripts/bench/model_peft.py`) on the same Hugging Face checkpoint,
//! tokens and settings, in alternating rounds, on each thread count; tokens/s, peak RSS and the
//! ratio to CSV. `--shape reference` benchmarks the reference run's base and `--shape 135m` a
//! 135M-class checkpoint (30 layers, hidden 576, 9/3 heads) instead of the pipeline's small base.

use crate::peer;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// LoRA training steps.
    Train,
    /// The perplexity forward.
    Eval,
    /// Greedy generation with the KV cache.
    Generate,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Train => "train",
            Mode::Eval => "eval",
            Mode::Generate => "generate",
        }
    }
}

/// Arguments of `yunmin bench train` / `bench eval` / `bench generate`.
#[derive(Debug, clap::Args)]
pub struct BenchModelArgs {
    /// Hugging Face checkpoint directory (default: a random-init checkpoint of --shape written by
    /// transformers into --work).
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Shape of the random-init checkpoint: `pipeline` (the pipeline's base: 4 layers, hidden
    /// 128, 4/2 heads, SwiGLU 384, vocabulary 1,900), `reference` (the reference run's base,
    /// `scripts/run_pipeline.sh --reference`: 4 layers, hidden 192, 6/2 heads, SwiGLU 512,
    /// vocabulary 4,000) or `135m` (30 layers, hidden 576, 9/3 heads, SwiGLU 1,536, vocabulary
    /// 49,152, tied embeddings: 135M parameters). Default `pipeline`; with --base it is an
    /// error (the checkpoint is the one given).
    #[arg(long, value_parser = ["pipeline", "reference", "135m"])]
    pub shape: Option<String>,
    /// Token file (JSONL id arrays; default: seeded random documents written into --work).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// Working directory.
    #[arg(long, default_value = "runs/bench_model")]
    pub work: PathBuf,
    /// Alternating rounds (each runs every tool on every thread count).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Thread counts (comma-separated).
    #[arg(long, default_value = "1,2")]
    pub threads: String,
    /// Training steps per run (train only; default 30).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Windows scored per run (eval; default 600), or the windows the prompts start
    /// (generate). Not for train.
    #[arg(long)]
    pub windows: Option<usize>,
    /// Windows per batch (default 8 for train, 16 for eval; not for generate).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Tokens per window.
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    /// LoRA rank (train only; default 8; alpha is twice the rank, dropout 0.05, all seven
    /// projections).
    #[arg(long)]
    pub rank: Option<usize>,
    /// Prompts continued, each the start of a window (generate only; default 8).
    #[arg(long)]
    pub prompts: Option<usize>,
    /// Tokens per prompt (generate only; default 32).
    #[arg(long)]
    pub prompt_len: Option<usize>,
    /// New tokens per prompt (generate only; default 64; EOS does not stop either side, so
    /// both make this many).
    #[arg(long)]
    pub new_tokens: Option<usize>,
    /// Python with torch, transformers and peft (default: $YUNMIN_PYTHON, else .venv/bin/python).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// CSV to write (default: WORK/bench_<mode>.csv).
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// One CSV row.
#[derive(Serialize)]
struct CsvRow {
    mode: &'static str,
    /// `pipeline`, `reference`, `135m` (generated) or the --base directory.
    checkpoint: String,
    round: usize,
    tool: &'static str,
    threads: usize,
    /// Windows per batch; generate: 1 (one prompt at a time on both sides).
    batch: usize,
    /// Tokens per window; generate: prompt plus new tokens.
    seq_len: usize,
    tokens_per_s: f64,
    peak_rss_mib: f64,
    ratio_to_pytorch: f64,
    /// Generate: how far the two sides' greedy tokens agree.
    note: String,
    /// The CPU both sides ran on ([`peer::cpu`]).
    cpu: String,
}

/// One measured run.
struct Row {
    round: usize,
    tool: &'static str,
    threads: usize,
    tokens_per_s: f64,
    peak_mib: f64,
    note: String,
}

fn parse_threads(s: &str) -> anyhow::Result<Vec<usize>> {
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| anyhow::anyhow!("--threads: `{x}` is not a positive integer"))
        })
        .collect()
}

/// How far greedy continuations agree: prompts with identical outputs, and the tokens before
/// the first difference (random weights leave near-ties that float order may flip; an error
/// when a side made the wrong number of tokens).
fn agree(ours: &[Vec<u32>], theirs: &[Vec<u32>], n: usize) -> anyhow::Result<String> {
    if ours.len() != theirs.len() || ours.iter().chain(theirs).any(|o| o.len() != n) {
        anyhow::bail!(
            "generate: expected {} prompts × {n} new tokens on both sides, got {:?} and {:?}",
            ours.len(),
            ours.iter().map(Vec::len).collect::<Vec<_>>(),
            theirs.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }
    let same = ours.iter().zip(theirs).filter(|(a, b)| a == b).count();
    let prefix: usize = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| a.iter().zip(b).take_while(|(x, y)| x == y).count())
        .sum();
    Ok(format!(
        "same output for {same}/{} prompts, {prefix}/{} tokens before the first difference",
        ours.len(),
        ours.len() * n
    ))
}

/// Tokens/s of the last row of a training log (`step,loss,lr,tokens_per_s,…`).
fn log_tokens_per_s(log: &Path) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(log)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", log.display()))?;
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    last.split(',')
        .nth(3)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{}: no tokens_per_s in `{last}`", log.display()))
}

/// The mode-specific settings: a flag given to a mode that does not read it is an error naming
/// it; the others take their defaults.
struct Settings {
    steps: usize,
    windows: usize,
    batch: usize,
    rank: usize,
    prompts: usize,
    prompt_len: usize,
    new_tokens: usize,
}

impl Settings {
    fn of(a: &BenchModelArgs, m: Mode) -> anyhow::Result<Self> {
        use Mode::{Eval, Generate, Train};
        let flags: [(&str, bool, &[Mode]); 7] = [
            ("--steps", a.steps.is_some(), &[Train]),
            ("--windows", a.windows.is_some(), &[Eval, Generate]),
            ("--batch", a.batch.is_some(), &[Train, Eval]),
            ("--rank", a.rank.is_some(), &[Train]),
            ("--prompts", a.prompts.is_some(), &[Generate]),
            ("--prompt-len", a.prompt_len.is_some(), &[Generate]),
            ("--new-tokens", a.new_tokens.is_some(), &[Generate]),
        ];
        let unused: Vec<&str> = flags
            .iter()
            .filter(|(_, given, modes)| *given && !modes.contains(&m))
            .map(|(flag, ..)| *flag)
            .collect();
        if !unused.is_empty() {
            anyhow::bail!(
                "bench {}: {} would be unused in this mode",
                m.name(),
                unused.join(", ")
            );
        }
        Ok(Self {
            steps: a.steps.unwrap_or(30),
            windows: a.windows.unwrap_or(600),
            batch: a.batch.unwrap_or(if m == Train { 8 } else { 16 }),
            rank: a.rank.unwrap_or(8),
            prompts: a.prompts.unwrap_or(8),
            prompt_len: a.prompt_len.unwrap_or(32),
            new_tokens: a.new_tokens.unwrap_or(64),
        })
    }
}

/// Runs `yunmin bench train`, `bench eval` or `bench generate`.
pub fn run(a: BenchModelArgs, m: Mode) -> anyhow::Result<()> {
    let (mode, train) = (m.name(), m == Mode::Train);
    let st = Settings::of(&a, m)?;
    let threads = parse_threads(&a.threads)?;
    if a.rounds == 0 {
        anyhow::bail!("--rounds must be > 0");
    }
    let py = peer::python(a.python.as_deref(), "models")?;
    let script = peer::script("model_peft.py")?;
    std::fs::create_dir_all(&a.work)?;
    let work = a.work.canonicalize()?;
    let base = match &a.base {
        Some(b) => b.clone(),
        None => work.join("base"),
    };
    let tokens = match &a.tokens {
        Some(t) => t.clone(),
        None => work.join("tokens.jsonl"),
    };
    // The generated tokens are drawn for the generated checkpoint's vocabulary: both are
    // generated, or both given (generating one beside a given other would overwrite a given
    // checkpoint or mismatch its vocabulary).
    let checkpoint = match (&a.base, &a.tokens, &a.shape) {
        (Some(b), Some(_), None) => b.display().to_string(),
        (None, None, shape) => shape.clone().unwrap_or_else(|| "pipeline".into()),
        (Some(_), Some(_), Some(_)) => anyhow::bail!(
            "--shape chooses the generated checkpoint; with --base it would be unused"
        ),
        _ => anyhow::bail!(
            "--base and --tokens go together (the generated tokens are drawn for the generated \
             checkpoint's vocabulary): give both, or neither for a generated pair"
        ),
    };
    if a.base.is_none() {
        let mut c = std::process::Command::new(&py);
        c.arg(&script)
            .args(["--mode", "init", "--shape", &checkpoint, "--base"])
            .arg(&base)
            .arg("--tokens")
            .arg(&tokens);
        peer::run(&mut c)?;
    }
    let exe = peer::yunmin()?;
    let cpu = peer::cpu();
    println!("{mode} on {cpu}");
    let mut rows: Vec<Row> = Vec::new();
    let (windows, eval_model) = if train {
        (Vec::new(), None)
    } else {
        let lm = yunmin_core::model::LoadedModel::load_as(&base, &Default::default())?;
        let eos = lm.config.first_eos().unwrap_or(0);
        let docs = yunmin_core::train::read_token_file(&tokens)?;
        let mut ids: Vec<u32> = Vec::new();
        for d in docs {
            ids.extend(d);
            ids.push(eos);
        }
        let w: Vec<Vec<u32>> = ids
            .chunks_exact(a.seq_len + 1)
            .take(st.windows)
            .map(<[u32]>::to_vec)
            .collect();
        (w, Some(lm))
    };
    let prompts: Vec<Vec<u32>> = windows
        .iter()
        .take(st.prompts)
        .map(|w| w[..st.prompt_len.min(w.len())].to_vec())
        .collect();
    if m == Mode::Generate && (prompts.len() < st.prompts || st.prompt_len > a.seq_len) {
        anyhow::bail!(
            "--prompts {} of --prompt-len {}: the tokens give {} windows of --seq-len {}",
            st.prompts,
            st.prompt_len,
            windows.len(),
            a.seq_len
        );
    }
    for round in 1..=a.rounds {
        for &t in &threads {
            let mut generated: Vec<Vec<u32>> = Vec::new();
            // yunmin
            let (tps, peak) = if train {
                let root = work.join(format!("yunmin_t{t}"));
                let _ = std::fs::remove_dir_all(&root);
                std::fs::create_dir_all(&root)?;
                let cfg = root.join("config.json");
                std::fs::write(
                    &cfg,
                    serde_json::json!({"eval_windows": 8, "checkpoint_every": 0, "resume": false,
                        "rank": st.rank, "alpha": 2 * st.rank, "warmup_steps": 10})
                    .to_string(),
                )?;
                let mut c = std::process::Command::new(&exe);
                c.env("RAYON_NUM_THREADS", t.to_string())
                    .args(["-q", "train", "lora", "--base"])
                    .arg(&base)
                    .arg("--tokens")
                    .arg(&tokens)
                    .args(["--domain", "bench", "--out"])
                    .arg(&root)
                    .arg("--config")
                    .arg(&cfg)
                    .args([
                        "--steps",
                        &st.steps.to_string(),
                        "--batch",
                        &st.batch.to_string(),
                        "--seq-len",
                        &a.seq_len.to_string(),
                    ]);
                let f = peer::run(&mut c)?;
                (
                    log_tokens_per_s(&root.join("logs/train_bench.log"))?,
                    f.peak_mib,
                )
            } else if m == Mode::Generate {
                let lm = eval_model.as_ref().expect("model");
                let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build()?;
                let cfg = yunmin_core::model::GenerateConfig {
                    max_new_tokens: st.new_tokens,
                    // No token stops it: both sides make exactly --new-tokens.
                    eos_token_id: Some(u32::MAX),
                    ..Default::default()
                };
                let t0 = Instant::now();
                let outs = pool.install(|| {
                    prompts
                        .iter()
                        .map(|p| yunmin_core::model::generate(&lm.model, p, &cfg, &[]))
                        .collect::<yunmin_core::Result<Vec<_>>>()
                })?;
                let secs = t0.elapsed().as_secs_f64();
                let made: usize = outs.iter().map(Vec::len).sum();
                generated = outs;
                (made as f64 / secs, f64::NAN)
            } else {
                let lm = eval_model.as_ref().expect("eval model");
                let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build()?;
                let t0 = Instant::now();
                let s = pool.install(|| lm.model.nll(&windows, st.batch))?;
                let secs = t0.elapsed().as_secs_f64();
                // In process: the bench's own peak memory is no measure of this pass.
                (s.count as f64 / secs, f64::NAN)
            };
            rows.push(Row {
                round,
                tool: "yunmin",
                threads: t,
                tokens_per_s: tps,
                peak_mib: peak,
                note: String::new(),
            });
            // peer
            let mut c = std::process::Command::new(&py);
            c.arg(&script)
                .args(["--mode", mode, "--base"])
                .arg(&base)
                .arg("--tokens")
                .arg(&tokens)
                .args([
                    "--threads",
                    &t.to_string(),
                    "--steps",
                    &st.steps.to_string(),
                    "--windows",
                    &st.windows.to_string(),
                    "--batch",
                    &st.batch.to_string(),
                    "--seq-len",
                    &a.seq_len.to_string(),
                    "--rank",
                    &st.rank.to_string(),
                    "--alpha",
                    &(2 * st.rank).to_string(),
                    "--prompts",
                    &st.prompts.to_string(),
                    "--prompt-len",
                    &st.prompt_len.to_string(),
                    "--new-tokens",
                    &st.new_tokens.to_string(),
                ]);
            let f = peer::run(&mut c)?;
            let (j, peak) = (f.json()?, f.peak_mib);
            let note = if m == Mode::Generate {
                let theirs: Vec<Vec<u32>> = serde_json::from_value(j["outputs"].clone())
                    .map_err(|e| anyhow::anyhow!("peer JSON without outputs: {e}"))?;
                agree(&generated, &theirs, st.new_tokens)?
            } else {
                String::new()
            };
            let tps = j["tokens_per_s"]
                .as_f64()
                .ok_or_else(|| anyhow::anyhow!("peer JSON without tokens_per_s: {j}"))?;
            rows.push(Row {
                round,
                tool: "pytorch",
                threads: t,
                tokens_per_s: tps,
                peak_mib: peak,
                note,
            });
            let last = &rows[rows.len() - 2..];
            println!(
                "{mode} round {round}, {t} thread(s): yunmin {:.0} tokens/s, PyTorch {:.0} tokens/s, ratio {:.2}{}",
                last[0].tokens_per_s,
                last[1].tokens_per_s,
                last[0].tokens_per_s / last[1].tokens_per_s,
                if last[1].note.is_empty() {
                    String::new()
                } else {
                    format!("; {}", last[1].note)
                }
            );
        }
    }
    let csv = a
        .csv
        .clone()
        .unwrap_or_else(|| work.join(format!("bench_{mode}.csv")));
    let out: Vec<CsvRow> = rows
        .iter()
        .map(|r| {
            let peer = rows
                .iter()
                .find(|p| p.round == r.round && p.threads == r.threads && p.tool == "pytorch")
                .map_or(f64::NAN, |p| p.tokens_per_s);
            CsvRow {
                mode,
                checkpoint: checkpoint.clone(),
                round: r.round,
                tool: r.tool,
                threads: r.threads,
                batch: if m == Mode::Generate { 1 } else { st.batch },
                seq_len: if m == Mode::Generate {
                    st.prompt_len + st.new_tokens
                } else {
                    a.seq_len
                },
                tokens_per_s: peer::round(r.tokens_per_s, 1),
                peak_rss_mib: peer::round(r.peak_mib, 1),
                ratio_to_pytorch: peer::round(r.tokens_per_s / peer, 3),
                note: r.note.clone(),
                cpu: cpu.clone(),
            }
        })
        .collect();
    peer::write_csv(&csv, &out)
}
