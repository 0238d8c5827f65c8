//! What a script stage's cache key covers besides its params and inputs: the closure's code
//! without source positions or comments, the code of every script function it can reach, and
//! the value of every variable it captures. A capture whose content cannot be hashed is an
//! error when the stage is defined, before its body runs.

use crate::modules::{columnar::ParquetHandle, dedup::DedupResult, merge::Diff, model};
use rhai::{AST, Dynamic, FnPtr, ScriptFuncDef, Shared};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use yunmin_core::report::Table;

/// The script functions of a compiled script, by name, for canonical code.
#[derive(Debug, Default, Clone)]
pub struct ScriptCode {
    fns: HashMap<String, Vec<Shared<ScriptFuncDef>>>,
}

/// Removes source positions (`12:5`, `12:5-40`, `12:5-13:2`) from an AST's debug text,
/// leaving string and character literals untouched.
fn strip_positions(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let digits = |mut j: usize| {
        let s = j;
        while j < c.len() && c[j].is_ascii_digit() {
            j += 1;
        }
        (j > s).then_some(j)
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' {
            // A literal: copy through its closing quote, honouring escapes.
            out.push(ch);
            i += 1;
            while i < c.len() && c[i] != ch {
                if c[i] == '\\' && i + 1 < c.len() {
                    out.push(c[i]);
                    i += 1;
                }
                out.push(c[i]);
                i += 1;
            }
            if i < c.len() {
                out.push(c[i]);
                i += 1;
            }
            continue;
        }
        let boundary = out
            .chars()
            .last()
            .is_none_or(|p| !(p.is_alphanumeric() || p == '_' || p == '.'));
        if ch.is_ascii_digit() && boundary {
            // line:col, then optionally -col or -line:col
            if let Some(j) = digits(i).filter(|&j| j < c.len() && c[j] == ':')
                && let Some(mut k) = digits(j + 1)
            {
                if k < c.len()
                    && c[k] == '-'
                    && let Some(m) = digits(k + 1)
                {
                    k = m;
                    if k < c.len()
                        && c[k] == ':'
                        && let Some(n) = digits(k + 1)
                    {
                        k = n;
                    }
                }
                i = k;
                continue;
            }
        }
        out.push(ch);
        i += 1;
    }
    out
}

/// The output revision of each registered function that has one
/// ([`crate::modules::output_revision`] of its module), by function name.
#[derive(Debug, Default, Clone)]
pub struct Revisions(BTreeMap<String, (&'static str, u32)>);

impl Revisions {
    /// The revisions of the functions `entries` document.
    pub fn of(entries: &[crate::api::ApiEntry]) -> Self {
        Self(
            entries
                .iter()
                .filter_map(|e| {
                    crate::modules::output_revision(e.module)
                        .map(|r| (e.name.clone(), (e.module, r)))
                })
                .collect(),
        )
    }
}

/// String literals of an AST's debug text (function names appear as `name: "f"`).
fn quoted(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut it = text.chars().peekable();
    while let Some(ch) = it.next() {
        if ch != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = it.next() {
            match c {
                '\\' => {
                    if let Some(n) = it.next() {
                        s.push(n);
                    }
                }
                '"' => break,
                c => s.push(c),
            }
        }
        out.insert(s);
    }
    out
}

impl ScriptCode {
    /// The functions of `ast` (named ones and the anonymous functions of closures).
    pub fn new(ast: &AST) -> Self {
        let mut fns: HashMap<String, Vec<Shared<ScriptFuncDef>>> = HashMap::new();
        for f in ast.iter_fn_def() {
            fns.entry(f.name.to_string()).or_default().push(f.clone());
        }
        Self { fns }
    }

    /// The definition of the script function (or closure) `name`.
    pub fn def(&self, name: &str) -> Option<&ScriptFuncDef> {
        self.fns.get(name).and_then(|v| v.first()).map(|d| &**d)
    }

    fn debug_text(def: &ScriptFuncDef) -> String {
        format!("{:?} {:?}", def.params, def.body)
    }

    /// A function's code without positions; closures it creates are replaced by their own
    /// canonical code's hash, so their (position-dependent) generated names do not leak in.
    fn canonical(&self, def: &ScriptFuncDef) -> String {
        let text = strip_positions(&Self::debug_text(def));
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(i) = rest.find("anon$") {
            out.push_str(&rest[..i]);
            let tail = &rest[i + 5..];
            let n = tail
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(tail.len());
            let name = &rest[i..i + 5 + n];
            match self.fns.get(name).and_then(|v| v.first()) {
                Some(inner) => {
                    out.push_str("closure:");
                    out.push_str(&yunmin_core::run::hash_str(&self.canonical(inner)));
                }
                None => out.push_str(name),
            }
            rest = &tail[n..];
        }
        out.push_str(rest);
        out
    }

    /// Canonical code of the function `name` and of every script function it can reach
    /// (called by name, referenced by a string such as `Fn("f")`, or a closure it creates).
    pub fn reachable_code(&self, name: &str) -> BTreeMap<String, String> {
        let mut seen = BTreeMap::new();
        let mut todo = vec![name.to_string()];
        while let Some(n) = todo.pop() {
            if seen.contains_key(&n) {
                continue;
            }
            let Some(defs) = self.fns.get(&n) else {
                continue;
            };
            let mut code = String::new();
            for d in defs {
                code.push_str(&self.canonical(d));
                code.push('\n');
                todo.extend(
                    quoted(&Self::debug_text(d))
                        .into_iter()
                        .filter(|s| self.fns.contains_key(s)),
                );
            }
            let key = if n.starts_with("anon$") {
                format!("closure:{}", yunmin_core::run::hash_str(&code))
            } else {
                n.clone()
            };
            seen.insert(n.clone(), String::new());
            seen.insert(key, code);
        }
        seen.retain(|_, v| !v.is_empty());
        seen
    }

    /// The identity of a closure: its code, the code it can reach and its captured values
    /// (named by the variables they were captured from).
    pub fn closure_identity(&self, f: &FnPtr) -> Result<Value, String> {
        let code = self.reachable_code(f.fn_name());
        let names: Vec<String> = self
            .fns
            .get(f.fn_name())
            .and_then(|v| v.first())
            .map(|d| d.params.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default();
        let mut captures = serde_json::Map::new();
        for (i, v) in f.curry().iter().enumerate() {
            let name = names.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
            let id = self
                .value_identity(v)
                .map_err(|e| format!("captured variable `{name}`: {e}"))?;
            captures.insert(name, id);
        }
        Ok(json!({ "code": code, "captures": captures }))
    }

    /// The output revisions (by module) of the registered functions `f`'s code or the
    /// script functions it reaches name: what a stage's cache key adds so that a rerun after a
    /// change of those numbers recomputes it.
    pub fn revisions(&self, f: &FnPtr, known: &Revisions) -> BTreeMap<&'static str, u32> {
        self.reachable_code(f.fn_name())
            .values()
            .flat_map(|code| quoted(code))
            .filter_map(|name| known.0.get(&name).copied())
            .collect()
    }

    /// A hashable identity of a script value: plain data as itself, a function pointer by its
    /// code and captures, handles by their content; anything else is an error naming its type.
    pub fn value_identity(&self, v: &Dynamic) -> Result<Value, String> {
        let v = v.flatten_clone();
        if v.is_unit() {
            return Ok(Value::Null);
        }
        if let Ok(b) = v.as_bool() {
            return Ok(json!(b));
        }
        if let Ok(i) = v.as_int() {
            return Ok(json!(i));
        }
        if let Ok(f) = v.as_float() {
            return Ok(json!({ "f64": format!("{f:?}") }));
        }
        if let Ok(c) = v.as_char() {
            return Ok(json!(c.to_string()));
        }
        if v.is_string() {
            return Ok(json!(v.into_string().unwrap_or_default()));
        }
        if v.is_array() {
            let a = v.into_array().unwrap_or_default();
            return a.iter().map(|x| self.value_identity(x)).collect();
        }
        if v.is_map() {
            let m = v.cast::<rhai::Map>();
            let mut out = serde_json::Map::new();
            for (k, x) in m.iter() {
                out.insert(k.to_string(), self.value_identity(x)?);
            }
            return Ok(Value::Object(out));
        }
        if v.is_blob() {
            let b = v.into_blob().unwrap_or_default();
            return Ok(json!({ "blob": b }));
        }
        if v.is_fnptr() {
            return self.closure_identity(&v.cast::<FnPtr>());
        }
        handle_identity(&v).unwrap_or_else(|| {
            Err(format!(
                "a `{}` value cannot be hashed for the stage key; pass what it is made from \
                 (a path or plain data) instead",
                v.type_name()
            ))
        })
    }
}

fn dir_identity(kind: &str, dir: &std::path::Path) -> Result<Value, String> {
    let h = yunmin_core::run::hash_path(dir).map_err(|e| e.to_string())?;
    Ok(json!({ kind: dir.to_string_lossy(), "content": h }))
}

/// The identity of a host handle that stands for content: a table by its rows, a dataset,
/// Parquet set, diff, adapter or saved model by its directory's content, a dedup result by
/// its summary. `None` for a value that is no such handle.
fn handle_identity(v: &Dynamic) -> Option<Result<Value, String>> {
    if let Some(t) = v.read_lock::<Table>() {
        let rows: Vec<Value> = (0..t.height())
            .map(|i| Value::Object(t.row(i).unwrap_or_default()))
            .collect();
        return Some(Ok(json!({ "table": t.columns(), "rows": rows })));
    }
    if let Some(d) = v.read_lock::<yunmin_core::ingest::Dataset>() {
        return Some(dir_identity("dataset", d.dir()));
    }
    if let Some(p) = v.read_lock::<ParquetHandle>() {
        return Some(dir_identity("parquet", p.0.dir()));
    }
    if let Some(d) = v.read_lock::<Diff>() {
        return Some(dir_identity("diff", &d.set.dir));
    }
    if let Some(a) = v.read_lock::<model::Adapter>() {
        return Some(dir_identity("adapter", &a.dir));
    }
    if let Some(m) = v.read_lock::<model::Model>() {
        return Some(match &m.0.dir {
            Some(d) => dir_identity("model", d),
            None => Err(
                "a Model built in memory (with_adapter, to_model) cannot be hashed for the \
                 stage key; save it, or build it inside the stage"
                    .into(),
            ),
        });
    }
    if let Some(d) = v.read_lock::<DedupResult>() {
        return Some(serde_json::to_value(&*d.0).map_err(|e| e.to_string()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(src: &str) -> Value {
        let engine = rhai::Engine::new();
        let ast = engine.compile(src).unwrap();
        let code = ScriptCode::new(&ast);
        let f: FnPtr = engine.eval_ast(&ast).unwrap();
        code.closure_identity(&f).unwrap()
    }

    const BASE: &str = "
fn helper(x) { x * 2 }
let law_scale = 1.0;
|| { let y = helper(law_scale); `v=${y} at 12:30` }
";

    #[test]
    fn comments_blank_lines_and_moves_change_nothing() {
        let a = identity(BASE);
        let moved = format!(
            "// a comment\n\n   \n{}",
            BASE.replace("{ x * 2 }", "{\n  x * 2 // twice\n}")
        );
        assert_eq!(a, identity(&moved));
    }

    #[test]
    fn captured_values_called_functions_and_bodies_are_covered() {
        let a = identity(BASE);
        assert_ne!(
            a,
            identity(&BASE.replace("law_scale = 1.0", "law_scale = 2.0"))
        );
        assert_ne!(a, identity(&BASE.replace("x * 2", "x * 3")));
        assert_ne!(a, identity(&BASE.replace("v=", "w=")));
        // A string that looks like a position is code, not a position.
        assert_ne!(a, identity(&BASE.replace("12:30", "12:31")));
        // A float's last digit counts.
        assert_ne!(
            identity(&BASE.replace("1.0;", "0.30000000000000004;")),
            identity(&BASE.replace("1.0;", "0.3;"))
        );
    }

    #[test]
    fn nested_closures_and_transitive_calls_are_covered() {
        let src = "
fn inner(x) { x + 1 }
fn outer(x) { inner(x) }
|| { [1, 2].map(|v| outer(v)) }
";
        let a = identity(src);
        assert_eq!(a, identity(&format!("\n\n{src}")));
        assert_ne!(a, identity(&src.replace("x + 1", "x + 2")));
        assert_ne!(a, identity(&src.replace("outer(v)", "outer(v) * 2")));
    }

    #[test]
    fn output_revisions_of_the_functions_a_stage_reaches_are_in_its_key() {
        let known = Revisions(BTreeMap::from([("train_lora".to_string(), ("train", 2))]));
        let revisions = |src: &str| {
            let engine = rhai::Engine::new();
            let ast = engine.compile(src).unwrap();
            let f: FnPtr = engine.eval_ast(&ast).unwrap();
            ScriptCode::new(&ast).revisions(&f, &known)
        };
        let want = BTreeMap::from([("train", 2)]);
        // Called directly, through a script function, or inside a nested closure.
        assert_eq!(revisions("|| { train_lora(1) }"), want);
        assert_eq!(
            revisions("fn fit(x) { train_lora(x) }\n|| { fit(1) }"),
            want
        );
        assert_eq!(revisions("|| { [1].map(|v| train_lora(v)) }"), want);
        // A stage calling none keeps a key without revisions.
        assert!(revisions("fn fit(x) { x + 1 }\n|| { fit(1) }").is_empty());
    }

    #[test]
    fn uncacheable_capture_is_refused_naming_it() {
        let engine = rhai::Engine::new();
        let ast = engine.compile("let t = timestamp(); || { t }").unwrap();
        let code = ScriptCode::new(&ast);
        let f: FnPtr = engine.eval_ast(&ast).unwrap();
        let e = code.closure_identity(&f).unwrap_err();
        assert!(e.contains("captured variable `t`"), "{e}");
    }
}
