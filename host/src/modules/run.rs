//! Rhai module `run`: `params`, `stage`, `run_root`, `seed`, `out_path` and small file helpers
//! (`write_text`, `read_text`, `copy_file`, `exists`) for scripts that assemble reports.

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::state::Host;
use rhai::{Dynamic, FnPtr, Map, NativeCallContext};
use std::path::PathBuf;
use std::sync::Arc;

/// Parses a `--set` value as the type of the parameter's default: a string default keeps the
/// text as is, an integer default needs an integer, a float default a number, a bool default
/// `true`/`false`; anything else is an error naming the parameter.
pub fn parse_override(key: &str, v: &str, default: &Dynamic) -> RhaiResult<Dynamic> {
    let bad = |want: &str| {
        msg_err(format!(
            "--set {key}={v}: the parameter's default is {want}, so the value must be too"
        ))
    };
    if default.is_string() || default.is_unit() {
        Ok(Dynamic::from(v.to_string()))
    } else if default.is_int() {
        v.parse::<i64>()
            .map(Dynamic::from_int)
            .map_err(|_| bad("an integer"))
    } else if default.is_float() {
        v.parse::<f64>()
            .map(Dynamic::from_float)
            .map_err(|_| bad("a number"))
    } else if default.is_bool() {
        v.parse::<bool>()
            .map(Dynamic::from_bool)
            .map_err(|_| bad("true or false"))
    } else {
        Err(msg_err(format!(
            "--set {key}: the parameter's default is a {}, which --set cannot give",
            default.type_name()
        )))
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
        let Some(default) = out.get(k.as_str()) else {
            let mut known: Vec<String> = out.keys().map(|s| s.to_string()).collect();
            known.sort();
            return Err(msg_err(format!(
                "--set {k}: the script has no parameter `{k}` (parameters: {})",
                known.join(", ")
            )));
        };
        let value = parse_override(k, v, default)?;
        out.insert(k.as_str().into(), value);
    }
    if let Some(seed) = out.get("seed") {
        let s = seed
            .as_int()
            .map_err(|_| msg_err("params: `seed` must be an integer"))?;
        host.ctx.set_seed(s as u64);
    }
    let json: serde_json::Value =
        rhai::serde::from_dynamic(&Dynamic::from_map(out.clone())).unwrap_or_default();
    // Paths the script declares in its parameters may be read.
    let mut declared = Vec::new();
    strings(&json, &mut declared);
    for s in declared {
        let p = std::path::Path::new(&s);
        if !s.is_empty() && !s.contains("://") && p.exists() {
            host.ctx.allow_read(p);
        }
    }
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
    // The closure's code (positions and comments left out), the script functions it can
    // reach and the values it captures; a capture that cannot be hashed stops here, before
    // the body runs.
    let script = host.code();
    let identity = script
        .closure_identity(&body)
        .map_err(|e| msg_err(format!("stage `{name}`: {e}")))?;
    // A result that cannot be cached is refused here when the closure's code shows it.
    if let Some(def) = script.def(body.fn_name()) {
        crate::stage_result::precheck(def, &host.returns())
            .map_err(|e| msg_err(format!("stage `{name}`: {e}")))?;
    }
    let mut key = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"), "closure": identity,
    });
    // Only stages whose code calls functions with an output revision carry theirs, by module
    // (the keys of the others stay as they were).
    let revisions = script.revisions(&body, &host.revisions());
    if !revisions.is_empty() {
        key["numerics"] = serde_json::json!(revisions);
    }
    let code = yunmin_core::run::hash_json(&key);
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
        crate::stage_result::encode(&out)
            .map_err(|e| yunmin_core::Error::invalid(format!("stage `{name}`: {e}")))
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
        Ok((v, _cached)) => crate::stage_result::decode(v).map_err(msg_err),
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
        "Runs `body` as a cached stage. The key hashes `name`, `params`, the content of every\n\
         path named in `params`, the body's code (comments and positions left out), the code of\n\
         every script function it can call and the value of every variable it captures (plain\n\
         data, tables, and handles of datasets, Parquet sets, diffs, adapters and saved models;\n\
         any other capture is an error before the body runs), and the output revision of the\n\
         model, train, eval, merge and report functions it calls, so a build whose model\n\
         numbers or charts differ reruns those stages. A rerun with an unchanged key\n\
         skips `body` and returns its stored result (plain data or tables, read back exact); a\n\
         result of another type (a model, a tokenizer …) is refused, before the body runs when\n\
         its last expression is a call returning such a type; every key's\n\
         outputs are kept, so going back to earlier settings restores them. `--force` reruns.\n\
         Each run is a line in `pipeline_run.log` and an entry, with the content hash of every\n\
         input and output file, in `manifest.json`; a failure also goes to `pipeline_errors.log`.",
        move |ctx: NativeCallContext, name: &str, params: Map, body: FnPtr| {
            stage(ctx, &h, name, params, body)
        },
    );
    let h = host.clone();
    api.func(
        "fail_point",
        &["name"],
        "Fails here on purpose when `yunmin run --fail-at NAME` names `name` (to check error\n\
         reporting and resuming); does nothing otherwise. Not part of any stage key.",
        move |name: &str| {
            if h.fails_at(name) {
                Err(msg_err(format!(
                    "{name}: failing on purpose (--fail-at {name})"
                )))
            } else {
                Ok(())
            }
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
            let p = h.ctx.write_path(path).rhai()?;
            yunmin_core::run::write_atomic(&p, text.as_bytes()).rhai()?;
            Ok::<_, crate::errors::RhaiError>(p.to_string_lossy().to_string())
        },
    );
    let h = host.clone();
    api.func(
        "read_text",
        &["path"],
        "The contents of a UTF-8 file: a path in the run root if it exists there, else as given\n\
         (the run root, the paths declared in params and --allow-read directories only).",
        move |path: &str| {
            let p = h.ctx.input_path(path).rhai()?;
            std::fs::read_to_string(&p)
                .map_err(|e| msg_err(format!("read_text: {}: {e}", p.display())))
        },
    );
    let h = host.clone();
    api.func(
        "exists",
        &["path"],
        "Whether a file or directory exists (inside the run root unless absolute).",
        move |path: &str| {
            let p = h.ctx.read_path(path).rhai()?;
            Ok::<_, crate::errors::RhaiError>(p.exists())
        },
    );
    let h = host.clone();
    api.func(
        "copy_file",
        &["from", "to"],
        "Copies a file (both paths inside the run root unless absolute; `to` may be a directory),\n\
         atomically, creating directories; returns the destination.",
        move |from: &str, to: &str| {
            let src = h.ctx.input_path(from).rhai()?;
            let mut dst = h.ctx.write_path(to).rhai()?;
            if dst.is_dir() {
                dst = dst.join(src.file_name().unwrap_or_default());
                h.ctx.write_path(&dst).rhai()?;
            }
            let bytes = std::fs::read(&src)
                .map_err(|e| msg_err(format!("copy_file: {}: {e}", src.display())))?;
            yunmin_core::run::write_atomic(&dst, &bytes).rhai()?;
            Ok::<_, crate::errors::RhaiError>(dst.to_string_lossy().to_string())
        },
    );
}
