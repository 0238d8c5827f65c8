//! Merged weights as a runnable model: the bridge from a merge (in memory) to evaluation and
//! generation, without writing a checkpoint.

use super::memory::MergedWeights;
use crate::Result;
use crate::model::{Device, LlamaConfig, LoadedModel, build_from_tensors, checkpoint_tokenizer};

impl MergedWeights {
    /// Builds the network these weights describe (the base's `config.json`) on `device`, in
    /// inference mode, with the base's tokenizer.
    pub fn to_model(&self, device: &Device) -> Result<LoadedModel> {
        let config = LlamaConfig::load(&self.base_dir.join("config.json"))?;
        let source = format!("merged weights of {}", self.base_dir.display());
        let model = build_from_tensors(&config, device, &source, false, |name| {
            self.get(name).map(|t| (t.shape.clone(), t.data.to_vec()))
        })?;
        Ok(LoadedModel {
            model,
            config,
            dir: None,
            tokenizer: checkpoint_tokenizer(&self.base_dir),
        })
    }
}
