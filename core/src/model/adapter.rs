//! LoRA adapters in PEFT's layout on the burn model: `adapter_config.json` +
//! `adapter_model.safetensors` (metadata `format=pt`), tensors `base_model.model.<module>.lora_A.weight`
//! `[r, in]` and `…lora_B.weight` `[out, r]`, `ΔW = scale · B · A` (`[out, in]`) with the
//! per-module scale of [`AdapterConfig::scaling_for`]. The file format (config fields, tensor
//! names, pairing) is [`super::peft`], shared with `merge`.

use super::ModelError;
use super::layers::LoraPair;
use super::llama::{Llama, transpose};
use super::peft::{
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterConfig, LoraFactor, lora_key, pair_lora_tensors,
    read_adapter_config,
};
use super::safetensors_io::{F32Tensor, read_file, write_file};
use crate::{Error, Result};
use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
/// `adapter_model.safetensors`), atomically. `config` must describe the attached factors:
/// each module's rank and scale must be what [`AdapterConfig::scaling_for`] gives it, so that
/// PEFT and [`load_adapter`] read back the same ΔW.
pub fn save_adapter(model: &Llama, config: &AdapterConfig, dir: &Path) -> Result<PathBuf> {
    let cfg_path = dir.join(ADAPTER_CONFIG);
    config.validate(&cfg_path)?;
    let factors = adapter_factors(model);
    if factors.is_empty() {
        return Err(ModelError::Input(
            "save_adapter: the model has no LoRA adapter attached".into(),
        )
        .into());
    }
    for (name, p) in model.projections() {
        let Some(l) = &p.lora else {
            continue;
        };
        let [_, r] = l.a.shape().dims();
        let (want_r, want_scale) = config.scaling_for(&name);
        if r != want_r || (l.scale - want_scale).abs() > 1e-12 * want_scale.abs().max(1.0) {
            return Err(ModelError::Input(format!(
                "save_adapter: module `{name}` has rank {r} and scale {}, but the adapter config \
                 gives rank {want_r} and scale {want_scale}",
                l.scale
            ))
            .into());
        }
    }
    let mut tensors = Vec::new();
    for (m, f) in &factors {
        tensors.push((
            lora_key(m, LoraFactor::A),
            f.a.shape.clone(),
            f.a.data.clone(),
        ));
        tensors.push((
            lora_key(m, LoraFactor::B),
            f.b.shape.clone(),
            f.b.data.clone(),
        ));
    }
    let tmp = crate::run::AtomicDir::new(dir)?;
    std::fs::create_dir_all(tmp.path())
        .map_err(|e| Error::io("create directory", tmp.path(), e))?;
    let cfg_path = tmp.path().join(ADAPTER_CONFIG);
    let text = serde_json::to_string_pretty(config).map_err(|e| Error::Json {
        path: cfg_path.clone(),
        source: e,
    })?;
    crate::run::write_atomic(&cfg_path, text.as_bytes())?;
    write_file(&tmp.path().join(ADAPTER_WEIGHTS), &tensors, &[])?;
    tmp.commit()
}

/// Reads a PEFT adapter directory: `adapter_config.json` (validated, see
/// [`AdapterConfig::validate`]) and `adapter_model.safetensors` (F32/F16/BF16/F64 factors,
/// paired and rank-checked by [`pair_lora_tensors`]).
pub fn load_adapter(dir: &Path) -> Result<LoraAdapterFile> {
    let config = read_adapter_config(dir)?;
    let file = dir.join(ADAPTER_WEIGHTS);
    if !file.exists() && dir.join("adapter_model.bin").exists() {
        return Err(ModelError::Safetensors {
            path: dir.display().to_string(),
            msg: "only adapter_model.bin (PyTorch pickle) found; convert it to adapter_model.safetensors".into(),
        }
        .into());
    }
    let tensors = read_file(&file)?;
    let pairs = pair_lora_tensors(
        &config,
        &file,
        tensors.into_iter().map(|(k, t)| (k, t.shape.clone(), t)),
    )?;
    let modules = pairs
        .into_iter()
        .map(|(m, p)| (m, LoraFactors { a: p.a, b: p.b }))
        .collect();
    Ok(LoraAdapterFile { config, modules })
}

impl LoraAdapterFile {
    /// `(r, scale)` of `module`: [`AdapterConfig::scaling_for`].
    pub fn scaling_for(&self, module: &str) -> (usize, f64) {
        self.config.scaling_for(module)
    }

    /// `ΔW = scale · B · A` of `module` (`[out, in]` row-major) with its own scale, or `None`
    /// when the adapter does not touch it.
    pub fn delta(&self, module: &str) -> Option<Vec<f32>> {
        let f = self.modules.get(module)?;
        Some(f.delta(self.scaling_for(module).1))
    }

    /// `model` with these factors folded into its weights (W + scale·B·A): for generation,
    /// evaluation or saving.
    pub fn fold_into(&self, model: Llama) -> Result<Llama> {
        Ok(self.attach(model)?.merge_lora())
    }

    /// Attaches these factors to `model` (base weights frozen), each module with its own rank
    /// and scale ([`AdapterConfig::scaling_for`]), checking every module exists and its shapes
    /// match. `model` must have no adapter attached yet.
    pub fn attach(&self, model: Llama) -> Result<Llama> {
        let mut model = model.no_grad();
        let device = model.device();
        let mut found = 0;
        for (name, p) in model.projections_mut() {
            let Some(f) = self.modules.get(&name) else {
                continue;
            };
            let [din, dout] = p.dims();
            let (r, scale) = self.config.scaling_for(&name);
            let want_a = vec![r, din];
            let want_b = vec![dout, r];
            if f.a.shape != want_a {
                return Err(ModelError::Shape {
                    path: "adapter".into(),
                    name: lora_key(&name, LoraFactor::A),
                    got: f.a.shape.clone(),
                    want: want_a,
                }
                .into());
            }
            if f.b.shape != want_b {
                return Err(ModelError::Shape {
                    path: "adapter".into(),
                    name: lora_key(&name, LoraFactor::B),
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
