//! Content hashes for the stage cache: files, directories (sorted walk) and parameters.

use crate::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::Xxh3;

/// Hex hash of a string.
pub fn hash_str(s: &str) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(s.as_bytes()))
}

/// Hex hash of a JSON value in canonical form (object keys sorted).
pub fn hash_json(v: &serde_json::Value) -> String {
    hash_str(&canonical(v))
}

fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{:?}:{}", k, canonical(&m[k.as_str()])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        serde_json::Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

/// Hex hash of a file's bytes, or of a directory's files (relative names and contents, in
/// sorted order; hidden entries such as temporaries are skipped).
pub fn hash_path(path: &Path) -> Result<String> {
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    for f in files_under(path)? {
        let rel = f.strip_prefix(path).unwrap_or(&f);
        h.update(rel.to_string_lossy().as_bytes());
        h.update(&[0]);
        let mut file = std::fs::File::open(&f).map_err(|e| Error::io("open", &f, e))?;
        loop {
            let n = file.read(&mut buf).map_err(|e| Error::io("read", &f, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(format!("{:032x}", h.digest128()))
}

/// Files under `path` (itself when a file), hidden entries skipped, sorted.
pub(crate) fn files_under(path: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let meta = std::fs::metadata(p).map_err(|e| Error::io("stat", p, e))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io("list", p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|c| {
                    !c.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            entries.sort();
            for c in entries {
                walk(&c, out)?;
            }
        } else {
            out.push(p.to_path_buf());
        }
        Ok(())
    }
    walk(path, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_hash_ignores_key_order_but_not_values() {
        let a = serde_json::json!({"a": 1, "b": [1, 2]});
        let b = serde_json::json!({"b": [1, 2], "a": 1});
        let c = serde_json::json!({"b": [2, 1], "a": 1});
        assert_eq!(hash_json(&a), hash_json(&b));
        assert_ne!(hash_json(&a), hash_json(&c));
    }

    #[test]
    fn directory_hash_follows_content() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.txt"), "x").unwrap();
        let h1 = hash_path(d.path()).unwrap();
        std::fs::write(d.path().join(".tmp"), "ignored").unwrap();
        assert_eq!(h1, hash_path(d.path()).unwrap());
        std::fs::write(d.path().join("a.txt"), "y").unwrap();
        assert_ne!(h1, hash_path(d.path()).unwrap());
    }
}
