//! Tables as Markdown (GitHub pipe tables), for generated reports.

use super::table::Table;
use serde_json::Value;

/// One cell: floats with `decimals` digits, null as `–`, `|` and newlines escaped.
fn cell(v: &Value, decimals: usize) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Number(n) if n.is_f64() => format!("{:.*}", decimals, n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.replace('|', "\\|").replace('\n', " "),
        other => other.to_string(),
    }
}

impl Table {
    /// The table as a Markdown pipe table; numbers right-aligned, floats with `decimals` digits.
    pub fn to_markdown(&self, decimals: usize) -> String {
        let cols = self.columns();
        let rows: Vec<_> = (0..self.height()).filter_map(|i| self.row(i)).collect();
        let numeric: Vec<bool> = cols
            .iter()
            .map(|c| {
                rows.iter()
                    .all(|r| matches!(r.get(c), Some(Value::Number(_) | Value::Null)))
            })
            .collect();
        let mut out = format!("| {} |\n|", cols.join(" | "));
        for n in &numeric {
            out.push_str(if *n { "---:|" } else { "---|" });
        }
        out.push('\n');
        for r in &rows {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| cell(r.get(c).unwrap_or(&Value::Null), decimals))
                .collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn markdown_aligns_numbers_and_escapes_pipes() {
        let mut t = Table::new();
        for (m, p) in [("base", 12.3456), ("a|b", 9.0)] {
            t.push_row(json!({"model": m, "ppl": p}).as_object().unwrap())
                .unwrap();
        }
        let md = t.to_markdown(2);
        assert_eq!(
            md,
            "| model | ppl |\n|---|---:|\n| base | 12.35 |\n| a\\|b | 9.00 |\n"
        );
    }
}
