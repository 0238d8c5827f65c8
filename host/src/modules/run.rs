//! Rhai module `run`: `params`, `stage`, `run_root`, `seed`, `out_path` and small file helpers
//! (`write_text`, `read_text`, `copy_file`, `exists`) for scripts that assemble reports.

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::state::Host;
use rhai::{Dynamic, FnPtr, Map, NativeCallContext};
use std::path::PathBuf;
use std::sync::Arc;

/// Parses a `--set` value: int, float, bool, else string.
pub fn parse_override(v: &str) -> Dynamic {
    if let Ok(i) = v.parse::<i64>() {
        Dynamic::from_int(i)
    } else if let Ok(f) = v.parse::<f64>() {
        Dynamic::from_float(f)
    } else if let Ok(b) = v.parse::<bool>() {
        Dynamic::from_bool(b)
    } else {
        Dynamic::from(v.to_string())
    }
}

fn params(host: &Host, defaults: Map) -> RhaiResult<Map> {
    if host.mark_params_called() {
        return Err(msg_err(
            "params: called twice; declare all parameters in one params(#{…})",
        ));
    }
    let mut out = defaults;
    for (k, v) in &host.overrides {
        if !out.contains_key(k.as_str()) {
            let mut known: Vec<String> = out.keys().map(|s| s.to_string()).collect();
            known.sort();
            return Err(msg_err(format!(
                "--set {k}: the script has no parameter `{k}` (parameters: {})",
                known.join(", ")
            )));
        }
        out.insert(k.as_str().into(), parse_override(v));
    }
    if let Some(seed) = out.get("seed") {
        let s = seed
            .as_int()
            .map_err(|_| msg_err("params: `seed` must be an integer"))?;
        host.ctx.set_seed(s as u64);
    }
    let json: serde_json::Value =
        rhai::serde::from_dynamic(&Dynamic::from_map(out.clone())).unwrap_or_default();
    host.ctx.with_manifest(|m| m.params = json);
    host.ctx.save_manifest().rhai()?;
    Ok(out)
}

/// Strings inside a JSON value (paths are looked for among them).
fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn stage(
    ctx: NativeCallContext,
    host: &Host,
    name: &str,
    params: Map,
    body: FnPtr,
) -> RhaiResult<Dynamic> {
    let pjson: serde_json::Value = rhai::serde::from_dynamic(&Dynamic::from_map(params))?;
    let mut inputs = Vec::new();
    strings(&pjson, &mut inputs);
    let inputs: Vec<PathBuf> = inputs
        .into_iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    // Anonymous closures are named by a hash of their body, so editing the body changes the key.
    let code = format!("{}:{}", env!("CARGO_PKG_VERSION"), body.fn_name());
    let mut script_err = None;
    let run = || -> yunmin_core::Result<serde_json::Value> {
        let out: Dynamic = match body.call_within_context(&ctx, ()) {
            Ok(v) => v,
            Err(e) => {
                let msg = e.to_string();
                script_err = Some(e);
                return Err(yunmin_core::Error::invalid(msg));
            }
        };
        rhai::serde::from_dynamic(&out).map_err(|e| {
            yunmin_core::Error::invalid(format!(
                "stage `{name}`: its result must be plain data (strings, numbers, arrays, maps): {e}"
            ))
        })
    };
    // Outputs are the result's strings that name paths; checked after the body ran.
    let res = host
        .ctx
        .stage_dyn_outputs(name, &pjson, &inputs, &code, run, |v| {
            let mut s = Vec::new();
            strings(v, &mut s);
            s.into_iter()
                .map(|p| host.ctx.path(p))
                .filter(|p| p.exists())
                .collect()
        });
    match res {
        Ok((v, _cached)) => Ok(rhai::serde::to_dynamic(v)?),
        Err(e) => Err(script_err.unwrap_or_else(|| crate::errors::core_err(e))),
    }
}

/// Registers the `run` module.
pub fn register(api: &mut Api, host: &Arc<Host>) {
    let h = host.clone();
    api.func(
        "params",
        &["defaults"],
        "The script's parameters: `defaults` overridden by `yunmin run --set key=value`.\n\
         A `--set` key that is not in `defaults` is an error. A `seed` key sets the run's seed.\n\
         The resolved map is recorded in `manifest.json`.",
        move |defaults: Map| params(&h, defaults),
    );
    let h = host.clone();
    api.func(
        "stage",
        &["name", "params", "body"],
        "Runs `body` as a cached stage. The key hashes `name`, `params`, the body's code and the\n\
         content of every path named in `params`. A rerun with an unchanged key skips `body` and\n\
         returns its stored result (which must be plain data); `--force` reruns it. Each run is a\n\
         line in `pipeline_run.log`; a failure also goes to `pipeline_errors.log`.",
        move |ctx: NativeCallContext, name: &str, params: Map, body: FnPtr| {
            stage(ctx, &h, name, params, body)
        },
    );
    let h = host.clone();
    api.func(
        "run_root",
        &[],
        "The run root directory (absolute).",
        move || h.ctx.root().to_string_lossy().to_string(),
    );
    let h = host.clone();
    api.func(
        "seed",
        &[],
        "The run's seed (42 unless `params` sets `seed`).",
        move || h.ctx.seed() as i64,
    );
    let h = host.clone();
    api.func(
        "out_path",
        &["rel"],
        "A path inside the run root (absolute paths and s3:// URLs are returned unchanged).",
        move |rel: &str| h.ctx.path(rel).to_string_lossy().to_string(),
    );
    let h = host.clone();
    api.func(
        "write_text",
        &["path", "text"],
        "Writes `text` to `path` (inside the run root unless absolute) atomically, creating\n\
         directories; returns the absolute path.",
        move |path: &str, text: &str| {
            let p = h.ctx.path(path);
            yunmin_core::run::write_atomic(&p, text.as_bytes()).rhai()?;
            Ok::<_, crate::errors::RhaiError>(p.to_string_lossy().to_string())
        },
    );
    let h = host.clone();
    api.func(
        "read_text",
        &["path"],
        "The contents of a UTF-8 file (inside the run root unless absolute).",
        move |path: &str| {
            let p = h.ctx.path(path);
            std::fs::read_to_string(&p)
                .map_err(|e| msg_err(format!("read_text: {}: {e}", p.display())))
        },
    );
    let h = host.clone();
    api.func(
        "exists",
        &["path"],
        "Whether a file or directory exists (inside the run root unless absolute).",
        move |path: &str| h.ctx.path(path).exists(),
    );
    let h = host.clone();
    api.func(
        "copy_file",
        &["from", "to"],
        "Copies a file (both paths inside the run root unless absolute; `to` may be a directory),\n\
         atomically, creating directories; returns the destination.",
        move |from: &str, to: &str| {
            let src = h.ctx.path(from);
            let mut dst = h.ctx.path(to);
            if dst.is_dir() {
                dst = dst.join(src.file_name().unwrap_or_default());
            }
            let bytes = std::fs::read(&src)
                .map_err(|e| msg_err(format!("copy_file: {}: {e}", src.display())))?;
            yunmin_core::run::write_atomic(&dst, &bytes).rhai()?;
            Ok::<_, crate::errors::RhaiError>(dst.to_string_lossy().to_string())
        },
    );
}
