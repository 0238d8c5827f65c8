//! Registration helpers that keep every Rhai function documented: each call registers the
//! function and records its module, signature and doc comment for `yunmin api`.

use rhai::{Engine, FuncRegistration, RhaiNativeFunc};

/// One documented Rhai function.
#[derive(Debug, Clone)]
pub struct ApiEntry {
    /// The function's name in scripts.
    pub name: String,
    /// Host module (one per core module): "run", "table", "ingest", …
    pub module: &'static str,
    /// Signature, e.g. `ingest(source: String, opts: Map) -> Dataset`.
    pub signature: String,
    /// Doc comment (markdown, without `///`).
    pub doc: String,
}

/// A registrar for one host module.
pub struct Api<'a> {
    engine: &'a mut Engine,
    module: &'static str,
    entries: &'a mut Vec<ApiEntry>,
}

impl<'a> Api<'a> {
    /// Starts registering functions of `module`.
    pub fn new(
        engine: &'a mut Engine,
        module: &'static str,
        entries: &'a mut Vec<ApiEntry>,
    ) -> Self {
        Self {
            engine,
            module,
            entries,
        }
    }

    /// The engine, to register types and getters.
    pub fn engine(&mut self) -> &mut Engine {
        self.engine
    }

    /// Registers `f` as `name`, naming its parameters `params` (in order; a method's first
    /// parameter is the receiver) and documenting it with `doc`.
    pub fn func<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        &mut self,
        name: &str,
        params: &[&str],
        doc: &str,
        f: FUNC,
    ) -> &mut Self
    where
        R: Clone + Send + Sync + 'static,
        FUNC: RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
    {
        let comments: Vec<String> = doc
            .lines()
            .map(|l| format!("/// {l}").trim_end().to_string())
            .collect();
        let meta = FuncRegistration::new(name)
            .with_comments([comments.join("\n")])
            .register_into_engine(self.engine, f);
        let types: Vec<String> = meta
            .params_info
            .iter()
            .map(|p| {
                p.split_once(':')
                    .map(|(_, t)| t.trim().to_string())
                    .unwrap_or_default()
            })
            .collect();
        let ret = meta.return_type.to_string();
        if std::env::var_os("YUNMIN_API_DEBUG").is_some() {
            eprintln!("{name}: {:?} -> {ret:?}", meta.params_info);
        }
        let args: Vec<String> = types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let t = rhai_type(t);
                match params.get(i) {
                    Some(n) => format!("{n}: {t}"),
                    None => t,
                }
            })
            .collect();
        let mut signature = format!("{name}({})", args.join(", "));
        // A host type by the name scripts know it by (`Candidates`, not `CandidatesHandle`).
        let ret = rhai_type(self.engine.map_type_name(result_inner(&ret)));
        if !ret.is_empty() && ret != "()" {
            signature.push_str(&format!(" -> {ret}"));
        }
        self.entries.push(ApiEntry {
            name: name.to_string(),
            module: self.module,
            signature,
            doc: doc.trim().to_string(),
        });
        self
    }
}

/// `T` of `Result<T, …>` (full path kept); other types unchanged.
fn result_inner(t: &str) -> &str {
    let t = t.trim();
    let Some(i) = t.find("Result<") else {
        return t;
    };
    let inner = &t[i + "Result<".len()..t.len().saturating_sub(1)];
    let mut depth = 0;
    let end = inner
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                _ => {}
            }
            c == ',' && depth == 0
        })
        .map(|(j, _)| j)
        .unwrap_or(inner.len());
    inner[..end].trim()
}

/// Rust type names as a script writer reads them (`Result<T, …>` → `T`, `rhai::Map` → `map`).
pub(crate) fn rhai_type(t: &str) -> String {
    let t = t
        .trim()
        .trim_start_matches('&')
        .trim_start_matches("mut ")
        .trim();
    if t.contains("Result<") {
        return rhai_type(result_inner(t));
    }
    if t.contains("BTreeMap<") {
        return "map".into();
    }
    if t.starts_with("Vec<") || t.starts_with("alloc::vec::Vec<") || t.contains("ThinVec<Dynamic") {
        return "array".into();
    }
    let base = t.split('<').next().unwrap_or(t);
    let last = base.rsplit("::").next().unwrap_or(base);
    match last {
        "i64" | "INT" => "int".into(),
        "f64" | "FLOAT" => "float".into(),
        "str" | "ImmutableString" | "String" | "string" => "string".into(),
        "Map" => "map".into(),
        "Array" | "Vec<Dynamic>" => "array".into(),
        "Dynamic" => "?".into(),
        "FnPtr" => "Fn".into(),
        other => other.to_string(),
    }
}

/// `docs/scripting.md`: every registered function grouped by module.
pub fn render_markdown(
    entries: &[ApiEntry],
    module_docs: &[(&'static str, &'static str)],
) -> String {
    let mut out = String::from(
        "# Scripting API\n\nGenerated by `yunmin api --write docs/scripting.md` from the registrations in \
         `host/src/modules/`; a test keeps this file in sync. Options are object maps; an unknown key is an \
         error that lists the known keys. Relative output paths are inside the run root.\n",
    );
    for (module, mdoc) in module_docs {
        let mut fns: Vec<&ApiEntry> = entries.iter().filter(|e| e.module == *module).collect();
        if fns.is_empty() {
            continue;
        }
        fns.sort_by(|a, b| a.signature.cmp(&b.signature));
        out.push_str(&format!("\n## `{module}`\n\n{mdoc}\n"));
        for e in fns {
            out.push_str(&format!("\n### `{}`\n\n{}\n", e.signature, e.doc));
        }
    }
    out
}

/// Every property getter registered in `engine` as `(type, property, value type)`, sorted.
pub fn properties(engine: &Engine) -> Vec<(String, String, String)> {
    let json = engine.gen_fn_metadata_to_json(false).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let mut out: Vec<(String, String, String)> = v["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let prop = f["name"].as_str()?.strip_prefix("get$")?;
            let this = f["params"][0]["type"].as_str().unwrap_or("");
            let ret = f["returnType"].as_str().unwrap_or("");
            Some((rhai_type(this), prop.to_string(), rhai_type(ret)))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The "Properties" section of `docs/scripting.md`: what `value.name` reads on each type.
pub fn render_properties(props: &[(String, String, String)]) -> String {
    let mut out = String::from(
        "\n## Properties\n\nRead with `value.name` (read-only). Types as in the signatures above.\n\n\
         | type | property | value |\n|---|---|---|\n",
    );
    for (t, p, r) in props {
        out.push_str(&format!("| `{t}` | `{p}` | {r} |\n"));
    }
    out
}

/// Plain-text listing for the terminal.
pub fn render_text(entries: &[ApiEntry]) -> String {
    let mut out = String::new();
    let mut sorted: Vec<&ApiEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| (a.module, &a.signature).cmp(&(b.module, &b.signature)));
    for e in sorted {
        let first = e.doc.lines().next().unwrap_or("");
        out.push_str(&format!("[{}] {}\n    {}\n", e.module, e.signature, first));
    }
    out
}
