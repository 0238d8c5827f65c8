//! `yunmin run` and `yunmin check`: compile a script, set up its run root and manifest, run it,
//! and turn every failure (script error, core error, panic) into a message with its position.

use crate::cli::RunArgs;
use crate::engine;
use crate::logging::RunLogFile;
use crate::state::Host;
use anyhow::{Context, Result, anyhow};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yunmin_core::run::{RunContext, hash_str};

/// Default run root for a script: `runs/<script stem>/`.
pub fn default_root(script: &Path) -> PathBuf {
    let stem = script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "script".into());
    PathBuf::from("runs").join(stem)
}

/// Compiles `script` and reports the first syntax error with line and column.
pub fn check(script: &Path) -> Result<()> {
    let src =
        std::fs::read_to_string(script).with_context(|| format!("reading {}", script.display()))?;
    let tmp = tempfile_root()?;
    let ctx = Arc::new(RunContext::new(tmp.path(), 42, false)?);
    let host = Host::new(ctx, BTreeMap::new());
    let (engine, _) = engine::build(&host);
    engine
        .compile(&src)
        .map_err(|e| anyhow!("{}: {e}", script.display()))?;
    println!("{}: ok", script.display());
    Ok(())
}

fn tempfile_root() -> Result<tempfile::TempDir> {
    Ok(tempfile::tempdir()?)
}

/// Runs `script` with `--set` overrides in its run root.
pub fn run(
    script: &Path,
    set: Vec<(String, String)>,
    args: &RunArgs,
    log_file: &RunLogFile,
) -> Result<()> {
    let src =
        std::fs::read_to_string(script).with_context(|| format!("reading {}", script.display()))?;
    let root = args.out.clone().unwrap_or_else(|| default_root(script));
    let ctx = Arc::new(RunContext::new(&root, args.seed, args.force)?);
    log_file.attach(&ctx.root().join("yunmin.log")).ok();
    let copy = ctx.root().join("script.rhai");
    std::fs::write(&copy, &src).with_context(|| format!("copying script to {}", copy.display()))?;
    ctx.with_manifest(|m| {
        m.script = Some(script.display().to_string());
        m.script_hash = Some(hash_str(&src));
        m.script_copy = Some("script.rhai".into());
    });
    ctx.save_manifest()?;
    tracing::info!("run root {}", ctx.root().display());

    let overrides: BTreeMap<String, String> = set.into_iter().collect();
    let host = Host::new(ctx.clone(), overrides);
    let (engine, _) = engine::build(&host);
    let name = script.display().to_string();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ast = engine.compile(&src).map_err(|e| anyhow!("{name}: {e}"))?;
        engine.run_ast(&ast).map_err(|e| anyhow!("{name}: {e}"))?;
        if !host.overrides.is_empty() && !host.params_called() {
            return Err(anyhow!(
                "--set was given but the script never calls params(#{{…}})"
            ));
        }
        Ok(())
    }));
    let result = match outcome {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(anyhow!("internal error (please report): {msg}"))
        }
    };
    if let Err(e) = &result {
        let when = chrono::Utc::now().to_rfc3339();
        let io: &(dyn std::error::Error + 'static) = e.as_ref();
        ctx.log().error(&when, "script", io).ok();
    }
    ctx.finish(result.is_ok())?;
    result
}
