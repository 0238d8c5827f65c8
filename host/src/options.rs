//! Option maps: every primitive documents its keys and defaults; an unknown key is an error
//! that names the known ones, so a typo never silently falls back to a default.

use crate::errors::{RhaiResult, msg_err};
use rhai::{Dynamic, Map};

/// Validated options of one call.
#[derive(Debug, Clone)]
pub struct Options {
    func: &'static str,
    map: Map,
}

#[allow(dead_code)] // accessors are used as the phase modules need them
impl Options {
    /// Checks `map` against `known` keys for function `func`.
    pub fn new(func: &'static str, map: Map, known: &[&str]) -> RhaiResult<Self> {
        for k in map.keys() {
            if !known.contains(&k.as_str()) {
                let mut ks = known.to_vec();
                ks.sort();
                return Err(msg_err(format!(
                    "{func}: unknown option `{k}` (known options: {})",
                    ks.join(", ")
                )));
            }
        }
        Ok(Self { func, map })
    }

    fn wrong(&self, key: &str, want: &str, got: &Dynamic) -> rhai::EvalAltResult {
        *msg_err(format!(
            "{}: option `{key}` must be {want}, got {} ({got})",
            self.func,
            got.type_name()
        ))
    }

    /// Whether the key was given.
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// A string option.
    pub fn str(&self, key: &str, default: &str) -> RhaiResult<String> {
        match self.map.get(key) {
            None => Ok(default.to_string()),
            Some(v) if v.is_string() => Ok(v.clone().into_string().unwrap_or_default()),
            Some(v) => Err(self.wrong(key, "a string", v).into()),
        }
    }

    /// An optional string option.
    pub fn opt_str(&self, key: &str) -> RhaiResult<Option<String>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(_) => self.str(key, "").map(Some),
        }
    }

    /// An integer option.
    pub fn int(&self, key: &str, default: i64) -> RhaiResult<i64> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_int()
                .map_err(|_| self.wrong(key, "an integer", v).into()),
        }
    }

    /// A non-negative integer option.
    pub fn usize(&self, key: &str, default: usize) -> RhaiResult<usize> {
        let v = self.int(key, default as i64)?;
        usize::try_from(v).map_err(|_| {
            msg_err(format!(
                "{}: option `{key}` must be ≥ 0, got {v}",
                self.func
            ))
        })
    }

    /// A float option (integers accepted).
    pub fn float(&self, key: &str, default: f64) -> RhaiResult<f64> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_float()
                .or_else(|_| v.as_int().map(|i| i as f64))
                .map_err(|_| self.wrong(key, "a number", v).into()),
        }
    }

    /// A boolean option.
    pub fn bool(&self, key: &str, default: bool) -> RhaiResult<bool> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .map_err(|_| self.wrong(key, "true or false", v).into()),
        }
    }

    /// A list of strings.
    pub fn str_list(&self, key: &str, default: &[&str]) -> RhaiResult<Vec<String>> {
        match self.map.get(key) {
            None => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(v) if v.is_array() => v
                .clone()
                .into_array()
                .unwrap_or_default()
                .into_iter()
                .map(|x| {
                    x.into_string()
                        .map_err(|_| self.wrong(key, "an array of strings", v).into())
                })
                .collect(),
            Some(v) => Err(self.wrong(key, "an array of strings", v).into()),
        }
    }

    /// A list of numbers.
    pub fn float_list(&self, key: &str, default: &[f64]) -> RhaiResult<Vec<f64>> {
        match self.map.get(key) {
            None => Ok(default.to_vec()),
            Some(v) if v.is_array() => v
                .clone()
                .into_array()
                .unwrap_or_default()
                .into_iter()
                .map(|x| {
                    x.as_float()
                        .or_else(|_| x.as_int().map(|i| i as f64))
                        .map_err(|_| self.wrong(key, "an array of numbers", v).into())
                })
                .collect(),
            Some(v) => Err(self.wrong(key, "an array of numbers", v).into()),
        }
    }

    /// The options given, for laying over a primitive's defaults.
    pub fn into_map(self) -> Map {
        self.map
    }

    /// The options as JSON (for stage-cache keys and manifests).
    pub fn to_json(&self) -> serde_json::Value {
        rhai::serde::from_dynamic(&Dynamic::from_map(self.map.clone()))
            .unwrap_or(serde_json::Value::Null)
    }
}
