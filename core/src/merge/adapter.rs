//! PEFT LoRA adapters at the file level, memory-mapped, for diffs: the configuration, tensor
//! names and per-module scaling are [`crate::model::AdapterConfig`] and
//! [`crate::model::pair_lora_tensors`] — the same reader model loading uses — so a diff and a
//! folded model see the same `ΔW = scale · B @ A` for every module (`scale = lora_alpha / r`,
//! `lora_alpha / √r` with `use_rslora`, per module with `rank_pattern` / `alpha_pattern`).

use super::MergeError;
use super::buffer::F32Data;
use super::checkpoint::Checkpoint;
use crate::Result;
use crate::model::{pair_lora_tensors, read_adapter_config};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::model::{ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterConfig};

/// The A and B factors of one adapted matrix, with the module's rank and scale.
#[derive(Debug, Clone)]
pub struct LoraPair {
    /// `lora_A.weight`, shape `[r, in]`, as f32.
    pub a: F32Data,
    /// Shape of A.
    pub a_shape: [usize; 2],
    /// `lora_B.weight`, shape `[out, r]`, as f32.
    pub b: F32Data,
    /// Shape of B.
    pub b_shape: [usize; 2],
    /// The module's rank.
    pub r: usize,
    /// The module's scale ([`AdapterConfig::scaling_for`]).
    pub scale: f64,
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

/// Opens a PEFT adapter directory: validates the config, pairs every `lora_A` / `lora_B`
/// (F32, F16, BF16 or F64; read as f32) and checks each module's rank.
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
    let config = read_adapter_config(dir)?;
    let ck = Checkpoint::open_file(dir.to_path_buf(), weights.clone())?;
    let paired = pair_lora_tensors(
        &config,
        &weights,
        ck.entries()
            .iter()
            .map(|(k, e)| (k.clone(), e.shape.clone(), ())),
    )?;
    let mut pairs = BTreeMap::new();
    for (module, p) in paired {
        pairs.insert(
            format!("{module}.weight"),
            LoraPair {
                a: ck.f32(&p.a_key)?,
                a_shape: p.a_shape,
                b: ck.f32(&p.b_key)?,
                b_shape: p.b_shape,
                r: p.r,
                scale: p.scale,
            },
        );
    }
    Ok(LoraAdapter {
        dir: dir.to_path_buf(),
        config,
        pairs,
    })
}
