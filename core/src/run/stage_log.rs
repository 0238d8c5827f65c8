//! `pipeline_run.log` (one line per stage) and `pipeline_errors.log` (error chain and backtrace
//! of every failure), both appended to in the run root.

use crate::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// Ran and succeeded.
    Ok,
    /// Skipped: its cached outputs match the key.
    Cached,
    /// Ran and failed.
    Failed,
}

impl std::fmt::Display for StageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StageStatus::Ok => "ok",
            StageStatus::Cached => "cached",
            StageStatus::Failed => "failed",
        })
    }
}

/// Appender for the two pipeline logs of a run root.
#[derive(Debug, Clone)]
pub struct StageLog {
    run_log: PathBuf,
    error_log: PathBuf,
}

impl StageLog {
    /// Logs under `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            run_log: root.join("pipeline_run.log"),
            error_log: root.join("pipeline_errors.log"),
        }
    }

    fn append(path: &Path, text: &str) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io("open", path, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| Error::io("append", path, e))
    }

    /// One tab-separated line: start time, stage, duration, status, output path.
    pub fn stage(
        &self,
        start: &str,
        name: &str,
        secs: f64,
        status: StageStatus,
        output: &str,
    ) -> Result<()> {
        let line = format!(
            "{start}\tstage={name}\tduration_s={secs:.3}\tstatus={status}\toutput={output}\n"
        );
        Self::append(&self.run_log, &line)
    }

    /// The error chain (outermost first) and a backtrace of a failed stage.
    pub fn error(
        &self,
        when: &str,
        name: &str,
        err: &(dyn std::error::Error + 'static),
    ) -> Result<()> {
        let mut text = format!("=== {when} stage={name} failed\nerror: {err}\n");
        let mut src = err.source();
        while let Some(s) = src {
            text.push_str(&format!("caused by: {s}\n"));
            src = s.source();
        }
        text.push_str(&format!(
            "backtrace:\n{}\n",
            std::backtrace::Backtrace::force_capture()
        ));
        Self::append(&self.error_log, &text)
    }

    /// Path of `pipeline_run.log`.
    pub fn run_log_path(&self) -> &Path {
        &self.run_log
    }

    /// Path of `pipeline_errors.log`.
    pub fn error_log_path(&self) -> &Path {
        &self.error_log
    }
}
