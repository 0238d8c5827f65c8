//! `manifest.json`: what a run was (script, params, seed, code, versions, device) and how each
//! stage went.

use super::{StageStatus, write_atomic};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Git state of the working directory the run started in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GitInfo {
    /// `HEAD` commit, when inside a repository.
    pub commit: Option<String>,
    /// Whether tracked files had uncommitted changes.
    pub dirty: bool,
}

impl GitInfo {
    /// Reads commit and dirty flag with the `git` command; empty outside a repository.
    pub fn detect() -> Self {
        let run = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        match run(&["rev-parse", "HEAD"]) {
            Some(commit) => GitInfo {
                commit: Some(commit),
                dirty: run(&["status", "--porcelain", "--untracked-files=no"])
                    .is_some_and(|s| !s.is_empty()),
            },
            None => GitInfo::default(),
        }
    }
}

/// One stage as the manifest records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageEntry {
    /// Stage name.
    pub name: String,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// Wall time in seconds.
    pub duration_s: f64,
    /// Outcome.
    pub status: StageStatus,
    /// Main output path.
    pub output: String,
    /// Cache key the stage ran (or was skipped) under.
    pub key: String,
    /// Content hash of every input file the key covers, by path.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Content hash of every output file, by path (relative to the run root when inside it).
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

/// The run manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// Script path as given.
    pub script: Option<String>,
    /// xxh3-128 of the script text.
    pub script_hash: Option<String>,
    /// Where the copy of the script lives inside the run root.
    pub script_copy: Option<String>,
    /// Parameters after defaults and `--set` overrides.
    pub params: serde_json::Value,
    /// The run's seed.
    pub seed: u64,
    /// Git state.
    pub git: GitInfo,
    /// `yunmin-core` and the versions of the crates it is built on.
    pub versions: BTreeMap<String, String>,
    /// Compute device (e.g. `cpu (flex)`).
    pub device: String,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// End time, once finished.
    pub finished_at: Option<String>,
    /// `running`, `ok` or `failed`.
    pub status: String,
    /// Stages in execution order.
    pub stages: Vec<StageEntry>,
    /// Content hash of every file in the run root when the run finished (see
    /// [`run_files`]): what the run produced, checked by `yunmin verify`.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// Names in a run root that legitimately differ between two runs of the same script (times,
/// durations, speeds, hosts) or are the run's own record; [`run_files`] leaves them out:
/// the manifest, the logs (`logs/` holds the training logs with their tokens/s) and the
/// script copy. Hidden entries (the stage cache, temporaries) are left out too.
pub const RUN_RECORDS: &[&str] = &[
    "manifest.json",
    "pipeline_run.log",
    "pipeline_errors.log",
    "yunmin.log",
    "script.rhai",
    "logs",
];

/// Every file of a run root except [`RUN_RECORDS`] and hidden entries, with its content hash.
pub fn run_files(root: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for f in super::hashing::files_under(root)? {
        let rel = f.strip_prefix(root).unwrap_or(&f);
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if RUN_RECORDS.contains(&first.as_str()) {
            continue;
        }
        out.insert(rel.to_string_lossy().into_owned(), super::hash_path(&f)?);
    }
    Ok(out)
}

/// Files whose content differs between two `path → hash` maps: (path, expected, found), with
/// `None` for a file missing on that side.
pub fn compare_files(
    expected: &BTreeMap<String, String>,
    found: &BTreeMap<String, String>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let mut keys: Vec<&String> = expected.keys().chain(found.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| expected.get(*k) != found.get(*k))
        .map(|k| (k.clone(), expected.get(k).cloned(), found.get(k).cloned()))
        .collect()
}

/// `yunmin-core`'s version and the resolved versions of its main dependencies.
pub fn dependency_versions() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(
        "yunmin-core".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    for pair in env!("YUNMIN_DEP_VERSIONS")
        .split(',')
        .filter(|s| !s.is_empty())
    {
        if let Some((n, v)) = pair.split_once('=') {
            m.insert(n.to_string(), v.to_string());
        }
    }
    m
}

impl Manifest {
    /// Writes the manifest to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        write_atomic(path, &bytes)
    }
}
