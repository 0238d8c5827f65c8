//! Hugging Face checkpoints at the file level: a directory with `config.json`,
//! `model.safetensors` (memory-mapped here) and optionally `tokenizer.json`, and a writer that
//! writes a new safetensors file in parallel blocks (`pwrite`).

use super::MergeError;
use super::buffer::F32Data;
use crate::{Error, Result};
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the weights file inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Small files copied from the base into a merged checkpoint when present.
pub const SIDE_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
];

/// Where one tensor lives in a safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    /// Element type.
    pub dtype: Dtype,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Byte range inside the file.
    pub start: usize,
    /// End of the byte range (exclusive).
    pub end: usize,
}

impl TensorEntry {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A memory-mapped safetensors file.
#[derive(Debug)]
pub struct Checkpoint {
    /// The checkpoint directory (or the file's parent when a file was given).
    pub dir: PathBuf,
    /// The safetensors file.
    pub file: PathBuf,
    map: Arc<Mmap>,
    tensors: BTreeMap<String, TensorEntry>,
    /// The file's `__metadata__` (e.g. `format = pt`).
    pub metadata: HashMap<String, String>,
}

impl Checkpoint {
    /// Opens `path`: a checkpoint directory (reads `model.safetensors` in it) or a
    /// `.safetensors` file. `what` names the role in errors ("base checkpoint", …).
    pub fn open(path: &Path, what: &'static str) -> Result<Self> {
        let (dir, file) = if path.is_dir() {
            let f = path.join(WEIGHTS_FILE);
            if !f.exists() && path.join("model.safetensors.index.json").exists() {
                return Err(MergeError::Config(format!(
                    "{}: sharded checkpoints (model.safetensors.index.json) are not supported; \
                     save the model as a single model.safetensors",
                    path.display()
                ))
                .into());
            }
            (path.to_path_buf(), f)
        } else {
            (
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
                path.to_path_buf(),
            )
        };
        if !file.exists() {
            return Err(MergeError::MissingFile { what, path: file }.into());
        }
        Self::open_file(dir, file)
    }

    /// Opens a safetensors file.
    pub fn open_file(dir: PathBuf, file: PathBuf) -> Result<Self> {
        let f = std::fs::File::open(&file).map_err(|e| Error::io("open", &file, e))?;
        // SAFETY: read-only map; the file must not be truncated while mapped (as with every
        // memory-mapped checkpoint reader).
        let map = Arc::new(unsafe { Mmap::map(&f) }.map_err(|e| Error::io("mmap", &file, e))?);
        let bad = |e: safetensors::SafeTensorError| MergeError::Safetensors {
            path: file.clone(),
            msg: e.to_string(),
        };
        // Validates offsets and sizes against the buffer.
        let st = SafeTensors::deserialize(&map).map_err(bad)?;
        let (n, meta) = SafeTensors::read_metadata(&map).map_err(bad)?;
        let data_start = 8 + n;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.iter() {
            let info = meta.info(name).expect("tensor listed by the same header");
            tensors.insert(
                name.to_string(),
                TensorEntry {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    start: data_start + info.data_offsets.0,
                    end: data_start + info.data_offsets.1,
                },
            );
        }
        let metadata = meta.metadata().clone().unwrap_or_default();
        Ok(Self {
            dir,
            file,
            map,
            tensors,
            metadata,
        })
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    /// All entries, sorted by name.
    pub fn entries(&self) -> &BTreeMap<String, TensorEntry> {
        &self.tensors
    }

    /// The entry of `name`.
    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.get(name)
    }

    /// The entry of `name`, or an error naming the tensor and this file.
    pub fn require(&self, name: &str, hint: &str) -> Result<&TensorEntry> {
        self.tensors.get(name).ok_or_else(|| {
            MergeError::MissingTensor {
                tensor: name.into(),
                path: self.file.clone(),
                hint: hint.into(),
            }
            .into()
        })
    }

    /// Raw bytes of a tensor.
    pub fn bytes(&self, e: &TensorEntry) -> &[u8] {
        &self.map[e.start..e.end]
    }

    /// A tensor as float32 (zero-copy when aligned); errors if missing or not F32.
    pub fn f32(&self, name: &str) -> Result<F32Data> {
        let e = self.require(name, "")?;
        self.check_f32(name, e)?;
        Ok(F32Data::from_map(&self.map, e.start, e.numel()))
    }

    /// Errors unless the tensor is F32.
    pub fn check_f32(&self, name: &str, e: &TensorEntry) -> Result<()> {
        if e.dtype != Dtype::F32 {
            return Err(MergeError::Dtype {
                tensor: name.into(),
                path: self.file.clone(),
                dtype: format!("{:?}", e.dtype),
            }
            .into());
        }
        Ok(())
    }

    /// Releases this process's mapped pages of bytes `start..start + len` of a tensor (see
    /// [`super::buffer::F32Data::release`]).
    pub fn release(&self, e: &TensorEntry, start: usize, len: usize) {
        super::buffer::release_map(&self.map, e.start + start, len);
    }

    /// xxh3-64 of a tensor's bytes as 16 hex digits: identifies the base a diff was made from.
    pub fn tensor_hash(&self, name: &str) -> Result<String> {
        let e = self.require(name, "")?;
        let h = xxhash_rust::xxh3::xxh3_64(self.bytes(e));
        self.release(e, 0, e.end - e.start);
        Ok(format!("{h:016x}"))
    }

    /// Total number of parameters (elements of all tensors).
    pub fn num_params(&self) -> usize {
        self.tensors.values().map(TensorEntry::numel).sum()
    }
}

/// Size in bytes of one element of `dtype`.
pub fn dtype_size(dtype: Dtype) -> usize {
    dtype.bitsize().div_ceil(8)
}

/// One tensor of a safetensors file being written.
#[derive(Debug, Clone)]
pub struct OutTensor {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
}

/// Bytes per write block: a multiple of 4 and of DARE's 64 Ki-element mask blocks.
pub const WRITE_BLOCK: usize = 4 << 20;

/// Writes a safetensors file at `path` whose tensors are produced block by block:
/// `fill(tensor index, byte offset within the tensor, block)` fills `block` (at most
/// [`WRITE_BLOCK`] bytes, 4-byte aligned), which is then written with `pwrite`. Blocks run in
/// parallel, each thread reusing one buffer, so memory stays at threads × block. Tensors are laid
/// out like the safetensors crate does (by dtype alignment, then name); the header carries
/// `metadata` (pass `format = pt` for transformers).
pub fn write_safetensors<F>(
    path: &Path,
    tensors: &[OutTensor],
    metadata: HashMap<String, String>,
    fill: F,
) -> Result<u64>
where
    F: Fn(usize, usize, &mut [u8]) -> Result<()> + Sync,
{
    use std::os::unix::fs::FileExt;
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        tensors[b]
            .dtype
            .cmp(&tensors[a].dtype)
            .then(tensors[a].name.cmp(&tensors[b].name))
    });
    let mut infos = Vec::with_capacity(tensors.len());
    let mut jobs: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut offset = 0usize;
    for &i in &order {
        let t = &tensors[i];
        let n = t.shape.iter().product::<usize>() * dtype_size(t.dtype);
        infos.push((
            t.name.clone(),
            TensorInfo {
                dtype: t.dtype,
                shape: t.shape.clone(),
                data_offsets: (offset, offset + n),
            },
        ));
        let mut b = 0;
        while b < n {
            let len = WRITE_BLOCK.min(n - b);
            jobs.push((i, offset, b, len));
            b += len;
        }
        offset += n;
    }
    let bad = |msg: String| -> Error {
        MergeError::Safetensors {
            path: path.into(),
            msg,
        }
        .into()
    };
    let meta = Metadata::new(Some(metadata), infos).map_err(|e| bad(e.to_string()))?;
    let mut header = serde_json::to_string(&meta)
        .map_err(|e| bad(e.to_string()))?
        .into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    let data_start = 8 + header.len();
    let total = data_start + offset;

    let file = std::fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    file.set_len(total as u64)
        .map_err(|e| Error::io("resize", path, e))?;
    let mut head = (header.len() as u64).to_le_bytes().to_vec();
    head.extend_from_slice(&header);
    file.write_all_at(&head, 0)
        .map_err(|e| Error::io("write", path, e))?;
    jobs.into_par_iter().try_for_each_init(
        || vec![0.0f32; WRITE_BLOCK / 4],
        |scratch, (i, tensor_off, b, len)| {
            let bytes = &mut bytes_of_mut(scratch)[..len];
            fill(i, b, bytes)?;
            file.write_all_at(bytes, (data_start + tensor_off + b) as u64)
                .map_err(|e| Error::io("write", path, e))
        },
    )?;
    Ok(total as u64)
}

fn bytes_of_mut(v: &mut [f32]) -> &mut [u8] {
    // SAFETY: u8 has alignment 1 and no invalid values; the length covers exactly the floats.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// Copies the side files (config, tokenizer, …) of checkpoint directory `from` into `to`;
/// `config.json` is required.
pub fn copy_side_files(from: &Path, to: &Path) -> Result<()> {
    let cfg = from.join("config.json");
    if !cfg.exists() {
        return Err(MergeError::MissingFile {
            what: "base config",
            path: cfg,
        }
        .into());
    }
    for name in SIDE_FILES {
        let src = from.join(name);
        if src.exists() {
            let dst = to.join(name);
            std::fs::copy(&src, &dst).map_err(|e| Error::io("copy", &src, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::buffer::{bytes_as_f32_mut, f32_as_bytes};

    #[test]
    fn writer_output_reads_back_with_the_safetensors_crate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(WEIGHTS_FILE);
        let ts = vec![
            OutTensor {
                name: "b".into(),
                dtype: Dtype::F32,
                shape: vec![2, 3],
            },
            OutTensor {
                name: "a".into(),
                dtype: Dtype::F32,
                shape: vec![4],
            },
            OutTensor {
                name: "c".into(),
                dtype: Dtype::U8,
                shape: vec![3],
            },
        ];
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        write_safetensors(&p, &ts, meta, |i, _off, buf| {
            if ts[i].dtype == Dtype::F32 {
                let f = bytes_as_f32_mut(buf).unwrap();
                for (j, x) in f.iter_mut().enumerate() {
                    *x = (i * 10 + j) as f32;
                }
            } else {
                buf.copy_from_slice(&[7, 8, 9]);
            }
            Ok(())
        })
        .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("b").unwrap().shape(), &[2, 3]);
        assert_eq!(
            st.tensor("a").unwrap().data(),
            f32_as_bytes(&[10.0, 11.0, 12.0, 13.0])
        );
        assert_eq!(st.tensor("c").unwrap().data(), &[7, 8, 9]);
        let (_, m) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(m.metadata().as_ref().unwrap()["format"], "pt");
        let ck = Checkpoint::open(dir.path(), "test").unwrap();
        assert_eq!(
            ck.f32("b").unwrap().as_slice(),
            &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert!(ck.f32("c").unwrap_err().to_string().contains("only F32"));
    }

    #[test]
    fn multi_block_tensors_are_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(WEIGHTS_FILE);
        let n = WRITE_BLOCK / 4 * 2 + 1000;
        let ts = vec![OutTensor {
            name: "big".into(),
            dtype: Dtype::F32,
            shape: vec![n],
        }];
        write_safetensors(&p, &ts, HashMap::new(), |_, off, buf| {
            let f = bytes_as_f32_mut(buf).unwrap();
            for (j, x) in f.iter_mut().enumerate() {
                *x = (off / 4 + j) as f32;
            }
            Ok(())
        })
        .unwrap();
        let ck = Checkpoint::open(dir.path(), "test").unwrap();
        let v = ck.f32("big").unwrap();
        assert!(v.as_slice().iter().enumerate().all(|(i, x)| *x == i as f32));
    }
}
