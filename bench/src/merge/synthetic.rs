//! Random-initialised Llama-shaped checkpoints and PEFT adapters for benchmarks (never
//! committed): the same file layout the training code writes, at any size.

use anyhow::{Context, Result};
use rayon::prelude::*;
use safetensors::Dtype;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use yunmin_core::merge::adapter::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use yunmin_core::merge::buffer::bytes_as_f32_mut;
use yunmin_core::merge::checkpoint::{OutTensor, WEIGHTS_FILE, write_safetensors};
use yunmin_core::run::write_atomic;

/// Shape of a synthetic Llama checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticShape {
    /// Hidden size. Default 768.
    pub hidden: usize,
    /// MLP size. Default 2048.
    pub intermediate: usize,
    /// Decoder layers. Default 12.
    pub layers: usize,
    /// Vocabulary. Default 32000.
    pub vocab: usize,
    /// Attention heads. Default 12.
    pub heads: usize,
    /// Key/value heads. Default 12.
    pub kv_heads: usize,
}

impl Default for SyntheticShape {
    /// About 110M parameters (tied embeddings).
    fn default() -> Self {
        Self {
            hidden: 768,
            intermediate: 2048,
            layers: 12,
            vocab: 32000,
            heads: 12,
            kv_heads: 12,
        }
    }
}

/// The projection modules LoRA adapts in the benchmark: all seven, as training does.
pub const TARGETS: [&str; 7] = yunmin_core::train::DEFAULT_TARGETS;

impl SyntheticShape {
    /// `(name, shape)` of every tensor, HF naming.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let h = self.hidden;
        let mut v = vec![
            ("model.embed_tokens.weight".to_string(), vec![self.vocab, h]),
            ("model.norm.weight".into(), vec![h]),
        ];
        for l in 0..self.layers {
            let p = format!("model.layers.{l}");
            v.push((format!("{p}.input_layernorm.weight"), vec![h]));
            v.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
            for (n, s) in self.projections() {
                v.push((format!("{p}.{n}.weight"), s));
            }
        }
        v
    }

    /// `(module path within a layer, [out, in])` of the adapted projections.
    pub fn projections(&self) -> Vec<(String, Vec<usize>)> {
        let (h, m) = (self.hidden, self.intermediate);
        let kv = h / self.heads * self.kv_heads;
        vec![
            ("self_attn.q_proj".into(), vec![h, h]),
            ("self_attn.k_proj".into(), vec![kv, h]),
            ("self_attn.v_proj".into(), vec![kv, h]),
            ("self_attn.o_proj".into(), vec![h, h]),
            ("mlp.gate_proj".into(), vec![m, h]),
            ("mlp.up_proj".into(), vec![m, h]),
            ("mlp.down_proj".into(), vec![h, m]),
        ]
    }

    /// Total parameters.
    pub fn num_params(&self) -> usize {
        self.tensors()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "vocab_size": self.vocab,
            "max_position_embeddings": 2048,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "tie_word_embeddings": true,
            "hidden_act": "silu",
            "torch_dtype": "float32"
        })
    }
}

/// Fills `out` with uniform values in `[-scale, scale)` from a SplitMix64 stream keyed by
/// `seed` (parallel, deterministic).
pub fn fill_uniform(out: &mut [f32], seed: u64, scale: f32) {
    out.par_chunks_mut(1 << 14).enumerate().for_each(|(c, o)| {
        let mut s = seed ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for x in o {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32;
            *x = (2.0 * u - 1.0) * scale;
        }
    });
}

fn write_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>)],
    seed: u64,
    scale: f32,
) -> Result<u64> {
    let specs: Vec<OutTensor> = tensors
        .iter()
        .map(|(n, s)| OutTensor {
            name: n.clone(),
            dtype: Dtype::F32,
            shape: s.clone(),
        })
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    Ok(write_safetensors(path, &specs, meta, |i, off, buf| {
        let f = bytes_as_f32_mut(buf)
            .ok_or_else(|| yunmin_core::Error::invalid("misaligned output"))?;
        fill_uniform(
            f,
            seed.wrapping_add(i as u64 * 7919).wrapping_add(off as u64),
            scale,
        );
        Ok(())
    })?)
}

/// Writes a random base checkpoint (`config.json`, `model.safetensors`) to `dir`.
pub fn write_checkpoint(dir: &Path, shape: &SyntheticShape, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create directory {}", dir.display()))?;
    write_tensors(&dir.join(WEIGHTS_FILE), &shape.tensors(), seed, 0.02)?;
    Ok(write_atomic(
        &dir.join("config.json"),
        serde_json::to_string_pretty(&shape.config_json())
            .unwrap_or_default()
            .as_bytes(),
    )?)
}

/// Writes a random PEFT adapter of `rank` on every projection to `dir`.
pub fn write_adapter(
    dir: &Path,
    shape: &SyntheticShape,
    rank: usize,
    alpha: f64,
    seed: u64,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create directory {}", dir.display()))?;
    let mut ts = Vec::new();
    for l in 0..shape.layers {
        for (n, s) in shape.projections() {
            let p = format!("base_model.model.model.layers.{l}.{n}");
            ts.push((format!("{p}.lora_A.weight"), vec![rank, s[1]]));
            ts.push((format!("{p}.lora_B.weight"), vec![s[0], rank]));
        }
    }
    write_tensors(&dir.join(ADAPTER_WEIGHTS), &ts, seed, 0.05)?;
    let cfg = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": TARGETS,
        "bias": "none",
        "fan_in_fan_out": false,
    });
    Ok(write_atomic(
        &dir.join(ADAPTER_CONFIG),
        serde_json::to_string_pretty(&cfg)
            .unwrap_or_default()
            .as_bytes(),
    )?)
}
