//! Static checks of a script before anything runs: every function and method call resolves to
//! a registered or script-defined function with that number of arguments, every option key
//! in a map literal given to a function with known options is one of its options, and every
//! `p.key` read from the script's `params(#{…})` map is a declared parameter. All problems
//! are reported at once as `file:line:col`, with "did you mean" for near misses.

use rhai::{AST, ASTNode, Engine, Expr, Position, Stmt};
use std::collections::{BTreeSet, HashMap};

/// Functions the engine resolves itself (language keywords), with any number of arguments.
const KEYWORDS: &[&str] = &[
    "Fn",
    "call",
    "curry",
    "type_of",
    "is_shared",
    "is_def_fn",
    "is_def_var",
    "eval",
    "print",
    "debug",
    "this",
];

/// One problem found by [`check`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    fn at(pos: Position, message: String) -> Self {
        Self {
            line: pos.line().unwrap_or(0),
            col: pos.position().unwrap_or(0),
            message,
        }
    }

    /// `file:line:col: message`.
    pub fn render(&self, file: &str) -> String {
        if self.line == 0 {
            format!("{file}: {}", self.message)
        } else {
            format!("{file}:{}:{}: {}", self.line, self.col, self.message)
        }
    }
}

/// What the engine can call: function name → the argument counts it accepts.
#[derive(Debug, Default, Clone)]
pub struct Known {
    arities: HashMap<String, BTreeSet<usize>>,
    options: HashMap<String, Vec<&'static str>>,
}

impl Known {
    /// Everything registered in `engine` (standard library included) and the option keys of
    /// the host's functions that take option maps.
    pub fn from_engine(engine: &Engine, options: Vec<(&'static str, Vec<&'static str>)>) -> Self {
        let mut arities: HashMap<String, BTreeSet<usize>> = HashMap::new();
        let json = engine.gen_fn_metadata_to_json(true).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&json) {
            for f in v["functions"].as_array().into_iter().flatten() {
                if let (Some(n), Some(k)) = (f["name"].as_str(), f["numParams"].as_u64()) {
                    arities.entry(n.to_string()).or_default().insert(k as usize);
                }
            }
        }
        Self {
            arities,
            options: options
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }
}

use yunmin_core::config::distance;

/// The closest of `names` to `name`, when close enough to be a typo.
pub fn did_you_mean<'a>(name: &str, names: impl IntoIterator<Item = &'a str>) -> String {
    // An extension or truncation of a known name (`max_line` → `max_line_bytes`) counts as
    // close whatever the length difference.
    let limit = (name.chars().count() / 3).max(2);
    let best = names
        .into_iter()
        .filter(|n| !n.contains('$'))
        .filter_map(|n| {
            let d = distance(name, n);
            let extends = n.len() > 3 && name.len() > 3 && n.starts_with(name);
            (d <= limit || extends).then_some((d, n))
        })
        .min();
    match best {
        Some((_, n)) => format!(" (did you mean `{n}`?)"),
        None => String::new(),
    }
}

fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

struct Walk<'a> {
    known: &'a Known,
    script_fns: HashMap<String, BTreeSet<usize>>,
    variables: BTreeSet<String>,
    /// Map literals assigned to each variable (`let o = #{…}`), for option checks.
    map_vars: HashMap<String, Vec<BTreeSet<String>>>,
    params_var: Option<(String, BTreeSet<String>)>,
    problems: BTreeSet<Problem>,
}

/// The keys of a map literal (the optimiser may have folded a constant one into a value).
fn map_keys(e: &Expr) -> Option<BTreeSet<String>> {
    match e {
        Expr::Map(m, _) => Some(m.0.iter().map(|(id, _)| id.name.to_string()).collect()),
        Expr::DynamicConstant(d, _) if d.is_map() => Some(
            d.read_lock::<rhai::Map>()?
                .keys()
                .map(|k| k.to_string())
                .collect(),
        ),
        _ => None,
    }
}

impl Walk<'_> {
    fn call(&mut self, name: &str, args: &[Expr], method: bool, pos: Position) {
        if !is_identifier(name) || KEYWORDS.contains(&name) {
            return;
        }
        let n = args.len() + usize::from(method);
        let script = self.script_fns.get(name);
        let native = self.known.arities.get(name);
        let ok = script.is_some_and(|s| s.contains(&n)) || native.is_some_and(|s| s.contains(&n));
        if !ok {
            let what = if method { "method" } else { "function" };
            let shown = if method { n - 1 } else { n };
            let msg = match (script, native) {
                (None, None) if !method && self.variables.contains(name) => return, // f(x) on a closure variable
                (None, None) => {
                    let names = self
                        .known
                        .arities
                        .keys()
                        .chain(self.script_fns.keys())
                        .map(String::as_str);
                    format!("unknown {what} `{name}`{}", did_you_mean(name, names))
                }
                _ => {
                    let mut counts: BTreeSet<usize> = BTreeSet::new();
                    counts.extend(script.into_iter().flatten());
                    counts.extend(native.into_iter().flatten());
                    let counts: Vec<String> = counts
                        .iter()
                        .map(|k| (if method { k.saturating_sub(1) } else { *k }).to_string())
                        .collect();
                    format!(
                        "{what} `{name}` takes {} argument(s), given {shown}",
                        counts.join(" or ")
                    )
                }
            };
            self.problems.insert(Problem::at(pos, msg));
        }
        if let Some(keys) = self.known.options.get(name)
            && let Some(last) = args.last()
        {
            let keys = keys.clone();
            self.option_keys(name, &keys, last, pos);
        }
    }

    /// Checks the literal keys of an options argument (`#{…}`, `o + #{…}`, a variable bound
    /// to a map literal).
    fn option_keys(&mut self, func: &str, known: &[&str], e: &Expr, pos: Position) {
        let mut sets: Vec<(BTreeSet<String>, Position)> = Vec::new();
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Map(_, p) | Expr::DynamicConstant(_, p) => {
                    sets.extend(map_keys(e).map(|k| (k, *p)))
                }
                Expr::FnCall(f, _) if f.name == "+" => stack.extend(f.args.iter()),
                Expr::Variable(v, _, p) => {
                    for k in self.map_vars.get(v.1.as_str()).into_iter().flatten() {
                        sets.push((k.clone(), *p));
                    }
                }
                _ => {}
            }
        }
        for (keys, p) in sets {
            for k in keys {
                if !known.contains(&k.as_str()) {
                    let mut ks = known.to_vec();
                    ks.sort();
                    let p = if p.is_none() { pos } else { p };
                    self.problems.insert(Problem::at(
                        p,
                        format!(
                            "{func}: unknown option `{k}`{} (options: {})",
                            did_you_mean(&k, known.iter().copied()),
                            ks.join(", ")
                        ),
                    ));
                }
            }
        }
    }

    fn node(&mut self, node: &ASTNode) {
        match node {
            ASTNode::Stmt(Stmt::FnCall(f, pos)) | ASTNode::Expr(Expr::FnCall(f, pos))
                if f.namespace.is_empty() =>
            {
                self.call(&f.name, &f.args, false, *pos)
            }
            ASTNode::Expr(Expr::MethodCall(f, pos)) => self.call(&f.name, &f.args, true, *pos),
            ASTNode::Expr(Expr::Dot(b, _, _)) => {
                if let (Expr::Variable(v, _, _), Expr::Property(p, pos)) = (&b.lhs, &b.rhs)
                    && let Some((pv, keys)) = &self.params_var
                    && v.1.as_str() == pv
                    && !keys.contains(p.2.as_str())
                {
                    let msg = format!(
                        "`{pv}.{}`: no such parameter{} (parameters: {})",
                        p.2,
                        did_you_mean(&p.2, keys.iter().map(String::as_str)),
                        keys.iter().cloned().collect::<Vec<_>>().join(", ")
                    );
                    self.problems.insert(Problem::at(*pos, msg));
                }
            }
            _ => {}
        }
    }
}

/// The declared parameters: `let p = params(#{…})` → ("p", keys).
fn params_decl(ast: &AST) -> Option<(String, BTreeSet<String>)> {
    ast.statements().iter().find_map(|s| match s {
        Stmt::Var(v, _, _) => match &v.1 {
            Expr::FnCall(f, _) if f.name == "params" && f.args.len() == 1 => {
                map_keys(&f.args[0]).map(|k| (v.0.name.to_string(), k))
            }
            _ => None,
        },
        _ => None,
    })
}

/// Checks `ast` against what `known` can call; `overrides` are `--set` keys to check against
/// the declared parameters. Problems come sorted by position.
pub fn check(ast: &AST, known: &Known, overrides: &[String]) -> Vec<Problem> {
    let mut script_fns: HashMap<String, BTreeSet<usize>> = HashMap::new();
    for f in ast.iter_fn_def() {
        script_fns
            .entry(f.name.to_string())
            .or_default()
            .insert(f.params.len());
    }
    let mut variables = BTreeSet::new();
    let mut map_vars: HashMap<String, Vec<BTreeSet<String>>> = HashMap::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Var(v, _, _))) = path.last() {
            variables.insert(v.0.name.to_string());
            if let Some(k) = map_keys(&v.1) {
                map_vars.entry(v.0.name.to_string()).or_default().push(k);
            }
        }
        true
    });
    for f in ast.iter_fn_def() {
        variables.extend(f.params.iter().map(|p| p.to_string()));
    }
    let params_var = params_decl(ast);
    let mut w = Walk {
        known,
        script_fns,
        variables,
        map_vars,
        params_var,
        problems: BTreeSet::new(),
    };
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(n) = path.last() {
            w.node(n);
        }
        true
    });
    if !overrides.is_empty() {
        match &w.params_var {
            Some((_, keys)) => {
                for k in overrides {
                    if !keys.contains(k) {
                        w.problems.insert(Problem {
                            line: 0,
                            col: 0,
                            message: format!(
                                "--set {k}: the script has no parameter `{k}`{} (parameters: {})",
                                did_you_mean(k, keys.iter().map(String::as_str)),
                                keys.iter().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        });
                    }
                }
            }
            None => {
                w.problems.insert(Problem {
                    line: 0,
                    col: 0,
                    message: "--set was given but the script declares no `let p = params(#{…})`"
                        .into(),
                });
            }
        }
    }
    w.problems.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(src: &str) -> Vec<String> {
        let mut engine = Engine::new();
        engine.register_fn("ingest", |_: &str, _: rhai::Map| 1_i64);
        engine.register_fn("write_csv", |_: i64, _: &str| ());
        engine.register_fn("params", |m: rhai::Map| m);
        let ast = engine.compile(src).unwrap();
        let known = Known::from_engine(&engine, vec![("ingest", vec!["endpoint", "shards"])]);
        check(&ast, &known, &[])
            .into_iter()
            .map(|p| p.render("s.rhai"))
            .collect()
    }

    #[test]
    fn typos_in_functions_methods_options_and_params_are_reported_with_positions() {
        let src = r#"let p = params(#{ input: "x", steps: 3 });
fn helper(a) { a + 1 }
let t = ingest(p.input, #{ endpoint: "e", shard: 2 });
t.write_cvs("a.csv");
let m = lod_model("x");
helper(1, 2);
print(p.step);
let o = #{ shrads: 1 };
ingest("y", o + #{ endpoint: "" });
t.write_csv("ok.csv");
"#;
        let got = problems(src);
        let want = [
            "s.rhai:3:25: ingest: unknown option `shard` (did you mean `shards`?) (options: endpoint, shards)",
            "s.rhai:4:3: unknown method `write_cvs` (did you mean `write_csv`?)",
            "s.rhai:5:9: unknown function `lod_model`",
            "s.rhai:6:1: function `helper` takes 1 argument(s), given 2",
            "s.rhai:7:9: `p.step`: no such parameter (did you mean `steps`?) (parameters: input, steps)",
            "s.rhai:9:13: ingest: unknown option `shrads` (did you mean `shards`?) (options: endpoint, shards)",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(&w[..w.find(": ").unwrap()]), "{g} vs {w}");
            assert!(
                g.contains(&w[w.find(": ").unwrap() + 2..w.find('(').unwrap_or(w.len())]),
                "{g} vs {w}"
            );
        }
    }

    #[test]
    fn a_correct_script_has_no_problems() {
        let src = r#"let p = params(#{ input: "x" });
let f = |x| x * 2;
let xs = [1, 2].map(|v| f.call(v));
let t = ingest(p.input, #{ shards: 2 });
t.write_csv(`${p.input}.csv`);
print(xs.len());
"#;
        assert_eq!(problems(src), Vec::<String>::new());
    }
}
