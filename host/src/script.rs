//! `yunmin run`, `check`, `verify` and `rerun`: compile a script, check it statically, set up
//! its run root, confinement, limits and manifest, run it, turn every failure (script error,
//! core error, panic, exceeded limit) into a message with its position, and compare runs.

use crate::check::{self, Known};
use crate::cli::{GuardArgs, RunArgs};
use crate::engine;
use crate::logging::RunLogFile;
use crate::modules;
use crate::state::Host;
use anyhow::{Context, Result, anyhow, bail};
use rhai::{AST, Engine, EvalAltResult};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yunmin_core::run::{Manifest, PathPolicy, RunContext, compare_files, hash_str, run_files};

/// Default run root for a script: `runs/<script stem>/`.
pub fn default_root(script: &Path) -> PathBuf {
    let stem = script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "script".into());
    PathBuf::from("runs").join(stem)
}

/// Compiles `src` and runs the static checks; every problem as `file:line:col: …`.
fn static_problems(engine: &Engine, name: &str, src: &str, set: &[String]) -> Result<AST> {
    let ast = engine.compile(src).map_err(|e| {
        let p = e.position();
        anyhow!(
            "{name}:{}:{}: {}",
            p.line().unwrap_or(0),
            p.position().unwrap_or(0),
            e.err_type()
        )
    })?;
    let known = Known::from_engine(engine, modules::option_keys());
    let problems = check::check(&ast, &known, set);
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| p.render(name)).collect();
        bail!(
            "{} problem(s) found before running:\n{}",
            problems.len(),
            lines.join("\n")
        );
    }
    Ok(ast)
}

/// `yunmin check`: compiles `script` and reports every static problem.
pub fn check(script: &Path, set: &[(String, String)]) -> Result<()> {
    let src =
        std::fs::read_to_string(script).with_context(|| format!("reading {}", script.display()))?;
    let tmp = tempfile::tempdir()?;
    let ctx = Arc::new(RunContext::new(tmp.path(), 42, false)?);
    let host = Host::new(ctx, BTreeMap::new());
    let (engine, _) = engine::build(&host);
    let keys: Vec<String> = set.iter().map(|(k, _)| k.clone()).collect();
    static_problems(&engine, &script.display().to_string(), &src, &keys)?;
    println!("{}: ok", script.display());
    Ok(())
}

/// Engine limits from the command line; each breach is an error naming its flag.
fn apply_limits(engine: &mut Engine, g: &GuardArgs) {
    engine.set_max_operations(g.max_operations);
    engine.set_max_call_levels(g.max_call_depth);
    engine.set_max_string_size(g.max_string_size);
    engine.set_max_array_size(g.max_array_size);
    engine.set_max_map_size(g.max_map_size);
    let timeout = g.timeout;
    let start = std::time::Instant::now();
    engine.on_progress(move |_| {
        if yunmin_core::run::is_cancelled() {
            return Some("cancelled by user (Ctrl-C)".into());
        }
        (timeout > 0 && start.elapsed().as_secs() >= timeout)
            .then(|| format!("the script ran longer than --timeout {timeout} s").into())
    });
}

/// A script error with the limit it breached named by its command-line flag.
fn explain(e: Box<EvalAltResult>, g: &GuardArgs) -> String {
    let pos = e.position();
    let at = format!(
        "{}:{}",
        pos.line().unwrap_or(0),
        pos.position().unwrap_or(0)
    );
    match e.unwrap_inner() {
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "{at}: the script exceeded --max-operations {} (raise it for longer pipelines)",
            g.max_operations
        ),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "{at}: function calls nested deeper than --max-call-depth {}",
            g.max_call_depth
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            let flag = if what.contains("string") || what.contains("String") {
                format!("--max-string-size {}", g.max_string_size)
            } else if what.contains("rray") {
                format!("--max-array-size {}", g.max_array_size)
            } else if what.contains("map") || what.contains("Map") {
                format!("--max-map-size {}", g.max_map_size)
            } else {
                "an engine size limit".to_string()
            };
            format!("{at}: {what} exceeds {flag}")
        }
        EvalAltResult::ErrorTerminated(v, _) => format!("{at}: stopped: {v}"),
        _ => format!("{at}: {e}"),
    }
}

/// Runs `script` with `--set` overrides in its run root.
pub fn run(
    script: &Path,
    set: Vec<(String, String)>,
    args: &RunArgs,
    guard: &GuardArgs,
    log_file: &RunLogFile,
) -> Result<()> {
    let src =
        std::fs::read_to_string(script).with_context(|| format!("reading {}", script.display()))?;
    let root = args.out.clone().unwrap_or_else(|| default_root(script));
    run_source(script, &src, set, &root, args, guard, log_file)
}

fn run_source(
    script: &Path,
    src: &str,
    set: Vec<(String, String)>,
    root: &Path,
    args: &RunArgs,
    guard: &GuardArgs,
    log_file: &RunLogFile,
) -> Result<()> {
    let name = script.display().to_string();
    let overrides: BTreeMap<String, String> = set.into_iter().collect();
    // Checked before the run root is touched: a typo costs nothing.
    if !guard.no_check {
        let probe = Host::new(
            Arc::new(RunContext::new(tempfile::tempdir()?.path(), 42, false)?),
            BTreeMap::new(),
        );
        let (engine, _) = engine::build(&probe);
        let keys: Vec<String> = overrides.keys().cloned().collect();
        static_problems(&engine, &name, src, &keys)?;
    }
    let ctx = Arc::new(RunContext::new(root, args.seed, args.force)?);
    let mut read = guard.allow_read.clone();
    if let Some(dir) = script.parent().filter(|d| !d.as_os_str().is_empty()) {
        read.push(dir.to_path_buf());
    } else {
        read.push(PathBuf::from("."));
    }
    ctx.set_policy(PathPolicy::confined(ctx.root(), &read, &guard.allow_write));
    log_file.attach(&ctx.root().join("yunmin.log")).ok();
    let copy = ctx.root().join("script.rhai");
    std::fs::write(&copy, src).with_context(|| format!("copying script to {}", copy.display()))?;
    ctx.with_manifest(|m| {
        m.script = Some(name.clone());
        m.script_hash = Some(hash_str(src));
        m.script_copy = Some("script.rhai".into());
    });
    ctx.save_manifest()?;
    tracing::info!("run root {}", ctx.root().display());

    let host = Host::new(ctx.clone(), overrides);
    host.set_fail_at(guard.fail_at.clone());
    let (mut engine, _) = engine::build(&host);
    apply_limits(&mut engine, guard);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ast = engine.compile(src).map_err(|e| anyhow!("{name}: {e}"))?;
        host.set_script(&ast);
        engine
            .run_ast(&ast)
            .map_err(|e| anyhow!("{name}:{}", explain(e, guard)))?;
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
    if result.is_ok() {
        ctx.record_run_files()?;
    }
    ctx.finish(result.is_ok())?;
    result
}

fn read_manifest(run: &Path) -> Result<Manifest> {
    let p = run.join("manifest.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

fn report_drift(label: &str, diffs: &[(String, Option<String>, Option<String>)]) -> Result<()> {
    if diffs.is_empty() {
        return Ok(());
    }
    for (f, a, b) in diffs {
        let what = match (a, b) {
            (Some(_), None) => "missing",
            (None, Some(_)) => "new",
            _ => "changed",
        };
        println!("{what:8} {f}");
    }
    bail!("{label}: {} file(s) differ", diffs.len())
}

/// `yunmin verify RUN`: rehashes the run root against its manifest.
pub fn verify(run: &Path) -> Result<()> {
    let m = read_manifest(run)?;
    if m.status != "ok" || m.files.is_empty() {
        bail!(
            "{}: the manifest records no finished run's files (status {})",
            run.display(),
            m.status
        );
    }
    let now = run_files(run)?;
    report_drift(
        &format!("{} drifted from its manifest", run.display()),
        &compare_files(&m.files, &now),
    )?;
    println!(
        "{}: all {} files match the manifest",
        run.display(),
        m.files.len()
    );
    Ok(())
}

/// Whether two files are equal once the first run's root is replaced by the second's (files
/// that record where the run lived, such as an adapter's base path).
fn equal_relocated(a: &Path, root_a: &Path, b: &Path, root_b: &Path) -> bool {
    let (Ok(x), Ok(y)) = (std::fs::read(a), std::fs::read(b)) else {
        return false;
    };
    let ra = root_a.to_string_lossy().into_owned();
    let rb = root_b.to_string_lossy().into_owned();
    match (String::from_utf8(x), String::from_utf8(y)) {
        (Ok(x), Ok(y)) => x.replace(&ra, &rb) == y,
        _ => false,
    }
}

/// `yunmin rerun RUN --out NEW [--verify]`: the recorded script copy, parameters and seed,
/// run again into `NEW`; with `verify`, every file compared with the original.
pub fn rerun(
    run: &Path,
    out: &Path,
    verify: bool,
    guard: &GuardArgs,
    log_file: &RunLogFile,
) -> Result<()> {
    let m = read_manifest(run)?;
    if verify && (m.status != "ok" || m.files.is_empty()) {
        bail!(
            "{}: not a finished run (status {}); there is nothing to compare a rerun with",
            run.display(),
            m.status
        );
    }
    let copy = run.join(m.script_copy.as_deref().unwrap_or("script.rhai"));
    let src =
        std::fs::read_to_string(&copy).with_context(|| format!("reading {}", copy.display()))?;
    if m.script_hash.as_deref() != Some(hash_str(&src).as_str()) {
        bail!(
            "{}: the script copy does not match the hash in the manifest",
            copy.display()
        );
    }
    // The recorded parameters become `--set` values (each checked against the script).
    let mut set = Vec::new();
    if let serde_json::Value::Object(p) = &m.params {
        for (k, v) in p {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => v.to_string(),
                other => bail!("parameter `{k}` = {other} cannot be given back with --set"),
            };
            set.push((k.clone(), s));
        }
    }
    let script = m
        .script
        .as_deref()
        .map(PathBuf::from)
        .unwrap_or_else(|| copy.clone());
    let args = RunArgs {
        out: Some(out.to_path_buf()),
        force: false,
        seed: m.seed,
    };
    run_source(&script, &src, set, out, &args, guard, log_file)?;
    if !verify {
        return Ok(());
    }
    let (root_a, root_b) = (std::path::absolute(run)?, std::path::absolute(out)?);
    let new = read_manifest(out)?;
    let diffs: Vec<_> = compare_files(&m.files, &new.files)
        .into_iter()
        .filter(|(f, a, b)| {
            !(a.is_some()
                && b.is_some()
                && equal_relocated(&root_a.join(f), &root_a, &root_b.join(f), &root_b))
        })
        .collect();
    report_drift(
        &format!("{} does not reproduce {}", out.display(), run.display()),
        &diffs,
    )?;
    println!(
        "{} reproduces {}: all {} files identical",
        out.display(),
        run.display(),
        m.files.len()
    );
    Ok(())
}
