//! Training as cached stages of a run. A LoRA adapter is the stage `lora_<name>` (Rhai's
//! `train_adapters`, `yunmin train lora`): one definition of its stage key (the base
//! checkpoint's and the training data's content, the domain, the config), so a batch can ask
//! which adapters are still to train (and hand only those to other processes) before training
//! each. Pretraining a base is the stage `pretrain` (Rhai's `pretrain`, `yunmin train
//! pretrain`).

use super::data::TokenCorpus;
use super::lora::LoraConfig;
use super::pretrain::{PretrainConfig, PretrainResult, pretrain};
use crate::Result;
use crate::model::{LoadedModel, NUMERICS_REVISION};
use crate::run::RunContext;
use std::path::{Path, PathBuf};

/// Version of the stage's code: bump it when adapters change for the same inputs for a reason
/// other than the model's numbers (those raise [`NUMERICS_REVISION`]).
const ADAPTER_STAGE_CODE: &str = "lora-v1";

/// The code version a model stage is keyed on: its own (`code`) and the model's
/// [`NUMERICS_REVISION`].
fn with_numerics(code: &str) -> String {
    format!("{code}-numerics-{NUMERICS_REVISION}")
}

/// One adapter's stage.
#[derive(Debug, Clone, Copy)]
pub struct AdapterStage<'a> {
    /// The adapter's name (`lora_<name>` is the stage).
    pub name: &'a str,
    /// The base checkpoint directory.
    pub base: &'a Path,
    /// What it trains on: a Parquet directory, a token file, or a dataset and its tokenizer.
    pub data: &'a [PathBuf],
    /// The domain whose training split it learns; `None`: every domain's.
    pub domain: Option<&'a str>,
    /// Its training config.
    pub cfg: &'a LoraConfig,
}

impl AdapterStage<'_> {
    /// The stage name, `lora_<name>`.
    pub fn stage(&self) -> String {
        format!("lora_{}", self.name)
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "base": self.base, "data": self.data, "domain": self.domain, "config": self.cfg,
        })
    }

    fn inputs(&self) -> Vec<PathBuf> {
        std::iter::once(self.base.to_path_buf())
            .chain(self.data.iter().cloned())
            .collect()
    }

    /// Whether [`AdapterStage::run`] would be skipped.
    pub fn is_cached(&self, ctx: &RunContext) -> Result<bool> {
        ctx.is_cached(
            &self.stage(),
            &self.params(),
            &self.inputs(),
            &with_numerics(ADAPTER_STAGE_CODE),
        )
    }

    /// Runs `train` (which writes the adapter at `dir` and returns its directory) as the
    /// cached stage; skipped (`true`) when the key is unchanged and `dir` exists.
    pub fn run(
        &self,
        ctx: &RunContext,
        dir: &Path,
        train: impl FnOnce() -> Result<PathBuf>,
    ) -> Result<(PathBuf, bool)> {
        ctx.stage(
            &self.stage(),
            &self.params(),
            &self.inputs(),
            std::slice::from_ref(&dir.to_path_buf()),
            &with_numerics(ADAPTER_STAGE_CODE),
            train,
        )
    }
}

/// Version of the pretraining stage's code: bump it when a base changes for the same inputs
/// for a reason other than the model's numbers (those raise [`NUMERICS_REVISION`]).
const PRETRAIN_STAGE_CODE: &str = "pretrain-v1";

/// Pretraining a base as the cached stage `pretrain` of a run (Rhai's `pretrain`, `yunmin
/// train pretrain`): keyed on the token sequences' content, the tokenizer file and the config
/// (less `resume`, which changes how it runs, not what it writes). Bases with other
/// `model_dir`s are other keys of the same stage, each kept.
#[derive(Debug, Clone, Copy)]
pub struct PretrainStage<'a> {
    /// What it trains on.
    pub tokens: &'a TokenCorpus,
    /// Its training config.
    pub cfg: &'a PretrainConfig,
}

/// What [`PretrainStage::run`] found or did.
#[derive(Debug)]
pub struct Pretrained {
    /// The pretraining's result (from the stage record when cached).
    pub result: PretrainResult,
    /// The model, when it was trained by this call (`None`: cached, load it from `result.dir`).
    pub model: Option<LoadedModel>,
}

impl PretrainStage<'_> {
    /// The stage name.
    pub const NAME: &'static str = "pretrain";

    fn params(&self) -> serde_json::Value {
        let cfg = PretrainConfig {
            resume: PretrainConfig::default().resume,
            ..self.cfg.clone()
        };
        serde_json::json!({ "tokens": self.tokens.digest(), "config": cfg })
    }

    fn inputs(&self, ctx: &RunContext) -> Vec<PathBuf> {
        self.cfg
            .tokenizer
            .iter()
            .map(|t| ctx.root().join(t))
            .collect()
    }

    /// Whether [`PretrainStage::run`] would be skipped.
    pub fn is_cached(&self, ctx: &RunContext) -> Result<bool> {
        ctx.is_cached(
            Self::NAME,
            &self.params(),
            &self.inputs(ctx),
            &with_numerics(PRETRAIN_STAGE_CODE),
        )
    }

    /// Pretrains into `<run root>/<model_dir>` as the cached stage; skipped when the key is
    /// unchanged and the checkpoint exists.
    pub fn run(&self, ctx: &RunContext) -> Result<Pretrained> {
        let dir = ctx.root().join(&self.cfg.model_dir);
        let mut model = None;
        let (result, _) = ctx.stage(
            Self::NAME,
            &self.params(),
            &self.inputs(ctx),
            std::slice::from_ref(&dir),
            &with_numerics(PRETRAIN_STAGE_CODE),
            || {
                let (m, r) = pretrain(self.tokens, self.cfg, ctx.root())?;
                model = Some(m);
                Ok(r)
            },
        )?;
        Ok(Pretrained { result, model })
    }
}
