//! The NumPy `.npy` format (version 1.0) for little-endian float32 C-order arrays: what
//! `numpy.save` writes and `numpy.load` reads. Header: magic `\x93NUMPY`, version, a Python
//! dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (…), }` padded with spaces
//! and a newline so the data starts on a 64-byte boundary.

use super::MergeError;
use super::buffer::{F32Data, f32_as_bytes};
use crate::{Error, Result};
use memmap2::Mmap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

const MAGIC: &[u8] = b"\x93NUMPY";

/// The header bytes (magic through the newline) for a float32 array of `shape`.
pub fn header(shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // 6 magic + 2 version + 2 length, then the dict, padded so the total is a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes `data` (C order, `shape`) to `path` as a `.npy` file.
pub fn write(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(MergeError::Npy {
            path: path.into(),
            msg: format!(
                "shape {shape:?} holds {n} values but {} were given",
                data.len()
            ),
        }
        .into());
    }
    let f = std::fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    w.write_all(&header(shape))
        .and_then(|_| w.write_all(f32_as_bytes(data)))
        .and_then(|_| w.flush())
        .map_err(|e| Error::io("write", path, e))
}

/// A memory-mapped `.npy` float32 array.
#[derive(Debug, Clone)]
pub struct NpyArray {
    /// The array's shape.
    pub shape: Vec<usize>,
    /// Its values, C order.
    pub data: F32Data,
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    MergeError::Npy {
        path: path.into(),
        msg: msg.into(),
    }
    .into()
}

/// Memory-maps a `.npy` file, checking that it is a little-endian float32 C-order array.
pub fn read(path: &Path) -> Result<NpyArray> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    // SAFETY: the file is opened read-only; like every memory-mapped reader we assume it is
    // not truncated while mapped.
    let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| Error::io("mmap", path, e))?);
    if map.len() < 10 || &map[..6] != MAGIC {
        return Err(bad(path, "not a .npy file (bad magic)"));
    }
    let (hlen, start) = match map[6] {
        1 => (u16::from_le_bytes([map[8], map[9]]) as usize, 10),
        2 | 3 if map.len() >= 12 => (
            u32::from_le_bytes([map[8], map[9], map[10], map[11]]) as usize,
            12,
        ),
        v => return Err(bad(path, format!("unsupported .npy version {v}"))),
    };
    let data_start = start + hlen;
    if map.len() < data_start {
        return Err(bad(path, "truncated header"));
    }
    let dict = std::str::from_utf8(&map[start..data_start])
        .map_err(|_| bad(path, "header is not text"))?;
    let descr = dict_value(dict, "descr").ok_or_else(|| bad(path, "header has no 'descr'"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    if descr != "<f4" && descr != "f4" {
        return Err(bad(
            path,
            format!("dtype {descr} is not little-endian float32 ('<f4')"),
        ));
    }
    if dict_value(dict, "fortran_order").map(|v| v.trim()) != Some("False") {
        return Err(bad(path, "Fortran-order arrays are not supported"));
    }
    let shape_txt = dict_value(dict, "shape").ok_or_else(|| bad(path, "header has no 'shape'"))?;
    let shape = shape_txt
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(path, format!("bad shape {shape_txt}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let n: usize = shape.iter().product();
    if map.len() != data_start + n * 4 {
        return Err(bad(
            path,
            format!(
                "shape {shape:?} needs {} data bytes, file has {}",
                n * 4,
                map.len() - data_start
            ),
        ));
    }
    Ok(NpyArray {
        shape,
        data: F32Data::from_map(&map, data_start, n),
    })
}

/// The raw text of `key`'s value in a Python dict literal (shape tuples kept whole).
fn dict_value<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let pat_s = format!("'{key}':");
    let pat_d = format!("\"{key}\":");
    let at = dict
        .find(&pat_s)
        .map(|i| i + pat_s.len())
        .or_else(|| dict.find(&pat_d).map(|i| i + pat_d.len()))?;
    let rest = dict[at..].trim_start();
    if rest.starts_with('(') {
        rest.find(')').map(|e| &rest[..=e])
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_alignment() {
        let dir = tempfile::tempdir().unwrap();
        for shape in [vec![], vec![5], vec![2, 3], vec![2, 1, 4]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            let p = dir.path().join("a.npy");
            write(&p, &shape, &data).unwrap();
            let h = header(&shape);
            assert_eq!(h.len() % 64, 0);
            let a = read(&p).unwrap();
            assert_eq!(a.shape, shape);
            assert_eq!(a.data.as_slice(), &data[..]);
            assert!(matches!(a.data, F32Data::Mapped { .. }));
        }
    }

    #[test]
    fn rejects_other_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.npy");
        let mut h = header(&[2]);
        let pos = h.windows(3).position(|w| w == b"<f4").unwrap();
        h[pos + 2] = b'8';
        h.extend_from_slice(&[0u8; 16]);
        std::fs::write(&p, &h).unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("<f8"), "{e}");
    }
}
