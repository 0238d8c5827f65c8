//! PEFT's LoRA adapter format at the file level, the one definition shared by model loading
//! (`load_adapter`, `with_adapter`, `generate --adapter`, perplexity, training) and by diffs and
//! merges (`yunmin diff` / `merge`):
//!
//! - [`AdapterConfig`]: `adapter_config.json` as PEFT 0.x writes it. Every field is honoured,
//!   known to be harmless, or refused with an error naming it and its value
//!   ([`AdapterConfig::validate`]).
//! - [`AdapterConfig::scaling_for`]: the rank and scale PEFT gives one module —
//!   `rank_pattern` / `alpha_pattern` resolved as PEFT's `get_pattern_key` does, then
//!   `lora_alpha / r` or, with `use_rslora`, `lora_alpha / √r`.
//! - [`AdapterConfig::targets`]: whether `target_modules` / `exclude_modules` /
//!   `layers_to_transform` select a module (PEFT's `check_target_module_exists`).
//! - [`parse_lora_key`], [`lora_key`], [`pair_lora_tensors`]: tensor names
//!   (`base_model.model.<module>.lora_A.weight`, also `….lora_A.<adapter>.weight`) and their
//!   pairing into checked factors.

use super::ModelError;
use crate::{Error, Result};
use fancy_regex::Regex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Name of the adapter configuration file.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// Name of the adapter weights file.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// Prefix PEFT puts before the module path in tensor names.
pub const KEY_PREFIX: &str = "base_model.model.";

/// `target_modules` / `exclude_modules`: module names (a module matches a name exactly or ends
/// with `.<name>`), or one regular expression that must match the whole module path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModuleSelector {
    /// Names or name suffixes (`["q_proj", "v_proj"]`).
    Names(Vec<String>),
    /// A regular expression (Python `re.fullmatch` against the module path). `"all-linear"`
    /// selects every linear layer except the output layer.
    Regex(String),
}

/// A value PEFT accepts either alone or as a list (`layers_to_transform`, `layers_pattern`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T: PartialEq> OneOrMany<T> {
    fn contains(&self, x: &T) -> bool {
        match self {
            Self::One(v) => v == x,
            Self::Many(v) => v.contains(x),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Self::Many(v) if v.is_empty())
    }

    fn as_slice(&self) -> &[T] {
        match self {
            Self::One(v) => std::slice::from_ref(v),
            Self::Many(v) => v,
        }
    }
}

/// `init_lora_weights`: `true`, `false` or an initialisation method name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InitLoraWeights {
    /// `true` (B = 0) or `false` (random A and B).
    Flag(bool),
    /// A method: `"gaussian"`, `"eva"`, `"orthogonal"` are accepted (they only initialise A
    /// and B, which the saved tensors replace); methods that rewrite the base weights when the
    /// adapter is loaded (`pissa…`, `olora`, `corda`, `loftq`, `lora_ga`) or select a variant
    /// (`mica`) are refused.
    Method(String),
}

impl Default for InitLoraWeights {
    fn default() -> Self {
        Self::Flag(true)
    }
}

/// `rank_pattern` / `alpha_pattern`: pattern → value, in file order (PEFT takes the first
/// pattern that matches). `null` reads as empty.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternMap<T>(pub Vec<(String, T)>);

impl<T> Default for PatternMap<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> PatternMap<T> {
    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Serialize> Serialize for PatternMap<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for PatternMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // serde_json's map keeps the file order (feature `preserve_order`).
        let m: Option<Map<String, Value>> = Option::deserialize(d)?;
        let mut out = Vec::new();
        for (k, v) in m.unwrap_or_default() {
            let x = T::deserialize(v)
                .map_err(|e| serde::de::Error::custom(format!("pattern `{k}`: {e}")))?;
            out.push((k, x));
        }
        Ok(Self(out))
    }
}

fn none() -> String {
    "none".into()
}
fn yes() -> bool {
    true
}

/// PEFT's `adapter_config.json` for a LoRA adapter. The typed fields are the ones this crate
/// honours or writes; every other key is kept in [`AdapterConfig::other`] and checked by
/// [`AdapterConfig::validate`] (see `docs/models.md` for the table of fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    /// `"LORA"` (anything else is refused).
    pub peft_type: String,
    /// `"CAUSAL_LM"` for the adapters written here; informational.
    #[serde(default)]
    pub task_type: Option<String>,
    /// Rank (of the modules no `rank_pattern` entry matches).
    pub r: usize,
    /// Scaling numerator (of the modules no `alpha_pattern` entry matches).
    pub lora_alpha: f64,
    /// Dropout used in training; no effect on the weights.
    #[serde(default)]
    pub lora_dropout: f64,
    /// The modules the adapter covers; `null` accepts every module in the weights file.
    #[serde(default)]
    pub target_modules: Option<ModuleSelector>,
    /// Modules excluded from `target_modules`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_modules: Option<ModuleSelector>,
    /// `"none"` only: `"all"` / `"lora_only"` train biases, which are refused.
    #[serde(default = "none")]
    pub bias: String,
    /// `false` only (`true` is GPT-2's transposed Conv1D layout).
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// `true` for saved adapters; informational.
    #[serde(default = "yes")]
    pub inference_mode: bool,
    /// The base model the adapter was trained on; informational.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// How A and B were initialised (see [`InitLoraWeights`]).
    #[serde(default)]
    pub init_lora_weights: InitLoraWeights,
    /// Rank-stabilised scaling: `lora_alpha / √r` instead of `lora_alpha / r`.
    #[serde(default)]
    pub use_rslora: bool,
    /// DoRA: refused when `true`.
    #[serde(default)]
    pub use_dora: bool,
    /// Extra modules saved in full: refused when non-empty.
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    /// Only these layer indices are adapted (with a `target_modules` list).
    #[serde(default)]
    pub layers_to_transform: Option<OneOrMany<usize>>,
    /// The name of the layer list (`layers`) `layers_to_transform` counts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_pattern: Option<OneOrMany<String>>,
    /// Base model revision; informational.
    #[serde(default)]
    pub revision: Option<String>,
    /// Per-module ranks: pattern → rank.
    #[serde(default, skip_serializing_if = "PatternMap::is_empty")]
    pub rank_pattern: PatternMap<usize>,
    /// Per-module alphas: pattern → alpha.
    #[serde(default, skip_serializing_if = "PatternMap::is_empty")]
    pub alpha_pattern: PatternMap<f64>,
    /// Every other key, as read (written back unchanged).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Keys that never change the weights of a loaded adapter (bookkeeping, training-time or
/// initialisation settings that the saved tensors override), accepted with any value.
const HARMLESS: &[&str] = &[
    "auto_mapping",
    "peft_version",
    "megatron_config",
    "megatron_core",
    "runtime_config",
    "eva_config",
    "corda_config",
    "lora_ga_config",
    "qalora_group_size",
    "ensure_weight_tying",
];

/// Keys of PEFT features that change the adapter's arithmetic and are not implemented:
/// refused whenever set (anything but `null`, `false`, `""`, `[]`, `{}`).
const REFUSED: &[(&str, &str)] = &[
    ("lora_bias", "a trained bias on lora_B is not implemented"),
    (
        "use_qalora",
        "quantization-aware LoRA (pooled inputs) is not implemented",
    ),
    (
        "layer_replication",
        "replicated decoder layers are not implemented",
    ),
    (
        "target_parameters",
        "LoRA on raw parameters (e.g. MoE experts) is not implemented",
    ),
    (
        "trainable_token_indices",
        "trained embedding rows are not implemented",
    ),
    (
        "alora_invocation_tokens",
        "activated LoRA (applied only after the invocation tokens) is not implemented",
    ),
    (
        "loftq_config",
        "LoftQ replaces the base weights by quantised ones; not implemented",
    ),
    ("velora_config", "the VeLoRA variant is not implemented"),
    (
        "monteclora_config",
        "the MonteCLoRA variant (sampled perturbations) is not implemented",
    ),
    (
        "use_bdlora",
        "block-diagonal LoRA factors are not implemented",
    ),
    (
        "arrow_config",
        "Arrow routing between adapters is not implemented",
    ),
    (
        "kasa_config",
        "KaSA (truncated base weights, a learned diagonal) is not implemented",
    ),
];

/// `init_lora_weights` methods that only initialise A and B (the saved tensors replace them).
const HARMLESS_INITS: &[&str] = &["gaussian", "eva", "orthogonal"];

/// Whether a JSON value leaves a feature off (`null`, `false`, `""`, `[]`, `{}`).
fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Compiles `pattern` anchored at both ends (Python's `re.fullmatch`).
fn full_regex(pattern: &str) -> std::result::Result<Regex, fancy_regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// The regex PEFT's `get_pattern_key` builds from a `rank_pattern` / `alpha_pattern` key:
/// `re.match(rf"(.*\.)?({key})$", module)`.
fn pattern_regex(key: &str) -> std::result::Result<Regex, fancy_regex::Error> {
    Regex::new(&format!(r"^(.*\.)?({key})$"))
}

fn regex_matches(re: std::result::Result<Regex, fancy_regex::Error>, s: &str) -> bool {
    re.ok().is_some_and(|r| r.is_match(s).unwrap_or(false))
}

/// PEFT's `get_pattern_key` + `dict.get`: the value of the first key (in file order) whose
/// pattern matches `module`; else the value stored under `module` itself; else `None`.
fn pattern_value<'a, T>(map: &'a PatternMap<T>, module: &str) -> Option<(&'a str, &'a T)> {
    map.0
        .iter()
        .find(|(k, _)| regex_matches(pattern_regex(k), module))
        .or_else(|| map.0.iter().find(|(k, _)| k == module))
        .map(|(k, v)| (k.as_str(), v))
}

/// The rank and scale PEFT gives one module, and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleScaling {
    /// Rank.
    pub r: usize,
    /// Alpha.
    pub alpha: f64,
    /// `alpha / r`, or `alpha / √r` with `use_rslora`.
    pub scale: f64,
    /// The `rank_pattern` key that set `r`, if any.
    pub rank_key: Option<String>,
    /// The `alpha_pattern` key that set `alpha`, if any.
    pub alpha_key: Option<String>,
}

impl AdapterConfig {
    /// A config for rank `r`, `alpha`, `dropout` on `targets` (PEFT's defaults otherwise).
    pub fn new(
        r: usize,
        alpha: f64,
        dropout: f64,
        targets: &[String],
        base: Option<&Path>,
    ) -> Self {
        Self {
            peft_type: "LORA".into(),
            task_type: Some("CAUSAL_LM".into()),
            r,
            lora_alpha: alpha,
            lora_dropout: dropout,
            target_modules: Some(ModuleSelector::Names(targets.to_vec())),
            exclude_modules: None,
            bias: none(),
            fan_in_fan_out: false,
            inference_mode: true,
            base_model_name_or_path: base.map(|p| p.display().to_string()),
            init_lora_weights: InitLoraWeights::Flag(true),
            use_rslora: false,
            use_dora: false,
            modules_to_save: None,
            layers_to_transform: None,
            layers_pattern: None,
            revision: None,
            rank_pattern: PatternMap::default(),
            alpha_pattern: PatternMap::default(),
            other: Map::new(),
        }
    }

    /// Parses and validates the text of an `adapter_config.json` read from `path`.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The scale of a module with rank `r` and `alpha`: `alpha / r`, or `alpha / √r` with
    /// `use_rslora`.
    pub fn scale_of(&self, r: usize, alpha: f64) -> f64 {
        if self.use_rslora {
            alpha / (r as f64).sqrt()
        } else {
            alpha / r as f64
        }
    }

    /// The scale of the modules no pattern matches: [`Self::scale_of`]`(r, lora_alpha)`.
    pub fn scaling(&self) -> f64 {
        self.scale_of(self.r, self.lora_alpha)
    }

    /// `(r, scale)` of `module` (`model.layers.0.self_attn.q_proj`): `rank_pattern` and
    /// `alpha_pattern` resolved as PEFT does, then [`Self::scale_of`]. The one scaling used by
    /// `fold_into` / `attach` and by `diff`.
    pub fn scaling_for(&self, module: &str) -> (usize, f64) {
        let m = self.module_scaling(module);
        (m.r, m.scale)
    }

    /// [`Self::scaling_for`] with the pattern keys that decided it.
    pub fn module_scaling(&self, module: &str) -> ModuleScaling {
        let rank = pattern_value(&self.rank_pattern, module);
        let alpha = pattern_value(&self.alpha_pattern, module);
        let r = rank.map_or(self.r, |(_, v)| *v);
        let a = alpha.map_or(self.lora_alpha, |(_, v)| *v);
        ModuleScaling {
            r,
            alpha: a,
            scale: self.scale_of(r, a),
            rank_key: rank.map(|(k, _)| k.to_string()),
            alpha_key: alpha.map(|(k, _)| k.to_string()),
        }
    }

    /// Whether the config selects `module` (PEFT's `check_target_module_exists`):
    /// `exclude_modules` first, then `target_modules` (exact name, `.`-suffix or full regex
    /// match), then `layers_to_transform` / `layers_pattern` for a name list. With
    /// `target_modules: null` every module is accepted.
    pub fn targets(&self, module: &str) -> bool {
        match &self.exclude_modules {
            Some(ModuleSelector::Regex(p)) if regex_matches(full_regex(p), module) => {
                return false;
            }
            Some(ModuleSelector::Names(v))
                if v.iter()
                    .any(|n| module == n || module.ends_with(&format!(".{n}"))) =>
            {
                return false;
            }
            _ => {}
        }
        let names = match &self.target_modules {
            None => return true,
            Some(ModuleSelector::Regex(p)) if p == "all-linear" => {
                return module != "lm_head" && !module.ends_with(".lm_head");
            }
            Some(ModuleSelector::Regex(p)) => return regex_matches(full_regex(p), module),
            Some(ModuleSelector::Names(v)) => v,
        };
        if names.iter().any(|n| n == module) {
            return true;
        }
        if !names.iter().any(|n| module.ends_with(&format!(".{n}"))) {
            return false;
        }
        let Some(layers) = self.layers_to_transform.as_ref().filter(|l| !l.is_empty()) else {
            return true;
        };
        let index = match self.layers_pattern.as_ref().filter(|p| !p.is_empty()) {
            None => layer_index(r"^.*?\.[^.]*\.(\d+)\.", module),
            Some(p) => p
                .as_slice()
                .iter()
                .find_map(|pat| layer_index(&format!(r"^(?:^|.*?\.){pat}\.(\d+)\."), module)),
        };
        index.is_some_and(|i| layers.contains(&i))
    }

    /// Checks every field: what changes the arithmetic and is not implemented, or is invalid,
    /// is an error naming the field and its value (`path` is the file, for the message).
    pub fn validate(&self, path: &Path) -> Result<()> {
        let refuse = |field: &str, value: &dyn std::fmt::Display, why: &str| -> Error {
            ModelError::AdapterConfig {
                path: path.display().to_string(),
                field: field.into(),
                value: value.to_string(),
                why: why.into(),
            }
            .into()
        };
        if self.peft_type != "LORA" {
            return Err(refuse(
                "peft_type",
                &json(&self.peft_type),
                "only LoRA adapters (\"LORA\") are supported",
            ));
        }
        if self.r == 0 {
            return Err(refuse("r", &0, "the rank must be at least 1"));
        }
        if !self.lora_alpha.is_finite() {
            return Err(refuse(
                "lora_alpha",
                &self.lora_alpha,
                "must be a finite number",
            ));
        }
        if self.bias != "none" {
            return Err(refuse(
                "bias",
                &json(&self.bias),
                "trained biases are not implemented; only \"none\" is supported",
            ));
        }
        if self.fan_in_fan_out {
            return Err(refuse(
                "fan_in_fan_out",
                &true,
                "transposed (Conv1D, [in, out]) weights are not supported; Llama-family \
                 projections are [out, in]",
            ));
        }
        if self.use_dora {
            return Err(refuse(
                "use_dora",
                &true,
                "DoRA (a learned magnitude per output row) is not implemented",
            ));
        }
        if let Some(m) = self.modules_to_save.as_ref().filter(|m| !m.is_empty()) {
            return Err(refuse(
                "modules_to_save",
                &json(m),
                "modules saved in full (replacing base weights) are not implemented",
            ));
        }
        if let InitLoraWeights::Method(m) = &self.init_lora_weights
            && !HARMLESS_INITS.contains(&m.to_lowercase().as_str())
        {
            return Err(refuse(
                "init_lora_weights",
                &json(m),
                "this initialisation rewrites the base weights (or selects a LoRA variant) \
                 when PEFT loads the adapter; convert the adapter to plain LoRA first \
                 (only true, false, \"gaussian\", \"eva\", \"orthogonal\" are accepted)",
            ));
        }
        if let Some(ModuleSelector::Regex(p)) = &self.target_modules
            && p != "all-linear"
            && let Err(e) = full_regex(p)
        {
            return Err(refuse(
                "target_modules",
                &json(p),
                &format!("not a valid regular expression: {e}"),
            ));
        }
        if let Some(ModuleSelector::Regex(p)) = &self.exclude_modules
            && let Err(e) = full_regex(p)
        {
            return Err(refuse(
                "exclude_modules",
                &json(p),
                &format!("not a valid regular expression: {e}"),
            ));
        }
        if let Some(p) = &self.layers_pattern {
            for pat in p.as_slice() {
                if let Err(e) = Regex::new(&format!(r"^(?:^|.*?\.){pat}\.(\d+)\.")) {
                    return Err(refuse(
                        "layers_pattern",
                        &json(pat),
                        &format!("not a valid regular expression: {e}"),
                    ));
                }
            }
        }
        for (k, v) in &self.rank_pattern.0 {
            let field = format!("rank_pattern.{k}");
            if *v == 0 {
                return Err(refuse(&field, v, "the rank must be at least 1"));
            }
            if let Err(e) = pattern_regex(k) {
                return Err(refuse(
                    &field,
                    v,
                    &format!("the key is not a valid regular expression: {e}"),
                ));
            }
        }
        for (k, v) in &self.alpha_pattern.0 {
            let field = format!("alpha_pattern.{k}");
            if !v.is_finite() {
                return Err(refuse(&field, v, "must be a finite number"));
            }
            if let Err(e) = pattern_regex(k) {
                return Err(refuse(
                    &field,
                    v,
                    &format!("the key is not a valid regular expression: {e}"),
                ));
            }
        }
        for (k, v) in &self.other {
            if HARMLESS.contains(&k.as_str()) || is_unset(v) {
                continue;
            }
            let why = REFUSED.iter().find(|(f, _)| f == k).map_or(
                "a field this reader does not know; it may change the adapter's \
                     arithmetic, so it is refused unless null, false or empty",
                |(_, w)| w,
            );
            return Err(refuse(k, &json(v), why));
        }
        Ok(())
    }
}

/// Compact JSON of a value, for error messages.
fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The first capture of `re` (anchored by the caller) in `module`, as a layer index.
fn layer_index(re: &str, module: &str) -> Option<usize> {
    let re = Regex::new(re).ok()?;
    re.captures(module).ok()??.get(1)?.as_str().parse().ok()
}

/// Reads and validates `dir/adapter_config.json`.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    AdapterConfig::from_json(&text, &path)
}

/// Which LoRA factor a tensor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraFactor {
    /// `lora_A`, `[r, in]`.
    A,
    /// `lora_B`, `[out, r]`.
    B,
}

/// Splits a PEFT tensor name into the module path and the factor:
/// `base_model.model.<module>.lora_A.weight` (as PEFT saves it) or
/// `….lora_A.<adapter name>.weight` (as it names live parameters). Anything else —
/// `lora_embedding_*`, `lora_magnitude_vector`, biases, full modules — is `None`.
pub fn parse_lora_key(key: &str) -> Option<(&str, LoraFactor)> {
    let k = key.strip_prefix(KEY_PREFIX).unwrap_or(key);
    for (marker, factor) in [(".lora_A.", LoraFactor::A), (".lora_B.", LoraFactor::B)] {
        let Some(pos) = k.find(marker) else {
            continue;
        };
        let module = &k[..pos];
        let rest = &k[pos + marker.len()..];
        let adapter_ok = rest == "weight"
            || rest
                .strip_suffix(".weight")
                .is_some_and(|name| !name.is_empty() && !name.contains('.'));
        if !module.is_empty() && adapter_ok {
            return Some((module, factor));
        }
    }
    None
}

/// The tensor name PEFT saves a factor of `module` under.
pub fn lora_key(module: &str, factor: LoraFactor) -> String {
    let f = match factor {
        LoraFactor::A => "lora_A",
        LoraFactor::B => "lora_B",
    };
    format!("{KEY_PREFIX}{module}.{f}.weight")
}

/// The two factors of one adapted module, checked against the config.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraTensors<T> {
    /// `lora_A` (what the caller passed for it).
    pub a: T,
    /// `lora_B`.
    pub b: T,
    /// Tensor name of A.
    pub a_key: String,
    /// Tensor name of B.
    pub b_key: String,
    /// Shape of A, `[r, in]`.
    pub a_shape: [usize; 2],
    /// Shape of B, `[out, r]`.
    pub b_shape: [usize; 2],
    /// The module's rank.
    pub r: usize,
    /// The module's scale ([`AdapterConfig::scaling_for`]).
    pub scale: f64,
}

/// Pairs the tensors of an adapter weights file (`file`, for messages) into factors keyed by
/// module path. Each item is `(tensor name, shape, payload)`; the payload (the data, or just
/// the name for lazy readers) is handed back in [`LoraTensors`]. Errors name the tensor: a name
/// that is not a LoRA factor, a factor that is not 2-D, two tensors for one factor, an A without
/// its B (or the reverse), a module `target_modules` does not select, a rank that differs from
/// [`AdapterConfig::scaling_for`]'s, or no factors at all.
pub fn pair_lora_tensors<T>(
    config: &AdapterConfig,
    file: &Path,
    tensors: impl IntoIterator<Item = (String, Vec<usize>, T)>,
) -> Result<BTreeMap<String, LoraTensors<T>>> {
    let err = |msg: String| -> Error {
        ModelError::Adapter {
            path: file.display().to_string(),
            msg,
        }
        .into()
    };
    /// (tensor name, shape, payload) of one factor.
    type Half<T> = (String, [usize; 2], T);
    /// The A and B found so far for one module.
    type Halves<T> = (Option<Half<T>>, Option<Half<T>>);
    let mut halves: BTreeMap<String, Halves<T>> = BTreeMap::new();
    for (key, shape, payload) in tensors {
        let Some((module, factor)) = parse_lora_key(&key) else {
            return Err(err(format!(
                "unsupported tensor `{key}`: only lora_A / lora_B weights of linear layers are \
                 implemented (not lora_embedding_*, lora_magnitude_vector, biases or full modules)"
            )));
        };
        let [rows, cols] = shape[..] else {
            return Err(err(format!(
                "tensor `{key}` has shape {shape:?}; LoRA factors are 2-D"
            )));
        };
        let slot = halves.entry(module.to_string()).or_default();
        let slot = match factor {
            LoraFactor::A => &mut slot.0,
            LoraFactor::B => &mut slot.1,
        };
        if let Some((other, _, _)) = slot {
            return Err(err(format!(
                "`{key}` and `{other}` are both lora_{factor:?} of module `{module}`"
            )));
        }
        *slot = Some((key, [rows, cols], payload));
    }
    if halves.is_empty() {
        return Err(err("no lora_A / lora_B tensors".into()));
    }
    let mut out = BTreeMap::new();
    for (module, pair) in halves {
        let (a, b) = match pair {
            (Some(a), Some(b)) => (a, b),
            (Some((k, _, _)), None) => {
                return Err(err(format!(
                    "`{k}` has no matching lora_B tensor (`{}`)",
                    lora_key(&module, LoraFactor::B)
                )));
            }
            (None, Some((k, _, _))) => {
                return Err(err(format!(
                    "`{k}` has no matching lora_A tensor (`{}`)",
                    lora_key(&module, LoraFactor::A)
                )));
            }
            (None, None) => unreachable!("an entry is created with one half"),
        };
        if !config.targets(&module) {
            return Err(err(format!(
                "`{}` adapts module `{module}`, which adapter_config.json does not target \
                 (target_modules {}, exclude_modules {}, layers_to_transform {}); PEFT would \
                 not load it",
                a.0,
                serde_json::to_string(&config.target_modules).unwrap_or_default(),
                serde_json::to_string(&config.exclude_modules).unwrap_or_default(),
                serde_json::to_string(&config.layers_to_transform).unwrap_or_default(),
            )));
        }
        let m = config.module_scaling(&module);
        let source = match &m.rank_key {
            Some(k) => format!("rank_pattern key `{k}`"),
            None => "`r`".into(),
        };
        if a.1[0] != m.r || b.1[1] != m.r {
            return Err(err(format!(
                "module `{module}`: rank mismatch, adapter_config.json gives r = {} ({source}), \
                 `{}` is {:?}, `{}` is {:?}",
                m.r, a.0, a.1, b.0, b.1
            )));
        }
        out.insert(
            module,
            LoraTensors {
                a: a.2,
                b: b.2,
                a_key: a.0,
                b_key: b.0,
                a_shape: a.1,
                b_shape: b.1,
                r: m.r,
                scale: m.scale,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What PEFT 0.21.2 writes for `LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj",
    /// "v_proj"], use_rslora=True, rank_pattern={"v_proj": 2},
    /// alpha_pattern={"model.layers.1.self_attn.q_proj": 3}, task_type="CAUSAL_LM",
    /// lora_dropout=0.05).save_pretrained(…)`.
    const PEFT_0_21: &str = r#"{
  "alora_invocation_tokens": null,
  "alpha_pattern": {
    "model.layers.1.self_attn.q_proj": 3
  },
  "arrow_config": null,
  "auto_mapping": null,
  "base_model_name_or_path": null,
  "bias": "none",
  "corda_config": null,
  "ensure_weight_tying": false,
  "eva_config": null,
  "exclude_modules": null,
  "fan_in_fan_out": false,
  "inference_mode": false,
  "init_lora_weights": true,
  "kasa_config": null,
  "layer_replication": null,
  "layers_pattern": null,
  "layers_to_transform": null,
  "loftq_config": {},
  "lora_alpha": 8,
  "lora_bias": false,
  "lora_dropout": 0.05,
  "lora_ga_config": null,
  "megatron_config": null,
  "megatron_core": "megatron.core",
  "modules_to_save": null,
  "monteclora_config": null,
  "peft_type": "LORA",
  "peft_version": "0.21.2",
  "qalora_group_size": 16,
  "r": 4,
  "rank_pattern": {
    "v_proj": 2
  },
  "revision": null,
  "target_modules": [
    "q_proj",
    "v_proj"
  ],
  "target_parameters": null,
  "task_type": "CAUSAL_LM",
  "trainable_token_indices": null,
  "use_bdlora": null,
  "use_dora": false,
  "use_qalora": false,
  "use_rslora": true,
  "velora_config": null
}"#;

    fn parse(text: &str) -> Result<AdapterConfig> {
        AdapterConfig::from_json(text, Path::new("adapter_config.json"))
    }

    /// A minimal config with `extra` (a JSON object body, may be empty) merged in.
    fn with(extra: &str) -> Result<AdapterConfig> {
        let sep = if extra.is_empty() { "" } else { ", " };
        parse(&format!(
            r#"{{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]{sep}{extra}}}"#
        ))
    }

    #[test]
    fn reads_what_peft_writes_with_rslora_and_patterns() {
        let c = parse(PEFT_0_21).unwrap();
        assert!(c.use_rslora);
        // q_proj: r = 4, alpha 8 → 8 / √4 = 4; layer 1's q_proj has alpha 3 → 3 / 2.
        assert_eq!(c.scaling_for("model.layers.0.self_attn.q_proj"), (4, 4.0));
        assert_eq!(c.scaling_for("model.layers.1.self_attn.q_proj"), (4, 1.5));
        // v_proj: rank 2 from the pattern → 8 / √2.
        let (r, s) = c.scaling_for("model.layers.3.self_attn.v_proj");
        assert_eq!(r, 2);
        assert!((s - 8.0 / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(c.scaling(), 4.0);
        let m = c.module_scaling("model.layers.3.self_attn.v_proj");
        assert_eq!(m.rank_key.as_deref(), Some("v_proj"));
        assert_eq!(m.alpha_key, None);
        // Written back, PEFT's keys survive (the ones it would read).
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["rank_pattern"]["v_proj"], 2);
        assert_eq!(v["peft_version"], "0.21.2");
        assert_eq!(v["target_modules"], serde_json::json!(["q_proj", "v_proj"]));
    }

    #[test]
    fn plain_lora_scaling_is_alpha_over_r() {
        let c = with("").unwrap();
        assert_eq!(c.scaling_for("model.layers.0.self_attn.q_proj"), (4, 2.0));
        let c = with(r#""use_rslora": true"#).unwrap();
        assert_eq!(c.scaling_for("model.layers.0.self_attn.q_proj"), (4, 4.0));
    }

    #[test]
    fn patterns_resolve_like_peft_get_pattern_key() {
        let c = with(
            r#""rank_pattern": {"layers\\.[01]\\.self_attn\\.q_proj": 2, "q_proj": 8, "model.layers.5.mlp.down_proj": 3},
               "alpha_pattern": {"^model.layers.2.self_attn.q_proj": 1}"#,
        )
        .unwrap();
        // The first matching key in file order wins.
        assert_eq!(c.scaling_for("model.layers.1.self_attn.q_proj").0, 2);
        assert_eq!(c.scaling_for("model.layers.2.self_attn.q_proj").0, 8);
        // A key matches only at a `.` boundary at the end of the path.
        assert_eq!(c.scaling_for("model.layers.0.self_attn.xq_proj").0, 4);
        assert_eq!(c.scaling_for("model.layers.5.mlp.down_proj").0, 3);
        // `^…` is anchored at the start: `(.*\.)?(^model…)$` matches the full path.
        assert_eq!(
            c.scaling_for("model.layers.2.self_attn.q_proj"),
            (8, 1.0 / 8.0)
        );
        assert_eq!(c.scaling_for("model.layers.3.self_attn.q_proj"), (8, 1.0));
    }

    #[test]
    fn target_modules_as_list_or_regex() {
        let c = with("").unwrap();
        assert!(c.targets("model.layers.0.self_attn.q_proj"));
        assert!(!c.targets("model.layers.0.self_attn.k_proj"));
        assert!(!c.targets("model.layers.0.self_attn.xq_proj"));
        let c = parse(
            r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8,
                "target_modules": ".*layers\\.[0-1]\\..*(q_proj|v_proj)"}"#,
        )
        .unwrap();
        assert!(matches!(c.target_modules, Some(ModuleSelector::Regex(_))));
        assert!(c.targets("model.layers.1.self_attn.v_proj"));
        assert!(!c.targets("model.layers.2.self_attn.v_proj"));
        assert!(!c.targets("model.layers.1.self_attn.k_proj"));
        let c = with(r#""exclude_modules": ["model.layers.0.self_attn.q_proj"]"#).unwrap();
        assert!(!c.targets("model.layers.0.self_attn.q_proj"));
        assert!(c.targets("model.layers.1.self_attn.q_proj"));
        let c = with(r#""layers_to_transform": [1, 3]"#).unwrap();
        assert!(!c.targets("model.layers.0.self_attn.q_proj"));
        assert!(c.targets("model.layers.3.self_attn.v_proj"));
        let c = with(r#""layers_to_transform": 2, "layers_pattern": "layers""#).unwrap();
        assert!(c.targets("model.layers.2.self_attn.v_proj"));
        assert!(!c.targets("model.layers.3.self_attn.v_proj"));
        let c = parse(r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8}"#).unwrap();
        assert!(c.targets("model.layers.0.mlp.up_proj"));
    }

    fn refused(extra: &str, field: &str, value: &str) {
        let e = with(extra).unwrap_err().to_string();
        assert!(
            e.contains(&format!("`{field}` = {value}")),
            "{extra}: {e} (wanted `{field}` = {value})"
        );
    }

    #[test]
    fn features_that_change_the_math_are_refused_by_name() {
        refused(r#""use_dora": true"#, "use_dora", "true");
        refused(
            r#""modules_to_save": ["lm_head"]"#,
            "modules_to_save",
            r#"["lm_head"]"#,
        );
        refused(r#""bias": "lora_only""#, "bias", r#""lora_only""#);
        refused(r#""fan_in_fan_out": true"#, "fan_in_fan_out", "true");
        refused(r#""lora_bias": true"#, "lora_bias", "true");
        refused(r#""use_qalora": true"#, "use_qalora", "true");
        refused(
            r#""layer_replication": [[0, 2], [1, 2]]"#,
            "layer_replication",
            "[[0,2],[1,2]]",
        );
        refused(
            r#""target_parameters": ["mlp.experts.down_proj"]"#,
            "target_parameters",
            r#"["mlp.experts.down_proj"]"#,
        );
        refused(
            r#""trainable_token_indices": [1, 2]"#,
            "trainable_token_indices",
            "[1,2]",
        );
        refused(
            r#""alora_invocation_tokens": [5]"#,
            "alora_invocation_tokens",
            "[5]",
        );
        refused(
            r#""loftq_config": {"loftq_bits": 4}"#,
            "loftq_config",
            r#"{"loftq_bits":4}"#,
        );
        refused(
            r#""init_lora_weights": "pissa""#,
            "init_lora_weights",
            r#""pissa""#,
        );
        refused(
            r#""init_lora_weights": "olora""#,
            "init_lora_weights",
            r#""olora""#,
        );
        refused(
            r#""rank_pattern": {"q_proj": 0}"#,
            "rank_pattern.q_proj",
            "0",
        );
        refused(
            r#""some_new_feature": {"on": 1}"#,
            "some_new_feature",
            r#"{"on":1}"#,
        );
        let e = parse(r#"{"peft_type": "IA3", "r": 4, "lora_alpha": 8}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains(r#"`peft_type` = "IA3""#), "{e}");
        let e = parse(r#"{"peft_type": "LORA", "r": 0, "lora_alpha": 8}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`r` = 0"), "{e}");
    }

    #[test]
    fn harmless_and_unset_fields_are_accepted() {
        let c = with(
            r#""peft_version": "0.21.2", "megatron_core": "megatron.core", "qalora_group_size": 16,
               "init_lora_weights": "gaussian", "some_new_feature": null, "other_flag": false,
               "modules_to_save": [], "lora_dropout": 0.1, "inference_mode": false,
               "task_type": null, "runtime_config": {"ephemeral_gpu_offload": false}"#,
        )
        .unwrap();
        assert_eq!(c.scaling(), 2.0);
    }

    #[test]
    fn keys_parse_in_one_place() {
        assert_eq!(
            parse_lora_key("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"),
            Some(("model.layers.3.self_attn.q_proj", LoraFactor::A))
        );
        assert_eq!(
            parse_lora_key("base_model.model.model.layers.0.mlp.up_proj.lora_B.default.weight"),
            Some(("model.layers.0.mlp.up_proj", LoraFactor::B))
        );
        assert_eq!(parse_lora_key("base_model.model.lm_head.weight"), None);
        assert_eq!(
            parse_lora_key("base_model.model.model.layers.0.mlp.up_proj.lora_B.bias"),
            None
        );
        assert_eq!(
            parse_lora_key("base_model.model.model.embed_tokens.lora_embedding_A"),
            None
        );
        let k = lora_key("model.layers.2.mlp.down_proj", LoraFactor::B);
        assert_eq!(
            k,
            "base_model.model.model.layers.2.mlp.down_proj.lora_B.weight"
        );
        assert_eq!(
            parse_lora_key(&k),
            Some(("model.layers.2.mlp.down_proj", LoraFactor::B))
        );
    }

    #[test]
    fn pairing_checks_names_ranks_and_targets() {
        let c = with(r#""rank_pattern": {"v_proj": 2}"#).unwrap();
        let f = Path::new("adapter_model.safetensors");
        let q = "model.layers.0.self_attn.q_proj";
        let v = "model.layers.0.self_attn.v_proj";
        let ok = vec![
            (lora_key(q, LoraFactor::A), vec![4, 8], 1),
            (lora_key(q, LoraFactor::B), vec![8, 4], 2),
            (lora_key(v, LoraFactor::A), vec![2, 8], 3),
            (lora_key(v, LoraFactor::B), vec![4, 2], 4),
        ];
        let p = pair_lora_tensors(&c, f, ok.clone()).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[q].a, p[q].b, p[q].r, p[q].scale), (1, 2, 4, 2.0));
        assert_eq!((p[v].r, p[v].scale), (2, 4.0));
        // v_proj with rank 4 contradicts its rank_pattern entry.
        let mut bad = ok.clone();
        bad[2].1 = vec![4, 8];
        bad[3].1 = vec![4, 4];
        let e = pair_lora_tensors(&c, f, bad).unwrap_err().to_string();
        assert!(
            e.contains("rank mismatch") && e.contains("rank_pattern key `v_proj`"),
            "{e}"
        );
        // A without B.
        let e = pair_lora_tensors(&c, f, ok[..3].to_vec())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no matching lora_B"), "{e}");
        // A module target_modules does not select.
        let k = "model.layers.0.self_attn.k_proj";
        let mut extra = ok.clone();
        extra.push((lora_key(k, LoraFactor::A), vec![4, 8], 5));
        extra.push((lora_key(k, LoraFactor::B), vec![8, 4], 6));
        let e = pair_lora_tensors(&c, f, extra).unwrap_err().to_string();
        assert!(e.contains("does not target"), "{e}");
        // Unsupported tensors are named.
        let mut extra = ok.clone();
        extra.push(("base_model.model.lm_head.weight".into(), vec![8, 8], 7));
        let e = pair_lora_tensors(&c, f, extra).unwrap_err().to_string();
        assert!(e.contains("`base_model.model.lm_head.weight`"), "{e}");
    }
}
