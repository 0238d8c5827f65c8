//! A model together with its configuration and where it came from: what the host's `Model`
//! handle wraps and what training, merging and evaluation take.

use super::checkpoint::{
    build_from_tensors, checkpoint_tokenizer, hf_tensors, load_checkpoint, save_checkpoint,
};
use super::{Device, Llama, LlamaConfig};
use crate::Result;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How a checkpoint is loaded (Rhai's `load_model` options).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadConfig {
    /// The device it is loaded on ([`super::parse_device`]).
    pub device: String,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            device: "cpu".into(),
        }
    }
}

impl crate::config::Primitive for LoadConfig {
    const NAME: &'static str = "load_model";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[opt(
            "device",
            "cpu (burn-flex) | flex | ndarray | wgpu | cuda | cuda:N",
        )]
    };
}

/// A model ready for inference (weights on a plain, non-autodiff device).
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The network.
    pub model: Llama,
    /// Its `config.json`.
    pub config: LlamaConfig,
    /// The checkpoint directory it was loaded from or saved to.
    pub dir: Option<PathBuf>,
    /// The `tokenizer.json` that goes with it.
    pub tokenizer: Option<PathBuf>,
}

impl LoadedModel {
    /// Loads a Hugging Face checkpoint directory as `cfg` says.
    pub fn load_as(dir: &Path, cfg: &LoadConfig) -> Result<Self> {
        Self::load(dir, &super::parse_device(&cfg.device)?)
    }

    /// Loads a Hugging Face checkpoint directory onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let (model, config) = load_checkpoint(dir, device, false)?;
        Ok(Self {
            model,
            config,
            dir: Some(dir.to_path_buf()),
            tokenizer: checkpoint_tokenizer(dir),
        })
    }

    /// Saves as a Hugging Face checkpoint (adapters merged), copying the tokenizer; remembers `dir`.
    pub fn save(&mut self, dir: &Path) -> Result<PathBuf> {
        let p = save_checkpoint(&self.model, &self.config, dir, self.tokenizer.as_deref())?;
        self.dir = Some(p.clone());
        Ok(p)
    }

    /// A copy of the network on `device` (e.g. `device.autodiff()` for training), built from
    /// this model's merged weights; parameters require gradients when `trainable`.
    pub fn rebuild_on(&self, device: &Device, trainable: bool) -> Result<Llama> {
        let mut map: HashMap<String, (Vec<usize>, Vec<f32>)> =
            hf_tensors(&self.model, &self.config)
                .into_iter()
                .map(|(n, s, d)| (n, (s, d)))
                .collect();
        build_from_tensors(&self.config, device, "<memory>", trainable, |name| {
            map.remove(name)
        })
    }
}

impl LoadedModel {
    fn tokenizer(&self) -> Result<tokenizers::Tokenizer> {
        let p = self.tokenizer.as_ref().ok_or_else(|| {
            super::ModelError::Input(
                "the model has no tokenizer.json beside it; pass token ids instead".into(),
            )
        })?;
        tokenizers::Tokenizer::from_file(p)
            .map_err(|e| super::ModelError::Input(format!("{}: {e}", p.display())).into())
    }

    /// Token ids of `text` with the model's tokenizer, preceded by `bos_token_id` when set.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer()?
            .encode(text, false)
            .map_err(|e| super::ModelError::Input(format!("tokenizing: {e}")))?;
        let mut ids: Vec<u32> = self.config.bos_token_id.into_iter().collect();
        ids.extend(enc.get_ids());
        Ok(ids)
    }

    /// Text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer()?
            .decode(ids, true)
            .map_err(|e| super::ModelError::Input(format!("decoding: {e}")).into())
    }
}
