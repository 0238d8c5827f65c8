//! LoRA adapters in PEFT's layout: `adapter_config.json` + `adapter_model.safetensors`
//! (metadata `format=pt`), tensors `base_model.model.<module>.lora_A.weight` `[r, in]` and
//! `…lora_B.weight` `[out, r]`, scaling `lora_alpha / r`, so `ΔW = scaling · B · A` (`[out, in]`).

use super::ModelError;
use super::layers::LoraPair;
use super::llama::{Llama, transpose};
use super::safetensors_io::{F32Tensor, read_file, write_file};
use crate::{Error, Result};
use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// PEFT's `adapter_config.json` (the keys PEFT 0.x reads for a LoRA on a causal LM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    /// `"LORA"`.
    pub peft_type: String,
    /// `"CAUSAL_LM"`.
    pub task_type: String,
    /// Rank.
    pub r: usize,
    /// Scaling numerator; scaling = lora_alpha / r.
    pub lora_alpha: f64,
    /// Dropout used in training.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Module short names the adapter covers (`q_proj`, …).
    pub target_modules: Vec<String>,
    /// `"none"`: no bias terms.
    #[serde(default = "none")]
    pub bias: String,
    /// false: weights are `[out, in]`.
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// true for saved adapters.
    #[serde(default = "yes")]
    pub inference_mode: bool,
    /// The base model directory the adapter was trained on.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// PEFT's init flag.
    #[serde(default = "yes")]
    pub init_lora_weights: bool,
    /// Rank-stabilised scaling (not used: false).
    #[serde(default)]
    pub use_rslora: bool,
    /// DoRA (not used: false).
    #[serde(default)]
    pub use_dora: bool,
    /// Extra modules saved in full (none).
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    /// Layers to transform (all: null).
    #[serde(default)]
    pub layers_to_transform: Option<Vec<usize>>,
    /// Revision (null).
    #[serde(default)]
    pub revision: Option<String>,
}

fn none() -> String {
    "none".into()
}
fn yes() -> bool {
    true
}

impl AdapterConfig {
    /// A config for rank `r`, `alpha`, `dropout` on `targets`.
    pub fn new(
        r: usize,
        alpha: f64,
        dropout: f64,
        targets: &[String],
        base: Option<&Path>,
    ) -> Self {
        Self {
            peft_type: "LORA".into(),
            task_type: "CAUSAL_LM".into(),
            r,
            lora_alpha: alpha,
            lora_dropout: dropout,
            target_modules: targets.to_vec(),
            bias: none(),
            fan_in_fan_out: false,
            inference_mode: true,
            base_model_name_or_path: base.map(|p| p.display().to_string()),
            init_lora_weights: true,
            use_rslora: false,
            use_dora: false,
            modules_to_save: None,
            layers_to_transform: None,
            revision: None,
        }
    }

    /// `lora_alpha / r`.
    pub fn scaling(&self) -> f64 {
        self.lora_alpha / self.r as f64
    }
}

/// One adapted module: PEFT's `A` `[r, in]` and `B` `[out, r]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraFactors {
    /// `lora_A.weight`, `[r, in]`.
    pub a: F32Tensor,
    /// `lora_B.weight`, `[out, r]`.
    pub b: F32Tensor,
}

impl LoraFactors {
    /// `ΔW = scaling · B · A`, `[out, in]` row-major.
    pub fn delta(&self, scaling: f64) -> Vec<f32> {
        let (r, din) = (self.a.shape[0], self.a.shape[1]);
        let dout = self.b.shape[0];
        let mut out = vec![0.0f32; dout * din];
        for o in 0..dout {
            for k in 0..r {
                let bk = self.b.data[o * r + k] as f64 * scaling;
                for i in 0..din {
                    out[o * din + i] += (bk * self.a.data[k * din + i] as f64) as f32;
                }
            }
        }
        out
    }
}

/// A loaded PEFT adapter: its config and factors keyed by module path
/// (`model.layers.0.self_attn.q_proj`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraAdapterFile {
    /// `adapter_config.json`.
    pub config: AdapterConfig,
    /// Module path → factors, sorted.
    pub modules: BTreeMap<String, LoraFactors>,
}

const PREFIX: &str = "base_model.model.";

/// The factors attached to `model`, keyed by module path, in PEFT's orientation.
pub fn adapter_factors(model: &Llama) -> BTreeMap<String, LoraFactors> {
    let model = model.valid();
    let mut out = BTreeMap::new();
    for (name, p) in model.projections() {
        if let Some(l) = &p.lora {
            let [din, r] = l.a.shape().dims();
            let [_, dout] = l.b.shape().dims();
            let a =
                l.a.val()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap_or_default();
            let b =
                l.b.val()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap_or_default();
            out.insert(
                name,
                LoraFactors {
                    a: F32Tensor {
                        shape: vec![r, din],
                        data: transpose(&a, din, r),
                    },
                    b: F32Tensor {
                        shape: vec![dout, r],
                        data: transpose(&b, r, dout),
                    },
                },
            );
        }
    }
    out
}

/// Writes the adapter attached to `model` to `dir` (`adapter_config.json` +
/// `adapter_model.safetensors`), atomically.
pub fn save_adapter(model: &Llama, config: &AdapterConfig, dir: &Path) -> Result<PathBuf> {
    let factors = adapter_factors(model);
    if factors.is_empty() {
        return Err(ModelError::Input(
            "save_adapter: the model has no LoRA adapter attached".into(),
        )
        .into());
    }
    let mut tensors = Vec::new();
    for (m, f) in &factors {
        tensors.push((
            format!("{PREFIX}{m}.lora_A.weight"),
            f.a.shape.clone(),
            f.a.data.clone(),
        ));
        tensors.push((
            format!("{PREFIX}{m}.lora_B.weight"),
            f.b.shape.clone(),
            f.b.data.clone(),
        ));
    }
    let tmp = crate::run::AtomicDir::new(dir)?;
    std::fs::create_dir_all(tmp.path())
        .map_err(|e| Error::io("create directory", tmp.path(), e))?;
    let cfg_path = tmp.path().join("adapter_config.json");
    let text = serde_json::to_string_pretty(config).map_err(|e| Error::Json {
        path: cfg_path.clone(),
        source: e,
    })?;
    crate::run::write_atomic(&cfg_path, text.as_bytes())?;
    write_file(&tmp.path().join("adapter_model.safetensors"), &tensors, &[])?;
    tmp.commit()
}

/// Reads a PEFT adapter directory. Tensors must be named
/// `base_model.model.<module>.lora_{A,B}.weight` with consistent ranks.
pub fn load_adapter(dir: &Path) -> Result<LoraAdapterFile> {
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io("read", &cfg_path, e))?;
    let config: AdapterConfig = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: cfg_path.clone(),
        source: e,
    })?;
    let file = dir.join("adapter_model.safetensors");
    if !file.exists() && dir.join("adapter_model.bin").exists() {
        return Err(ModelError::Safetensors {
            path: dir.display().to_string(),
            msg: "only adapter_model.bin (PyTorch pickle) found; convert it to adapter_model.safetensors".into(),
        }
        .into());
    }
    let tensors = read_file(&file)?;
    let path = file.display().to_string();
    let mut a_map = BTreeMap::new();
    let mut b_map = BTreeMap::new();
    for (name, t) in tensors {
        let rest = name.strip_prefix(PREFIX).unwrap_or(&name);
        if let Some(m) = rest.strip_suffix(".lora_A.weight") {
            a_map.insert(m.to_string(), t);
        } else if let Some(m) = rest.strip_suffix(".lora_B.weight") {
            b_map.insert(m.to_string(), t);
        } else {
            return Err(ModelError::Safetensors {
                path,
                msg: format!("unexpected tensor `{name}` in a LoRA adapter"),
            }
            .into());
        }
    }
    let mut modules = BTreeMap::new();
    for (m, a) in a_map {
        let b = b_map.remove(&m).ok_or_else(|| ModelError::MissingTensor {
            path: path.clone(),
            name: format!("{PREFIX}{m}.lora_B.weight"),
        })?;
        if a.shape.len() != 2 || a.shape[0] != config.r {
            return Err(ModelError::Shape {
                path,
                name: format!("{PREFIX}{m}.lora_A.weight"),
                got: a.shape,
                want: vec![config.r, 0],
            }
            .into());
        }
        if b.shape.len() != 2 || b.shape[1] != config.r {
            return Err(ModelError::Shape {
                path,
                name: format!("{PREFIX}{m}.lora_B.weight"),
                got: b.shape,
                want: vec![0, config.r],
            }
            .into());
        }
        modules.insert(m, LoraFactors { a, b });
    }
    if let Some(m) = b_map.keys().next() {
        return Err(ModelError::MissingTensor {
            path,
            name: format!("{PREFIX}{m}.lora_A.weight"),
        }
        .into());
    }
    Ok(LoraAdapterFile { config, modules })
}

impl LoraAdapterFile {
    /// `model` with these factors folded into its weights (W + scale·B·A): for generation,
    /// evaluation or saving.
    pub fn fold_into(&self, model: Llama) -> Result<Llama> {
        Ok(self.attach(model)?.merge_lora())
    }

    /// Attaches these factors to `model` (base weights frozen), checking every module exists
    /// and its shapes match. `model` must have no adapter attached yet.
    pub fn attach(&self, model: Llama) -> Result<Llama> {
        let mut model = model.no_grad();
        let device = model.device();
        let scale = self.config.scaling();
        let mut found = 0;
        for (name, p) in model.projections_mut() {
            let Some(f) = self.modules.get(&name) else {
                continue;
            };
            let [din, dout] = p.dims();
            let r = self.config.r;
            let want_a = vec![r, din];
            let want_b = vec![dout, r];
            if f.a.shape != want_a {
                return Err(ModelError::Shape {
                    path: "adapter".into(),
                    name: format!("{PREFIX}{name}.lora_A.weight"),
                    got: f.a.shape.clone(),
                    want: want_a,
                }
                .into());
            }
            if f.b.shape != want_b {
                return Err(ModelError::Shape {
                    path: "adapter".into(),
                    name: format!("{PREFIX}{name}.lora_B.weight"),
                    got: f.b.shape.clone(),
                    want: want_b,
                }
                .into());
            }
            p.lora = Some(LoraPair {
                a: Param::from_tensor(Tensor::from_data(
                    TensorData::new(transpose(&f.a.data, r, din), [din, r]),
                    &device,
                )),
                b: Param::from_tensor(Tensor::from_data(
                    TensorData::new(transpose(&f.b.data, dout, r), [r, dout]),
                    &device,
                )),
                scale,
                dropout: 0.0,
            });
            found += 1;
        }
        if found != self.modules.len() {
            let names: Vec<String> = model.projections().into_iter().map(|(n, _)| n).collect();
            let missing = self
                .modules
                .keys()
                .find(|k| !names.contains(k))
                .cloned()
                .unwrap_or_default();
            return Err(ModelError::Input(format!(
                "adapter module `{missing}` does not exist in the base model"
            ))
            .into());
        }
        Ok(model)
    }
}
