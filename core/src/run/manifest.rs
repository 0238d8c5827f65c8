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
