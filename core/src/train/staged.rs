//! A LoRA adapter as the cached stage `lora_<name>` of a run (Rhai's `train_adapters`, `yunmin
//! train lora`): one definition of its stage key (the base checkpoint's and the training data's
//! content, the domain, the config), so a batch can ask which adapters are still to train (and
//! hand only those to other processes) before training each.

use super::lora::LoraConfig;
use crate::Result;
use crate::run::RunContext;
use std::path::{Path, PathBuf};

/// Version of the stage's code: bump it when adapters change for the same inputs.
pub const ADAPTER_STAGE_CODE: &str = "lora-v1";

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
            ADAPTER_STAGE_CODE,
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
            ADAPTER_STAGE_CODE,
            train,
        )
    }
}
