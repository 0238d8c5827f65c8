//! Signatures of many documents with their metadata, and their compact binary file.
//!
//! File layout (little endian): magic `YMSIG001`, a JSON header (u32 length + bytes: scheme
//! fingerprint, input fingerprint, shard, counts), then per document `key u64, tokens u32,
//! chars u32, bins u32, content u64, id (u32 length + UTF-8), domain (u32 length + UTF-8)`, then all
//! signature values as u32 (documents × perms). 128 permutations take 512 bytes per document.

use crate::dedup::DedupError;
use crate::run::AtomicDir;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"YMSIG002";

/// Per-document metadata kept next to its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocMeta {
    /// Position in the dataset: `(shard file number << 32) | line number`.
    pub key: u64,
    /// Document id.
    pub id: String,
    /// Domain.
    pub domain: String,
    /// Whitespace tokens of the normalised text.
    pub tokens: u32,
    /// Characters of the text.
    pub chars: u32,
    /// Hash of the shingle sets (equal ⇔ identical after normalisation, up to collisions).
    pub content: u64,
    /// Signature positions filled by the document's own shingles (OPH bins not densified; all
    /// with MinHash): below `perms`, the estimate is less reliable than the binomial bound.
    pub bins: u32,
}

/// What a signature file says about how it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigHeader {
    /// [`super::scheme::Scheme::fingerprint`].
    pub scheme: String,
    /// Fingerprint of the input shard files (names, sizes, modification times).
    pub input: String,
    /// Shard `i` of `n` (`0/1` for a single process).
    pub shard: (usize, usize),
    /// Signature length.
    pub perms: usize,
    /// Documents.
    pub docs: usize,
}

/// Signatures of a set of documents.
#[derive(Debug, Clone)]
pub struct Signatures {
    /// How they were made.
    pub header: SigHeader,
    /// One entry per document.
    pub docs: Vec<DocMeta>,
    /// `docs.len() × perms` values, row-major.
    pub values: Vec<u32>,
}

impl Signatures {
    /// Number of documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Signature length.
    pub fn perms(&self) -> usize {
        self.header.perms
    }

    /// The signature of document `i`.
    pub fn sig(&self, i: usize) -> &[u32] {
        let p = self.header.perms;
        &self.values[i * p..(i + 1) * p]
    }

    /// Concatenates shard signatures (in the given order).
    pub fn concat(parts: Vec<Signatures>) -> Result<Signatures> {
        let mut it = parts.into_iter();
        let Some(mut first) = it.next() else {
            return Err(DedupError::Shards("no signatures to combine".into()).into());
        };
        for p in it {
            if p.header.scheme != first.header.scheme {
                return Err(DedupError::Shards(format!(
                    "signature shards made with different settings: `{}` vs `{}`",
                    first.header.scheme, p.header.scheme
                ))
                .into());
            }
            first.docs.extend(p.docs);
            first.values.extend(p.values);
        }
        first.header.docs = first.docs.len();
        Ok(first)
    }

    /// Writes the file atomically (temporary name, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = AtomicDir::new(path)?;
        let f =
            std::fs::File::create(tmp.path()).map_err(|e| Error::io("create", tmp.path(), e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let io = |e| Error::io("write", path, e);
        let header = serde_json::to_vec(&self.header).map_err(|e| Error::Json {
            path: path.into(),
            source: e,
        })?;
        w.write_all(MAGIC).map_err(io)?;
        w.write_all(&(header.len() as u32).to_le_bytes())
            .map_err(io)?;
        w.write_all(&header).map_err(io)?;
        for d in &self.docs {
            w.write_all(&d.key.to_le_bytes()).map_err(io)?;
            w.write_all(&d.tokens.to_le_bytes()).map_err(io)?;
            w.write_all(&d.chars.to_le_bytes()).map_err(io)?;
            w.write_all(&d.bins.to_le_bytes()).map_err(io)?;
            w.write_all(&d.content.to_le_bytes()).map_err(io)?;
            for s in [&d.id, &d.domain] {
                w.write_all(&(s.len() as u32).to_le_bytes()).map_err(io)?;
                w.write_all(s.as_bytes()).map_err(io)?;
            }
        }
        // Little-endian values, converted a block at a time (no copy of the whole array).
        let mut buf = Vec::with_capacity(1 << 16);
        for block in self.values.chunks(1 << 14) {
            buf.clear();
            for v in block {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            w.write_all(&buf).map_err(io)?;
        }
        w.flush().map_err(io)?;
        drop(w);
        tmp.commit()?;
        Ok(())
    }

    /// Reads only the header of a signature file.
    pub fn read_header(path: &Path) -> Result<SigHeader> {
        let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut r = BufReader::new(f);
        read_header(&mut r, path)
    }

    /// Reads a signature file.
    pub fn load(path: &Path) -> Result<Signatures> {
        let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut r = BufReader::with_capacity(1 << 20, f);
        let header = read_header(&mut r, path)?;
        let bad = |m: &str| {
            Error::from(DedupError::Signatures {
                path: path.into(),
                msg: m.into(),
            })
        };
        let mut docs = Vec::with_capacity(header.docs);
        let mut b8 = [0u8; 8];
        let mut b4 = [0u8; 4];
        let trunc = |_| bad("truncated");
        for _ in 0..header.docs {
            r.read_exact(&mut b8).map_err(trunc)?;
            let key = u64::from_le_bytes(b8);
            r.read_exact(&mut b4).map_err(trunc)?;
            let tokens = u32::from_le_bytes(b4);
            r.read_exact(&mut b4).map_err(trunc)?;
            let chars = u32::from_le_bytes(b4);
            r.read_exact(&mut b4).map_err(trunc)?;
            let bins = u32::from_le_bytes(b4);
            r.read_exact(&mut b8).map_err(trunc)?;
            let content = u64::from_le_bytes(b8);
            let mut strs = [String::new(), String::new()];
            for s in &mut strs {
                r.read_exact(&mut b4).map_err(trunc)?;
                let mut v = vec![0u8; u32::from_le_bytes(b4) as usize];
                r.read_exact(&mut v).map_err(trunc)?;
                *s = String::from_utf8(v).map_err(|_| bad("id or domain is not UTF-8"))?;
            }
            let [id, domain] = strs;
            docs.push(DocMeta {
                key,
                id,
                domain,
                tokens,
                chars,
                content,
                bins,
            });
        }
        let mut raw = vec![0u8; header.docs * header.perms * 4];
        r.read_exact(&mut raw).map_err(trunc)?;
        if r.read(&mut b4).map_err(|e| Error::io("read", path, e))? != 0 {
            return Err(bad("trailing bytes after the signatures"));
        }
        let values = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Signatures {
            header,
            docs,
            values,
        })
    }
}

fn read_header(r: &mut impl Read, path: &Path) -> Result<SigHeader> {
    let bad = |m: String| {
        Error::from(DedupError::Signatures {
            path: path.into(),
            msg: m,
        })
    };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|_| bad("too short to be a signature file".into()))?;
    if &magic != MAGIC {
        return Err(bad("not a yunmin signature file (bad magic)".into()));
    }
    let mut b4 = [0u8; 4];
    r.read_exact(&mut b4)
        .map_err(|_| bad("truncated header".into()))?;
    let mut h = vec![0u8; u32::from_le_bytes(b4) as usize];
    r.read_exact(&mut h)
        .map_err(|_| bad("truncated header".into()))?;
    serde_json::from_slice(&h).map_err(|e| bad(format!("bad header: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_truncation_is_detected() {
        let d = tempfile::tempdir().unwrap();
        let s = Signatures {
            header: SigHeader {
                scheme: "s".into(),
                input: "i".into(),
                shard: (1, 3),
                perms: 4,
                docs: 2,
            },
            docs: vec![
                DocMeta {
                    key: 1 << 32,
                    id: "가".into(),
                    domain: "law".into(),
                    tokens: 3,
                    chars: 9,
                    content: 7,
                    bins: 4,
                },
                DocMeta {
                    key: 5,
                    id: "b".into(),
                    domain: "".into(),
                    tokens: 0,
                    chars: 0,
                    content: 8,
                    bins: 1,
                },
            ],
            values: vec![1, 2, 3, 4, 5, 6, 7, u32::MAX],
        };
        let p = d.path().join("x.bin");
        s.save(&p).unwrap();
        let l = Signatures::load(&p).unwrap();
        assert_eq!(
            (l.header.clone(), l.docs.clone(), l.values.clone()),
            (s.header, s.docs, s.values)
        );
        assert_eq!(l.sig(1), &[5, 6, 7, u32::MAX]);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let e = Signatures::load(&p).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("x.bin"), "{e}");
    }
}
