//! PEFT LoRA adapters at the file level: `adapter_config.json` (`r`, `lora_alpha`,
//! `target_modules`, …) and `adapter_model.safetensors` with keys
//! `base_model.model.<module>.lora_A.weight` `[r, in]` and `….lora_B.weight` `[out, r]`.
//! PEFT's merge is `W ← W + scaling · B @ A` on the base tensor `<module>.weight`, with
//! `scaling = lora_alpha / r` (or `lora_alpha / √r` when `use_rslora` is set).

use super::MergeError;
use super::buffer::F32Data;
use super::checkpoint::Checkpoint;
use crate::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Name of the adapter configuration file.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// Name of the adapter weights file.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// The fields of `adapter_config.json` the merge arithmetic depends on.
#[derive(Debug, Clone, Deserialize)]
pub struct AdapterConfig {
    /// LoRA rank.
    pub r: usize,
    /// LoRA alpha (scaling numerator).
    pub lora_alpha: f64,
    /// Rank-stabilised scaling `alpha / √r`.
    #[serde(default)]
    pub use_rslora: bool,
    /// Conv1D-style transposed weights (GPT-2); not supported.
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// Per-module rank overrides; not supported when non-empty.
    #[serde(default)]
    pub rank_pattern: serde_json::Map<String, serde_json::Value>,
    /// Per-module alpha overrides; not supported when non-empty.
    #[serde(default)]
    pub alpha_pattern: serde_json::Map<String, serde_json::Value>,
    /// The adapted module names (informational).
    #[serde(default)]
    pub target_modules: serde_json::Value,
}

impl AdapterConfig {
    /// `lora_alpha / r`, or `lora_alpha / √r` with rsLoRA.
    pub fn scaling(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }
}

/// The A and B factors of one adapted matrix.
#[derive(Debug, Clone)]
pub struct LoraPair {
    /// `lora_A.weight`, shape `[r, in]`.
    pub a: F32Data,
    /// Shape of A.
    pub a_shape: [usize; 2],
    /// `lora_B.weight`, shape `[out, r]`.
    pub b: F32Data,
    /// Shape of B.
    pub b_shape: [usize; 2],
}

/// An opened PEFT adapter.
#[derive(Debug)]
pub struct LoraAdapter {
    /// The adapter directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: AdapterConfig,
    /// Factors keyed by the base tensor they update (`model.layers.0.self_attn.q_proj.weight`).
    pub pairs: BTreeMap<String, LoraPair>,
}

/// Whether `dir` looks like a PEFT adapter directory.
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).exists() || dir.join(ADAPTER_WEIGHTS).exists()
}

fn adapter_err(path: &Path, msg: impl Into<String>) -> Error {
    MergeError::Adapter {
        path: path.into(),
        msg: msg.into(),
    }
    .into()
}

/// Splits a PEFT key into (base tensor name, 'A' | 'B').
fn parse_key(key: &str) -> Option<(String, char)> {
    let k = key.strip_prefix("base_model.model.").unwrap_or(key);
    for (marker, which) in [(".lora_A.", 'A'), (".lora_B.", 'B')] {
        if let Some(pos) = k.find(marker) {
            let module = &k[..pos];
            let rest = &k[pos + marker.len()..];
            // Saved adapters drop the adapter name; tolerate `default.weight` too.
            if rest == "weight" || rest.ends_with(".weight") {
                return Some((format!("{module}.weight"), which));
            }
        }
    }
    None
}

fn shape2(path: &Path, key: &str, shape: &[usize]) -> Result<[usize; 2]> {
    match shape {
        [a, b] => Ok([*a, *b]),
        _ => Err(adapter_err(
            path,
            format!("tensor `{key}` has shape {shape:?}; LoRA factors are 2-D"),
        )),
    }
}

/// Opens a PEFT adapter directory, pairing every `lora_A`/`lora_B` and checking ranks.
pub fn open(dir: &Path) -> Result<LoraAdapter> {
    let cfg_path = dir.join(ADAPTER_CONFIG);
    if !cfg_path.exists() {
        return Err(MergeError::MissingFile {
            what: "adapter config",
            path: cfg_path,
        }
        .into());
    }
    let weights = dir.join(ADAPTER_WEIGHTS);
    if !weights.exists() {
        return Err(MergeError::MissingFile {
            what: "adapter weights",
            path: weights,
        }
        .into());
    }
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io("read", &cfg_path, e))?;
    let config: AdapterConfig = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: cfg_path.clone(),
        source: e,
    })?;
    if config.r == 0 {
        return Err(adapter_err(&cfg_path, "r must be ≥ 1"));
    }
    if config.fan_in_fan_out {
        return Err(adapter_err(
            &cfg_path,
            "fan_in_fan_out (Conv1D weights) is not supported",
        ));
    }
    if !config.rank_pattern.is_empty() || !config.alpha_pattern.is_empty() {
        return Err(adapter_err(
            &cfg_path,
            "rank_pattern / alpha_pattern are not supported",
        ));
    }
    let ck = Checkpoint::open_file(dir.to_path_buf(), weights.clone())?;
    let mut a_map = BTreeMap::new();
    let mut b_map = BTreeMap::new();
    for (key, e) in ck.entries() {
        let Some((base, which)) = parse_key(key) else {
            return Err(adapter_err(
                &weights,
                format!(
                    "unsupported tensor `{key}` (only lora_A / lora_B weights can be turned into diffs)"
                ),
            ));
        };
        ck.check_f32(key, e)?;
        let shape = shape2(&weights, key, &e.shape)?;
        let data = ck.f32(key)?;
        let slot = if which == 'A' { &mut a_map } else { &mut b_map };
        if slot
            .insert(base.clone(), (key.clone(), data, shape))
            .is_some()
        {
            return Err(adapter_err(
                &weights,
                format!("two lora_{which} tensors for `{base}`"),
            ));
        }
    }
    let mut pairs = BTreeMap::new();
    for (base, (akey, a, a_shape)) in a_map {
        let Some((bkey, b, b_shape)) = b_map.remove(&base) else {
            return Err(adapter_err(
                &weights,
                format!("`{akey}` has no matching lora_B tensor"),
            ));
        };
        if a_shape[0] != config.r || b_shape[1] != config.r {
            return Err(adapter_err(
                &weights,
                format!(
                    "tensor `{base}`: rank mismatch, config r = {}, `{akey}` is {a_shape:?}, `{bkey}` is {b_shape:?}",
                    config.r
                ),
            ));
        }
        pairs.insert(
            base,
            LoraPair {
                a,
                a_shape,
                b,
                b_shape,
            },
        );
    }
    if let Some((base, (bkey, _, _))) = b_map.into_iter().next() {
        return Err(adapter_err(
            &weights,
            format!("`{bkey}` has no matching lora_A tensor (for `{base}`)"),
        ));
    }
    if pairs.is_empty() {
        return Err(adapter_err(&weights, "no lora_A / lora_B tensors"));
    }
    Ok(LoraAdapter {
        dir: dir.to_path_buf(),
        config,
        pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_base_tensors() {
        assert_eq!(
            parse_key("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"),
            Some(("model.layers.3.self_attn.q_proj.weight".into(), 'A'))
        );
        assert_eq!(
            parse_key("base_model.model.model.layers.0.mlp.up_proj.lora_B.default.weight"),
            Some(("model.layers.0.mlp.up_proj.weight".into(), 'B'))
        );
        assert_eq!(parse_key("base_model.model.lm_head.weight"), None);
    }
}
