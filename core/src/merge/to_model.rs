//! Merged weights as a runnable model: the bridge from a merge (in memory) to evaluation and
//! generation, without writing a checkpoint.

use super::MergeError;
use super::memory::MergedWeights;
use crate::Result;
use crate::model::{Device, Llama, LlamaConfig, LoadedModel, checkpoint_tokenizer};

impl MergedWeights {
    /// Builds the network these weights describe (the base's `config.json`) on `device`, in
    /// inference mode, with the base's tokenizer.
    pub fn to_model(&self, device: &Device) -> Result<LoadedModel> {
        let config = LlamaConfig::load(&self.base_dir.join("config.json"))?;
        let mut src = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = self.get(name).ok_or_else(|| MergeError::MissingTensor {
                tensor: name.into(),
                path: self.base_dir.clone(),
                hint: " (building a model from merged weights)".into(),
            })?;
            if t.shape != shape {
                return Err(MergeError::Shape {
                    tensor: name.into(),
                    what: "building a model from merged weights".into(),
                    expected: shape.to_vec(),
                    got: t.shape.clone(),
                }
                .into());
            }
            Ok(t.data.to_vec())
        };
        let model = Llama::build(&config, device, &mut src, false)?;
        Ok(LoadedModel {
            model,
            config,
            dir: None,
            tokenizer: checkpoint_tokenizer(&self.base_dir),
        })
    }
}
