//! Per-domain LoRA fine-tuning on a frozen base; adapters in PEFT's layout.

use super::data::{TokenCorpus, split_windows};
use super::log::{SummaryRow, TrainLog, upsert_summary};
use super::pretrain::check_name;
use super::trainer::{LoopIo, LoopStats, OptimConfig, run_loop};
use crate::model::{AdapterConfig, LoadedModel, NllSum, parse_device, save_adapter};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The projections LoRA adapts by default: attention and MLP.
pub const DEFAULT_TARGETS: [&str; 7] = crate::model::PROJECTIONS;

/// LoRA settings. Paths are relative to the run root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoraConfig {
    /// Rank r (default 8).
    pub rank: usize,
    /// lora_alpha; scaling = alpha / r (default 16).
    pub alpha: f64,
    /// Dropout on the adapter input during training (default 0.05).
    pub dropout: f64,
    /// Projections to adapt (default all attention and MLP projections).
    pub targets: Vec<String>,
    /// Tokens per training window (default 128).
    pub seq_len: usize,
    /// Fraction of windows held out (default 0.1).
    pub heldout: f64,
    /// Seed of the adapter init, dropout, split and batch order (default 42).
    pub seed: u64,
    /// Device name (default `cpu`).
    pub device: String,
    /// Adapter directory (default `models/lora_<domain>`).
    pub model_dir: Option<PathBuf>,
    /// Continue from `<model_dir>.resume/` when present (default true).
    pub resume: bool,
    /// Optimiser settings (LoRA defaults: 100 steps, batch 8, lr 1e-3, warmup 10, no weight
    /// decay, clip 1.0, one evaluation at the end on all held-out windows, a log row every 5 steps,
    /// a checkpoint every 25).
    #[serde(flatten)]
    pub optim: OptimConfig,
}

/// `lora`'s own options (before the optimiser's).
const LORA_OWN: [crate::config::OptionDoc; 10] = {
    use crate::config::opt;
    [
        opt("rank", "LoRA rank r"),
        opt("alpha", "lora_alpha; scaling = alpha / rank"),
        opt("dropout", "dropout on the adapter input during training"),
        opt("targets", "projections to adapt"),
        opt("seq_len", "tokens per training window"),
        opt("heldout", "fraction of windows held out"),
        opt(
            "seed",
            "seed of the adapter init, dropout, split and batch order (Rhai: the run's seed)",
        ),
        opt(
            "device",
            "cpu, flex, ndarray (wgpu / cuda with those features)",
        ),
        opt(
            "model_dir",
            "adapter directory, relative to the run root (none: models/lora_<domain>)",
        ),
        opt("resume", "continue from <model_dir>.resume/ when present"),
    ]
};

impl crate::config::Primitive for LoraConfig {
    const NAME: &'static str = "lora";
    const OPTIONS: &'static [crate::config::OptionDoc] =
        &crate::config::joined::<{ LORA_OWN.len() + super::trainer::OPTIM_OPTIONS.len() }>(
            &LORA_OWN,
            &super::trainer::OPTIM_OPTIONS,
        );
}

impl LoraConfig {
    /// The adapter directory for `domain`, relative to the run root: `model_dir`, else
    /// `models/lora_<domain>`.
    pub fn dir_for(&self, domain: &str) -> PathBuf {
        self.model_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("models/lora_{domain}")))
    }
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: DEFAULT_TARGETS.iter().map(|s| s.to_string()).collect(),
            seq_len: 128,
            heldout: 0.1,
            seed: 42,
            device: "cpu".into(),
            model_dir: None,
            resume: true,
            optim: OptimConfig {
                steps: 100,
                batch: 8,
                grad_accum: 1,
                lr: 1e-3,
                min_lr_ratio: 0.1,
                warmup_steps: 10,
                weight_decay: 0.0,
                grad_clip: 1.0,
                eval_every: 0,
                eval_windows: 256,
                log_every: 5,
                checkpoint_every: 25,
            },
        }
    }
}

/// What LoRA training produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoraResult {
    /// The domain.
    pub domain: String,
    /// The adapter directory.
    pub dir: PathBuf,
    /// Loop statistics.
    pub stats: LoopStats,
    /// Held-out NLL of the base model on the same windows.
    pub base_heldout: NllSum,
    /// Trainable parameters (adapter factors).
    pub trainable_params: usize,
    /// The adapter config written.
    pub adapter: AdapterConfig,
}

/// Trains a LoRA adapter for `corpus.name` on the frozen `base` and writes
/// `models/lora_<domain>/` (PEFT layout), `logs/train_<domain>.log` and a `summary.csv` row
/// under `root`. The base model is not modified.
pub fn train_lora(
    base: &LoadedModel,
    corpus: &TokenCorpus,
    cfg: &LoraConfig,
    root: &Path,
) -> Result<LoraResult> {
    check_name(&corpus.name)?;
    let domain = corpus.name.clone();
    let split = split_windows(
        corpus,
        cfg.seq_len,
        base.config.first_eos(),
        cfg.heldout,
        cfg.optim.batch,
        cfg.seed,
    )?;
    if cfg.seq_len > base.config.max_position_embeddings {
        tracing::warn!(
            "seq_len {} exceeds max_position_embeddings {}",
            cfg.seq_len,
            base.config.max_position_embeddings
        );
    }
    let device = parse_device(&cfg.device)?;
    device.seed(cfg.seed);
    let ad = device.clone().autodiff();
    let model = base.rebuild_on(&ad, false)?.attach_lora(
        cfg.rank,
        cfg.alpha,
        cfg.dropout,
        &cfg.targets,
        cfg.seed,
    )?;
    let trainable_params: usize = crate::model::adapter_factors(&model)
        .values()
        .map(|f| f.a.data.len() + f.b.data.len())
        .sum();
    let eval_n = if cfg.optim.eval_windows == 0 {
        split.heldout.len()
    } else {
        cfg.optim.eval_windows.min(split.heldout.len())
    };
    let base_heldout = base.model.nll(&split.heldout[..eval_n], cfg.optim.batch)?;
    let rel_out = cfg.dir_for(&domain);
    let out = root.join(&rel_out);
    let ckpt = out.with_file_name(format!(
        "{}.resume",
        out.file_name()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default()
    ));
    if !cfg.resume && ckpt.exists() {
        std::fs::remove_dir_all(&ckpt).map_err(|e| Error::io("remove", &ckpt, e))?;
    }
    let base_fingerprint = crate::model::hf_tensors(&base.model, &base.config)
        .iter()
        .take(3)
        .map(|(n, _, d)| format!("{n}:{:?}", &d[..d.len().min(8)]))
        .collect::<Vec<_>>()
        .join(";");
    let settings = crate::run::hash_json(&serde_json::json!({
        "config": cfg, "base": base.config, "base_fp": base_fingerprint, "tokens": corpus.tokens(), "docs": corpus.docs.len(),
        "data": crate::run::hash_str(&format!("{:?}", split.train.iter().take(64).collect::<Vec<_>>())),
    }));
    let mut log = TrainLog::open(
        &root.join(format!("logs/train_{domain}.log")),
        cfg.resume && ckpt.exists(),
    )?;
    let what = format!("lora {domain}");
    let io = LoopIo {
        what: &what,
        log: &mut log,
        ckpt_dir: Some(ckpt.clone()),
        settings,
    };
    let (model, stats) = run_loop(model, &split, &cfg.optim, cfg.seed, &ad, io)?;
    let adapter = AdapterConfig::new(
        cfg.rank,
        cfg.alpha,
        cfg.dropout,
        &cfg.targets,
        base.dir.as_deref(),
    );
    let dir = save_adapter(&model, &adapter, &out)?;
    if ckpt.exists() {
        std::fs::remove_dir_all(&ckpt).map_err(|e| Error::io("remove", &ckpt, e))?;
    }
    upsert_summary(
        &root.join("summary.csv"),
        &SummaryRow {
            domain: domain.clone(),
            phase: "lora".into(),
            steps: stats.steps,
            tokens: stats.tokens,
            final_train_loss: stats.final_train_loss,
            heldout_loss: stats.heldout.mean(),
            heldout_ppl: stats.heldout.perplexity(),
            base_heldout_loss: base_heldout.mean(),
            base_heldout_ppl: base_heldout.perplexity(),
            wall_s: stats.wall_s,
            tokens_per_s: stats.tokens_per_s,
            output: rel_out.display().to_string(),
        },
    )?;
    Ok(LoraResult {
        domain,
        dir,
        stats,
        base_heldout,
        trainable_params,
        adapter,
    })
}
