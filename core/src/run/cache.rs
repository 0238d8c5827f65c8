//! The stage cache: a stage's outputs are keyed by a content hash of its inputs, its parameters
//! and the code version. A rerun whose key is unchanged (and whose outputs still exist) is
//! skipped; `--force` redoes every stage.

use super::{hash_json, hash_path, write_atomic};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the cache remembers of a finished stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageRecord {
    /// Stage name as the script or pipeline gave it.
    pub name: String,
    /// Content key the outputs were produced under.
    pub key: String,
    /// Output paths (relative to the run root when inside it).
    pub outputs: Vec<String>,
    /// The stage's JSON result, returned again on a cache hit.
    pub result: serde_json::Value,
    /// When the stage finished (RFC 3339).
    pub finished_at: String,
    /// Wall time of the stage in seconds.
    pub duration_s: f64,
}

/// Stage records of one run root, under `<root>/.cache/stages/`.
#[derive(Debug, Clone)]
pub struct StageCache {
    root: PathBuf,
    force: bool,
}

impl StageCache {
    /// A cache for `root`; with `force`, every lookup misses.
    pub fn new(root: impl Into<PathBuf>, force: bool) -> Self {
        Self {
            root: root.into(),
            force,
        }
    }

    /// The content key of a stage: name, canonical parameters, code version and the content
    /// hash of every input path.
    pub fn key(
        name: &str,
        params: &serde_json::Value,
        inputs: &[PathBuf],
        code: &str,
    ) -> Result<String> {
        let mut hashed = Vec::with_capacity(inputs.len());
        for p in inputs {
            hashed.push(serde_json::Value::String(hash_path(p)?));
        }
        Ok(hash_json(&serde_json::json!({
            "name": name, "params": params, "code": code, "inputs": hashed,
        })))
    }

    fn record_path(&self, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let tag = &super::hash_str(name)[..8];
        self.root
            .join(".cache")
            .join("stages")
            .join(format!("{safe}-{tag}.json"))
    }

    fn resolve(&self, out: &str) -> PathBuf {
        let p = Path::new(out);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    /// The record for `name` when its key equals `key` and all its outputs exist.
    pub fn lookup(&self, name: &str, key: &str) -> Option<StageRecord> {
        if self.force {
            return None;
        }
        let path = self.record_path(name);
        let text = std::fs::read_to_string(&path).ok()?;
        let rec: StageRecord = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    "{}",
                    super::RunError::CacheRecord {
                        path,
                        reason: e.to_string()
                    }
                );
                return None;
            }
        };
        let complete = rec.outputs.iter().all(|o| self.resolve(o).exists());
        (rec.key == key && complete).then_some(rec)
    }

    /// Stores a finished stage's record (atomically).
    pub fn store(&self, rec: &StageRecord) -> Result<()> {
        let path = self.record_path(&rec.name);
        let bytes = serde_json::to_vec_pretty(rec).map_err(|e| Error::Json {
            path: path.clone(),
            source: e,
        })?;
        write_atomic(&path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, outputs: Vec<String>) -> StageRecord {
        StageRecord {
            name: "s".into(),
            key: key.into(),
            outputs,
            result: serde_json::json!(1),
            finished_at: String::new(),
            duration_s: 0.0,
        }
    }

    #[test]
    fn hit_needs_same_key_existing_outputs_and_no_force() {
        let d = tempfile::tempdir().unwrap();
        let c = StageCache::new(d.path(), false);
        std::fs::write(d.path().join("o.txt"), "x").unwrap();
        c.store(&rec("k1", vec!["o.txt".into()])).unwrap();
        assert!(c.lookup("s", "k1").is_some());
        assert!(c.lookup("s", "k2").is_none());
        assert!(StageCache::new(d.path(), true).lookup("s", "k1").is_none());
        std::fs::remove_file(d.path().join("o.txt")).unwrap();
        assert!(c.lookup("s", "k1").is_none());
    }

    #[test]
    fn key_changes_with_input_content() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("in.txt");
        std::fs::write(&f, "a").unwrap();
        let p = serde_json::json!({"x": 1});
        let k1 = StageCache::key("s", &p, std::slice::from_ref(&f), "v1").unwrap();
        assert_eq!(
            k1,
            StageCache::key("s", &p, std::slice::from_ref(&f), "v1").unwrap()
        );
        assert_ne!(
            k1,
            StageCache::key("s", &p, std::slice::from_ref(&f), "v2").unwrap()
        );
        std::fs::write(&f, "b").unwrap();
        assert_ne!(
            k1,
            StageCache::key("s", &p, std::slice::from_ref(&f), "v1").unwrap()
        );
    }
}
