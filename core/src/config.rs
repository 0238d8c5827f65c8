//! One definition per primitive. A primitive's configuration is one struct (serde, defaults in
//! `Default`, unknown fields denied) that lists its documented options; the command-line flags,
//! the Rhai option map, `--help` and the API docs are all built from that list and from
//! `T::default()`, and every front end lays what it was given over the defaults with
//! [`overlay`], so they cannot drift apart.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// One documented option: a top-level field of the config struct.
#[derive(Debug, Clone, Copy)]
pub struct OptionDoc {
    /// Field name: the Rhai option key; the flag is `--` + the key with `-` for `_`.
    pub key: &'static str,
    /// One line for `--help` and the docs (the default is added from `T::default()`).
    pub doc: &'static str,
}

/// An option entry: `opt("threshold", "similarity at or above which …")`.
pub const fn opt(key: &'static str, doc: &'static str) -> OptionDoc {
    OptionDoc { key, doc }
}

/// A primitive's configuration.
pub trait Primitive: Serialize + DeserializeOwned + Default {
    /// The function (and subcommand) it configures, for messages.
    const NAME: &'static str;
    /// Every option, in documentation order.
    const OPTIONS: &'static [OptionDoc];
    /// Fields a front end sets itself (a worker's phase and shard), not options.
    const FRONT_END_FIELDS: &'static [&'static str] = &[];
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

/// The options' default values (`T::default()` as JSON, by key).
pub fn defaults<T: Primitive>() -> Map<String, Value> {
    match serde_json::to_value(T::default()) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
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
    let base_json = match serde_json::to_value(base) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let keys: Vec<&str> = T::OPTIONS.iter().map(|o| o.key).collect();
    let mut merged = base_json.clone();
    for (k, v) in given {
        if !keys.contains(&k.as_str()) {
            let best = keys
                .iter()
                .map(|o| (distance(k, o), *o))
                .min()
                .filter(|(d, _)| *d <= (k.chars().count() / 3).max(2));
            return Err(ConfigError::Unknown {
                func,
                key: k.clone(),
                hint: best
                    .map(|(_, o)| format!(" (did you mean `{o}`?)"))
                    .unwrap_or_default(),
                known: keys.join(", "),
            });
        }
        // Each value on its own first, so a type error names its option.
        let mut one = base_json.clone();
        one.insert(k.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<T>(Value::Object(one)) {
            return Err(ConfigError::Value {
                func,
                key: k.clone(),
                value: v.to_string(),
                problem: e.to_string(),
                default: base_json.get(k).map(Value::to_string).unwrap_or_default(),
            });
        }
        merged.insert(k.clone(), v.clone());
    }
    serde_json::from_value(Value::Object(merged)).map_err(|e| ConfigError::Value {
        func,
        key: "(together)".into(),
        value: Value::Object(given.clone()).to_string(),
        problem: e.to_string(),
        default: String::new(),
    })
}

/// `key (default) — doc` per option, for generated docs.
pub fn describe<T: Primitive>() -> String {
    let d = defaults::<T>();
    T::OPTIONS
        .iter()
        .map(|o| {
            let v = d.get(o.key).map(Value::to_string).unwrap_or_default();
            format!("`{}` ({v}): {}", o.key, o.doc)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks that `T::OPTIONS` lists exactly the fields of `T::default()` (for tests: an option
/// without a field, or a field without documentation, is a mistake).
pub fn options_match_fields<T: Primitive>() -> Result<(), String> {
    let d = defaults::<T>();
    let keys: Vec<&str> = T::OPTIONS.iter().map(|o| o.key).collect();
    let missing: Vec<&String> = d
        .keys()
        .filter(|k| !keys.contains(&k.as_str()) && !T::FRONT_END_FIELDS.contains(&k.as_str()))
        .collect();
    let extra: Vec<&&str> = keys.iter().filter(|k| !d.contains_key(**k)).collect();
    if missing.is_empty() && extra.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: fields without an option {missing:?}, options without a field {extra:?}",
            T::NAME
        ))
    }
}
