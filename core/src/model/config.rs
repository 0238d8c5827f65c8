//! The Hugging Face `config.json` of a Llama-family model (`llama`, `qwen2`, `mistral`), as
//! transformers 4.x and 5.x write it.
//!
//! Reading is strict: every key is either understood (and honoured), known to be harmless for
//! the computation (bookkeeping, generation defaults), or an error that names the key and its
//! value. A field that would change the numbers is never silently ignored.

use super::ModelError;
use crate::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};
use std::path::Path;

/// The architectures one code path implements; their differences are configuration.
pub const MODEL_TYPES: &[&str] = &["llama", "qwen2", "mistral"];

/// Rotary position embedding frequency scaling (transformers' `rope_type`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Position interpolation: every inverse frequency divided by `factor`.
    Linear {
        /// Scaling factor.
        factor: f64,
    },
    /// Dynamic NTK: past `max_position_embeddings`, the base grows with the sequence length.
    Dynamic {
        /// Scaling factor.
        factor: f64,
    },
    /// Llama 3.1 frequency-dependent scaling.
    Llama3 {
        /// Scaling factor of the low frequencies.
        factor: f64,
        /// Wavelengths above `original / low_freq_factor` are scaled fully.
        low_freq_factor: f64,
        /// Wavelengths below `original / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context the base was trained on.
        original_max_position_embeddings: usize,
    },
}

impl RopeScaling {
    /// transformers' `rope_type` name.
    pub fn rope_type(&self) -> &'static str {
        match self {
            Self::Linear { .. } => "linear",
            Self::Dynamic { .. } => "dynamic",
            Self::Llama3 { .. } => "llama3",
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("rope_type".into(), json!(self.rope_type()));
        match self {
            Self::Linear { factor } | Self::Dynamic { factor } => {
                m.insert("factor".into(), json!(factor));
            }
            Self::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                m.insert("factor".into(), json!(factor));
                m.insert("low_freq_factor".into(), json!(low_freq_factor));
                m.insert("high_freq_factor".into(), json!(high_freq_factor));
                m.insert(
                    "original_max_position_embeddings".into(),
                    json!(original_max_position_embeddings),
                );
            }
        }
        Value::Object(m)
    }
}

/// A Llama-family configuration as Hugging Face `transformers` writes and reads it. The
/// architecture differences (`qwen2`'s q/k/v biases, `mistral`'s sliding window) are fields.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// `["LlamaForCausalLM"]`, `["Qwen2ForCausalLM"]` or `["MistralForCausalLM"]`.
    pub architectures: Vec<String>,
    /// `"llama"`, `"qwen2"` or `"mistral"`.
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
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    /// Longest sequence the model was configured for (the reference length of `dynamic` RoPE).
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary base (top-level `rope_theta`, or `rope_parameters.rope_theta`).
    pub rope_theta: f64,
    /// Rotary frequency scaling (`rope_scaling` / `rope_parameters`); `None` is `default`.
    pub rope_scaling: Option<RopeScaling>,
    /// Whether `lm_head` shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token ids (`eos_token_id` as an int or a list); generation stops at any.
    pub eos_token_id: Vec<u32>,
    /// Padding token id.
    pub pad_token_id: Option<u32>,
    /// Always `"silu"` (SwiGLU).
    pub hidden_act: String,
    /// Whether q/k/v/o carry biases (`llama`'s `attention_bias`; `qwen2` always has q/k/v
    /// biases and no o bias).
    pub attention_bias: bool,
    /// Whether gate/up/down carry biases (`llama`'s `mlp_bias`).
    pub mlp_bias: bool,
    /// Attention window per layer (`None`: full causal attention): `mistral`'s
    /// `sliding_window`, `qwen2`'s `use_sliding_window` from `max_window_layers` on.
    pub sliding_window: Option<usize>,
    /// For `qwen2` with a sliding window: the layers before this index attend fully.
    pub max_window_layers: Option<usize>,
    /// Stored weight precision (`dtype` / `torch_dtype`): float32, float16 or bfloat16.
    /// Computation is always f32; checkpoints written here are `"float32"`.
    pub torch_dtype: String,
    /// Init std of weights (transformers' `initializer_range`).
    pub initializer_range: f64,
    /// KV cache use in transformers generation.
    pub use_cache: bool,
}

impl Default for LlamaConfig {
    /// The bundled tiny base: 4 layers, width 192, 6 query / 2 key-value heads, MLP 512,
    /// vocabulary 8000, context 256 — small enough to pretrain in minutes on 2 CPU cores.
    fn default() -> Self {
        Self {
            architectures: vec!["LlamaForCausalLM".into()],
            model_type: "llama".into(),
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
            rope_scaling: None,
            tie_word_embeddings: true,
            bos_token_id: Some(1),
            eos_token_id: vec![2],
            pad_token_id: None,
            hidden_act: "silu".into(),
            attention_bias: false,
            mlp_bias: false,
            sliding_window: None,
            max_window_layers: None,
            torch_dtype: "float32".into(),
            initializer_range: 0.02,
            use_cache: true,
        }
    }
}

/// Which projections of a layer carry a bias, per the architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Biases {
    /// q, k and v projections.
    pub qkv: bool,
    /// The attention output projection.
    pub o: bool,
    /// gate, up and down projections.
    pub mlp: bool,
}

/// Keys every `PretrainedConfig` may carry that do not change a forward pass of these models
/// (bookkeeping, generation defaults, task heads this crate does not build).
const HARMLESS: &[&str] = &[
    "transformers_version",
    "_name_or_path",
    "name_or_path",
    "initializer_range",
    "use_cache",
    "pretraining_tp",
    "return_dict",
    "output_hidden_states",
    "output_attentions",
    "torchscript",
    "use_bfloat16",
    "tf_legacy_loss",
    "pruned_heads",
    "chunk_size_feed_forward",
    "is_encoder_decoder",
    "is_decoder",
    "cross_attention_hidden_size",
    "add_cross_attention",
    "tie_encoder_decoder",
    "finetuning_task",
    "id2label",
    "label2id",
    "problem_type",
    "tokenizer_class",
    "prefix",
    "sep_token_id",
    "decoder_start_token_id",
    "task_specific_params",
    "max_length",
    "min_length",
    "do_sample",
    "early_stopping",
    "num_beams",
    "num_beam_groups",
    "diversity_penalty",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "repetition_penalty",
    "length_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "num_return_sequences",
    "output_scores",
    "return_dict_in_generate",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "remove_invalid_values",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
    "auto_map",
    "attn_implementation",
    "_attn_implementation_autoset",
    "model_name",
];

fn err(msg: String) -> Error {
    ModelError::Config(msg).into()
}

/// Reads `config.json` keys one by one, remembering which were consumed.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn take(&mut self, key: &str) -> Option<Value> {
        match self.map.remove(key) {
            Some(Value::Null) | None => None,
            Some(v) => Some(v),
        }
    }

    fn usize(&mut self, key: &str) -> Result<Option<usize>> {
        self.take(key)
            .map(|v| {
                v.as_u64()
                    .map(|x| x as usize)
                    .ok_or_else(|| err(format!("`{key}` must be a non-negative integer, got {v}")))
            })
            .transpose()
    }

    fn need_usize(&mut self, key: &str) -> Result<usize> {
        self.usize(key)?
            .ok_or_else(|| err(format!("`{key}` is missing")))
    }

    fn f64(&mut self, key: &str) -> Result<Option<f64>> {
        self.take(key)
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| err(format!("`{key}` must be a number, got {v}")))
            })
            .transpose()
    }

    fn bool(&mut self, key: &str) -> Result<Option<bool>> {
        self.take(key)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| err(format!("`{key}` must be true or false, got {v}")))
            })
            .transpose()
    }

    fn string(&mut self, key: &str) -> Result<Option<String>> {
        self.take(key)
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(format!("`{key}` must be a string, got {v}")))
            })
            .transpose()
    }

    /// A single token id (`bos_token_id`, `pad_token_id`): a list of several is an error.
    fn token(&mut self, key: &str) -> Result<Option<u32>> {
        match token_ids(key, self.take(key))?.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(err(format!(
                "`{key}` = {many:?}: only one id is supported (lists are read for eos_token_id)"
            ))),
        }
    }
}

/// An id or a list of ids (`eos_token_id: 2` or `[1, 2]`).
fn token_ids(key: &str, v: Option<Value>) -> Result<Vec<u32>> {
    let one = |x: &Value| {
        x.as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| {
                err(format!(
                    "`{key}` must be a token id or a list of them, got {x}"
                ))
            })
    };
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(one).collect(),
        Some(x) => Ok(vec![one(&x)?]),
    }
}

/// The rotary settings of a `rope_parameters` (transformers 5) or `rope_scaling` (4.x) object.
fn parse_rope(key: &str, v: Value, top_theta: Option<f64>) -> Result<(f64, Option<RopeScaling>)> {
    let Value::Object(mut m) = v else {
        return Err(err(format!("`{key}` must be an object, got {v}")));
    };
    let field = |m: &mut Map<String, Value>, k: &str| -> Result<Option<f64>> {
        match m.remove(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_f64()
                .map(Some)
                .ok_or_else(|| err(format!("`{key}.{k}` must be a number, got {x}"))),
        }
    };
    // transformers 4 wrote `type`, later versions `rope_type`; both may be present and agree.
    let ty = match (m.remove("rope_type"), m.remove("type")) {
        (Some(a), Some(b)) if a != b => {
            return Err(err(format!(
                "`{key}` has rope_type {a} and type {b}, which disagree"
            )));
        }
        (Some(a), _) | (None, Some(a)) => a
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| err(format!("`{key}.rope_type` must be a string, got {a}")))?,
        (None, None) => "default".to_string(),
    };
    let theta = match (field(&mut m, "rope_theta")?, top_theta) {
        (Some(a), Some(b)) if a != b => {
            return Err(err(format!(
                "`rope_theta` is {b} at the top level but {a} in `{key}`"
            )));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => 10000.0,
    };
    if let Some(p) = field(&mut m, "partial_rotary_factor")?
        && p != 1.0
    {
        return Err(err(format!(
            "`{key}.partial_rotary_factor` = {p} is not supported (only 1.0: rotary on the whole head)"
        )));
    }
    if let Some(a) = field(&mut m, "attention_factor")?
        && a != 1.0
    {
        return Err(err(format!(
            "`{key}.attention_factor` = {a} is not supported (only 1.0)"
        )));
    }
    let need = |m: &mut Map<String, Value>, k: &str| -> Result<f64> {
        field(m, k)?.ok_or_else(|| err(format!("`{key}` of rope_type {ty:?} needs `{k}`")))
    };
    let scaling = match ty.as_str() {
        "default" => None,
        "linear" => Some(RopeScaling::Linear {
            factor: need(&mut m, "factor")?,
        }),
        "dynamic" => {
            // transformers uses `max_position_embeddings` as the reference length; an
            // `original_max_position_embeddings` here would change that.
            if let Some(o) = m.get("original_max_position_embeddings") {
                return Err(err(format!(
                    "`{key}.original_max_position_embeddings` = {o} with rope_type \"dynamic\" is not supported"
                )));
            }
            Some(RopeScaling::Dynamic {
                factor: need(&mut m, "factor")?,
            })
        }
        "llama3" => Some(RopeScaling::Llama3 {
            factor: need(&mut m, "factor")?,
            low_freq_factor: need(&mut m, "low_freq_factor")?,
            high_freq_factor: need(&mut m, "high_freq_factor")?,
            original_max_position_embeddings: need(&mut m, "original_max_position_embeddings")?
                as usize,
        }),
        other => {
            return Err(err(format!(
                "`{key}.rope_type` = {other:?} is not supported (supported: default, linear, dynamic, llama3)"
            )));
        }
    };
    if let Some((k, v)) = m.into_iter().next() {
        return Err(err(format!(
            "`{key}.{k}` = {v} is not supported for rope_type {ty:?}"
        )));
    }
    if let Some(RopeScaling::Linear { factor } | RopeScaling::Dynamic { factor }) = &scaling
        && *factor < 1.0
    {
        return Err(err(format!("`{key}.factor` = {factor} must be ≥ 1")));
    }
    Ok((theta, scaling))
}

impl LlamaConfig {
    /// Parses a `config.json` object. Every key is honoured, known harmless, or an error naming
    /// it (see the module doc).
    pub fn from_json(v: Value) -> Result<Self> {
        let Value::Object(map) = v else {
            return Err(err("config.json must be a JSON object".into()));
        };
        let mut f = Fields { map };
        let model_type = f
            .string("model_type")?
            .ok_or_else(|| err("`model_type` is missing".into()))?;
        if !MODEL_TYPES.contains(&model_type.as_str()) {
            return Err(err(format!(
                "model_type is {model_type:?}; supported: {}",
                MODEL_TYPES.join(", ")
            )));
        }
        let architectures = match f.take("architectures") {
            None => vec![default_arch(&model_type)],
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| err("`architectures` must be a list of strings".into()))?,
            Some(x) => return Err(err(format!("`architectures` must be a list, got {x}"))),
        };
        let want_arch = default_arch(&model_type);
        if let Some(a) = architectures.iter().find(|a| **a != want_arch) {
            return Err(err(format!(
                "architectures contains {a:?}; only {want_arch:?} (a causal LM head) is supported for model_type {model_type:?}"
            )));
        }
        let top_theta = f.f64("rope_theta")?;
        let (rope_theta, rope_scaling) = match (f.take("rope_parameters"), f.take("rope_scaling")) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "both `rope_parameters` and `rope_scaling` are set; keep one".into(),
                ));
            }
            (Some(p), None) => parse_rope("rope_parameters", p, top_theta)?,
            (None, Some(s)) => parse_rope("rope_scaling", s, top_theta)?,
            (None, None) => (top_theta.unwrap_or(10000.0), None),
        };
        let dtype = match (f.string("dtype")?, f.string("torch_dtype")?) {
            (Some(a), Some(b)) if a != b => {
                return Err(err(format!(
                    "`dtype` {a:?} and `torch_dtype` {b:?} disagree"
                )));
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => "float32".into(),
        };
        if !["float32", "float16", "bfloat16"].contains(&dtype.as_str()) {
            return Err(err(format!(
                "dtype {dtype:?} is not supported (float32, float16, bfloat16)"
            )));
        }
        let hidden_act = f.string("hidden_act")?.unwrap_or_else(|| "silu".into());
        let (mut attention_bias, mut mlp_bias) = (false, false);
        let (mut sliding_window, mut max_window_layers) = (None, None);
        let num_hidden_layers = f.need_usize("num_hidden_layers")?;
        match model_type.as_str() {
            "llama" => {
                attention_bias = f.bool("attention_bias")?.unwrap_or(false);
                mlp_bias = f.bool("mlp_bias")?.unwrap_or(false);
            }
            "mistral" => {
                sliding_window = f.usize("sliding_window")?;
            }
            "qwen2" => {
                let use_sw = f.bool("use_sliding_window")?.unwrap_or(false);
                let window = f.usize("sliding_window")?;
                let first = f.usize("max_window_layers")?;
                if use_sw {
                    sliding_window = Some(window.ok_or_else(|| {
                        err("`use_sliding_window` is true but `sliding_window` is missing".into())
                    })?);
                    max_window_layers = Some(first.unwrap_or(num_hidden_layers));
                }
            }
            _ => unreachable!("checked against MODEL_TYPES"),
        }
        // transformers 5 writes the per-layer attention kinds; they must agree with the above.
        if let Some(v) = f.take("layer_types") {
            let kinds: Vec<String> = v
                .as_array()
                .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect())
                .ok_or_else(|| err(format!("`layer_types` must be a list of strings, got {v}")))?;
            let cfg_window = |l: usize| {
                sliding_window.is_some() && max_window_layers.is_none_or(|first| l >= first)
            };
            if kinds.len() != num_hidden_layers {
                return Err(err(format!(
                    "`layer_types` has {} entries for {num_hidden_layers} layers",
                    kinds.len()
                )));
            }
            for (l, k) in kinds.iter().enumerate() {
                let sliding = match k.as_str() {
                    "full_attention" => false,
                    "sliding_attention" => true,
                    other => {
                        return Err(err(format!(
                            "`layer_types[{l}]` = {other:?} is not supported (full_attention, sliding_attention)"
                        )));
                    }
                };
                if sliding != cfg_window(l) {
                    return Err(err(format!(
                        "`layer_types[{l}]` = {k:?} contradicts sliding_window / max_window_layers"
                    )));
                }
            }
        }
        if let Some(d) = f.f64("attention_dropout")?
            && d != 0.0
        {
            return Err(err(format!(
                "`attention_dropout` = {d} is not supported (only 0.0)"
            )));
        }
        let eos_token_id = token_ids("eos_token_id", f.take("eos_token_id"))?;
        let cfg = Self {
            architectures,
            model_type,
            vocab_size: f.need_usize("vocab_size")?,
            hidden_size: f.need_usize("hidden_size")?,
            intermediate_size: f.need_usize("intermediate_size")?,
            num_hidden_layers,
            num_attention_heads: f.need_usize("num_attention_heads")?,
            num_key_value_heads: f.usize("num_key_value_heads")?,
            head_dim: f.usize("head_dim")?,
            max_position_embeddings: f.usize("max_position_embeddings")?.unwrap_or(2048),
            rms_norm_eps: f.f64("rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            tie_word_embeddings: f.bool("tie_word_embeddings")?.unwrap_or(false),
            bos_token_id: f.token("bos_token_id")?,
            eos_token_id,
            pad_token_id: f.token("pad_token_id")?,
            hidden_act,
            attention_bias,
            mlp_bias,
            sliding_window,
            max_window_layers,
            torch_dtype: dtype,
            initializer_range: f.f64("initializer_range")?.unwrap_or(0.02),
            use_cache: f.bool("use_cache")?.unwrap_or(true),
        };
        for (k, v) in f.map {
            if HARMLESS.contains(&k.as_str()) || v.is_null() {
                continue;
            }
            return Err(err(format!(
                "`{k}` = {v} is not supported for model_type {:?}: it may change the computation, \
                 and this implementation does not honour it",
                cfg.model_type
            )));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The `config.json` object (transformers 4 style: top-level `rope_theta`, `rope_scaling`,
    /// `torch_dtype`; transformers 5 reads it too).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("architectures".into(), json!(self.architectures));
        m.insert("model_type".into(), json!(self.model_type));
        m.insert("vocab_size".into(), json!(self.vocab_size));
        m.insert("hidden_size".into(), json!(self.hidden_size));
        m.insert("intermediate_size".into(), json!(self.intermediate_size));
        m.insert("num_hidden_layers".into(), json!(self.num_hidden_layers));
        m.insert(
            "num_attention_heads".into(),
            json!(self.num_attention_heads),
        );
        m.insert("num_key_value_heads".into(), json!(self.kv_heads()));
        if let Some(h) = self.head_dim {
            m.insert("head_dim".into(), json!(h));
        }
        m.insert(
            "max_position_embeddings".into(),
            json!(self.max_position_embeddings),
        );
        m.insert("rms_norm_eps".into(), json!(self.rms_norm_eps));
        m.insert("rope_theta".into(), json!(self.rope_theta));
        if let Some(s) = &self.rope_scaling {
            m.insert("rope_scaling".into(), s.to_json());
        }
        m.insert(
            "tie_word_embeddings".into(),
            json!(self.tie_word_embeddings),
        );
        m.insert("bos_token_id".into(), json!(self.bos_token_id));
        m.insert(
            "eos_token_id".into(),
            match self.eos_token_id.as_slice() {
                [] => Value::Null,
                [one] => json!(one),
                many => json!(many),
            },
        );
        if let Some(p) = self.pad_token_id {
            m.insert("pad_token_id".into(), json!(p));
        }
        m.insert("hidden_act".into(), json!(self.hidden_act));
        match self.model_type.as_str() {
            "llama" => {
                m.insert("attention_bias".into(), json!(self.attention_bias));
                m.insert("mlp_bias".into(), json!(self.mlp_bias));
            }
            "mistral" => {
                m.insert("sliding_window".into(), json!(self.sliding_window));
            }
            "qwen2" => {
                m.insert(
                    "use_sliding_window".into(),
                    json!(self.sliding_window.is_some()),
                );
                if let Some(w) = self.sliding_window {
                    m.insert("sliding_window".into(), json!(w));
                    m.insert("max_window_layers".into(), json!(self.max_window_layers));
                }
            }
            _ => {}
        }
        m.insert("torch_dtype".into(), json!(self.torch_dtype));
        m.insert("initializer_range".into(), json!(self.initializer_range));
        m.insert("use_cache".into(), json!(self.use_cache));
        Value::Object(m)
    }

    /// Key/value heads (defaults to the query heads).
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Which projections carry biases.
    pub fn biases(&self) -> Biases {
        match self.model_type.as_str() {
            "qwen2" => Biases {
                qkv: true,
                o: false,
                mlp: false,
            },
            _ => Biases {
                qkv: self.attention_bias,
                o: self.attention_bias,
                mlp: self.mlp_bias,
            },
        }
    }

    /// The attention window of layer `l` (`None`: full causal attention).
    pub fn layer_window(&self, l: usize) -> Option<usize> {
        let w = self.sliding_window?;
        match self.max_window_layers {
            Some(first) if l < first => None,
            _ => Some(w),
        }
    }

    /// The first end-of-sequence id, if any.
    pub fn first_eos(&self) -> Option<u32> {
        self.eos_token_id.first().copied()
    }

    /// Checks the settings this implementation relies on; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::from(ModelError::Config(m)));
        if !MODEL_TYPES.contains(&self.model_type.as_str()) {
            return bad(format!(
                "model_type is {:?}; supported: {}",
                self.model_type,
                MODEL_TYPES.join(", ")
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
        if !self.head_dim().is_multiple_of(2) || self.head_dim() == 0 {
            return bad(format!(
                "head_dim {} must be even and > 0 (rotary embeddings)",
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
        if self.model_type != "llama" && (self.attention_bias || self.mlp_bias) {
            return bad(format!(
                "attention_bias / mlp_bias are llama settings, not {:?}",
                self.model_type
            ));
        }
        if self.sliding_window == Some(0) {
            return bad("sliding_window must be > 0".into());
        }
        if self.rms_norm_eps.is_nan()
            || self.rms_norm_eps <= 0.0
            || self.rope_theta.is_nan()
            || self.rope_theta <= 0.0
        {
            return bad("rms_norm_eps and rope_theta must be > 0".into());
        }
        if let Some(RopeScaling::Llama3 {
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
            ..
        }) = &self.rope_scaling
            && (high_freq_factor <= low_freq_factor || *original_max_position_embeddings == 0)
        {
            return bad(format!(
                "llama3 rope: high_freq_factor {high_freq_factor} must exceed low_freq_factor \
                 {low_freq_factor} and original_max_position_embeddings must be > 0"
            ));
        }
        Ok(())
    }

    /// Reads and validates a `config.json`; errors name the file and the field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::from_json(v).map_err(|e| match e {
            Error::Model(ModelError::Config(m)) => {
                ModelError::Config(format!("{}: {m}", path.display())).into()
            }
            other => other,
        })
    }

    /// Writes `config.json` (pretty JSON, atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.to_json()).map_err(|e| Error::Json {
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
        let (qd, kd) = (hd * self.num_attention_heads, hd * self.kv_heads());
        let b = self.biases();
        let bias = if b.qkv { qd + 2 * kd } else { 0 }
            + if b.o { h } else { 0 }
            + if b.mlp { 2 * i + h } else { 0 };
        let attn = h * qd * 2 + h * kd * 2;
        let layer = attn + 3 * h * i + 2 * h + bias;
        let head = if self.tie_word_embeddings { 0 } else { v * h };
        v * h + self.num_hidden_layers * layer + h + head
    }
}

fn default_arch(model_type: &str) -> String {
    match model_type {
        "qwen2" => "Qwen2ForCausalLM",
        "mistral" => "MistralForCausalLM",
        _ => "LlamaForCausalLM",
    }
    .into()
}

impl Serialize for LlamaConfig {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for LlamaConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Self::from_json(v).map_err(serde::de::Error::custom)
    }
}
