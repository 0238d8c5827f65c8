//! Rhai module `table`: the `Table` type over polars (`yunmin_core::report::Table`).

use crate::api::Api;
use crate::errors::{IntoRhai, RhaiResult, msg_err};
use crate::state::Host;
use rhai::{Array, Dynamic, Map};
use std::sync::Arc;
use yunmin_core::report::{CsvConfig, Table};

fn to_json_row(row: &Map) -> RhaiResult<serde_json::Map<String, serde_json::Value>> {
    match rhai::serde::from_dynamic::<serde_json::Value>(&Dynamic::from_map(row.clone()))? {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(msg_err("table rows must be object maps")),
    }
}

fn strings(a: Array, what: &str) -> RhaiResult<Vec<String>> {
    a.into_iter()
        .map(|x| {
            x.into_string()
                .map_err(|t| msg_err(format!("{what}: expected strings, got {t}")))
        })
        .collect()
}

/// Registers the `table` module.
pub fn register(api: &mut Api, host: &Arc<Host>) {
    api.engine().register_type_with_name::<Table>("Table");
    api.engine()
        .register_fn("to_string", |t: &mut Table| t.to_string());
    api.engine()
        .register_fn("to_debug", |t: &mut Table| t.to_string());
    api.func("table", &[], "A new empty table.", Table::new);
    api.func(
        "table",
        &["rows"],
        "A table from an array of object maps (one per row).",
        |rows: Array| {
            let mut t = Table::new();
            for r in rows {
                let m = r
                    .try_cast::<Map>()
                    .ok_or_else(|| msg_err("table(rows): every row must be a map"))?;
                t.push_row(&to_json_row(&m)?).rhai()?;
            }
            Ok::<_, crate::errors::RhaiError>(t)
        },
    );
    api.func(
        "push",
        &["table", "row"],
        "Appends a row (an object map). New keys add columns, in key order (Rhai maps are sorted;\n         use `select` to reorder); ints widen to floats when mixed.",
        |t: &mut Table, row: Map| t.push_row(&to_json_row(&row)?).rhai(),
    );
    api.func("rows", &["table"], "Number of rows.", |t: &mut Table| {
        t.height() as i64
    });
    api.func("columns", &["table"], "Column names.", |t: &mut Table| {
        t.columns()
            .into_iter()
            .map(Dynamic::from)
            .collect::<Array>()
    });
    api.func(
        "row",
        &["table", "i"],
        "Row `i` as an object map.",
        |t: &mut Table, i: i64| {
            let row = t
                .row(i.max(0) as usize)
                .ok_or_else(|| msg_err(format!("row {i}: table has {} rows", t.height())))?;
            rhai::serde::to_dynamic(serde_json::Value::Object(row))
        },
    );
    api.func(
        "column",
        &["table", "name"],
        "A column's values as an array.",
        |t: &mut Table, name: &str| {
            let mut out = Array::new();
            for i in 0..t.height() {
                let row = t.row(i).unwrap_or_default();
                let v = row.get(name).ok_or_else(|| {
                    msg_err(format!(
                        "no column `{name}` (columns: {})",
                        t.columns().join(", ")
                    ))
                })?;
                out.push(rhai::serde::to_dynamic(v)?);
            }
            Ok::<_, crate::errors::RhaiError>(out)
        },
    );
    api.func(
        "sort",
        &["table", "column"],
        "Rows sorted ascending by `column` (stable).",
        |t: &mut Table, c: &str| t.sort(c, false).rhai(),
    );
    api.func(
        "sort",
        &["table", "column", "descending"],
        "Rows sorted by `column`, descending when `descending` is true.",
        |t: &mut Table, c: &str, d: bool| t.sort(c, d).rhai(),
    );
    api.func(
        "filter",
        &["table", "column", "op", "value"],
        "Rows where `column op value` holds; `op` is one of ==, !=, <, <=, >, >=.",
        |t: &mut Table, c: &str, op: &str, v: Dynamic| {
            let op = op.parse().rhai()?;
            let v: serde_json::Value = rhai::serde::from_dynamic(&v)?;
            t.filter(c, op, &v).rhai()
        },
    );
    api.func(
        "select",
        &["table", "columns"],
        "Only the named columns, in that order.",
        |t: &mut Table, cols: Array| t.select(&strings(cols, "select")?).rhai(),
    );
    api.func(
        "join",
        &["table", "other", "on", "how"],
        "Joins with `other` on the `on` columns; `how` is inner, left or full.",
        |t: &mut Table, other: Table, on: Array, how: &str| {
            t.join(&other, &strings(on, "join")?, how.parse().rhai()?)
                .rhai()
        },
    );
    api.func(
        "mean",
        &["table", "column"],
        "Arithmetic mean of a numeric column (nulls skipped; a text or empty column is an error).",
        |t: &mut Table, c: &str| t.mean(c).rhai(),
    );
    api.func(
        "geomean",
        &["table", "column"],
        "Geometric mean `exp(mean(ln x))` of a numeric column (nulls skipped; every value must be\n\
         positive): the macro average that suits perplexities.",
        |t: &mut Table, c: &str| t.geomean(c).rhai(),
    );
    api.func(
        "argmin",
        &["table", "column"],
        "The row (an object map) with the smallest value of a numeric column; the first on ties.",
        |t: &mut Table, c: &str| {
            rhai::serde::to_dynamic(serde_json::Value::Object(t.best_row(c, false).rhai()?))
        },
    );
    api.func(
        "argmax",
        &["table", "column"],
        "The row (an object map) with the largest value of a numeric column; the first on ties.",
        |t: &mut Table, c: &str| {
            rhai::serde::to_dynamic(serde_json::Value::Object(t.best_row(c, true).rhai()?))
        },
    );
    api.func(
        "pivot",
        &["table", "index", "columns", "values"],
        "Long → wide: one row per `index` value, one column per `columns` value holding `values`\n\
         (both in first-seen order); a missing cell is null, two rows for one cell are an error.",
        |t: &mut Table, index: &str, columns: &str, values: &str| {
            t.pivot(index, columns, values).rhai()
        },
    );
    api.func(
        "to_markdown",
        &["table", "decimals"],
        "The table as a Markdown pipe table (numbers right-aligned, floats with `decimals` digits,\n\
         nulls as `–`), for generated reports.",
        |t: &mut Table, decimals: i64| t.to_markdown(decimals.clamp(0, 12) as usize),
    );
    let h = host.clone();
    api.func(
        "write_csv",
        &["table", "path"],
        "Writes CSV with a header (relative paths are inside the run root); returns the path.",
        move |t: &mut Table, path: &str| {
            let p = h.ctx.write_path(path).rhai()?;
            t.write_csv(&p).rhai()?;
            Ok::<_, crate::errors::RhaiError>(p.to_string_lossy().to_string())
        },
    );
    let h = host.clone();
    api.func(
        "write_csv",
        &["table", "path", "opts"],
        &format!(
            "Writes CSV with options; returns the path. Options (defaults):\n{}",
            yunmin_core::config::describe::<CsvConfig>()
        ),
        move |t: &mut Table, path: &str, opts: rhai::Map| {
            let cfg: CsvConfig = crate::primitive::from_rhai(CsvConfig::default(), opts)?;
            let p = h.ctx.write_path(path).rhai()?;
            t.write_csv_as(&p, &cfg).rhai()?;
            Ok::<_, crate::errors::RhaiError>(p.to_string_lossy().to_string())
        },
    );
    let h = host.clone();
    api.func(
        "write_parquet",
        &["table", "path"],
        "Writes Parquet (zstd) inside the run root; returns the path.",
        move |t: &mut Table, path: &str| {
            let p = h.ctx.write_path(path).rhai()?;
            t.write_parquet(&p).rhai()?;
            Ok::<_, crate::errors::RhaiError>(p.to_string_lossy().to_string())
        },
    );
    let h = host.clone();
    api.func(
        "read_csv",
        &["path"],
        "Reads a CSV with a header: a path in the run root if it exists there, else as given.",
        move |path: &str| {
            let p = h.ctx.input_path(path).rhai()?;
            Table::read_csv(&p).rhai()
        },
    );
}
