//! [`Table`]: a polars `DataFrame` with a small row-oriented API for experiment results —
//! push rows as JSON objects, sort, filter, select, join, print, and read/write CSV or Parquet.

use super::ReportError;
use crate::{Error, Result};
use polars::prelude::*;
use std::path::Path;

/// A result table. Cheap to clone (polars columns are reference counted).
#[derive(Debug, Clone, Default)]
pub struct Table {
    df: DataFrame,
}

/// How [`Table::write_csv_as`] writes a table (Rhai's `write_csv` options).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvConfig {
    /// Write a header row.
    pub header: bool,
    /// Field separator.
    pub separator: char,
}

impl Default for CsvConfig {
    fn default() -> Self {
        Self {
            header: true,
            separator: ',',
        }
    }
}

impl crate::config::Primitive for CsvConfig {
    const NAME: &'static str = "write_csv";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[
            opt("header", "write a header row"),
            opt("separator", "field separator (one ASCII character)"),
        ]
    };
}

/// Comparison used by [`Table::filter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl std::str::FromStr for FilterOp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "==" | "=" => FilterOp::Eq,
            "!=" => FilterOp::Ne,
            "<" => FilterOp::Lt,
            "<=" => FilterOp::Le,
            ">" => FilterOp::Gt,
            ">=" => FilterOp::Ge,
            _ => {
                return Err(ReportError::Unknown {
                    what: "filter operator",
                    got: s.into(),
                    expected: "==, !=, <, <=, >, >=",
                }
                .into());
            }
        })
    }
}

/// Kind of [`Table::join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinHow {
    /// Rows whose key is in both tables.
    Inner,
    /// Every left row, right columns null where unmatched.
    Left,
    /// Every row of both tables.
    Full,
}

impl std::str::FromStr for JoinHow {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "inner" => JoinHow::Inner,
            "left" => JoinHow::Left,
            "full" | "outer" => JoinHow::Full,
            _ => {
                return Err(ReportError::Unknown {
                    what: "join kind",
                    got: s.into(),
                    expected: "inner, left, full",
                }
                .into());
            }
        })
    }
}

fn value_series(name: &str, v: &serde_json::Value) -> Result<Series> {
    use serde_json::Value as J;
    let n = PlSmallStr::from(name);
    Ok(match v {
        J::Null => Series::full_null(n, 1, &DataType::Null),
        J::Bool(b) => Series::new(n, [*b]),
        J::Number(x) if x.is_i64() => Series::new(n, [x.as_i64().unwrap_or_default()]),
        J::Number(x) => Series::new(n, [x.as_f64().unwrap_or(f64::NAN)]),
        J::String(s) => Series::new(n, [s.as_str()]),
        other => {
            return Err(ReportError::Value {
                column: name.into(),
                value: other.to_string(),
            }
            .into());
        }
    })
}

/// The common type two columns are widened to when rows of different types meet.
fn unify(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        _ if a == b => a.clone(),
        (DataType::Null, t) | (t, DataType::Null) => t.clone(),
        (x, y) if x.is_primitive_numeric() && y.is_primitive_numeric() => DataType::Float64,
        _ => DataType::String,
    }
}

impl Table {
    /// An empty table (no columns, no rows).
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps a polars `DataFrame` (how core functions return tables).
    pub fn from_df(df: DataFrame) -> Self {
        Self { df }
    }

    /// Builds a table from rows; columns appear in first-seen order.
    pub fn from_rows<'a>(
        rows: impl IntoIterator<Item = &'a serde_json::Map<String, serde_json::Value>>,
    ) -> Result<Self> {
        let mut t = Self::new();
        for r in rows {
            t.push_row(r)?;
        }
        Ok(t)
    }

    /// The underlying `DataFrame`.
    pub fn df(&self) -> &DataFrame {
        &self.df
    }

    /// Number of rows.
    pub fn height(&self) -> usize {
        self.df.height()
    }

    /// Column names in order.
    pub fn columns(&self) -> Vec<String> {
        self.df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    pub(super) fn no_column(&self, name: &str) -> Error {
        ReportError::NoColumn {
            name: name.into(),
            known: self.columns().join(", "),
        }
        .into()
    }

    /// Appends one row. New keys add columns (null in earlier rows); missing keys are null;
    /// an int column that receives a float becomes float.
    pub fn push_row(&mut self, row: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
        let mut cols: Vec<Column> = Vec::new();
        for name in self.columns() {
            let s = match row.get(&name) {
                Some(v) => value_series(&name, v)?,
                None => Series::full_null(name.as_str().into(), 1, &DataType::Null),
            };
            cols.push(s.into());
        }
        let mut new_names = Vec::new();
        for (k, v) in row {
            if self.df.column(k).is_err() {
                cols.push(value_series(k, v)?.into());
                new_names.push(k.clone());
            }
        }
        let h = self.df.height();
        for k in &new_names {
            let null = Series::full_null(k.as_str().into(), h, &DataType::Null);
            self.df.with_column(null.into())?;
        }
        let mut one = DataFrame::new(1, cols)?;
        // Align dtypes column by column, then stack.
        for name in self.columns() {
            let a = self.df.column(&name)?.dtype().clone();
            let b = one.column(&name)?.dtype().clone();
            let t = unify(&a, &b);
            if a != t {
                let c = self.df.column(&name)?.cast(&t)?;
                self.df.with_column(c)?;
            }
            if b != t {
                let c = one.column(&name)?.cast(&t)?;
                one.with_column(c)?;
            }
        }
        self.df.vstack_mut_owned(one)?;
        self.df.rechunk_mut();
        Ok(())
    }

    /// Appends every row of `other` as [`Table::push_row`] would, one row at a time: columns
    /// only `other` has are added (null above), columns it lacks are null, types unify.
    pub fn append(&mut self, other: &Table) -> Result<()> {
        if self.df.width() == 0 {
            self.df = other.df.clone();
            return Ok(());
        }
        let h = self.df.height();
        for name in other.columns() {
            if self.df.column(&name).is_err() {
                let null = Series::full_null(name.as_str().into(), h, &DataType::Null);
                self.df.with_column(null.into())?;
            }
        }
        let n = other.df.height();
        let mut cols: Vec<Column> = Vec::new();
        for name in self.columns() {
            cols.push(match other.df.column(&name) {
                Ok(c) => c.clone(),
                Err(_) => Series::full_null(name.as_str().into(), n, &DataType::Null).into(),
            });
        }
        let mut more = DataFrame::new(n, cols)?;
        for name in self.columns() {
            let a = self.df.column(&name)?.dtype().clone();
            let b = more.column(&name)?.dtype().clone();
            let t = unify(&a, &b);
            if a != t {
                let c = self.df.column(&name)?.cast(&t)?;
                self.df.with_column(c)?;
            }
            if b != t {
                let c = more.column(&name)?.cast(&t)?;
                more.with_column(c)?;
            }
        }
        self.df.vstack_mut_owned(more)?;
        self.df.rechunk_mut();
        Ok(())
    }

    /// Rows sorted by `column` (stable).
    pub fn sort(&self, column: &str, descending: bool) -> Result<Self> {
        if self.df.column(column).is_err() {
            return Err(self.no_column(column));
        }
        let opts = SortMultipleOptions::default()
            .with_order_descending(descending)
            .with_maintain_order(true);
        Ok(Self::from_df(self.df.sort([column], opts)?))
    }

    /// Rows where `column op value` holds (numbers compare numerically, strings lexically).
    pub fn filter(&self, column: &str, op: FilterOp, value: &serde_json::Value) -> Result<Self> {
        let col = self.df.column(column).map_err(|_| self.no_column(column))?;
        let rhs = value_series(column, value)?;
        let t = unify(col.dtype(), rhs.dtype());
        let lhs = col.as_materialized_series().cast(&t)?;
        let rhs = rhs.cast(&t)?;
        let mask = match op {
            FilterOp::Eq => lhs.equal(&rhs)?,
            FilterOp::Ne => lhs.not_equal(&rhs)?,
            FilterOp::Lt => lhs.lt(&rhs)?,
            FilterOp::Le => lhs.lt_eq(&rhs)?,
            FilterOp::Gt => lhs.gt(&rhs)?,
            FilterOp::Ge => lhs.gt_eq(&rhs)?,
        };
        Ok(Self::from_df(self.df.filter(&mask)?))
    }

    /// Only the named columns, in the given order.
    pub fn select(&self, columns: &[String]) -> Result<Self> {
        for c in columns {
            if self.df.column(c).is_err() {
                return Err(self.no_column(c));
            }
        }
        Ok(Self::from_df(
            self.df.select(columns.iter().map(|s| s.as_str()))?,
        ))
    }

    /// Joins on equal values of the `on` columns, present in both tables.
    pub fn join(&self, other: &Table, on: &[String], how: JoinHow) -> Result<Self> {
        for c in on {
            if other.df.column(c).is_err() {
                return Err(other.no_column(c));
            }
            if self.df.column(c).is_err() {
                return Err(self.no_column(c));
            }
        }
        let kind = match how {
            JoinHow::Inner => JoinType::Inner,
            JoinHow::Left => JoinType::Left,
            JoinHow::Full => JoinType::Full,
        };
        let args = JoinArgs::new(kind).with_coalesce(JoinCoalesce::CoalesceColumns);
        let args = JoinArgs {
            maintain_order: MaintainOrderJoin::Left,
            ..args
        };
        Ok(Self::from_df(self.df.join(&other.df, on, on, args, None)?))
    }

    /// A row as a JSON object (`None` past the end).
    pub fn row(&self, i: usize) -> Option<serde_json::Map<String, serde_json::Value>> {
        if i >= self.height() {
            return None;
        }
        let mut m = serde_json::Map::new();
        for c in self.df.columns() {
            let v = match c.get(i).ok()? {
                AnyValue::Null => serde_json::Value::Null,
                AnyValue::Boolean(b) => b.into(),
                AnyValue::String(s) => s.into(),
                AnyValue::StringOwned(s) => s.as_str().into(),
                AnyValue::Float64(x) => x.into(),
                AnyValue::Float32(x) => (x as f64).into(),
                other => match other.extract::<i64>() {
                    Some(x) => x.into(),
                    None => other.to_string().into(),
                },
            };
            m.insert(c.name().to_string(), v);
        }
        Some(m)
    }

    /// Writes CSV with a header (atomically).
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        self.write_csv_as(path, &CsvConfig::default())
    }

    /// Writes CSV as `cfg` says (atomically); a separator that is not one ASCII character is
    /// an error naming it.
    pub fn write_csv_as(&self, path: &Path, cfg: &CsvConfig) -> Result<()> {
        if !cfg.separator.is_ascii() {
            return Err(Error::invalid(format!(
                "write_csv: `separator` must be one ASCII character, got {:?}",
                cfg.separator
            )));
        }
        self.write_csv_with(path, cfg.header, cfg.separator as u8)
    }

    /// Writes CSV with or without a header and with the given separator (atomically).
    fn write_csv_with(&self, path: &Path, header: bool, separator: u8) -> Result<()> {
        let mut buf = Vec::new();
        let mut df = self.df.clone();
        CsvWriter::new(&mut buf)
            .include_header(header)
            .with_separator(separator)
            .finish(&mut df)?;
        crate::run::write_atomic(path, &buf)
    }

    /// Writes Parquet (zstd; atomically).
    pub fn write_parquet(&self, path: &Path) -> Result<()> {
        crate::run::write_atomic(path, &self.to_parquet_bytes()?)
    }

    /// The table as Parquet bytes (zstd): every column's type and every value exact, so
    /// [`Table::from_parquet_bytes`] gives back an equal table.
    pub fn to_parquet_bytes(&self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        let mut df = self.df.clone();
        ParquetWriter::new(&mut buf)
            .with_compression(ParquetCompression::Zstd(None))
            .finish(&mut df)?;
        Ok(buf)
    }

    /// A table from Parquet bytes ([`Table::to_parquet_bytes`]).
    pub fn from_parquet_bytes(bytes: &[u8]) -> Result<Self> {
        let df = ParquetReader::new(std::io::Cursor::new(bytes)).finish()?;
        Ok(Self::from_df(df))
    }

    /// Reads a CSV file with a header, inferring column types.
    pub fn read_csv(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::io("read", path, std::io::ErrorKind::NotFound.into()));
        }
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))?
            .finish()?;
        Ok(Self::from_df(df))
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.df)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: serde_json::Value) -> Table {
        let arr = v.as_array().unwrap();
        Table::from_rows(arr.iter().map(|r| r.as_object().unwrap())).unwrap()
    }

    #[test]
    fn csv_config_sets_header_and_separator_and_refuses_a_wide_separator() {
        let t = rows(json!([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]));
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.csv");
        t.write_csv(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a,b\n1,x\n2,y\n");
        let cfg = CsvConfig {
            header: false,
            separator: ';',
        };
        t.write_csv_as(&p, &cfg).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "1;x\n2;y\n");
        let wide = CsvConfig {
            separator: '·',
            ..cfg
        };
        let e = t.write_csv_as(&p, &wide).unwrap_err().to_string();
        assert!(e.contains("separator") && e.contains('·'), "{e}");
    }

    #[test]
    fn push_rows_widens_types_and_adds_columns() {
        let t = rows(json!([{"w": 1, "name": "a"}, {"w": 0.5, "extra": true}]));
        assert_eq!(t.columns(), vec!["w", "name", "extra"]);
        assert_eq!(t.height(), 2);
        assert_eq!(t.row(0).unwrap()["w"], json!(1.0));
        assert_eq!(t.row(1).unwrap()["name"], serde_json::Value::Null);
        assert_eq!(t.row(1).unwrap()["extra"], json!(true));
    }

    #[test]
    fn append_equals_pushing_the_rows_one_by_one() {
        let all = json!([
            {"m": "a", "w": 1, "s": "x"},
            {"m": "a", "w": 2},
            {"m": "b", "w": 0.5, "extra": true},
            {"m": "b", "w": 3, "s": "y"},
        ]);
        let one = rows(all.clone());
        let a = all.as_array().unwrap();
        let mut joined = Table::new();
        joined.append(&rows(json!(a[..2]))).unwrap();
        joined.append(&rows(json!(a[2..]))).unwrap();
        assert_eq!(joined.columns(), one.columns());
        assert_eq!(joined.df(), one.df());
        let d = tempfile::tempdir().unwrap();
        let (p, q) = (d.path().join("one.csv"), d.path().join("joined.csv"));
        one.write_csv(&p).unwrap();
        joined.write_csv(&q).unwrap();
        assert_eq!(std::fs::read(p).unwrap(), std::fs::read(q).unwrap());
    }

    #[test]
    fn sort_filter_select_join_and_csv_roundtrip() {
        let t = rows(json!([{"k": 1, "v": 3.0}, {"k": 2, "v": 1.0}, {"k": 3, "v": 2.0}]));
        let s = t.sort("v", false).unwrap();
        assert_eq!(s.row(0).unwrap()["k"], json!(2));
        let f = t.filter("v", FilterOp::Ge, &json!(2)).unwrap();
        assert_eq!(f.height(), 2);
        assert!(
            t.select(&["nope".into()])
                .unwrap_err()
                .to_string()
                .contains("columns: k, v")
        );
        let other = rows(json!([{"k": 3, "name": "c"}, {"k": 1, "name": "a"}]));
        let j = t.join(&other, &["k".into()], JoinHow::Inner).unwrap();
        assert_eq!(j.height(), 2);
        assert_eq!(j.row(0).unwrap()["name"], json!("a"));
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.csv");
        t.write_csv(&p).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "k,v\n1,3.0\n2,1.0\n3,2.0\n"
        );
        let back = Table::read_csv(&p).unwrap();
        assert_eq!(back.height(), 3);
        assert_eq!(back.row(2).unwrap()["v"], json!(2.0));
    }
}
