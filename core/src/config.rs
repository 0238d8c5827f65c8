//! One definition per primitive. A primitive's configuration is one struct (serde, defaults in
//! `Default`, unknown fields denied) that lists its documented options; the command-line flags,
//! the Rhai option map, `--help` and the API docs are all built from that list and from
//! `T::default()`, and every front end lays what it was given over the defaults with
//! [`overlay`], so they cannot drift apart.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// One documented option: a field of the config struct.
#[derive(Debug, Clone, Copy)]
pub struct OptionDoc {
    /// The Rhai option key; the flag is `--` + the key with `-` for `_`.
    pub key: &'static str,
    /// The field it sets, as a dotted path into nested structs (`source.endpoint_url`); empty
    /// for the top-level field named like the key.
    pub path: &'static str,
    /// One line for `--help` and the docs (the default is added from `T::default()`).
    pub doc: &'static str,
}

impl OptionDoc {
    /// The dotted path of the field the option sets.
    pub fn field(&self) -> &'static str {
        if self.path.is_empty() {
            self.key
        } else {
            self.path
        }
    }
}

/// An option entry: `opt("threshold", "similarity at or above which …")`.
pub const fn opt(key: &'static str, doc: &'static str) -> OptionDoc {
    OptionDoc { key, path: "", doc }
}

/// An option that sets a nested field: `opt_at("endpoint", "source.endpoint_url", "…")`.
pub const fn opt_at(key: &'static str, path: &'static str, doc: &'static str) -> OptionDoc {
    OptionDoc { key, path, doc }
}

/// `a` followed by `b`, for options shared by several primitives (the optimiser's options of
/// `pretrain` and `lora`): `const OPTIONS: [OptionDoc; A.len() + B.len()] = joined(&A, &B)`.
pub const fn joined<const N: usize>(a: &[OptionDoc], b: &[OptionDoc]) -> [OptionDoc; N] {
    assert!(
        a.len() + b.len() == N,
        "joined: N must be the sum of the lengths"
    );
    let mut out = [opt("", ""); N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - a.len()];
        i += 1;
    }
    out
}

/// The value at a dotted path.
fn get_path<'a>(m: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = m.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// Sets the value at a dotted path, creating objects on the way.
fn set_path(m: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            m.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let e = m
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !e.is_object() {
                *e = Value::Object(Map::new());
            }
            if let Value::Object(inner) = e {
                set_path(inner, rest, value);
            }
        }
    }
}

fn to_map<T: Serialize>(t: &T) -> Map<String, Value> {
    match serde_json::to_value(t) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// A primitive's configuration.
pub trait Primitive: Serialize + DeserializeOwned + Default {
    /// The function (and subcommand) it configures, for messages.
    const NAME: &'static str;
    /// Every option, in documentation order.
    const OPTIONS: &'static [OptionDoc];
    /// Fields a front end sets itself (a worker's phase and shard), not options.
    const FRONT_END_FIELDS: &'static [&'static str] = &[];
    /// Options the command line gives its own way instead of as a flag (ingest's `out` and
    /// `upload`: the command's run root `--out` decides them).
    const CLI_OWN: &'static [&'static str] = &[];
}

/// What is wrong with a given option.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key that is not one of the primitive's options.
    #[error("{func}: unknown option `{key}`{hint} (known options: {known})")]
    Unknown {
        /// The primitive.
        func: &'static str,
        /// The key given.
        key: String,
        /// " (did you mean …?)" or empty.
        hint: String,
        /// The option keys, comma-separated.
        known: String,
    },
    /// A value the option's field cannot hold.
    #[error("{func}: option `{key}` = {value}: {problem} (default: {default})")]
    Value {
        /// The primitive.
        func: &'static str,
        /// The option.
        key: String,
        /// The value given, as JSON.
        value: String,
        /// Why it does not fit.
        problem: String,
        /// The default, as JSON.
        default: String,
    },
}

/// The options' default values (from `T::default()`, as JSON), by option key.
pub fn defaults<T: Primitive>() -> Map<String, Value> {
    options_of(&T::default())
}

/// Levenshtein distance, for "did you mean" wherever a name is not found.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `base` with the `given` options laid over it. A key that is not an option, or a value its
/// field cannot hold, is an error naming the option (never a default quietly used instead).
pub fn overlay<T: Primitive>(base: &T, given: &Map<String, Value>) -> Result<T, ConfigError> {
    overlay_as(T::NAME, base, given)
}

/// [`overlay`] for a function other than the primitive's own (`minhash` takes `dedup`'s
/// options), named in its errors.
pub fn overlay_as<T: Primitive>(
    func: &'static str,
    base: &T,
    given: &Map<String, Value>,
) -> Result<T, ConfigError> {
    let base_json = to_map(base);
    let keys: Vec<&str> = T::OPTIONS.iter().map(|o| o.key).collect();
    let mut merged = base_json.clone();
    for (k, v) in given {
        let Some(o) = T::OPTIONS.iter().find(|o| o.key == k) else {
            // A near spelling, or a key that is part of an option's name (`endpoint`).
            let best = keys
                .iter()
                .map(|o| (distance(k, o), *o))
                .filter(|(d, o)| {
                    *d <= (k.chars().count() / 3).max(2) || (k.len() >= 4 && o.contains(k.as_str()))
                })
                .min();
            return Err(ConfigError::Unknown {
                func,
                key: k.clone(),
                hint: best
                    .map(|(_, o)| format!(" (did you mean `{o}`?)"))
                    .unwrap_or_default(),
                known: keys.join(", "),
            });
        };
        // Each value on its own first, so a type error names its option.
        let mut one = base_json.clone();
        set_path(&mut one, o.field(), v.clone());
        if let Err(e) = serde_json::from_value::<T>(Value::Object(one)) {
            return Err(ConfigError::Value {
                func,
                key: k.clone(),
                value: v.to_string(),
                problem: e.to_string(),
                default: get_path(&base_json, o.field())
                    .map(Value::to_string)
                    .unwrap_or_default(),
            });
        }
        set_path(&mut merged, o.field(), v.clone());
    }
    serde_json::from_value(Value::Object(merged)).map_err(|e| ConfigError::Value {
        func,
        key: "(together)".into(),
        value: Value::Object(given.clone()).to_string(),
        problem: e.to_string(),
        default: String::new(),
    })
}

/// The dotted paths of `m`'s fields, descending into a nested object when some option sets a
/// field inside it.
fn leaf_paths(m: &Map<String, Value>, prefix: &str, fields: &[&str], out: &mut Vec<String>) {
    for (k, v) in m {
        let p = format!("{prefix}{k}");
        let nested = fields.iter().any(|f| f.starts_with(&format!("{p}.")));
        match v {
            Value::Object(inner) if nested => leaf_paths(inner, &format!("{p}."), fields, out),
            _ => out.push(p),
        }
    }
}

/// `cfg` as an option map (option key → the value of its field): what [`overlay`] takes to
/// give `cfg` back, e.g. a configuration handed to a worker process as a `--config` file.
pub fn options_of<T: Primitive>(cfg: &T) -> Map<String, Value> {
    let m = to_map(cfg);
    T::OPTIONS
        .iter()
        .map(|o| {
            let v = get_path(&m, o.field()).cloned().unwrap_or(Value::Null);
            (o.key.to_string(), v)
        })
        .collect()
}

/// `cfg` as command-line flags of its options (`--key-name=value`, lists as one
/// comma-separated value, unset optional values left out), for running a primitive as its own
/// process with exactly this configuration.
pub fn cli_args<T: Primitive>(cfg: &T) -> Vec<String> {
    let m = to_map(cfg);
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    T::OPTIONS
        .iter()
        .filter(|o| !T::CLI_OWN.contains(&o.key))
        .filter_map(|o| {
            let flag = o.key.replace('_', "-");
            match get_path(&m, o.field())? {
                Value::Null => None,
                Value::Array(a) if a.is_empty() => None,
                Value::Array(a) => Some(format!(
                    "--{flag}={}",
                    a.iter().map(text).collect::<Vec<_>>().join(",")
                )),
                v => Some(format!("--{flag}={}", text(v))),
            }
        })
        .collect()
}

/// A markdown list, `- \`key\` (default): doc` per option, for generated docs.
pub fn describe<T: Primitive>() -> String {
    let d = defaults::<T>();
    T::OPTIONS
        .iter()
        .map(|o| {
            let v = match d.get(o.key) {
                None | Some(Value::Null) => "none".to_string(),
                Some(v) => v.to_string(),
            };
            format!("- `{}` ({v}): {}", o.key, o.doc)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks that `T::OPTIONS` lists exactly the fields of `T::default()`, nested structs field by
/// field (for tests: an option without a field, or a field without documentation, is a
/// mistake).
pub fn options_match_fields<T: Primitive>() -> Result<(), String> {
    let d = to_map(&T::default());
    let fields: Vec<&str> = T::OPTIONS.iter().map(|o| o.field()).collect();
    let mut leaves = Vec::new();
    leaf_paths(&d, "", &fields, &mut leaves);
    let missing: Vec<&String> = leaves
        .iter()
        .filter(|k| !fields.contains(&k.as_str()) && !T::FRONT_END_FIELDS.contains(&k.as_str()))
        .collect();
    let extra: Vec<&&str> = fields
        .iter()
        .filter(|f| get_path(&d, f).is_none())
        .collect();
    if missing.is_empty() && extra.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: fields without an option {missing:?}, options without a field {extra:?}",
            T::NAME
        ))
    }
}
