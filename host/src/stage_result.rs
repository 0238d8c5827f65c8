//! What a cached stage may return and how its result is stored: plain data (strings, numbers,
//! booleans, arrays, maps) as JSON, and tables as Parquet bytes, both read back exact. A
//! result of any other type (a model, a tokenizer, a dedup index …) cannot be cached: when the
//! closure's code shows it (its result is the value of a call whose registered return type is
//! such a type), the stage is refused before its body runs; otherwise after.

use base64::Engine as _;
use rhai::{ASTNode, Dynamic, Engine, Expr, Position, ScriptFuncDef, Stmt};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use yunmin_core::report::Table;

/// The key that marks a stored table (`{"$table": "<base64 Parquet>"}`).
const TABLE_TAG: &str = "$table";

/// Types a stage result may have (as `yunmin api` names them); `?` is "any".
const CACHEABLE: &[&str] = &[
    "", "?", "()", "int", "float", "bool", "char", "string", "map", "array", "Table",
];

/// A stage result as storable JSON; an error names the first value that cannot be stored.
pub fn encode(v: &Dynamic) -> Result<Value, String> {
    let v = v.flatten_clone();
    if v.is_array() {
        return v
            .into_array()
            .unwrap_or_default()
            .iter()
            .map(encode)
            .collect();
    }
    if v.is_map() {
        let m = v.cast::<rhai::Map>();
        let mut out = serde_json::Map::new();
        for (k, x) in m.iter() {
            out.insert(k.to_string(), encode(x)?);
        }
        return Ok(Value::Object(out));
    }
    if let Some(t) = v.read_lock::<Table>() {
        let bytes = t.to_parquet_bytes().map_err(|e| e.to_string())?;
        return Ok(json!({ TABLE_TAG: base64::engine::general_purpose::STANDARD.encode(bytes) }));
    }
    let plain = v.is_unit()
        || v.is_bool()
        || v.is_int()
        || v.is_float()
        || v.is_char()
        || v.is_string()
        || v.is_blob();
    if !plain {
        return Err(format!(
            "a `{}` value cannot be cached; return plain data, a Table or a path instead",
            v.type_name()
        ));
    }
    rhai::serde::from_dynamic(&v).map_err(|e| e.to_string())
}

/// A stored stage result back as a script value (tables rebuilt from their Parquet bytes).
pub fn decode(v: Value) -> Result<Dynamic, String> {
    match v {
        Value::Array(a) => Ok(Dynamic::from_array(
            a.into_iter().map(decode).collect::<Result<_, _>>()?,
        )),
        Value::Object(m) if m.len() == 1 && m.get(TABLE_TAG).is_some_and(Value::is_string) => {
            let text = m[TABLE_TAG].as_str().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("stored table: {e}"))?;
            let t = Table::from_parquet_bytes(&bytes).map_err(|e| e.to_string())?;
            Ok(Dynamic::from(t))
        }
        Value::Object(m) => {
            let mut out = rhai::Map::new();
            for (k, x) in m {
                out.insert(k.into(), decode(x)?);
            }
            Ok(Dynamic::from_map(out))
        }
        leaf => rhai::serde::to_dynamic(leaf).map_err(|e| e.to_string()),
    }
}

/// The registered functions' return types: (name, argument count) → type names.
#[derive(Debug, Default, Clone)]
pub struct Returns(HashMap<(String, usize), BTreeSet<String>>);

impl Returns {
    /// Every function registered in `engine`, with the return type its metadata records.
    pub fn from_engine(engine: &Engine) -> Self {
        let mut out: HashMap<(String, usize), BTreeSet<String>> = HashMap::new();
        let json = engine.gen_fn_metadata_to_json(true).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&json) {
            for f in v["functions"].as_array().into_iter().flatten() {
                if let (Some(n), Some(k)) = (f["name"].as_str(), f["numParams"].as_u64()) {
                    let t = crate::api::rhai_type(f["returnType"].as_str().unwrap_or(""));
                    out.entry((n.to_string(), k as usize))
                        .or_default()
                        .insert(t);
                }
            }
        }
        Self(out)
    }

    /// The type a call to `name` with `arity` arguments returns, when every registered
    /// overload returns the same type that cannot be cached.
    fn uncacheable(&self, name: &str, arity: usize) -> Option<&str> {
        let types = self.0.get(&(name.to_string(), arity))?;
        let first = types.iter().next()?;
        (types.len() == 1 && !CACHEABLE.contains(&first.as_str())).then_some(first.as_str())
    }
}

/// A call whose value can be the closure's result.
struct Call {
    name: String,
    arity: usize,
    pos: Position,
}

/// Finds the calls whose value a function body can return: its last statement's value and
/// every `return`, following `let` bindings that are never reassigned.
struct Results<'a> {
    lets: HashMap<&'a str, &'a Expr>,
    out: Vec<Call>,
}

impl<'a> Results<'a> {
    fn block(&mut self, stmts: &'a [Stmt], depth: usize) {
        if depth == 0 {
            return;
        }
        match stmts.last() {
            Some(Stmt::Expr(e)) => self.expr(e, depth),
            Some(Stmt::FnCall(f, pos)) if f.namespace.is_empty() => self.out.push(Call {
                name: f.name.to_string(),
                arity: f.args.len(),
                pos: *pos,
            }),
            Some(Stmt::If(fc, _)) => {
                self.block(fc.body.statements(), depth - 1);
                self.block(fc.branch.statements(), depth - 1);
            }
            Some(Stmt::Block(b)) => self.block(b.statements(), depth - 1),
            _ => {}
        }
    }

    fn expr(&mut self, e: &'a Expr, depth: usize) {
        if depth == 0 {
            return;
        }
        match e {
            Expr::FnCall(f, pos) if f.namespace.is_empty() => self.out.push(Call {
                name: f.name.to_string(),
                arity: f.args.len(),
                pos: *pos,
            }),
            Expr::MethodCall(f, pos) => self.out.push(Call {
                name: f.name.to_string(),
                arity: f.args.len() + 1,
                pos: *pos,
            }),
            Expr::Dot(b, _, _) => self.expr(&b.rhs, depth - 1),
            Expr::Variable(v, _, _) => {
                if let Some(bound) = self.lets.get(v.1.as_str()) {
                    self.expr(bound, depth - 1);
                }
            }
            Expr::Array(xs, _) => xs.iter().for_each(|x| self.expr(x, depth - 1)),
            Expr::Map(m, _) => m.0.iter().for_each(|(_, x)| self.expr(x, depth - 1)),
            Expr::Stmt(b) => self.block(b.statements(), depth - 1),
            _ => {}
        }
    }
}

/// Refuses, before it runs, a closure whose result would be a value that cannot be cached;
/// the error names the type, the call and its position.
pub fn precheck(def: &ScriptFuncDef, returns: &Returns) -> Result<(), String> {
    let body = body_statements(def);
    let stmts = body.as_slice();
    let mut lets: HashMap<&str, &Expr> = HashMap::new();
    let mut assigned: BTreeSet<String> = BTreeSet::new();
    let mut returned: Vec<&Expr> = Vec::new();
    for s in stmts {
        if let Stmt::Var(v, _, _) = s {
            lets.insert(v.0.name.as_str(), &v.1);
        }
        s.walk(&mut Vec::new(), &mut |path: &[ASTNode]| {
            if let Some(ASTNode::Stmt(Stmt::Assignment(a))) = path.last()
                && let Expr::Variable(v, _, _) = &a.1.lhs
            {
                assigned.insert(v.1.to_string());
            }
            true
        });
        collect_returns(s, &mut returned);
    }
    lets.retain(|k, _| !assigned.contains(*k));
    let mut r = Results {
        lets,
        out: Vec::new(),
    };
    r.block(stmts, 16);
    for e in returned {
        r.expr(e, 16);
    }
    for c in r.out {
        if let Some(t) = returns.uncacheable(&c.name, c.arity) {
            return Err(format!(
                "its result would be a `{t}` (the value of `{}` at {}:{}), which cannot be \
                 cached; return plain data, a Table or a path (such as its directory) instead",
                c.name,
                c.pos.line().unwrap_or(0),
                c.pos.position().unwrap_or(0)
            ));
        }
    }
    Ok(())
}

/// The top-level statements of a function's body (rhai exposes a body only through a walk
/// of an AST that holds the function).
fn body_statements(def: &ScriptFuncDef) -> Vec<Stmt> {
    let mut module = rhai::Module::new();
    module.set_script_fn(def.clone());
    let ast = rhai::AST::new_from_module(module);
    let mut out = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let [ASTNode::Stmt(s)] = path {
            out.push((*s).clone());
        }
        true
    });
    out
}

/// The expressions of every `return` inside `s` (closures are separate functions, so a
/// `return` found here belongs to this body).
fn collect_returns<'a>(s: &'a Stmt, out: &mut Vec<&'a Expr>) {
    match s {
        Stmt::Return(Some(e), _, _) => out.push(e),
        Stmt::If(fc, _) | Stmt::While(fc, _) | Stmt::Do(fc, _, _) | Stmt::TryCatch(fc, _) => {
            fc.body.iter().for_each(|x| collect_returns(x, out));
            fc.branch.iter().for_each(|x| collect_returns(x, out));
        }
        Stmt::For(x, _) => x.2.body.iter().for_each(|y| collect_returns(y, out)),
        Stmt::Block(b) => b.iter().for_each(|x| collect_returns(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut e = Engine::new();
        #[derive(Clone)]
        struct Model;
        e.register_type_with_name::<Model>("Model");
        e.register_fn("load_model", |_: &str| Model);
        e.register_fn("dir", |_: &mut Model| String::from("m"));
        e.register_fn("make_table", Table::new);
        e
    }

    fn check(src: &str) -> Result<(), String> {
        let e = engine();
        let ast = e.compile(src).unwrap();
        let returns = Returns::from_engine(&e);
        let f = ast
            .iter_fn_def()
            .find(|f| f.name.starts_with("anon$"))
            .expect("a closure");
        precheck(f, &returns)
    }

    #[test]
    fn a_closure_returning_an_uncacheable_call_is_refused_with_its_position() {
        let err = check("let f = || {\n  let x = 1;\n  load_model(\"a\")\n};").unwrap_err();
        assert!(
            err.contains("`Model`") && err.contains("`load_model` at 3:3"),
            "{err}"
        );
        let err = check("let f = || { let m = load_model(\"a\"); m };").unwrap_err();
        assert!(err.contains("`Model`"), "{err}");
        let err = check("let f = || { if true { return load_model(\"a\"); } 1 };").unwrap_err();
        assert!(err.contains("`Model`"), "{err}");
        let err = check("let f = || #{ m: load_model(\"a\") };").unwrap_err();
        assert!(err.contains("`Model`"), "{err}");
    }

    #[test]
    fn closures_returning_plain_data_tables_or_unknown_values_pass() {
        check("let f = || { let m = load_model(\"a\"); m.dir() };").unwrap();
        check("let f = || make_table();").unwrap();
        check("let f = || #{ a: 1, b: [1.5, \"x\"] };").unwrap();
        // Reassigned before it is returned: the binding is not followed.
        check("let f = || { let m = load_model(\"a\"); m = 3; m };").unwrap();
    }

    #[test]
    fn plain_data_and_tables_round_trip_exactly() {
        let mut t = Table::new();
        let row = |w: f64, n: &str| {
            json!({ "w": w, "name": n, "k": 3 })
                .as_object()
                .cloned()
                .unwrap()
        };
        t.push_row(&row(0.1 + 0.2, "a")).unwrap();
        t.push_row(&row(1.0 / 3.0, "b")).unwrap();
        let mut m = rhai::Map::new();
        m.insert("table".into(), Dynamic::from(t.clone()));
        m.insert("x".into(), Dynamic::from_float(0.1 + 0.2));
        m.insert("xs".into(), Dynamic::from_array(vec![Dynamic::from_int(7)]));
        let stored = encode(&Dynamic::from_map(m)).unwrap();
        let back = decode(stored).unwrap().cast::<rhai::Map>();
        let t2 = back["table"].clone().cast::<Table>();
        assert!(t2.df().equals_missing(t.df()));
        assert_eq!(
            back["x"].as_float().unwrap().to_bits(),
            (0.1f64 + 0.2).to_bits()
        );
        assert_eq!(back["xs"].clone().into_array().unwrap()[0].as_int(), Ok(7));
        #[derive(Clone)]
        struct Opaque;
        let err = encode(&Dynamic::from(Opaque)).unwrap_err();
        assert!(err.contains("cannot be cached"), "{err}");
    }
}
