//! The explicit Arrow schemas (input and output), `schema.txt` files and domain-name checks.

use super::config::ExtraField;
use crate::Result;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

/// The built-in columns; declared extras may not reuse these names.
pub const CORE_FIELDS: [&str; 6] = ["id", "text", "domain", "source", "tokens", "n_tokens"];

/// The name of the list element of `tokens` (Parquet path `tokens.list.element`, as pyarrow
/// writes and expects it).
pub const TOKENS_ELEMENT: &str = "element";

/// The type of the `tokens` column: `list<int32>` with non-null elements.
pub fn tokens_type() -> DataType {
    DataType::List(Arc::new(Field::new(TOKENS_ELEMENT, DataType::Int32, false)))
}

/// The schema arrow-json decodes the input lines with: `id`, `text`, `domain`, `source`
/// (non-null strings) and the declared extras (nullable).
pub fn input_schema(extras: &[ExtraField]) -> Result<SchemaRef> {
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("domain", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
    ];
    for e in extras {
        fields.push(Field::new(&e.name, e.data_type()?, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// The schema of the Parquet files: `id: utf8, text: utf8, domain: dictionary<int32, utf8>,
/// source: utf8`, then `tokens: list<int32>, n_tokens: int32` when a tokenizer is used, then
/// the extras.
pub fn output_schema(extras: &[ExtraField], with_tokens: bool) -> Result<SchemaRef> {
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new(
            "domain",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            false,
        ),
        Field::new("source", DataType::Utf8, false),
    ];
    if with_tokens {
        fields.push(Field::new("tokens", tokens_type(), false));
        fields.push(Field::new("n_tokens", DataType::Int32, false));
    }
    for e in extras {
        fields.push(Field::new(&e.name, e.data_type()?, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// A type as `schema.txt` writes it (`utf8`, `int32`, `list<int32>`, `dictionary<int32, utf8>`).
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "utf8".into(),
        DataType::LargeUtf8 => "large_utf8".into(),
        DataType::Utf8View => "utf8_view".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::Float64 => "float64".into(),
        DataType::Boolean => "bool".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("list<{}>", type_name(f.data_type())),
        DataType::Dictionary(k, v) => format!("dictionary<{}, {}>", type_name(k), type_name(v)),
        other => other.to_string().to_lowercase(),
    }
}

/// One `schema.txt` line per field: `name: type not null` or `name: type null`.
pub fn schema_lines(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| {
            format!(
                "{}: {} {}",
                f.name(),
                type_name(f.data_type()),
                if f.is_nullable() { "null" } else { "not null" }
            )
        })
        .collect()
}

/// The text of a `schema.txt`: a comment header, then [`schema_lines`].
pub fn schema_text(schema: &Schema, title: &str) -> String {
    let mut s = format!(
        "# yunmin parquet schema v1: {title}\n# one field per line: name: type null|not null\n"
    );
    for l in schema_lines(schema) {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

/// The field lines of a `schema.txt` (comments and blank lines dropped).
pub fn parse_schema_text(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Why a domain name cannot name an output file, or `None` when it can. Unicode is allowed;
/// rejected are empty names, `.`/`..` and names starting with `.`, path separators (`/`, `\`),
/// NUL and control characters, and names longer than 200 bytes.
pub fn domain_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("empty domain name".into());
    }
    if name.contains('/') || name.contains('\\') {
        return Some(format!(
            "domain `{name}` contains a path separator and would escape the output directory"
        ));
    }
    if name.starts_with('.') {
        return Some(format!(
            "domain `{name}` starts with `.` (`..` would escape the output directory; others would be hidden files)"
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Some(format!("domain {name:?} contains a control character"));
    }
    if name.len() > 200 {
        return Some(format!(
            "domain name of {} bytes is longer than 200 bytes",
            name.len()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_text_lists_fields_with_types_and_nullability() {
        let extras = vec![ExtraField {
            name: "label".into(),
            ty: "int64".into(),
        }];
        let s = output_schema(&extras, true).unwrap();
        assert_eq!(
            schema_lines(&s),
            [
                "id: utf8 not null",
                "text: utf8 not null",
                "domain: dictionary<int32, utf8> not null",
                "source: utf8 not null",
                "tokens: list<int32> not null",
                "n_tokens: int32 not null",
                "label: int64 null"
            ]
        );
        assert_eq!(parse_schema_text(&schema_text(&s, "x")), schema_lines(&s));
    }

    #[test]
    fn escaping_and_empty_domain_names_are_rejected_unicode_is_fine() {
        for bad in [
            "", "../x", "/etc", "a/b", "..", ".", ".hidden", "a\\b", "a\nb", "a\0b",
        ] {
            assert!(
                domain_name_problem(bad).is_some(),
                "{bad:?} must be rejected"
            );
        }
        for good in [
            "법률",
            "news_comments",
            "영화 리뷰",
            "日本語",
            "a..b",
            "x.heldout",
        ] {
            assert_eq!(domain_name_problem(good), None, "{good}");
        }
        assert!(domain_name_problem("../x").unwrap().contains("escape"));
    }
}
