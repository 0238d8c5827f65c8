//! The run context handed to every primitive: run root, seed, stage cache, logs and manifest.

use super::{
    GitInfo, Manifest, StageCache, StageEntry, StageLog, StageRecord, StageStatus,
    dependency_versions,
};
use crate::{Error, Result};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A run: everything a primitive needs to place outputs, seed randomness and cache its work.
#[derive(Debug)]
pub struct RunContext {
    root: PathBuf,
    seed: AtomicU64,
    cache: StageCache,
    log: StageLog,
    manifest: Mutex<Manifest>,
    policy: std::sync::RwLock<super::PathPolicy>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl RunContext {
    /// Opens (creating if needed) the run root, made absolute so that paths handed out stay
    /// valid whatever the working directory. `force` makes every cached stage run again.
    pub fn new(root: impl Into<PathBuf>, seed: u64, force: bool) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| Error::io("create run directory", &root, e))?;
        let root = std::path::absolute(&root).map_err(|e| Error::io("resolve", &root, e))?;
        let manifest = Manifest {
            seed,
            git: GitInfo::detect(),
            versions: dependency_versions(),
            device: "cpu".into(),
            started_at: now(),
            status: "running".into(),
            params: serde_json::json!({}),
            ..Default::default()
        };
        Ok(Self {
            cache: StageCache::new(&root, force),
            log: StageLog::new(&root),
            root,
            seed: AtomicU64::new(seed),
            manifest: Mutex::new(manifest),
            policy: std::sync::RwLock::new(super::PathPolicy::open()),
        })
    }

    /// The run root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed.load(Ordering::SeqCst)
    }

    /// Sets the run's seed (a script's `params` may carry one) and records it in the manifest.
    pub fn set_seed(&self, seed: u64) {
        self.seed.store(seed, Ordering::SeqCst);
        self.with_manifest(|m| m.seed = seed);
    }

    /// A path inside the run root (absolute paths and `s3://` URLs are returned unchanged).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        if rel.is_absolute() || rel.to_string_lossy().contains("://") {
            rel.to_path_buf()
        } else {
            self.root.join(rel)
        }
    }

    /// Sets where file functions may read and write (see [`super::PathPolicy`]).
    pub fn set_policy(&self, policy: super::PathPolicy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    fn policy(&self) -> std::sync::RwLockReadGuard<'_, super::PathPolicy> {
        self.policy.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Also allows reading under `p` (a path the script declares in its parameters).
    pub fn allow_read(&self, p: &Path) {
        self.policy
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .allow_read(p);
    }

    /// [`RunContext::path`], refused when the policy does not let it be read.
    pub fn read_path(&self, rel: impl AsRef<Path>) -> Result<PathBuf> {
        let p = self.path(rel);
        self.policy().check_read(&p)?;
        Ok(p)
    }

    /// A path given as is (relative to the working directory, not the run root), refused when
    /// the policy does not let it be read.
    pub fn read_given(&self, p: impl AsRef<Path>) -> Result<PathBuf> {
        let p = p.as_ref().to_path_buf();
        self.policy().check_read(&p)?;
        Ok(p)
    }

    /// An input path: inside the run root when it exists there, else as given (relative to
    /// the working directory); refused when the policy does not let it be read.
    pub fn input_path(&self, p: impl AsRef<Path>) -> Result<PathBuf> {
        let in_root = self.path(p.as_ref());
        if in_root.exists() {
            self.read_path(in_root)
        } else {
            self.read_given(p)
        }
    }

    /// [`RunContext::path`], refused when the policy does not let it be written.
    pub fn write_path(&self, rel: impl AsRef<Path>) -> Result<PathBuf> {
        let p = self.path(rel);
        self.policy().check_write(&p)?;
        Ok(p)
    }

    /// The pipeline logs.
    pub fn log(&self) -> &StageLog {
        &self.log
    }

    /// Edits the manifest in memory (call [`RunContext::save_manifest`] to persist).
    pub fn with_manifest<R>(&self, f: impl FnOnce(&mut Manifest) -> R) -> R {
        f(&mut self.manifest.lock().expect("manifest lock"))
    }

    /// Writes `manifest.json` in the run root.
    pub fn save_manifest(&self) -> Result<()> {
        let m = self.manifest.lock().expect("manifest lock").clone();
        m.save(&self.root.join("manifest.json"))
    }

    /// Marks the run finished (`ok` or `failed`) and saves the manifest.
    pub fn finish(&self, ok: bool) -> Result<()> {
        self.with_manifest(|m| {
            m.finished_at = Some(now());
            m.status = if ok { "ok" } else { "failed" }.into();
        });
        self.save_manifest()
    }

    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    }

    /// Runs a cached stage. The key hashes `name`, `params`, `code` (bump it when the
    /// algorithm changes) and the content of `inputs`. When a record with the same key exists
    /// and every path in `outputs` exists, `f` is skipped and the stored result returned with
    /// `true`. Otherwise `f` runs; its outputs must be written atomically. Every outcome is
    /// logged to `pipeline_run.log`, failures also to `pipeline_errors.log`.
    pub fn stage<T, F>(
        &self,
        name: &str,
        params: &serde_json::Value,
        inputs: &[PathBuf],
        outputs: &[PathBuf],
        code: &str,
        f: F,
    ) -> Result<(T, bool)>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T>,
    {
        self.stage_dyn_outputs(name, params, inputs, code, f, |_| outputs.to_vec())
    }

    /// Whether [`RunContext::stage`] with these arguments would be skipped (a record with the
    /// same key whose outputs exist): lets a caller hand only the unfinished stages of a batch
    /// to other processes before running each stage.
    pub fn is_cached(
        &self,
        name: &str,
        params: &serde_json::Value,
        inputs: &[PathBuf],
        code: &str,
    ) -> Result<bool> {
        let key = StageCache::key(name, params, inputs, code)?;
        Ok(self.cache.lookup(name, &key).is_some())
    }

    /// Like [`RunContext::stage`], for stages whose output paths are only known from their
    /// result (`outputs_of` maps the result to them).
    pub fn stage_dyn_outputs<T, F, O>(
        &self,
        name: &str,
        params: &serde_json::Value,
        inputs: &[PathBuf],
        code: &str,
        f: F,
        outputs_of: O,
    ) -> Result<(T, bool)>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T>,
        O: Fn(&T) -> Vec<PathBuf>,
    {
        let started = now();
        let t0 = Instant::now();
        let key = StageCache::key(name, params, inputs, code)?;
        let input_files = self.hash_inputs(inputs)?;
        let cached = self.cache.lookup(name, &key).and_then(|rec| {
            let v = serde_json::from_value::<T>(rec.result).ok()?;
            Some((
                v,
                rec.outputs.first().cloned().unwrap_or_default(),
                rec.files,
            ))
        });
        if let Some((v, out, files)) = cached {
            tracing::info!(
                stage = name,
                "skipped: cached outputs match key {}",
                &key[..12]
            );
            let entry = self.entry(name, &started, 0.0, StageStatus::Cached, &out, &key);
            self.record(entry, input_files, files)?;
            return Ok((v, true));
        }
        tracing::info!(stage = name, "started");
        match f() {
            Ok(v) => {
                let secs = t0.elapsed().as_secs_f64();
                let outputs: Vec<String> = outputs_of(&v).iter().map(|p| self.rel(p)).collect();
                let result = serde_json::to_value(&v).map_err(|e| Error::Json {
                    path: PathBuf::from(format!("<stage {name} result>")),
                    source: e,
                })?;
                let out_main = outputs.first().cloned().unwrap_or_default();
                let stored = self.cache.store(&StageRecord {
                    name: name.into(),
                    key: key.clone(),
                    outputs,
                    files: Default::default(),
                    result,
                    finished_at: now(),
                    duration_s: secs,
                })?;
                tracing::info!(stage = name, "finished in {secs:.2}s");
                let entry = self.entry(name, &started, secs, StageStatus::Ok, &out_main, &key);
                self.record(entry, input_files, stored.files)?;
                Ok((v, false))
            }
            Err(e) => {
                let secs = t0.elapsed().as_secs_f64();
                self.log.error(&started, name, &e)?;
                let entry = self.entry(name, &started, secs, StageStatus::Failed, "", &key);
                self.record(entry, input_files, Default::default())?;
                Err(e)
            }
        }
    }

    /// Content hash of every file of the given input paths (that exist), by path.
    fn hash_inputs(&self, inputs: &[PathBuf]) -> Result<BTreeMap<String, String>> {
        let rels: Vec<String> = inputs
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        self.cache.hash_outputs(&rels)
    }

    fn entry(
        &self,
        name: &str,
        start: &str,
        secs: f64,
        status: StageStatus,
        out: &str,
        key: &str,
    ) -> StageEntry {
        StageEntry {
            name: name.into(),
            started_at: start.into(),
            duration_s: secs,
            status,
            output: out.into(),
            key: key.into(),
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }

    fn record(
        &self,
        mut entry: StageEntry,
        inputs: BTreeMap<String, String>,
        outputs: BTreeMap<String, String>,
    ) -> Result<()> {
        self.log.stage(
            &entry.started_at,
            &entry.name,
            entry.duration_s,
            entry.status,
            &entry.output,
        )?;
        entry.inputs = inputs;
        entry.outputs = outputs;
        self.with_manifest(|m| m.stages.push(entry));
        self.save_manifest()
    }

    /// Records the content hash of every file the run root holds (except the manifest, the
    /// logs, the script copy and hidden entries such as the cache) in the manifest.
    pub fn record_run_files(&self) -> Result<()> {
        let files = super::run_files(&self.root)?;
        self.with_manifest(|m| m.files = files);
        self.save_manifest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_runs_once_then_hits_cache_and_logs_both() {
        let d = tempfile::tempdir().unwrap();
        let ctx = RunContext::new(d.path(), 1, false).unwrap();
        let out = ctx.path("o.txt");
        let mut calls = 0;
        for expect_cached in [false, true] {
            let (v, cached) = ctx
                .stage(
                    "s",
                    &serde_json::json!({"a": 1}),
                    &[],
                    std::slice::from_ref(&out),
                    "v1",
                    || {
                        calls += 1;
                        std::fs::write(&out, "x").unwrap();
                        Ok(41 + calls)
                    },
                )
                .unwrap();
            assert_eq!((v, cached), (42, expect_cached));
        }
        assert_eq!(calls, 1);
        let log = std::fs::read_to_string(d.path().join("pipeline_run.log")).unwrap();
        assert!(
            log.contains("status=ok") && log.contains("status=cached"),
            "{log}"
        );
    }

    #[test]
    fn failed_stage_writes_error_chain() {
        let d = tempfile::tempdir().unwrap();
        let ctx = RunContext::new(d.path(), 1, false).unwrap();
        let r: Result<(i32, bool)> =
            ctx.stage("bad", &serde_json::json!({}), &[], &[], "v1", || {
                Err(Error::invalid("boom"))
            });
        assert!(r.is_err());
        let err = std::fs::read_to_string(d.path().join("pipeline_errors.log")).unwrap();
        assert!(
            err.contains("stage=bad failed") && err.contains("boom") && err.contains("backtrace")
        );
    }
}
