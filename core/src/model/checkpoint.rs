//! Hugging Face checkpoints: `config.json` + `model.safetensors` (or a sharded index) +
//! optional `tokenizer.json`, with HF tensor names and `[out, in]` projection layout.

use super::config::LlamaConfig;
use super::layers::Proj;
use super::llama::{Llama, hf_tensor_shapes, transpose};
use super::safetensors_io::{read_checkpoint_dir, write_file};
use super::{Device, ModelError};
use crate::{Error, Result};
use burn::module::Module;
use burn::tensor::Tensor;
use std::path::{Path, PathBuf};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// Every tensor of `model` under its Hugging Face name and shape (`[out, in]` projections),
/// with LoRA adapters folded in when present.
pub fn hf_tensors(model: &Llama, cfg: &LlamaConfig) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let model = model.valid();
    let mut out = Vec::new();
    let [v, h] = model.embed_tokens.shape().dims();
    out.push((
        "model.embed_tokens.weight".to_string(),
        vec![v, h],
        values(model.embed_tokens.val()),
    ));
    let projs: std::collections::HashMap<String, &Proj> = model.projections().into_iter().collect();
    for (name, shape) in hf_tensor_shapes(cfg) {
        if name == "model.embed_tokens.weight" {
            continue;
        }
        let data = if let Some(p) = name.strip_suffix(".weight").and_then(|m| projs.get(m)) {
            let w = p.merged_weight();
            let [din, dout] = w.dims();
            transpose(&values(w), din, dout)
        } else if let Some(bias) = name
            .strip_suffix(".bias")
            .and_then(|m| projs.get(m))
            .and_then(|p| p.bias.as_ref())
        {
            values(bias.val())
        } else if name == "model.norm.weight" {
            values(model.norm.weight.val())
        } else if name == "lm_head.weight" {
            let p = model
                .lm_head
                .as_ref()
                .expect("untied config has an lm_head")
                .merged_weight();
            let [din, dout] = p.dims();
            transpose(&values(p), din, dout)
        } else {
            // model.layers.N.{input,post_attention}_layernorm.weight
            let l: usize = name
                .split('.')
                .nth(2)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            let layer = &model.layers[l];
            if name.contains("input_layernorm") {
                values(layer.input_layernorm.weight.val())
            } else {
                values(layer.post_attention_layernorm.weight.val())
            }
        };
        out.push((name, shape, data));
    }
    out
}

/// Writes `dir/config.json` and `dir/model.safetensors` (f32, metadata `format=pt`), and copies
/// `tokenizer` to `dir/tokenizer.json` when given. The directory is built under a temporary
/// name and renamed when complete. Adapters, if attached, are merged into the saved weights.
pub fn save_checkpoint(
    model: &Llama,
    cfg: &LlamaConfig,
    dir: &Path,
    tokenizer: Option<&Path>,
) -> Result<PathBuf> {
    let tmp = crate::run::AtomicDir::new(dir)?;
    std::fs::create_dir_all(tmp.path())
        .map_err(|e| Error::io("create directory", tmp.path(), e))?;
    let mut cfg = cfg.clone();
    cfg.torch_dtype = "float32".into();
    cfg.save(&tmp.path().join("config.json"))?;
    write_file(
        &tmp.path().join("model.safetensors"),
        &hf_tensors(model, &cfg),
        &[],
    )?;
    if let Some(t) = tokenizer {
        let to = tmp.path().join("tokenizer.json");
        std::fs::copy(t, &to).map_err(|e| Error::io("copy", t, e))?;
    }
    tmp.commit()
}

/// Loads a checkpoint directory (`config.json`, `model.safetensors` or a sharded index) onto
/// `device`. A missing tensor or a shape that contradicts `config.json` is an error naming the
/// tensor. With `trainable`, parameters require gradients (for pretraining from a checkpoint).
pub fn load_checkpoint(
    dir: &Path,
    device: &Device,
    trainable: bool,
) -> Result<(Llama, LlamaConfig)> {
    let cfg = LlamaConfig::load(&dir.join("config.json"))?;
    let (mut tensors, file) = read_checkpoint_dir(dir)?;
    let source = file.display().to_string();
    let model = build_from_tensors(&cfg, device, &source, trainable, |name| {
        tensors.remove(name).map(|t| (t.shape, t.data))
    })?;
    // What is left must be something the model recomputes: a tied checkpoint may still carry
    // lm_head.weight (some transformers versions write it), old ones the rotary inv_freq buffers.
    // Any other tensor (a bias the config does not declare, say) would be silently dropped.
    if let Some(extra) = tensors.keys().find(|k| {
        !(k.ends_with("rotary_emb.inv_freq") || (cfg.tie_word_embeddings && *k == "lm_head.weight"))
    }) {
        return Err(ModelError::Config(format!(
            "{source}: tensor `{extra}` is not part of a {:?} model with this config.json \
             (e.g. a bias the config does not declare); refusing to drop it",
            cfg.model_type
        ))
        .into());
    }
    Ok((model, cfg))
}

/// Builds a model from named tensors: `take(name)` yields the shape and values of a Hugging
/// Face tensor. A missing tensor or a shape that contradicts `cfg` is an error naming the
/// tensor and `source` (a file, or a description of where the weights are).
pub fn build_from_tensors(
    cfg: &LlamaConfig,
    device: &Device,
    source: &str,
    trainable: bool,
    mut take: impl FnMut(&str) -> Option<(Vec<usize>, Vec<f32>)>,
) -> Result<Llama> {
    let mut src = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let (got, data) = take(name).ok_or_else(|| {
            Error::from(ModelError::MissingTensor {
                path: source.into(),
                name: name.into(),
            })
        })?;
        if got != shape {
            return Err(ModelError::Shape {
                path: source.into(),
                name: name.into(),
                got,
                want: shape.to_vec(),
            }
            .into());
        }
        Ok(data)
    };
    Llama::build(cfg, device, &mut src, trainable)
}

/// The tokenizer stored beside a checkpoint, if any.
pub fn checkpoint_tokenizer(dir: &Path) -> Option<PathBuf> {
    let p = dir.join("tokenizer.json");
    p.exists().then_some(p)
}
