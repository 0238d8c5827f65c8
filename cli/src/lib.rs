//! Command-line front end of a primitive's configuration ([`yunmin_core::config::Primitive`]):
//! its documented options become flags (`--key-name VALUE`, help with the default from
//! `T::default()`), laid over the defaults by [`yunmin_core::config::overlay`] — the same
//! mechanism the Rhai option maps use, so the two cannot drift. Shared by the `yunmin` command
//! and the benchmarks (`yunmin-bench`), which take a phase's options as its own command does.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches, parser::ValueSource};
use serde_json::{Map, Value};
use std::marker::PhantomData;
use yunmin_core::config::{Primitive, defaults, overlay};

/// `key_name` → `key-name`.
pub fn flag(key: &str) -> String {
    key.replace('_', "-")
}

/// Which of a primitive's options a front end offers as flags.
pub trait OptionSet {
    /// The option keys, or `None` for all of them (less the primitive's `CLI_OWN`).
    const KEYS: Option<&'static [&'static str]>;

    /// Whether option `key` of `T` is offered.
    fn offers<T: Primitive>(key: &str) -> bool {
        !T::CLI_OWN.contains(&key) && Self::KEYS.is_none_or(|k| k.contains(&key))
    }
}

/// Every option of the primitive.
#[derive(Debug, Clone, Copy)]
pub struct AllOptions;

impl OptionSet for AllOptions {
    const KEYS: Option<&'static [&'static str]> = None;
}

/// A primitive's options as given on the command line (only those given), of the set `S`
/// (e.g. a command that ingests its inputs first offers only the ingest's field mapping).
#[derive(Debug, Clone)]
pub struct CliOptions<T, S = AllOptions> {
    given: Map<String, Value>,
    _t: PhantomData<(T, S)>,
}

impl<T: Primitive, S> CliOptions<T, S> {
    /// `base` with the flags given laid over it.
    pub fn config(&self, base: T) -> anyhow::Result<T> {
        Ok(overlay(&base, &self.given)?)
    }

    /// The options given, as command-line arguments that give them again (`--key-name=VALUE`,
    /// a list's elements joined by commas): for running the same command as a child process.
    pub fn to_args(&self) -> Vec<String> {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        self.given
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
                    v => text(v),
                };
                format!("--{}={v}", flag(k))
            })
            .collect()
    }

    /// The flags given on the command line (`--key-name`), in option order.
    pub fn given_flags(&self) -> Vec<String> {
        self.given
            .keys()
            .map(|k| format!("--{}", flag(k)))
            .collect()
    }
}

impl<T: Primitive, S> CliOptions<T, S> {
    /// The defaults with a `--config` JSON file's options (an object with the option keys)
    /// and then the flags given laid over them; an unknown key in the file is an error.
    pub fn with_file(&self, file: Option<&std::path::Path>) -> anyhow::Result<T> {
        let base = match file {
            None => T::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                let given: Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("{}: not a JSON object of options: {e}", p.display())
                })?;
                overlay(&T::default(), &given)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
            }
        };
        self.config(base)
    }
}

/// A flag's text as JSON of the default's kind (numbers, booleans, lists, strings).
fn parse_value(key: &str, default: &Value, raw: &[String]) -> Result<Value, clap::Error> {
    let bad = |what: &str, s: &str| {
        clap::Error::raw(
            clap::error::ErrorKind::InvalidValue,
            format!("--{}: `{s}` is not {what}\n", flag(key)),
        )
    };
    let scalar = |d: &Value, s: &str| -> Result<Value, clap::Error> {
        match d {
            Value::Bool(_) => s
                .parse::<bool>()
                .map(Value::Bool)
                .map_err(|_| bad("true or false", s)),
            Value::Number(n) if n.is_f64() => s
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| bad("a number", s)),
            Value::Number(_) => s
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| bad("an integer", s)),
            Value::String(_) => Ok(Value::String(s.to_string())),
            // No default to take the kind from (an optional value, an empty list's element):
            // a number or boolean as such, anything else as text.
            _ => Ok(serde_json::from_str::<Value>(s)
                .ok()
                .filter(|v| v.is_number() || v.is_boolean())
                .unwrap_or_else(|| Value::String(s.to_string()))),
        }
    };
    match default {
        Value::Array(a) => {
            let elem = a.first().cloned().unwrap_or(Value::Null);
            raw.iter()
                .map(|s| scalar(&elem, s))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        d => scalar(d, raw.last().map(String::as_str).unwrap_or("")),
    }
}

impl<T: Primitive, S: OptionSet> FromArgMatches for CliOptions<T, S> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let d = defaults::<T>();
        let mut given = Map::new();
        for o in T::OPTIONS.iter().filter(|o| S::offers::<T>(o.key)) {
            if m.value_source(o.key) != Some(ValueSource::CommandLine) {
                continue;
            }
            let raw: Vec<String> = m
                .get_many::<String>(o.key)
                .map(|v| v.cloned().collect())
                .unwrap_or_default();
            let dv = d.get(o.key).cloned().unwrap_or(Value::Null);
            given.insert(o.key.to_string(), parse_value(o.key, &dv, &raw)?);
        }
        Ok(Self {
            given,
            _t: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<T: Primitive, S: OptionSet> Args for CliOptions<T, S> {
    fn augment_args(cmd: Command) -> Command {
        let d = defaults::<T>();
        let flags = T::OPTIONS.iter().filter(|o| S::offers::<T>(o.key));
        flags.fold(cmd, |cmd, o| {
            let dv = d.get(o.key).cloned().unwrap_or(Value::Null);
            let shown = match &dv {
                Value::Null => "none".to_string(),
                Value::Array(a) if a.is_empty() => "none".to_string(),
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let mut arg = Arg::new(o.key)
                .long(flag(o.key))
                .help(format!("{} [default: {shown}]", o.doc))
                .action(ArgAction::Set);
            match dv {
                // `--flag` alone means true; the next flag is never taken as its value.
                Value::Bool(_) => {
                    arg = arg
                        .value_name("true|false")
                        .num_args(0..=1)
                        .require_equals(false)
                        .default_missing_value("true")
                }
                // One comma-separated value (negative numbers allowed), or the flag repeated.
                Value::Array(_) => {
                    arg = arg
                        .value_name("A,B,…")
                        .value_delimiter(',')
                        .num_args(1)
                        .allow_hyphen_values(true)
                        .action(ArgAction::Append)
                }
                _ => arg = arg.value_name("VALUE").allow_hyphen_values(true),
            }
            cmd.arg(arg)
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yunmin_core::eval::runner::EvalConfig;
    use yunmin_core::ingest::IngestConfig;

    fn parse<T: Primitive>(args: &[String]) -> CliOptions<T> {
        let cmd = CliOptions::<T>::augment_args(Command::new("t").no_binary_name(true));
        CliOptions::<T>::from_arg_matches(&cmd.try_get_matches_from(args).unwrap()).unwrap()
    }

    /// Options rendered back as arguments give the same options again.
    fn round_trip<T: Primitive>(args: &[&str]) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let first = parse::<T>(&args);
        let again = parse::<T>(&first.to_args());
        assert_eq!(first.given, again.given, "{:?}", first.to_args());
        let json =
            |o: &CliOptions<T>| serde_json::to_value(o.config(T::default()).unwrap()).unwrap();
        assert_eq!(json(&first), json(&again));
        assert_ne!(json(&first), serde_json::to_value(T::default()).unwrap());
    }

    #[test]
    fn given_options_round_trip_through_to_args() {
        round_trip::<IngestConfig>(&[
            "--text-field",
            "meta.body",
            "--batch-rows",
            "7",
            "--keep-extras",
            "false",
            "--domain-from-path",
        ]);
        round_trip::<EvalConfig>(&[
            "--domains",
            "law,news",
            "--domains",
            "wiki",
            "--offset",
            "3",
        ]);
    }
}
