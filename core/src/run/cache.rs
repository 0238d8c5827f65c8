//! The stage cache: a stage's outputs are keyed by a content hash of its inputs, its parameters
//! and its code. Every key a stage ran under is kept (`.cache/stages/<stage>/<key>.json`), with
//! the content hash of each output file; the files themselves are kept once per content in
//! `.cache/objects/` (hard links where the filesystem allows), so going back to an earlier key
//! restores its outputs instead of recomputing them. A lookup hits only when every recorded
//! output has its recorded content (or can be restored to it); `--force` redoes every stage.

use super::hashing::files_under;
use super::{hash_json, hash_path, write_atomic};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    /// Every output file (relative to the run root when inside it) and its content hash.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// The stage's JSON result, returned again on a cache hit (floats stored exactly).
    pub result: serde_json::Value,
    /// When the stage finished (RFC 3339).
    pub finished_at: String,
    /// Wall time of the stage in seconds.
    pub duration_s: f64,
}

/// Stage records of one run root, under `<root>/.cache/`.
#[derive(Debug, Clone)]
pub struct StageCache {
    root: PathBuf,
    force: bool,
}

/// Tag of an exactly stored float in a cached result (JSON text parsing may move the last
/// digit of a float; Rust's shortest representation parses back to the same bits).
const F64_TAG: &str = "$f64";

/// `v` with every non-integer number replaced by `{"$f64": "<shortest exact text>"}`.
pub(crate) fn encode_floats(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            serde_json::json!({ F64_TAG: format!("{f:?}") })
        }
        Value::Array(a) => Value::Array(a.iter().map(encode_floats).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), encode_floats(x)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The inverse of [`encode_floats`].
pub(crate) fn decode_floats(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key(F64_TAG) => {
            match m[F64_TAG].as_str().and_then(|s| s.parse::<f64>().ok()) {
                Some(f) => serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                None => Value::Object(m),
            }
        }
        Value::Array(a) => Value::Array(a.into_iter().map(decode_floats).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, x)| (k, decode_floats(x))).collect())
        }
        other => other,
    }
}

impl StageCache {
    /// A cache for `root`; with `force`, every lookup misses.
    pub fn new(root: impl Into<PathBuf>, force: bool) -> Self {
        Self {
            root: root.into(),
            force,
        }
    }

    /// The content key of a stage: name, canonical parameters, code and the content hash of
    /// every input path.
    pub fn key(
        name: &str,
        params: &serde_json::Value,
        inputs: &[PathBuf],
        code: &str,
    ) -> Result<String> {
        let hashed = inputs
            .par_iter()
            .map(|p| hash_path(p).map(serde_json::Value::String))
            .collect::<Result<Vec<_>>>()?;
        Ok(hash_json(&serde_json::json!({
            "name": name, "params": params, "code": code, "inputs": hashed,
        })))
    }

    fn stage_dir(&self, name: &str) -> PathBuf {
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
            .join(format!("{safe}-{tag}"))
    }

    fn record_path(&self, name: &str, key: &str) -> PathBuf {
        self.stage_dir(name).join(format!("{key}.json"))
    }

    fn object_path(&self, hash: &str) -> PathBuf {
        self.root.join(".cache").join("objects").join(hash)
    }

    /// An output path as given (absolute or relative to the run root) made absolute.
    pub fn resolve(&self, out: &str) -> PathBuf {
        let p = Path::new(out);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    }

    /// Every file of `outputs` (files or directories) with its content hash.
    /// Files are hashed in parallel (shards of a dataset, a checkpoint's tensors).
    pub fn hash_outputs(&self, outputs: &[String]) -> Result<BTreeMap<String, String>> {
        let mut files = Vec::new();
        for o in outputs {
            let p = self.resolve(o);
            if p.exists() {
                files.extend(files_under(&p)?);
            }
        }
        files
            .par_iter()
            .map(|f| Ok((self.rel(f), hash_path(f)?)))
            .collect()
    }

    /// The record for `name` under `key`, when every output it recorded has its recorded
    /// content now or can be restored to it from the object store (then it is restored, and
    /// files of a recorded output directory that the record does not list are removed).
    pub fn lookup(&self, name: &str, key: &str) -> Option<StageRecord> {
        if self.force {
            return None;
        }
        let path = self.record_path(name, key);
        let text = std::fs::read_to_string(&path).ok()?;
        let mut rec: StageRecord = match serde_json::from_str(&text) {
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
        if rec.key != key {
            return None;
        }
        match self.restore(&rec) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::warn!("stage {name}: cached outputs cannot be restored: {e}");
                return None;
            }
        }
        rec.result = decode_floats(rec.result);
        Some(rec)
    }

    /// Brings every recorded output file to its recorded content; false (and nothing
    /// changed) when some content is neither present nor in the object store.
    fn restore(&self, rec: &StageRecord) -> Result<bool> {
        let now = self.hash_outputs(&rec.outputs)?;
        let mut copy = Vec::new();
        for (f, h) in &rec.files {
            if now.get(f) == Some(h) {
                continue;
            }
            let obj = self.object_path(h);
            if !obj.exists() || hash_path(&obj)? != *h {
                return Ok(false);
            }
            copy.push((obj, self.resolve(f)));
        }
        let extra: Vec<PathBuf> = now
            .keys()
            .filter(|f| !rec.files.contains_key(*f))
            .map(|f| self.resolve(f))
            .collect();
        if copy.is_empty() && extra.is_empty() {
            return Ok(true);
        }
        for (obj, dst) in copy {
            tracing::info!(stage = rec.name.as_str(), "restoring {}", dst.display());
            let bytes = std::fs::read(&obj).map_err(|e| Error::io("read", &obj, e))?;
            write_atomic(&dst, &bytes)?;
        }
        for f in extra {
            std::fs::remove_file(&f).map_err(|e| Error::io("remove", &f, e))?;
        }
        Ok(true)
    }

    /// Stores a finished stage's record (atomically), hashing its outputs into `rec.files`
    /// and keeping their content in the object store.
    pub fn store(&self, rec: &StageRecord) -> Result<StageRecord> {
        let mut rec = rec.clone();
        rec.files = self.hash_outputs(&rec.outputs)?;
        for (f, h) in &rec.files {
            let obj = self.object_path(h);
            if obj.exists() {
                continue;
            }
            let src = self.resolve(f);
            if let Some(dir) = obj.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
            }
            if std::fs::hard_link(&src, &obj).is_err() {
                let bytes = std::fs::read(&src).map_err(|e| Error::io("read", &src, e))?;
                write_atomic(&obj, &bytes)?;
            }
        }
        let mut stored = rec.clone();
        stored.result = encode_floats(&rec.result);
        let path = self.record_path(&rec.name, &rec.key);
        let bytes = serde_json::to_vec_pretty(&stored).map_err(|e| Error::Json {
            path: path.clone(),
            source: e,
        })?;
        write_atomic(&path, &bytes)?;
        Ok(rec)
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
            files: BTreeMap::new(),
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
    }

    #[test]
    fn every_key_is_kept_and_its_outputs_restored() {
        let d = tempfile::tempdir().unwrap();
        let c = StageCache::new(d.path(), false);
        let out = d.path().join("m");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("w.bin"), "ten").unwrap();
        c.store(&rec("k10", vec!["m".into()])).unwrap();
        // Another key overwrites the output and adds a file.
        write_atomic(&out.join("w.bin"), b"twelve").unwrap();
        write_atomic(&out.join("extra.bin"), b"e").unwrap();
        c.store(&rec("k12", vec!["m".into()])).unwrap();
        // Back to the first key: a hit, with its content restored exactly.
        assert!(c.lookup("s", "k10").is_some());
        assert_eq!(std::fs::read_to_string(out.join("w.bin")).unwrap(), "ten");
        assert!(!out.join("extra.bin").exists());
        assert!(c.lookup("s", "k12").is_some());
        assert_eq!(
            std::fs::read_to_string(out.join("w.bin")).unwrap(),
            "twelve"
        );
        // Content that is neither present nor stored cannot be served.
        for e in std::fs::read_dir(d.path().join(".cache/objects")).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        write_atomic(&out.join("w.bin"), b"other").unwrap();
        assert!(c.lookup("s", "k10").is_none());
        assert_eq!(std::fs::read_to_string(out.join("w.bin")).unwrap(), "other");
    }

    #[test]
    fn floats_round_trip_exactly() {
        let d = tempfile::tempdir().unwrap();
        let c = StageCache::new(d.path(), false);
        let xs: [f64; 5] = [
            0.1 + 0.2,
            1.0 / 3.0,
            2.000000000000001,
            1e-300,
            123456.789e10,
        ];
        let mut r = rec("k", vec![]);
        r.result = serde_json::json!({ "xs": xs, "n": 3, "s": "a" });
        c.store(&r).unwrap();
        let back = c.lookup("s", "k").unwrap().result;
        for (i, x) in xs.iter().enumerate() {
            assert_eq!(back["xs"][i].as_f64().unwrap().to_bits(), x.to_bits());
        }
        assert_eq!(back["n"], 3);
        assert!(back["n"].is_u64());
        assert_eq!(back["s"], "a");
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
