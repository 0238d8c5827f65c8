//! Jupyter notebooks (nbformat 4.5) written with their outputs: tables as text and HTML (every
//! row, the same cell strings in both, independent of polars' display settings) and plots as
//! embedded PNG, so a committed notebook shows results without being executed. The code cells
//! hold the Python that reproduces each output from the files beside the notebook: run by a
//! kernel, a table cell shows the same table (HTML floats have 4 decimals, pandas'
//! `display.precision` 4) and an image cell draws a chart; `scripts/interop/run_notebook.py`
//! checks both. The same cells give the same bytes: cell ids and execution counts come from
//! positions, and nothing records a time or a random id.

use super::Table;
use crate::{Error, Result};
use base64::Engine as _;
use serde_json::{Value, json};
use std::path::Path;

/// What a code cell shows.
#[derive(Debug, Clone)]
pub enum CellOutput {
    /// Plain text (a printed value).
    Text(String),
    /// A table, rendered as text and as an HTML table.
    Table(Table),
    /// A PNG image (file bytes).
    Png(Vec<u8>),
}

#[derive(Debug, Clone)]
enum Cell {
    Markdown(String),
    Code {
        source: String,
        outputs: Vec<CellOutput>,
    },
}

/// A notebook under construction.
#[derive(Debug, Clone, Default)]
pub struct Notebook {
    cells: Vec<Cell>,
}

fn lines(s: &str) -> Value {
    let parts: Vec<&str> = s.split_inclusive('\n').collect();
    json!(parts)
}

/// One cell as shown: floats with 4 decimals, null empty, strings as they are.
fn cell_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Header and rows of a table as shown (the same strings in text and HTML).
fn shown(t: &Table) -> (Vec<String>, Vec<Vec<(String, bool)>>) {
    let rows = (0..t.height())
        .map(|i| {
            t.row(i)
                .unwrap_or_default()
                .into_iter()
                .map(|(_, v)| {
                    let numeric = v.is_number();
                    (cell_text(v), numeric)
                })
                .collect()
        })
        .collect();
    (t.columns(), rows)
}

fn html_table(t: &Table) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let (cols, rows) = shown(t);
    let mut h = String::from("<table>\n<thead><tr>");
    for c in &cols {
        h.push_str(&format!("<th>{}</th>", esc(c)));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for r in &rows {
        h.push_str("<tr>");
        for (s, _) in r {
            h.push_str(&format!("<td>{}</td>", esc(s)));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>");
    h
}

/// Every row of the table as aligned plain text (numbers right-aligned, newlines and tabs
/// escaped), independent of polars' display settings.
fn text_table(t: &Table) -> String {
    let (cols, rows) = shown(t);
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t")
    };
    let cols: Vec<String> = cols.iter().map(|c| esc(c)).collect();
    let rows: Vec<Vec<(String, bool)>> = rows
        .into_iter()
        .map(|r| r.into_iter().map(|(s, n)| (esc(&s), n)).collect())
        .collect();
    let width = |i: usize| {
        rows.iter()
            .filter_map(|r| r.get(i))
            .map(|(s, _)| s.chars().count())
            .chain([cols[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..cols.len()).map(width).collect();
    let right: Vec<bool> = (0..cols.len())
        .map(|i| !rows.is_empty() && rows.iter().all(|r| r.get(i).is_some_and(|c| c.1)))
        .collect();
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .zip(&right)
            .map(|((s, &w), &r)| {
                let pad = " ".repeat(w.saturating_sub(s.chars().count()));
                if r {
                    format!("{pad}{s}")
                } else {
                    format!("{s}{pad}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(cols.iter().map(String::as_str).collect())];
    for r in &rows {
        out.push(line(r.iter().map(|(s, _)| s.as_str()).collect()));
    }
    out.join("\n")
}

impl Notebook {
    /// An empty notebook.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a markdown cell.
    pub fn markdown(&mut self, text: &str) -> &mut Self {
        self.cells.push(Cell::Markdown(text.to_string()));
        self
    }

    /// Appends a code cell with its outputs.
    pub fn code(&mut self, source: &str, outputs: Vec<CellOutput>) -> &mut Self {
        self.cells.push(Cell::Code {
            source: source.to_string(),
            outputs,
        });
        self
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The nbformat 4.5 JSON document (cell `i` has id `cell-i`).
    pub fn to_json(&self) -> Value {
        let mut exec = 0;
        let cells: Vec<Value> = self
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| match c {
                Cell::Markdown(t) => json!({
                    "cell_type": "markdown", "id": format!("cell-{i}"), "metadata": {}, "source": lines(t),
                }),
                Cell::Code { source, outputs } => {
                    exec += 1;
                    let outs: Vec<Value> = outputs
                        .iter()
                        .map(|o| match o {
                            CellOutput::Text(t) => json!({
                                "output_type": "stream", "name": "stdout", "text": lines(t),
                            }),
                            CellOutput::Table(t) => json!({
                                "output_type": "execute_result", "execution_count": exec, "metadata": {},
                                "data": { "text/plain": lines(&text_table(t)), "text/html": lines(&html_table(t)) },
                            }),
                            CellOutput::Png(bytes) => json!({
                                "output_type": "display_data", "metadata": {},
                                "data": {
                                    "image/png": base64::engine::general_purpose::STANDARD.encode(bytes),
                                    "text/plain": ["<Figure>"],
                                },
                            }),
                        })
                        .collect();
                    json!({
                        "cell_type": "code", "id": format!("cell-{i}"), "metadata": {},
                        "execution_count": exec, "source": lines(source), "outputs": outs,
                    })
                }
            })
            .collect();
        json!({
            "cells": cells,
            "metadata": {
                "kernelspec": { "display_name": "Python 3", "language": "python", "name": "python3" },
                "language_info": { "name": "python" },
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        })
    }

    /// Writes the notebook (atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(&self.to_json()).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        bytes.push(b'\n');
        crate::run::write_atomic(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notebook_has_nbformat_structure_and_outputs() {
        let rows = json!([{"model": "base", "ppl": 3.5}]);
        let t = Table::from_rows(
            rows.as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_object().unwrap()),
        )
        .unwrap();
        let mut nb = Notebook::new();
        nb.markdown("# Results\nline two")
            .code(
                "import pandas as pd\npd.read_csv('x.csv')",
                vec![CellOutput::Table(t)],
            )
            .code("show()", vec![CellOutput::Png(b"\x89PNG".to_vec())]);
        let v = nb.to_json();
        assert_eq!(v["nbformat"], 4);
        assert_eq!(v["cells"][0]["source"], json!(["# Results\n", "line two"]));
        assert_eq!(v["cells"][1]["outputs"][0]["execution_count"], 1);
        assert!(
            v["cells"][1]["outputs"][0]["data"]["text/html"]
                .to_string()
                .contains("<td>base</td>")
        );
        assert_eq!(v["cells"][2]["outputs"][0]["data"]["image/png"], "iVBORw==");
        assert_eq!(v["cells"][2]["execution_count"], 2);
        assert_eq!(
            v["cells"][1]["outputs"][0]["data"]["text/plain"],
            json!(["model     ppl\n", "base   3.5000"])
        );
        let ids: Vec<_> = v["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["id"])
            .collect();
        assert_eq!(ids, [&json!("cell-0"), &json!("cell-1"), &json!("cell-2")]);

        // Written twice (two notebooks built alike), the files are byte-identical.
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a.ipynb"), d.path().join("b.ipynb"));
        nb.write(&a).unwrap();
        nb.clone().write(&b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }
}
