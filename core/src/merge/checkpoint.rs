//! Hugging Face checkpoints at the file level: a directory with `config.json`, the weights —
//! `model.safetensors`, or the shards a `model.safetensors.index.json` lists (`weight_map`) —
//! memory-mapped here, and optionally `tokenizer.json`; and a writer that writes a new
//! safetensors file in parallel blocks (`pwrite`). Tensors may be F32 (read in place), F16,
//! BF16 or F64 (decoded to f32 with [`crate::model::decode_f32`], as model loading does).

use super::MergeError;
use super::buffer::F32Data;
use crate::model::{decode_f32, float_dtype_size};
use crate::{Error, Result};
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the weights file inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Name of the index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Small files copied from the base into a merged checkpoint when present.
pub const SIDE_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
];

/// Where one tensor lives in a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    /// Element type.
    pub dtype: Dtype,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Byte range inside its file.
    pub start: usize,
    /// End of the byte range (exclusive).
    pub end: usize,
    /// Index of its file in [`Checkpoint::files`].
    pub shard: usize,
}

impl TensorEntry {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the dtype is one the arithmetic reads (F32, F16, BF16, F64).
    pub fn is_float(&self) -> bool {
        float_dtype_size(self.dtype).is_some()
    }
}

/// A memory-mapped checkpoint: one safetensors file or the shards of an index.
#[derive(Debug)]
pub struct Checkpoint {
    /// The checkpoint directory (or the file's parent when a file was given).
    pub dir: PathBuf,
    /// The safetensors file, or the `model.safetensors.index.json` of a sharded checkpoint.
    pub file: PathBuf,
    /// The safetensors files (one, or the shards in name order).
    pub files: Vec<PathBuf>,
    maps: Vec<Arc<Mmap>>,
    tensors: BTreeMap<String, TensorEntry>,
    /// The `__metadata__` of the (first) file (e.g. `format = pt`).
    pub metadata: HashMap<String, String>,
}

fn map_file(file: &Path) -> Result<Arc<Mmap>> {
    let f = std::fs::File::open(file).map_err(|e| Error::io("open", file, e))?;
    // SAFETY: read-only map; the file must not be truncated while mapped (as with every
    // memory-mapped checkpoint reader).
    Ok(Arc::new(
        unsafe { Mmap::map(&f) }.map_err(|e| Error::io("mmap", file, e))?,
    ))
}

/// The entries and metadata of one mapped safetensors file (offsets validated).
type FileEntries = (BTreeMap<String, TensorEntry>, HashMap<String, String>);

fn read_header(map: &Mmap, file: &Path, shard: usize) -> Result<FileEntries> {
    let bad = |e: safetensors::SafeTensorError| MergeError::Safetensors {
        path: file.to_path_buf(),
        msg: e.to_string(),
    };
    // Validates offsets and sizes against the buffer.
    let st = SafeTensors::deserialize(map).map_err(bad)?;
    let (n, meta) = SafeTensors::read_metadata(map).map_err(bad)?;
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
                shard,
            },
        );
    }
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
}

impl Checkpoint {
    /// Opens `path`: a checkpoint directory (its `model.safetensors`, else the shards of its
    /// `model.safetensors.index.json`), a `.safetensors` file, or an index file. `what` names
    /// the role in errors ("base checkpoint", …).
    pub fn open(path: &Path, what: &'static str) -> Result<Self> {
        let (dir, file) = if path.is_dir() {
            let f = path.join(WEIGHTS_FILE);
            let index = path.join(INDEX_FILE);
            if !f.exists() && index.exists() {
                return Self::open_index(path.to_path_buf(), index);
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
        if file.to_string_lossy().ends_with(".index.json") {
            return Self::open_index(dir, file);
        }
        Self::open_file(dir, file)
    }

    /// Opens a safetensors file.
    pub fn open_file(dir: PathBuf, file: PathBuf) -> Result<Self> {
        let map = map_file(&file)?;
        let (tensors, metadata) = read_header(&map, &file, 0)?;
        Ok(Self {
            dir,
            files: vec![file.clone()],
            file,
            maps: vec![map],
            tensors,
            metadata,
        })
    }

    /// Opens a sharded checkpoint from its index (`weight_map`: tensor name → shard file,
    /// relative to `dir`). Each tensor is taken from the shard the index names; a tensor the
    /// index lists but its shard lacks is an error naming both.
    pub fn open_index(dir: PathBuf, index: PathBuf) -> Result<Self> {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io("read", &index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: index.clone(),
            source: e,
        })?;
        let bad = |msg: String| -> Error {
            MergeError::Safetensors {
                path: index.clone(),
                msg,
            }
            .into()
        };
        let weight_map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad("no `weight_map` object".into()))?;
        let mut wanted: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, shard) in weight_map {
            let s = shard
                .as_str()
                .ok_or_else(|| bad(format!("weight_map[`{name}`] is not a file name")))?;
            wanted.insert(name.as_str(), s);
        }
        let mut shard_names: Vec<&str> = wanted.values().copied().collect();
        shard_names.sort_unstable();
        shard_names.dedup();
        if shard_names.is_empty() {
            return Err(bad("`weight_map` lists no tensors".into()));
        }
        let mut files = Vec::new();
        let mut maps = Vec::new();
        let mut tensors = BTreeMap::new();
        let mut metadata = HashMap::new();
        for (i, s) in shard_names.iter().enumerate() {
            let f = dir.join(s);
            if !f.exists() {
                return Err(MergeError::MissingFile {
                    what: "checkpoint shard",
                    path: f,
                }
                .into());
            }
            let map = map_file(&f)?;
            let (entries, meta) = read_header(&map, &f, i)?;
            if i == 0 {
                metadata = meta;
            }
            for (name, e) in entries {
                if wanted.get(name.as_str()) == Some(s) {
                    tensors.insert(name, e);
                }
            }
            files.push(f);
            maps.push(map);
        }
        for (name, s) in &wanted {
            if !tensors.contains_key(*name) {
                return Err(MergeError::MissingTensor {
                    tensor: (*name).to_string(),
                    path: dir.join(s),
                    hint: format!(" (listed in {})", index.display()),
                }
                .into());
            }
        }
        Ok(Self {
            dir,
            file: index,
            files,
            maps,
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

    /// The file holding a tensor.
    pub fn file_of(&self, e: &TensorEntry) -> &Path {
        &self.files[e.shard]
    }

    /// The entry of `name`, or an error naming the tensor and this checkpoint.
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
        &self.maps[e.shard][e.start..e.end]
    }

    /// Whether every floating-point tensor is F32 (the merged output is F32).
    pub fn all_f32(&self) -> bool {
        self.tensors
            .values()
            .all(|e| !e.is_float() || e.dtype == Dtype::F32)
    }

    /// A tensor as float32: zero-copy when F32 and aligned, decoded otherwise. Errors if it is
    /// missing or not a floating-point tensor.
    pub fn f32(&self, name: &str) -> Result<F32Data> {
        let e = self.require(name, "")?;
        self.check_float(name, e)?;
        if e.dtype == Dtype::F32 {
            return Ok(F32Data::from_map(&self.maps[e.shard], e.start, e.numel()));
        }
        let mut v = vec![0.0f32; e.numel()];
        self.read_f32_into(name, e, 0, &mut v)?;
        Ok(F32Data::Owned(v.into()))
    }

    /// Elements `start..start + len` of a floating-point tensor as f32: borrowed from the map
    /// when the tensor is F32 and aligned, decoded otherwise.
    pub fn f32_range(
        &self,
        name: &str,
        e: &TensorEntry,
        start: usize,
        len: usize,
    ) -> Result<Cow<'_, [f32]>> {
        if e.dtype == Dtype::F32 {
            let from = e.start + start * 4;
            let bytes = &self.maps[e.shard][from..from + len * 4];
            // SAFETY: f32 has no invalid bit patterns; align_to only yields a middle slice of
            // correctly aligned, fully covered elements.
            let (pre, mid, _) = unsafe { bytes.align_to::<f32>() };
            if pre.is_empty() && mid.len() == len {
                return Ok(Cow::Borrowed(mid));
            }
        }
        let mut v = vec![0.0f32; len];
        self.read_f32_into(name, e, start, &mut v)?;
        Ok(Cow::Owned(v))
    }

    /// Decodes elements `start..start + out.len()` of a floating-point tensor into `out`.
    pub fn read_f32_into(
        &self,
        name: &str,
        e: &TensorEntry,
        start: usize,
        out: &mut [f32],
    ) -> Result<()> {
        self.check_float(name, e)?;
        let size = float_dtype_size(e.dtype).unwrap_or(4);
        let from = e.start + start * size;
        let bytes = &self.maps[e.shard][from..from + out.len() * size];
        if !decode_f32(e.dtype, bytes, out) {
            return Err(MergeError::Config(format!(
                "tensor `{name}`: cannot decode {} elements of {:?} from {}",
                out.len(),
                e.dtype,
                self.file_of(e).display()
            ))
            .into());
        }
        Ok(())
    }

    /// Errors unless the tensor is F32, F16, BF16 or F64 (what diffs and merges compute on).
    pub fn check_float(&self, name: &str, e: &TensorEntry) -> Result<()> {
        if !e.is_float() {
            return Err(MergeError::Dtype {
                tensor: name.into(),
                path: self.file_of(e).to_path_buf(),
                dtype: format!("{:?}", e.dtype),
            }
            .into());
        }
        Ok(())
    }

    /// Releases this process's mapped pages of bytes `start..start + len` of a tensor (see
    /// [`super::buffer::F32Data::release`]).
    pub fn release(&self, e: &TensorEntry, start: usize, len: usize) {
        super::buffer::release_map(&self.maps[e.shard], e.start + start, len);
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
/// `config.json` is required. The merged weights are F32, so `config.json`'s `torch_dtype` and
/// `dtype` (whichever are present) are set to `"float32"`; a config that already says so, and
/// every other file, is copied byte for byte.
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
        if !src.exists() {
            continue;
        }
        let dst = to.join(name);
        if *name == "config.json" && write_f32_config(&src, &dst)? {
            continue;
        }
        std::fs::copy(&src, &dst).map_err(|e| Error::io("copy", &src, e))?;
    }
    Ok(())
}

/// Writes `src` to `dst` with its dtype fields set to `float32`, when any says otherwise;
/// returns whether it wrote.
fn write_f32_config(src: &Path, dst: &Path) -> Result<bool> {
    let text = std::fs::read_to_string(src).map_err(|e| Error::io("read", src, e))?;
    let mut v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: src.to_path_buf(),
        source: e,
    })?;
    let f32_name = serde_json::Value::from("float32");
    let mut changed = false;
    if let Some(o) = v.as_object_mut() {
        for key in ["torch_dtype", "dtype"] {
            if let Some(d) = o.get_mut(key)
                && *d != f32_name
            {
                *d = f32_name.clone();
                changed = true;
            }
        }
    }
    if changed {
        let mut out = serde_json::to_string_pretty(&v).map_err(|e| Error::Json {
            path: dst.to_path_buf(),
            source: e,
        })?;
        out.push('\n');
        std::fs::write(dst, out).map_err(|e| Error::io("write", dst, e))?;
    }
    Ok(changed)
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
        assert!(
            ck.f32("c")
                .unwrap_err()
                .to_string()
                .contains("only F32, F16, BF16, F64")
        );
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
