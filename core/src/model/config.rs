//! The Hugging Face `config.json` of a Llama model.

use super::ModelError;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A Llama configuration as Hugging Face `transformers` writes and reads it
/// (`LlamaForCausalLM`, `model_type: "llama"`). Unknown keys in a loaded file are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Always `["LlamaForCausalLM"]`.
    #[serde(default = "default_arch")]
    pub architectures: Vec<String>,
    /// Always `"llama"`.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Vocabulary size (rows of `embed_tokens`).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// Longest sequence the rotary table covers.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Rotary base (written top-level: transformers 4.x ignores `rope_parameters`).
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// Whether `lm_head` shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token id.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id.
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// Padding token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
    /// Always `"silu"` (SwiGLU).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Whether q/k/v/o carry biases (not supported: must be false).
    #[serde(default)]
    pub attention_bias: bool,
    /// Whether the MLP carries biases (not supported: must be false).
    #[serde(default)]
    pub mlp_bias: bool,
    /// Stored weight precision; checkpoints written here are `"float32"`.
    #[serde(default = "default_dtype")]
    pub torch_dtype: String,
    /// Init std of weights (transformers' `initializer_range`).
    #[serde(default = "default_init")]
    pub initializer_range: f64,
    /// KV cache use in transformers generation.
    #[serde(default = "default_true")]
    pub use_cache: bool,
}

fn default_arch() -> Vec<String> {
    vec!["LlamaForCausalLM".into()]
}
fn default_model_type() -> String {
    "llama".into()
}
fn default_max_pos() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10000.0
}
fn default_act() -> String {
    "silu".into()
}
fn default_dtype() -> String {
    "float32".into()
}
fn default_init() -> f64 {
    0.02
}
fn default_true() -> bool {
    true
}

impl Default for LlamaConfig {
    /// The bundled tiny base: 4 layers, width 192, 6 query / 2 key-value heads, MLP 512,
    /// vocabulary 8000, context 256 — small enough to pretrain in minutes on 2 CPU cores.
    fn default() -> Self {
        Self {
            architectures: default_arch(),
            model_type: default_model_type(),
            vocab_size: 8000,
            hidden_size: 192,
            intermediate_size: 512,
            num_hidden_layers: 4,
            num_attention_heads: 6,
            num_key_value_heads: Some(2),
            head_dim: None,
            max_position_embeddings: 256,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            tie_word_embeddings: true,
            bos_token_id: Some(1),
            eos_token_id: Some(2),
            pad_token_id: None,
            hidden_act: default_act(),
            attention_bias: false,
            mlp_bias: false,
            torch_dtype: default_dtype(),
            initializer_range: 0.02,
            use_cache: true,
        }
    }
}

impl LlamaConfig {
    /// Key/value heads (defaults to the query heads).
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Checks the settings this implementation relies on; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::from(ModelError::Config(m)));
        if self.model_type != "llama" {
            return bad(format!(
                "model_type is {:?}, only \"llama\" is supported",
                self.model_type
            ));
        }
        for (k, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return bad(format!("{k} must be > 0"));
            }
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "head_dim {} must be even (rotary embeddings)",
                self.head_dim()
            ));
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if self.hidden_act != "silu" {
            return bad(format!(
                "hidden_act {:?}: only \"silu\" is supported",
                self.hidden_act
            ));
        }
        if self.attention_bias || self.mlp_bias {
            return bad("attention_bias / mlp_bias are not supported (must be false)".into());
        }
        if self.rms_norm_eps.is_nan()
            || self.rms_norm_eps <= 0.0
            || self.rope_theta.is_nan()
            || self.rope_theta <= 0.0
        {
            return bad("rms_norm_eps and rope_theta must be > 0".into());
        }
        Ok(())
    }

    /// Reads and validates a `config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Writes `config.json` (pretty JSON, atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        crate::run::write_atomic(path, text.as_bytes())
    }

    /// Number of parameters of the model this configuration describes.
    pub fn num_params(&self) -> usize {
        let (h, i, v, hd) = (
            self.hidden_size,
            self.intermediate_size,
            self.vocab_size,
            self.head_dim(),
        );
        let attn = h * hd * self.num_attention_heads * 2 + h * hd * self.kv_heads() * 2;
        let layer = attn + 3 * h * i + 2 * h;
        let head = if self.tie_word_embeddings { 0 } else { v * h };
        v * h + self.num_hidden_layers * layer + h + head
    }
}
