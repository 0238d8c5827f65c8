//! `yunmin parquet validate`: a Parquet file against its `schema.txt` and the conversion
//! report (row count, codecs).

use super::ColumnarError;
use super::config::{codec_name, parse_codec};
use super::report::{ConversionReport, REPORT_FILE};
use super::schema::{TOKENS_ELEMENT, parse_schema_text, schema_lines};
use crate::{Error, Result};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// What validation checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// The file.
    pub path: PathBuf,
    /// The schema file it was checked against.
    pub schema_file: PathBuf,
    /// The report it was checked against.
    pub report_file: PathBuf,
    /// Rows in the file.
    pub rows: u64,
    /// Codec of every column chunk path (`text` → `BROTLI`, `tokens.list.element` → `ZSTD`, …).
    pub codecs: BTreeMap<String, String>,
}

/// Codec names of each column path over all row groups (`MIXED` if they differ).
pub fn column_codecs(path: &Path) -> Result<(u64, BTreeMap<String, String>)> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let b =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| ColumnarError::parquet(path, e))?;
    let meta = b.metadata();
    let mut codecs: BTreeMap<String, String> = BTreeMap::new();
    for rg in meta.row_groups() {
        for c in rg.columns() {
            let name = codec_name(c.compression()).to_string();
            let e = codecs
                .entry(c.column_path().string())
                .or_insert_with(|| name.clone());
            if *e != name {
                *e = "MIXED".into();
            }
        }
    }
    Ok((meta.file_metadata().num_rows() as u64, codecs))
}

/// Checks `path` against the `schema.txt` next to it (`<stem>.schema.txt`, else `schema.txt`)
/// and against `parquet_report.json` in its directory or the parent (for `heldout/`): the
/// schema lines must be equal, the row count must match the report, and each column's codec
/// must be the configured one. Every mismatch is listed in the error.
pub fn validate(path: &Path) -> Result<Validation> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = path
        .file_name()
        .map(|n| {
            let n = n.to_string_lossy();
            n.strip_suffix(".parquet").unwrap_or(&n).to_string()
        })
        .unwrap_or_default();
    let schema_file = [
        dir.join(format!("{stem}.schema.txt")),
        dir.join("schema.txt"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .ok_or_else(|| ColumnarError::Missing {
        what: "schema file",
        path: dir.join(format!("{stem}.schema.txt")),
    })?;
    let (root, report_file) = [
        dir.to_path_buf(),
        dir.parent().map(Path::to_path_buf).unwrap_or_default(),
    ]
    .into_iter()
    .map(|d| (d.clone(), d.join(REPORT_FILE)))
    .find(|(_, p)| p.exists())
    .ok_or_else(|| ColumnarError::Missing {
        what: "conversion report",
        path: dir.join(REPORT_FILE),
    })?;
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let b =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| ColumnarError::parquet(path, e))?;
    let have = schema_lines(b.schema());
    let text =
        std::fs::read_to_string(&schema_file).map_err(|e| Error::io("read", &schema_file, e))?;
    let want = parse_schema_text(&text);
    let mut problems = Vec::new();
    for i in 0..have.len().max(want.len()) {
        match (have.get(i), want.get(i)) {
            (Some(h), Some(w)) if h == w => {}
            (Some(h), Some(w)) => problems.push(format!(
                "field {}: file has `{h}`, {} says `{w}`",
                i + 1,
                schema_file.display()
            )),
            (Some(h), None) => problems.push(format!(
                "field {}: `{h}` is not in {}",
                i + 1,
                schema_file.display()
            )),
            (None, Some(w)) => problems.push(format!(
                "field {}: `{w}` from {} is missing in the file",
                i + 1,
                schema_file.display()
            )),
            (None, None) => {}
        }
    }
    drop(b);
    let (rows, codecs) = column_codecs(path)?;
    let report = ConversionReport::load(&root)?;
    let rel = path
        .strip_prefix(&root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/");
    match report.files.get(&rel) {
        None => problems.push(format!("{} does not list `{rel}`", report_file.display())),
        Some(fr) if fr.rows != rows => problems.push(format!(
            "row count: file has {rows} rows, {} says {}",
            report_file.display(),
            fr.rows
        )),
        Some(_) => {}
    }
    let want_codec = |col: &str| -> Result<&'static str> {
        let c = &report.config;
        let spec = if col == "text" {
            &c.text
        } else if col == format!("tokens.list.{TOKENS_ELEMENT}") {
            &c.tokens
        } else {
            &c.other
        };
        Ok(codec_name(parse_codec(spec)?))
    };
    if rows > 0 {
        for (col, codec) in &codecs {
            let w = want_codec(col)?;
            if codec != w {
                problems.push(format!(
                    "column `{col}` is compressed with {codec}, the report's configuration says {w}"
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ColumnarError::Validation {
            path: path.to_path_buf(),
            problems,
        }
        .into());
    }
    Ok(Validation {
        path: path.to_path_buf(),
        schema_file,
        report_file,
        rows,
        codecs,
    })
}
