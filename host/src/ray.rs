//! Hands work to a Ray cluster through the driver `scripts/ray/yunmin_ray.py` (or
//! `$YUNMIN_RAY_DRIVER`), run by `$YUNMIN_PYTHON` (else `.venv`), on the cluster in
//! `RAY_ADDRESS`: dedup's phases, and batches of independent `yunmin` invocations (one Ray
//! task each: LoRA adapters, per-model evaluation).

use std::path::{Path, PathBuf};
use std::process::Command;
use yunmin_core::{Error, Result};

/// The driver script; `what` names the caller in the error.
pub fn driver(what: &str) -> Result<PathBuf> {
    let driver = std::env::var_os("YUNMIN_RAY_DRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("scripts/ray/yunmin_ray.py"));
    if !driver.exists() {
        return Err(Error::invalid(format!(
            "{what} with engine \"ray\": the driver {} is missing (set YUNMIN_RAY_DRIVER)",
            driver.display()
        )));
    }
    Ok(driver)
}

/// Python with Ray installed (`$YUNMIN_PYTHON`, else `.venv`).
pub fn python(what: &str) -> Result<PathBuf> {
    yunmin_core::run::python(None).ok_or_else(|| {
        Error::invalid(format!(
            "{what} with engine \"ray\": no Python: set YUNMIN_PYTHON or create .venv \
             (.venv/bin/pip install -r scripts/python-requirements/ray.txt)"
        ))
    })
}

/// A driver command (`python yunmin_ray.py …`) that runs this binary in its tasks.
pub fn command(what: &str) -> Result<Command> {
    let py = python(what)?;
    let exe = std::env::current_exe().map_err(|e| Error::invalid(e.to_string()))?;
    let mut c = Command::new(py);
    c.arg(driver(what)?).env("YUNMIN_BIN", exe);
    Ok(c)
}

/// Runs `c` to the end; a failure is an error carrying the last lines of its stderr.
pub fn run(what: &str, mut c: Command) -> Result<()> {
    let o = c
        .output()
        .map_err(|e| Error::invalid(format!("{what} on Ray: cannot start the driver: {e}")))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let tail: Vec<&str> = err.lines().rev().take(20).collect();
        return Err(Error::invalid(format!(
            "{what} on Ray failed ({}):\n{}",
            o.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        tracing::info!("{what} on Ray: {l}");
    }
    Ok(())
}

/// One `yunmin` invocation to run as a Ray task.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Task {
    /// Unique within the batch (`lora_law`, `eval_base`, …): names the task in logs and in
    /// the driver's fault injection (`YUNMIN_RAY_KILL_ONCE`).
    pub name: String,
    /// The arguments after `yunmin`.
    pub args: Vec<String>,
    /// A file that appears once the task has started its work (fault tests kill it then).
    pub started: PathBuf,
    /// Where its output appears (by rename, when complete).
    pub output: PathBuf,
}

/// Runs every task of `tasks` as one Ray task through the driver's `tasks` subcommand and
/// waits for all of them; `work` (the run root) holds the task list while it runs.
pub fn run_tasks(what: &str, work: &Path, tasks: &[Task]) -> Result<()> {
    if tasks.is_empty() {
        return Ok(());
    }
    let spec = work.join(format!(".ray-{what}-{}.json", std::process::id()));
    let body = serde_json::to_vec_pretty(&serde_json::json!({ "tasks": tasks }))
        .map_err(|e| Error::invalid(e.to_string()))?;
    yunmin_core::run::write_atomic(&spec, &body)?;
    let mut c = command(what)?;
    c.arg("tasks")
        .arg("--spec")
        .arg(&spec)
        .arg("--work")
        .arg(work);
    let r = run(what, c);
    let _ = std::fs::remove_file(&spec);
    r
}

/// Takes the count option `key` (e.g. dedup's `shards`, ingest's `parts`) out of `opts`: an
/// integer ≥ 1, allowed only with engine "ray" (`ray`); `None` when not given.
pub fn take_count(
    func: &str,
    key: &str,
    ray: bool,
    opts: &mut rhai::Map,
) -> crate::errors::RhaiResult<Option<usize>> {
    use crate::errors::msg_err;
    match (ray, opts.remove(key)) {
        (_, None) => Ok(None),
        (false, Some(_)) => Err(msg_err(format!(
            "{func}: option `{key}` needs engine \"ray\" (the local engine runs one process)"
        ))),
        (true, Some(v)) => v
            .as_int()
            .ok()
            .filter(|&n| n >= 1)
            .map(|n| Some(n as usize))
            .ok_or_else(|| {
                msg_err(format!(
                    "{func}: option `{key}` must be an integer ≥ 1, got {v}"
                ))
            }),
    }
}

/// Takes option `engine` ("local", the default, or "ray") out of `opts`: true for Ray.
pub fn take_engine(func: &str, opts: &mut rhai::Map) -> crate::errors::RhaiResult<bool> {
    use crate::errors::msg_err;
    let Some(v) = opts.remove("engine") else {
        return Ok(false);
    };
    let e = v
        .into_string()
        .map_err(|t| msg_err(format!("{func}: option `engine` must be a string, got {t}")))?;
    match e.as_str() {
        "local" => Ok(false),
        "ray" => Ok(true),
        other => Err(msg_err(format!(
            "{func}: option `engine` is `{other}`; expected \"local\" or \"ray\""
        ))),
    }
}
