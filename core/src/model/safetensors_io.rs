//! Reading and writing safetensors files (single files and sharded index directories) as
//! named f32 arrays, with errors that name the file and tensor.

use super::ModelError;
use crate::{Error, Result};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A tensor read from disk: shape and row-major f32 values.
#[derive(Debug, Clone, PartialEq)]
pub struct F32Tensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

fn st_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    ModelError::Safetensors {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
    .into()
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if frac == 0 {
            sign
        } else {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = frac;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (frac << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (frac << 13)
    };
    f32::from_bits(bits)
}

/// Bytes per element of the floating-point dtypes checkpoints may hold (F32, F16, BF16, F64);
/// `None` for any other dtype.
pub fn float_dtype_size(dtype: Dtype) -> Option<usize> {
    match dtype {
        Dtype::F32 => Some(4),
        Dtype::F16 | Dtype::BF16 => Some(2),
        Dtype::F64 => Some(8),
        _ => None,
    }
}

/// Decodes the little-endian `bytes` of `out.len()` elements of a floating-point `dtype` (F32,
/// F16, BF16, F64) into `out` as f32: the one conversion every checkpoint reader uses (model
/// loading, diffs, merges). Returns false (and leaves `out` untouched) for any other dtype or
/// when the byte count does not match.
pub fn decode_f32(dtype: Dtype, bytes: &[u8], out: &mut [f32]) -> bool {
    if float_dtype_size(dtype).is_none_or(|s| bytes.len() != out.len() * s) {
        return false;
    }
    match dtype {
        Dtype::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Dtype::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
            }
        }
        Dtype::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        _ => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *o = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32;
            }
        }
    }
    true
}

fn view_to_f32(path: &Path, name: &str, v: &TensorView<'_>) -> Result<Vec<f32>> {
    let mut out = vec![0.0f32; v.shape().iter().product()];
    if !decode_f32(v.dtype(), v.data(), &mut out) {
        return Err(st_err(
            path,
            format!(
                "tensor `{name}` has dtype {:?}; only F32, F16, BF16, F64 are supported",
                v.dtype()
            ),
        ));
    }
    Ok(out)
}

/// Memory-maps a file for reading.
fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    // SAFETY: read-only map; the file must not be truncated while mapped (as with every
    // memory-mapped checkpoint reader).
    unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io("mmap", path, e))
}

/// Reads every tensor of one safetensors file (memory-mapped) as f32.
pub fn read_file(path: &Path) -> Result<BTreeMap<String, F32Tensor>> {
    let bytes = map_file(path)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| st_err(path, e))?;
    let mut out = BTreeMap::new();
    for name in st.names() {
        let v = st.tensor(name).map_err(|e| st_err(path, e))?;
        out.insert(
            name.to_string(),
            F32Tensor {
                shape: v.shape().to_vec(),
                data: view_to_f32(path, name, &v)?,
            },
        );
    }
    Ok(out)
}

/// The `__metadata__` map of a safetensors file.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = map_file(path)?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| st_err(path, e))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Reads the weights of a checkpoint directory: `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json` (`weight_map`: tensor name → shard file).
pub fn read_checkpoint_dir(dir: &Path) -> Result<(BTreeMap<String, F32Tensor>, PathBuf)> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok((read_file(&single)?, single));
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        return Err(st_err(
            dir,
            "neither model.safetensors nor model.safetensors.index.json exists",
        ));
    }
    let text = std::fs::read_to_string(&index).map_err(|e| Error::io("read", &index, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: index.clone(),
        source: e,
    })?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| st_err(&index, "no `weight_map` object"))?;
    let mut shards: Vec<String> = map
        .values()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    shards.sort();
    shards.dedup();
    let mut out = BTreeMap::new();
    for s in shards {
        let p = dir.join(&s);
        for (k, t) in read_file(&p)? {
            if map.get(&k).and_then(|x| x.as_str()) == Some(s.as_str()) {
                out.insert(k, t);
            }
        }
    }
    for k in map.keys() {
        if !out.contains_key(k) {
            return Err(ModelError::MissingTensor {
                path: index.display().to_string(),
                name: k.clone(),
            }
            .into());
        }
    }
    Ok((out, index))
}

/// Writes named f32 tensors to `path` (atomically) with `__metadata__` `format=pt` plus `extra`.
pub fn write_file(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    extra: &[(&str, &str)],
) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                s.clone(),
                d.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (n, s, b) in &bytes {
        let v = TensorView::new(Dtype::F32, s.clone(), b)
            .map_err(|e| st_err(path, format!("tensor `{n}`: {e}")))?;
        views.push((n.clone(), v));
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    for (k, v) in extra {
        meta.insert(k.to_string(), v.to_string());
    }
    let out = safetensors::serialize(views, Some(meta)).map_err(|e| st_err(path, e))?;
    crate::run::write_atomic(path, &out)
}
