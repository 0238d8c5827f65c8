//! Column summaries and reshaping for result tables: mean, geometric mean, the row with the
//! smallest or largest value, and a long → wide pivot. Nulls are skipped; anything that would
//! make the number meaningless (a text column, no values, a non-positive value in a geometric
//! mean, two values for one pivot cell) is an error naming the column and the row.

use super::error::ReportError;
use super::table::Table;
use crate::Result;
use serde_json::{Map, Value};

fn problem(column: &str, problem: impl Into<String>) -> crate::Error {
    ReportError::Column {
        column: column.into(),
        problem: problem.into(),
    }
    .into()
}

impl Table {
    /// The non-null values of a numeric column, with their row numbers.
    fn numbers(&self, column: &str) -> Result<Vec<(usize, f64)>> {
        if !self.columns().iter().any(|c| c == column) {
            return Err(self.no_column(column));
        }
        let mut out = Vec::new();
        for i in 0..self.height() {
            match self.row(i).and_then(|mut r| r.remove(column)) {
                Some(Value::Null) | None => {}
                Some(Value::Number(n)) => out.push((i, n.as_f64().unwrap_or(f64::NAN))),
                Some(other) => {
                    return Err(problem(
                        column,
                        format!("row {i} holds {other}, not a number"),
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err(problem(column, "no numeric values"));
        }
        Ok(out)
    }

    /// Arithmetic mean of a numeric column (nulls skipped).
    pub fn mean(&self, column: &str) -> Result<f64> {
        let xs = self.numbers(column)?;
        Ok(xs.iter().map(|(_, x)| x).sum::<f64>() / xs.len() as f64)
    }

    /// Geometric mean of a numeric column (nulls skipped): `exp(mean(ln x))`, the average that
    /// suits ratios such as perplexities. Every value must be positive.
    pub fn geomean(&self, column: &str) -> Result<f64> {
        let xs = self.numbers(column)?;
        if let Some((i, x)) = xs.iter().find(|(_, x)| x.is_nan() || *x <= 0.0) {
            return Err(problem(
                column,
                format!("row {i} holds {x}; a geometric mean needs positive values"),
            ));
        }
        Ok((xs.iter().map(|(_, x)| x.ln()).sum::<f64>() / xs.len() as f64).exp())
    }

    /// The row with the smallest (`largest == false`) or largest value of a numeric column;
    /// the first such row on ties, nulls skipped.
    pub fn best_row(&self, column: &str, largest: bool) -> Result<Map<String, Value>> {
        let xs = self.numbers(column)?;
        if let Some((i, _)) = xs.iter().find(|(_, x)| x.is_nan()) {
            return Err(problem(column, format!("row {i} holds NaN")));
        }
        let mut best = xs[0];
        for &(i, x) in &xs[1..] {
            if (largest && x > best.1) || (!largest && x < best.1) {
                best = (i, x);
            }
        }
        Ok(self.row(best.0).unwrap_or_default())
    }

    /// Long → wide: one row per distinct `index` value (in first-seen order), one column per
    /// distinct `columns` value (in first-seen order) holding `values`. A missing cell is null;
    /// two rows for the same cell are an error (nothing is aggregated silently).
    pub fn pivot(&self, index: &str, columns: &str, values: &str) -> Result<Table> {
        for c in [index, columns, values] {
            if !self.columns().iter().any(|x| x == c) {
                return Err(self.no_column(c));
            }
        }
        let key = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut names: Vec<String> = Vec::new();
        let mut rows: Vec<(Value, Map<String, Value>)> = Vec::new();
        for i in 0..self.height() {
            let r = self.row(i).unwrap_or_default();
            let name = key(&r[columns]);
            if name == index {
                return Err(problem(
                    columns,
                    format!("value `{name}` (row {i}) is also the index column's name"),
                ));
            }
            if !names.contains(&name) {
                names.push(name.clone());
            }
            let pos = match rows.iter().position(|(k, _)| *k == r[index]) {
                Some(p) => p,
                None => {
                    let mut m = Map::new();
                    m.insert(index.to_string(), r[index].clone());
                    rows.push((r[index].clone(), m));
                    rows.len() - 1
                }
            };
            let cells = &mut rows[pos].1;
            if cells.contains_key(&name) {
                return Err(problem(
                    values,
                    format!(
                        "two rows for {index} = {} and {columns} = {name} (row {i}); \
                         filter or aggregate first",
                        r[index]
                    ),
                ));
            }
            cells.insert(name, r[values].clone());
        }
        // Every row carries every column, in first-seen order, so the wide table's columns
        // come out in that order.
        let mut out = Table::new();
        for (_, mut cells) in rows {
            let mut m = Map::new();
            m.insert(
                index.to_string(),
                cells.remove(index).unwrap_or(Value::Null),
            );
            for n in &names {
                m.insert(n.clone(), cells.remove(n).unwrap_or(Value::Null));
            }
            out.push_row(&m)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: Value) -> Table {
        let arr = v.as_array().unwrap();
        Table::from_rows(arr.iter().map(|r| r.as_object().unwrap())).unwrap()
    }

    #[test]
    fn means_skip_nulls_and_refuse_what_has_no_meaning() {
        let t = rows(json!([
            {"d": "a", "ppl": 10.0}, {"d": "b", "ppl": 1000.0}, {"d": "c", "ppl": null}
        ]));
        assert_eq!(t.mean("ppl").unwrap(), 505.0);
        assert!((t.geomean("ppl").unwrap() - 100.0).abs() < 1e-9);
        let e = t.mean("d").unwrap_err().to_string();
        assert!(
            e.contains("column `d`") && e.contains("not a number"),
            "{e}"
        );
        assert!(
            t.mean("nope")
                .unwrap_err()
                .to_string()
                .contains("no column `nope`")
        );
        let z = rows(json!([{"x": 2.0}, {"x": 0.0}]));
        let e = z.geomean("x").unwrap_err().to_string();
        assert!(e.contains("row 1") && e.contains("positive"), "{e}");
    }

    #[test]
    fn best_row_is_the_first_minimum_or_maximum() {
        let t = rows(json!([
            {"w": 0.0, "ppl": 12.0}, {"w": 0.5, "ppl": 9.0}, {"w": 1.0, "ppl": 9.0}, {"w": 2.0, "ppl": 30.0}
        ]));
        assert_eq!(t.best_row("ppl", false).unwrap()["w"], json!(0.5));
        assert_eq!(t.best_row("ppl", true).unwrap()["w"], json!(2.0));
    }

    #[test]
    fn pivot_makes_a_wide_table_and_refuses_duplicate_cells() {
        let t = rows(json!([
            {"model": "base", "domain": "law", "ppl": 20.0},
            {"model": "base", "domain": "news", "ppl": 30.0},
            {"model": "merged", "domain": "news", "ppl": 25.0},
            {"model": "merged", "domain": "law", "ppl": 15.0},
            {"model": "mixed", "domain": "law", "ppl": 17.0},
        ]));
        let w = t.pivot("model", "domain", "ppl").unwrap();
        assert_eq!(w.columns(), ["model", "law", "news"]);
        assert_eq!(w.height(), 3);
        assert_eq!(w.row(1).unwrap()["law"], json!(15.0));
        assert_eq!(w.row(1).unwrap()["news"], json!(25.0));
        assert_eq!(w.row(2).unwrap()["news"], Value::Null);
        let dup = rows(json!([
            {"model": "base", "domain": "law", "ppl": 20.0},
            {"model": "base", "domain": "law", "ppl": 21.0},
        ]));
        let e = dup.pivot("model", "domain", "ppl").unwrap_err().to_string();
        assert!(e.contains("two rows") && e.contains("row 1"), "{e}");
    }
}
