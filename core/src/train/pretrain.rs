//! Pretraining a small Llama base from scratch on token sequences.

use super::TrainError;
use super::data::{TokenCorpus, split_windows};
use super::log::{SummaryRow, TrainLog, upsert_summary};
use super::trainer::{LoopIo, LoopStats, OptimConfig, run_loop};
use crate::model::{Llama, LlamaConfig, LoadedModel, parse_device};
use crate::{Error, Result};
use burn::module::Module;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Pretraining settings. Paths are relative to the run root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PretrainConfig {
    /// Name in logs and `summary.csv` (default `base`): the log is `logs/train_<name>.log`.
    pub name: String,
    /// Decoder layers (default 4).
    pub layers: usize,
    /// Model width (default 192).
    pub hidden: usize,
    /// Query heads (default 6).
    pub heads: usize,
    /// Key/value heads (default 2).
    pub kv_heads: usize,
    /// SwiGLU width (default 512).
    pub intermediate: usize,
    /// Vocabulary size (default: the tokenizer's, else the largest id + 1).
    pub vocab_size: Option<usize>,
    /// Tie the output head to the embeddings (default true).
    pub tie_embeddings: bool,
    /// Rotary base (default 10000).
    pub rope_theta: f64,
    /// End-of-sequence id appended to every document when packing (default: the tokenizer's
    /// `</s>` / `<|endoftext|>` / `<eos>` / `[EOS]` when found, else none).
    pub eos_token_id: Option<u32>,
    /// Beginning-of-sequence id recorded in `config.json` (default: the tokenizer's `<s>` / `[BOS]`).
    pub bos_token_id: Option<u32>,
    /// Tokens per training window (default 128).
    pub seq_len: usize,
    /// Fraction of windows held out for evaluation (default 0.05).
    pub heldout: f64,
    /// Seed of the initialisation, split and batch order (default 42).
    pub seed: u64,
    /// Device name (default `cpu`).
    pub device: String,
    /// Output checkpoint directory (default `models/base`).
    pub model_dir: PathBuf,
    /// `tokenizer.json` copied into the checkpoint (default none).
    pub tokenizer: Option<PathBuf>,
    /// Continue from the resumable checkpoint `<model_dir>.resume/` when present (default true).
    pub resume: bool,
    /// Optimiser settings.
    #[serde(flatten)]
    pub optim: OptimConfig,
}

/// `pretrain`'s own options (before the optimiser's).
const PRETRAIN_OWN: [crate::config::OptionDoc; 18] = {
    use crate::config::opt;
    [
        opt(
            "name",
            "name in logs and summary.csv (the log is logs/train_<name>.log)",
        ),
        opt("layers", "decoder layers"),
        opt("hidden", "model width (hidden size)"),
        opt("heads", "query heads"),
        opt("kv_heads", "key/value heads"),
        opt("intermediate", "SwiGLU width (intermediate size)"),
        opt(
            "vocab_size",
            "vocabulary size (none: the tokenizer's, else the largest id + 1)",
        ),
        opt("tie_embeddings", "tie the output head to the embeddings"),
        opt("rope_theta", "rotary base"),
        opt(
            "eos_token_id",
            "end-of-sequence id appended to every document (none: the tokenizer's eos token when found)",
        ),
        opt(
            "bos_token_id",
            "beginning-of-sequence id recorded in config.json (none: the tokenizer's bos token)",
        ),
        opt("seq_len", "tokens per training window"),
        opt("heldout", "fraction of windows held out for evaluation"),
        opt(
            "seed",
            "seed of the initialisation, split and batch order (Rhai: the run's seed)",
        ),
        opt(
            "device",
            "cpu, flex, ndarray (wgpu / cuda with those features)",
        ),
        opt(
            "model_dir",
            "checkpoint directory (relative to the run root)",
        ),
        opt("tokenizer", "tokenizer.json copied into the checkpoint"),
        opt(
            "resume",
            "continue from the resumable checkpoint <model_dir>.resume/ when present",
        ),
    ]
};

impl crate::config::Primitive for PretrainConfig {
    const NAME: &'static str = "pretrain";
    const OPTIONS: &'static [crate::config::OptionDoc] =
        &crate::config::joined::<{ PRETRAIN_OWN.len() + super::trainer::OPTIM_OPTIONS.len() }>(
            &PRETRAIN_OWN,
            &super::trainer::OPTIM_OPTIONS,
        );
    /// The command line's `--tokenizer` is also where `--dataset` is tokenised with.
    const CLI_OWN: &'static [&'static str] = &["tokenizer"];
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            name: "base".into(),
            layers: 4,
            hidden: 192,
            heads: 6,
            kv_heads: 2,
            intermediate: 512,
            vocab_size: None,
            tie_embeddings: true,
            rope_theta: 10000.0,
            eos_token_id: None,
            bos_token_id: None,
            seq_len: 128,
            heldout: 0.05,
            seed: 42,
            device: "cpu".into(),
            model_dir: PathBuf::from("models/base"),
            tokenizer: None,
            resume: true,
            optim: OptimConfig::default(),
        }
    }
}

/// What pretraining produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PretrainResult {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Loop statistics.
    pub stats: LoopStats,
    /// Held-out NLL of the untrained initialisation (for comparison).
    pub initial_heldout: crate::model::NllSum,
    /// Parameters.
    pub params: usize,
}

fn special(tok: &tokenizers::Tokenizer, names: &[&str]) -> Option<u32> {
    names.iter().find_map(|n| tok.token_to_id(n))
}

/// Checks that a name is usable in file names and CSV cells.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || "_-.".contains(c))
    {
        return Err(TrainError::Config(format!(
            "name `{name}`: use letters, digits, `_`, `-` or `.`"
        ))
        .into());
    }
    Ok(())
}

/// The `config.json` pretraining writes for `cfg` over `corpus`.
pub fn pretrain_model_config(
    corpus: &TokenCorpus,
    cfg: &PretrainConfig,
    root: &Path,
) -> Result<(LlamaConfig, Option<u32>)> {
    let (mut vocab, mut eos, mut bos) = (cfg.vocab_size, cfg.eos_token_id, cfg.bos_token_id);
    if let Some(t) = &cfg.tokenizer {
        let p = root.join(t);
        let tok = tokenizers::Tokenizer::from_file(&p).map_err(|e| TrainError::Input {
            path: p.display().to_string(),
            msg: e.to_string(),
        })?;
        vocab = vocab.or(Some(tok.get_vocab_size(true)));
        eos = eos.or_else(|| special(&tok, &["</s>", "<|endoftext|>", "<eos>", "[EOS]"]));
        bos = bos.or_else(|| special(&tok, &["<s>", "<|begin_of_text|>", "<bos>", "[BOS]"]));
    }
    let max_id = corpus
        .max_id()
        .unwrap_or(0)
        .max(eos.unwrap_or(0))
        .max(bos.unwrap_or(0));
    let vocab = vocab.unwrap_or(max_id as usize + 1);
    if max_id as usize >= vocab {
        return Err(TrainError::Config(format!(
            "token id {max_id} in `{}` is outside vocab_size {vocab}",
            corpus.name
        ))
        .into());
    }
    let mc = LlamaConfig {
        vocab_size: vocab,
        hidden_size: cfg.hidden,
        intermediate_size: cfg.intermediate,
        num_hidden_layers: cfg.layers,
        num_attention_heads: cfg.heads,
        num_key_value_heads: Some(cfg.kv_heads),
        max_position_embeddings: cfg.seq_len.max(256),
        rope_theta: cfg.rope_theta,
        tie_word_embeddings: cfg.tie_embeddings,
        bos_token_id: bos,
        eos_token_id: eos.into_iter().collect(),
        ..LlamaConfig::default()
    };
    mc.validate()?;
    Ok((mc, eos))
}

/// Pretrains a base model on `corpus` and writes the checkpoint `cfg.model_dir` (Hugging Face
/// layout), the log `logs/train_<name>.log` and a `summary.csv` row, all under `root`.
/// A killed run continues from `<model_dir>.resume/` (written every `checkpoint_every` steps).
pub fn pretrain(
    corpus: &TokenCorpus,
    cfg: &PretrainConfig,
    root: &Path,
) -> Result<(LoadedModel, PretrainResult)> {
    check_name(&cfg.name)?;
    let (mc, eos) = pretrain_model_config(corpus, cfg, root)?;
    let split = split_windows(
        corpus,
        cfg.seq_len,
        eos,
        cfg.heldout,
        cfg.optim.batch,
        cfg.seed,
    )?;
    let device = parse_device(&cfg.device)?;
    device.seed(cfg.seed);
    let ad = device.clone().autodiff();
    let model = Llama::init(&mc, &ad, cfg.seed)?;
    let initial = model.nll(
        &split.heldout[..split.heldout.len().min(cfg.optim.eval_windows.max(1))],
        cfg.optim.batch,
    )?;
    let out = root.join(&cfg.model_dir);
    let ckpt = out.with_file_name(format!(
        "{}.resume",
        out.file_name()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default()
    ));
    if !cfg.resume && ckpt.exists() {
        std::fs::remove_dir_all(&ckpt).map_err(|e| Error::io("remove", &ckpt, e))?;
    }
    let settings = crate::run::hash_json(&serde_json::json!({
        "config": cfg, "model": mc, "tokens": corpus.tokens(), "docs": corpus.docs.len(),
        "data": crate::run::hash_str(&format!("{:?}", split.train.iter().take(64).collect::<Vec<_>>())),
    }));
    let mut log = TrainLog::open(
        &root.join(format!("logs/train_{}.log", cfg.name)),
        cfg.resume && ckpt.exists(),
    )?;
    let what = format!("pretrain {}", cfg.name);
    let io = LoopIo {
        what: &what,
        log: &mut log,
        ckpt_dir: Some(ckpt.clone()),
        settings,
    };
    let (model, stats) = run_loop(model, &split, &cfg.optim, cfg.seed, &ad, io)?;
    let mut loaded = LoadedModel {
        model: model.valid(),
        config: mc.clone(),
        dir: None,
        tokenizer: cfg.tokenizer.as_ref().map(|t| root.join(t)),
    };
    let dir = loaded.save(&out)?;
    if ckpt.exists() {
        std::fs::remove_dir_all(&ckpt).map_err(|e| Error::io("remove", &ckpt, e))?;
    }
    upsert_summary(
        &root.join("summary.csv"),
        &SummaryRow {
            domain: cfg.name.clone(),
            phase: "pretrain".into(),
            steps: stats.steps,
            tokens: stats.tokens,
            final_train_loss: stats.final_train_loss,
            heldout_loss: stats.heldout.mean(),
            heldout_ppl: stats.heldout.perplexity(),
            base_heldout_loss: initial.mean(),
            base_heldout_ppl: initial.perplexity(),
            wall_s: stats.wall_s,
            tokens_per_s: stats.tokens_per_s,
            output: cfg.model_dir.display().to_string(),
        },
    )?;
    let result = PretrainResult {
        dir,
        stats,
        initial_heldout: initial,
        params: mc.num_params(),
    };
    Ok((loaded, result))
}
