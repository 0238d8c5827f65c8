//! The training loop shared by pretraining and LoRA: AdamW, warmup + cosine schedule,
//! gradient accumulation, gradient clipping, held-out evaluation, logs and resumable checkpoints.

use super::TrainError;
use super::data::{BatchOrder, Split};
use super::log::TrainLog;
use super::schedule::lr_at;
use crate::model::{Device, HostLora, Llama, NllSum};
use crate::{Error, Result};
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Optimisation settings shared by pretraining and LoRA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OptimConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Windows per micro-batch.
    pub batch: usize,
    /// Micro-batches per optimizer step (gradient accumulation; the loss is averaged).
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of `lr` (cosine floor).
    pub min_lr_ratio: f64,
    /// Linear warmup steps.
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Clip each parameter's gradient to this L2 norm (burn's `GradientClipping::Norm`); 0: off.
    pub grad_clip: f64,
    /// Evaluate on held-out windows every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Held-out windows per evaluation (0: all).
    pub eval_windows: usize,
    /// Log a row every this many steps.
    pub log_every: usize,
    /// Write a resumable checkpoint every this many steps (0: never).
    pub checkpoint_every: usize,
}

impl Default for OptimConfig {
    /// 300 steps of batch 8, lr 3e-3 with 30 warmup steps, cosine to 10 %, weight decay 0.1,
    /// clip 1.0, evaluation every 100 steps on up to 64 windows, a log row every 10 steps and a
    /// checkpoint every 50.
    fn default() -> Self {
        Self {
            steps: 300,
            batch: 8,
            grad_accum: 1,
            lr: 3e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 30,
            weight_decay: 0.1,
            grad_clip: 1.0,
            eval_every: 100,
            eval_windows: 64,
            log_every: 10,
            checkpoint_every: 50,
        }
    }
}

/// The optimiser's options, part of both `pretrain`'s and `lora`'s (their defaults differ).
pub const OPTIM_OPTIONS: [crate::config::OptionDoc; 12] = {
    use crate::config::opt;
    [
        opt("steps", "optimizer steps"),
        opt("batch", "windows per micro-batch"),
        opt(
            "grad_accum",
            "micro-batches per optimizer step (gradient accumulation; the loss is averaged)",
        ),
        opt("lr", "peak learning rate"),
        opt(
            "min_lr_ratio",
            "final learning rate as a fraction of `lr` (cosine floor)",
        ),
        opt("warmup_steps", "linear warmup steps"),
        opt("weight_decay", "AdamW decoupled weight decay"),
        opt(
            "grad_clip",
            "clip each parameter's gradient to this L2 norm (0: off)",
        ),
        opt(
            "eval_every",
            "evaluate on held-out windows every this many steps (0: only at the end)",
        ),
        opt("eval_windows", "held-out windows per evaluation (0: all)"),
        opt("log_every", "log a row every this many steps"),
        opt(
            "checkpoint_every",
            "write a resumable checkpoint every this many steps (0: never)",
        ),
    ]
};

impl OptimConfig {
    /// Checks the settings; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::from(TrainError::Config(m.to_string())));
        if self.steps == 0 {
            return bad("steps must be > 0");
        }
        if self.batch == 0 || self.grad_accum == 0 {
            return bad("batch and grad_accum must be > 0");
        }
        if !self.lr.is_finite() || self.lr <= 0.0 {
            return bad("lr must be a positive number");
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return bad("min_lr_ratio must be in [0, 1]");
        }
        if self.weight_decay < 0.0 || self.grad_clip < 0.0 {
            return bad("weight_decay and grad_clip must be ≥ 0");
        }
        Ok(())
    }
}

/// A micro-batch is cut into this many shards of consecutive windows (fewer when it has fewer
/// windows), run in parallel. A constant, not the thread count, so that a seed gives the same
/// adapter on every machine.
const SHARDS: usize = 4;

/// What a finished loop reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoopStats {
    /// Optimizer steps done in total (including before a resume).
    pub steps: usize,
    /// Training tokens seen in total (inputs; targets are the same count).
    pub tokens: u64,
    /// Mean training loss over the last (up to) 10 steps.
    pub final_train_loss: f64,
    /// Held-out NLL at the end.
    pub heldout: NllSum,
    /// Wall time in seconds (summed over resumed sessions).
    pub wall_s: f64,
    /// Training tokens per second (this session).
    pub tokens_per_s: f64,
    /// The step a resumed run continued from.
    pub resumed_from: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ResumeState {
    settings: String,
    step: usize,
    tokens: u64,
    wall_s: f64,
    recent: Vec<f64>,
}

/// Where and under what name a loop runs.
pub(crate) struct LoopIo<'a> {
    /// Name in messages ("pretrain base", "lora news").
    pub what: &'a str,
    /// The training log.
    pub log: &'a mut TrainLog,
    /// Resumable checkpoint directory, if any.
    pub ckpt_dir: Option<PathBuf>,
    /// Hash of everything that must match for a resume.
    pub settings: String,
}

fn rec_err(path: &Path, e: impl std::fmt::Debug) -> Error {
    TrainError::Record {
        path: path.display().to_string(),
        msg: format!("{e:?}"),
    }
    .into()
}

fn eval(model: &Llama, heldout: &[Vec<u32>], o: &OptimConfig) -> Result<NllSum> {
    let n = if o.eval_windows == 0 {
        heldout.len()
    } else {
        o.eval_windows.min(heldout.len())
    };
    model.nll(&heldout[..n], o.batch)
}

/// Runs the loop on `model` (on an autodiff device), resuming from `io.ckpt_dir` when it holds a
/// checkpoint with the same settings. Returns the trained model and its statistics.
pub(crate) fn run_loop(
    mut model: Llama,
    split: &Split,
    o: &OptimConfig,
    seed: u64,
    device: &Device,
    io: LoopIo<'_>,
) -> Result<(Llama, LoopStats)> {
    o.validate()?;
    let mut adamw = AdamWConfig::new()
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(o.weight_decay as f32);
    if o.grad_clip > 0.0 {
        adamw = adamw.with_grad_clipping(Some(GradientClippingConfig::Norm(o.grad_clip as f32)));
    }
    let mut optim = adamw.init();
    let mut start = 0;
    let mut tokens: u64 = 0;
    let mut wall_before = 0.0;
    let mut recent: Vec<f64> = Vec::new();
    let mut resumed_from = None;
    if let Some(dir) = &io.ckpt_dir {
        let state_path = dir.join("state.json");
        if state_path.exists() {
            let text = std::fs::read_to_string(&state_path)
                .map_err(|e| Error::io("read", &state_path, e))?;
            let st: ResumeState = serde_json::from_str(&text).map_err(|e| Error::Json {
                path: state_path.clone(),
                source: e,
            })?;
            if st.settings != io.settings {
                return Err(TrainError::Resume {
                    path: dir.display().to_string(),
                    msg: "it was written with different data or settings; delete it or pass resume: false".into(),
                }
                .into());
            }
            let mp = dir.join("model.bpk");
            model = model.try_load_file(&mp).map_err(|e| rec_err(&mp, e))?;
            let op = dir.join("optim.bpk");
            optim = optim.load(&op).map_err(|e| rec_err(&op, e))?;
            start = st.step;
            tokens = st.tokens;
            wall_before = st.wall_s;
            recent = st.recent;
            resumed_from = Some(start);
            tracing::info!(
                "{}: resuming from step {start} ({})",
                io.what,
                dir.display()
            );
        }
    }
    // Adapters on a frozen base train on the host CPU (`model::host_train`): burn's graph
    // only for full training and GPU devices.
    let mut host = if crate::model::is_host_cpu(device) {
        HostLora::of(&model)?
    } else {
        None
    };
    let grad_device = device.clone().inner();
    let mut order = BatchOrder::new(split.train.len(), seed);
    let seq_len = split.train[0].len() - 1;
    let t0 = Instant::now();
    let mut session_tokens: u64 = 0;
    let pb = crate::run::progress_bar(o.steps as u64, io.what.to_string());
    pb.set_position(start as u64);
    let mut last_eval: Option<NllSum> = None;
    for step in start..o.steps {
        crate::run::check_cancelled()?;
        let lr = lr_at(step, o.steps, o.warmup_steps, o.lr, o.min_lr_ratio);
        if let Some(h) = host.as_mut() {
            h.load_adapters(&model)?;
        }
        let mut acc = GradientsAccumulator::<Llama>::new();
        let mut step_loss = 0.0;
        for m in 0..o.grad_accum {
            let base = (step * o.grad_accum + m) * o.batch;
            let wins: Vec<Vec<u32>> = (0..o.batch)
                .map(|k| split.train[order.index(base + k)].clone())
                .collect();
            let micro_seed = seed ^ ((step as u64) << 20) ^ m as u64 ^ 0xD0D0;
            let denom = o.batch * seq_len * o.grad_accum;
            let shards: Vec<&[Vec<u32>]> = wins.chunks(o.batch.div_ceil(SHARDS)).collect();
            // Each shard's forward and backward on its own thread; losses and gradients are
            // added in shard order, so the sum is the same on any number of threads.
            // Each shard works on a fork of the model (fresh autodiff leaves, same parameter
            // ids): burn's autodiff merges graphs that share leaves, and shared leaves across
            // threads deadlock it.
            let parts = crate::model::map_ordered(&shards, |s, shard| -> Result<_> {
                if let Some(h) = &host {
                    crate::model::seed_dropout(Some(micro_seed ^ ((s as u64) << 40)));
                    let res = h.shard_grads(&model, shard, denom);
                    crate::model::seed_dropout(None);
                    let got = res?;
                    let mut grads = GradientsParams::new();
                    for (id, shape, g) in got.grads {
                        let t = Tensor::<2>::from_data(TensorData::new(g, shape), &grad_device);
                        grads.register(id, t);
                    }
                    return Ok((got.loss, grads));
                }
                let local = if shards.len() > 1 {
                    model.clone().fork(device)
                } else {
                    model.clone()
                };
                crate::model::seed_dropout(Some(micro_seed ^ ((s as u64) << 40)));
                let res = local.shard_loss(shard, denom, device);
                crate::model::seed_dropout(None);
                let loss = res?;
                let v = loss.clone().into_scalar::<f32>() as f64;
                let grads = GradientsParams::from_grads(loss.backward(), &local);
                Ok((v, grads))
            });
            let mut micro_loss = 0.0;
            for part in parts {
                let (v, grads) = part?;
                micro_loss += v;
                acc.accumulate(&model, grads);
            }
            if !micro_loss.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    what: io.what.to_string(),
                    step: step + 1,
                    micro: m,
                    loss: micro_loss * o.grad_accum as f64,
                }
                .into());
            }
            step_loss += micro_loss;
        }
        model = optim.step(lr, model, acc.grads());
        let step_tokens = (o.batch * o.grad_accum * seq_len) as u64;
        tokens += step_tokens;
        session_tokens += step_tokens;
        recent.push(step_loss);
        if recent.len() > 10 {
            recent.remove(0);
        }
        let done = step + 1;
        let elapsed = t0.elapsed().as_secs_f64();
        let tps = session_tokens as f64 / elapsed.max(1e-9);
        let want_eval = done == o.steps || (o.eval_every > 0 && done % o.eval_every == 0);
        let ev = if want_eval {
            Some(eval(&model, &split.heldout, o)?)
        } else {
            None
        };
        if ev.is_some() {
            last_eval = ev;
        }
        if ev.is_some()
            || done == o.steps
            || o.log_every == 0
            || done % o.log_every.max(1) == 0
            || done == 1
        {
            io.log
                .row(done, step_loss, lr, tps, wall_before + elapsed, ev)?;
        }
        pb.set_position(done as u64);
        pb.set_message(format!("{} loss {step_loss:.4}", io.what));
        if let Some(dir) = &io.ckpt_dir
            && o.checkpoint_every > 0
            && done % o.checkpoint_every == 0
            && done < o.steps
        {
            let tmp = crate::run::AtomicDir::new(dir)?;
            std::fs::create_dir_all(tmp.path())
                .map_err(|e| Error::io("create directory", tmp.path(), e))?;
            let mp = tmp.path().join("model.bpk");
            model.clone().save_file(&mp).map_err(|e| rec_err(&mp, e))?;
            let op = tmp.path().join("optim.bpk");
            optim.save(&op).map_err(|e| rec_err(&op, e))?;
            let st = ResumeState {
                settings: io.settings.clone(),
                step: done,
                tokens,
                wall_s: wall_before + elapsed,
                recent: recent.clone(),
            };
            let sp = tmp.path().join("state.json");
            let text = serde_json::to_string_pretty(&st).map_err(|e| Error::Json {
                path: sp.clone(),
                source: e,
            })?;
            crate::run::write_atomic(&sp, text.as_bytes())?;
            tmp.commit()?;
        }
    }
    pb.finish_and_clear();
    let heldout = match last_eval {
        Some(e) => e,
        None => eval(&model, &split.heldout, o)?,
    };
    let elapsed = t0.elapsed().as_secs_f64();
    let stats = LoopStats {
        steps: o.steps,
        tokens,
        final_train_loss: if recent.is_empty() {
            f64::NAN
        } else {
            recent.iter().sum::<f64>() / recent.len() as f64
        },
        heldout,
        wall_s: wall_before + elapsed,
        tokens_per_s: session_tokens as f64 / elapsed.max(1e-9),
        resumed_from,
    };
    Ok((model, stats))
}
