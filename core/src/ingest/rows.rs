//! Validation of Parquet rows: each row of a [`RowChunk`] becomes a document or exactly one
//! reject (with its file, row group and row), using the same reasons as JSONL lines.
//!
//! The text, id and domain columns are found by their (dotted) paths; strings, large strings,
//! string views, binaries (checked as UTF-8 here) and dictionaries of them are read. Every
//! other top-level column is kept as an extra field, encoded as JSON by `arrow-json`.

use super::RejectReason;
use super::pipeline::{ChunkResult, SourceMeta};
use super::validate::{FieldPath, FieldSpec, Rejection, extra_key};
use crate::source::{RowChunk, UTF8_AS_BYTES};
use arrow::array::{Array, ArrayRef, AsArray, StructArray};
use arrow::buffer::NullBuffer;
use arrow::compute::CastOptions;
use arrow::datatypes::{DataType, Field, FieldRef};
use arrow::json::writer::{EncoderOptions, NullableEncoder, make_encoder};
use std::io::Write as _;
use std::sync::Arc;

/// A `Binary` (`LargeBinary`) column as `Utf8` (`LargeUtf8`) sharing its buffers, when every
/// value is UTF-8: one simdutf8 pass over the values and a check that each value starts a
/// character. `None` when that does not hold (the caller casts value by value).
fn strings_without_copy(a: &ArrayRef) -> Option<ArrayRef> {
    use arrow::array::{GenericBinaryArray, GenericStringArray, OffsetSizeTrait};
    fn go<O: OffsetSizeTrait>(b: &GenericBinaryArray<O>) -> Option<ArrayRef> {
        let offsets = b.value_offsets();
        let (first, last) = (offsets.first()?.as_usize(), offsets.last()?.as_usize());
        let values = b.values();
        simdutf8::basic::from_utf8(values.get(first..last)?).ok()?;
        let splits_a_char = offsets.iter().any(|o| {
            values
                .get(o.as_usize())
                .is_some_and(|c| o.as_usize() < last && c & 0xC0 == 0x80)
        });
        if splits_a_char {
            return None;
        }
        // SAFETY: the bytes from the first offset to the last are UTF-8 and every offset is at
        // a character boundary of them, so every value (null slots included) is UTF-8.
        let s = unsafe {
            GenericStringArray::<O>::new_unchecked(
                b.offsets().clone(),
                b.values().clone(),
                b.nulls().cloned(),
            )
        };
        Some(Arc::new(s))
    }
    match a.data_type() {
        DataType::Binary => go(a.as_binary::<i32>()),
        DataType::LargeBinary => go(a.as_binary::<i64>()),
        _ => None,
    }
}

/// A column of byte strings, whatever its Arrow type.
enum ByteCol {
    Utf8(ArrayRef),
    LargeUtf8(ArrayRef),
    Utf8View(ArrayRef),
    Binary(ArrayRef),
    LargeBinary(ArrayRef),
    BinaryView(ArrayRef),
}

impl ByteCol {
    fn new(a: ArrayRef) -> Result<Self, DataType> {
        Ok(match a.data_type() {
            DataType::Utf8 => ByteCol::Utf8(a),
            DataType::LargeUtf8 => ByteCol::LargeUtf8(a),
            DataType::Utf8View => ByteCol::Utf8View(a),
            DataType::Binary => ByteCol::Binary(a),
            DataType::LargeBinary => ByteCol::LargeBinary(a),
            DataType::BinaryView => ByteCol::BinaryView(a),
            DataType::Dictionary(_, v) => {
                let v = v.as_ref().clone();
                let flat = arrow::compute::cast(&a, &v).map_err(|_| a.data_type().clone())?;
                return Self::new(flat);
            }
            t => return Err(t.clone()),
        })
    }

    fn value(&self, i: usize) -> &[u8] {
        match self {
            ByteCol::Utf8(a) => a.as_string::<i32>().value(i).as_bytes(),
            ByteCol::LargeUtf8(a) => a.as_string::<i64>().value(i).as_bytes(),
            ByteCol::Utf8View(a) => a.as_string_view().value(i).as_bytes(),
            ByteCol::Binary(a) => a.as_binary::<i32>().value(i),
            ByteCol::LargeBinary(a) => a.as_binary::<i64>().value(i),
            ByteCol::BinaryView(a) => a.as_binary_view().value(i),
        }
    }
}

/// One mapped field in a batch.
enum Col {
    /// No such column (or a parent is not a struct).
    Missing(String),
    /// Byte strings, with the nulls of every level of the path.
    Bytes(ByteCol, Option<NullBuffer>),
    /// Another type: its name, the nulls, and the array (for the reject's raw value).
    Other(DataType, Option<NullBuffer>, ArrayRef),
}

impl Col {
    fn find(batch: &arrow::record_batch::RecordBatch, path: &FieldPath, numbers: bool) -> Col {
        let Some(mut a) = batch.column_by_name(path.top()).cloned() else {
            return Col::Missing(format!("no column `{}`", path.top()));
        };
        let mut nulls = a.logical_nulls();
        for k in &path.parts[1..] {
            let Some(s) = a.as_any().downcast_ref::<StructArray>() else {
                return Col::Missing(format!(
                    "`{}` is {}, not a struct with a field `{k}`",
                    path.name,
                    a.data_type()
                ));
            };
            let Some(c) = s.column_by_name(k).cloned() else {
                return Col::Missing(format!("no field `{}`", path.name));
            };
            a = c;
            nulls = NullBuffer::union(nulls.as_ref(), a.logical_nulls().as_ref());
        }
        let t = a.data_type().clone();
        let a = if numbers && (t.is_integer() || t.is_floating()) {
            match arrow::compute::cast(&a, &DataType::Utf8) {
                Ok(s) => s,
                Err(_) => return Col::Other(t, nulls, a),
            }
        } else {
            a
        };
        match ByteCol::new(a.clone()) {
            Ok(b) => Col::Bytes(b, nulls),
            Err(t) => Col::Other(t, nulls, a),
        }
    }

    fn is_null(n: &Option<NullBuffer>, i: usize) -> bool {
        n.as_ref().is_some_and(|n| n.is_null(i))
    }
}

/// An optional string field's value at row `i`: `Ok(None)` when missing, null or blank.
fn optional<'a>(c: &'a Col, i: usize, name: &str) -> Result<Option<&'a str>, Rejection> {
    match c {
        Col::Missing(_) => Ok(None),
        Col::Bytes(_, n) | Col::Other(_, n, _) if Col::is_null(n, i) => Ok(None),
        Col::Bytes(b, _) => {
            let v = utf8(b, i, name)?;
            Ok((!v.trim().is_empty()).then_some(v))
        }
        Col::Other(t, _, _) => Err(rejection(
            RejectReason::WrongType,
            format!("`{name}` must be a string, got {t}"),
        )),
    }
}

fn utf8<'a>(b: &'a ByteCol, i: usize, name: &str) -> Result<&'a str, Rejection> {
    let v = match b {
        ByteCol::Utf8(a) => return Ok(a.as_string::<i32>().value(i)),
        ByteCol::LargeUtf8(a) => return Ok(a.as_string::<i64>().value(i)),
        ByteCol::Utf8View(a) => return Ok(a.as_string_view().value(i)),
        b => b.value(i),
    };
    simdutf8::basic::from_utf8(v).map_err(|_| {
        let at = simdutf8::compat::from_utf8(v)
            .err()
            .map(|e| e.valid_up_to())
            .unwrap_or(0);
        rejection(
            RejectReason::InvalidUtf8,
            format!("`{name}` is not valid UTF-8 at byte {at}"),
        )
    })
}

fn rejection(reason: RejectReason, detail: String) -> Rejection {
    Rejection { reason, detail }
}

use super::json_out::push_str as json_str;

/// The extra columns of a batch and their JSON encoders.
struct Extras<'a> {
    keys: Vec<Vec<u8>>,
    encoders: Vec<NullableEncoder<'a>>,
}

/// Validates the rows of `c` into `r` (documents, rejects, counts).
pub(super) fn validate_rows(
    c: &RowChunk,
    meta: &SourceMeta,
    fields: &FieldSpec,
    keep_extras: bool,
    max_bytes: usize,
    r: &mut ChunkResult,
) {
    let batch = &c.batch;
    let n = batch.num_rows();
    let text = Col::find(batch, &fields.text, false);
    let id = Col::find(batch, &fields.id, true);
    let domain = Col::find(batch, &fields.domain, false);
    let opts = EncoderOptions::default().with_explicit_nulls(true);
    let schema = batch.schema();
    // String columns read as bytes go back to strings for the extras; a row whose value is not
    // UTF-8 is rejected below, naming the column.
    let mut not_utf8: Vec<(String, Vec<bool>)> = Vec::new();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, a)| {
            let mapped = [&fields.text, &fields.id, &fields.domain]
                .iter()
                .any(|p| p.parts.len() == 1 && p.top() == f.name());
            if !keep_extras || mapped || !f.metadata().contains_key(UTF8_AS_BYTES) {
                return a.clone();
            }
            if let Some(s) = strings_without_copy(a) {
                return s;
            }
            // Back to the type the file declares (Utf8 or LargeUtf8); a value that is not
            // UTF-8 becomes a null, its row rejected below.
            let to = match f.metadata()[UTF8_AS_BYTES].as_str() {
                "LargeUtf8" => DataType::LargeUtf8,
                _ => DataType::Utf8,
            };
            let safe = CastOptions {
                safe: true,
                ..Default::default()
            };
            match arrow::compute::cast_with_options(a, &to, &safe) {
                Ok(s) => {
                    let bad: Vec<bool> = (0..n).map(|i| a.is_valid(i) && s.is_null(i)).collect();
                    if bad.iter().any(|b| *b) {
                        not_utf8.push((f.name().clone(), bad));
                    }
                    s
                }
                Err(_) => a.clone(),
            }
        })
        .collect();
    let extra_fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, a)| {
            if f.metadata().contains_key(UTF8_AS_BYTES) {
                let mut md = f.metadata().clone();
                md.remove(UTF8_AS_BYTES);
                Arc::new(
                    f.as_ref()
                        .clone()
                        .with_data_type(a.data_type().clone())
                        .with_metadata(md),
                )
            } else {
                f.clone()
            }
        })
        .collect();
    let mut extras = Extras {
        keys: Vec::new(),
        encoders: Vec::new(),
    };
    let mut encode_failed: Option<String> = None;
    if keep_extras {
        for (f, a) in extra_fields.iter().zip(&columns) {
            let name = f.name().as_str();
            let mapped = [&fields.text, &fields.id, &fields.domain]
                .iter()
                .any(|p| p.parts.len() == 1 && p.top() == name);
            if mapped {
                continue;
            }
            let key = if name == "split" && meta.split.is_some() {
                "orig_split"
            } else {
                extra_key(name)
            };
            match make_encoder(f, a.as_ref(), &opts) {
                Ok(e) => {
                    let mut k = Vec::with_capacity(key.len() + 4);
                    k.push(b',');
                    json_str(&mut k, key);
                    k.push(b':');
                    extras.keys.push(k);
                    extras.encoders.push(e);
                }
                Err(e) => encode_failed = Some(format!("column `{name}` ({}): {e}", f.data_type())),
            }
        }
    }
    let text_name = &fields.text.name;
    let mut last_domain: Option<(String, u64)> = None;
    for i in 0..n {
        let row = c.first_row + i as u64;
        r.lines += 1;
        let res = (|| {
            if let Some((col, _)) = not_utf8.iter().find(|(_, bad)| bad[i]) {
                return Err(rejection(
                    RejectReason::InvalidUtf8,
                    format!("column `{col}` is not valid UTF-8"),
                ));
            }
            if let Some(e) = &encode_failed {
                return Err(rejection(
                    RejectReason::WrongType,
                    format!("cannot keep extra {e}"),
                ));
            }
            let t = match &text {
                Col::Missing(d) => return Err(rejection(RejectReason::MissingText, d.clone())),
                Col::Bytes(_, nl) | Col::Other(_, nl, _) if Col::is_null(nl, i) => {
                    return Err(rejection(
                        RejectReason::MissingText,
                        format!("`{text_name}` is null"),
                    ));
                }
                Col::Other(t, _, _) => {
                    return Err(rejection(
                        RejectReason::WrongType,
                        format!("`{text_name}` must be a string, got {t}"),
                    ));
                }
                Col::Bytes(b, _) => {
                    if b.value(i).len() > max_bytes {
                        return Err(rejection(
                            RejectReason::TooLarge,
                            format!(
                                "`{text_name}` has {} bytes, more than max_line_bytes = {max_bytes}",
                                b.value(i).len()
                            ),
                        ));
                    }
                    utf8(b, i, text_name)?
                }
            };
            if t.trim().is_empty() {
                return Err(rejection(
                    RejectReason::EmptyText,
                    format!("`{text_name}` is empty or whitespace"),
                ));
            }
            let id = optional(&id, i, &fields.id.name)?;
            let d = optional(&domain, i, &fields.domain.name)?;
            Ok((t, id, d))
        })();
        match res {
            Ok((t, id, d)) => {
                let out = &mut r.docs;
                out.extend_from_slice(b"{\"id\":");
                match id {
                    Some(id) => json_str(out, id),
                    None => json_str(out, &format!("{}:{row}", meta.name)),
                }
                out.extend_from_slice(b",\"text\":");
                json_str(out, t);
                out.extend_from_slice(b",\"domain\":");
                let d = d.unwrap_or(&meta.fallback_domain);
                json_str(out, d);
                out.extend_from_slice(b",\"source\":");
                json_str(out, &meta.name);
                if let Some(s) = &meta.split {
                    out.extend_from_slice(b",\"split\":");
                    json_str(out, s);
                }
                for (k, e) in extras.keys.iter().zip(extras.encoders.iter_mut()) {
                    out.extend_from_slice(k);
                    if e.is_null(i) {
                        out.extend_from_slice(b"null");
                    } else {
                        e.encode(i, out);
                    }
                }
                out.extend_from_slice(b"}\n");
                r.valid += 1;
                match &mut last_domain {
                    Some((ld, k)) if ld == d => *k += 1,
                    _ => {
                        if let Some((ld, k)) = last_domain.take() {
                            *r.domains.entry(ld).or_default() += k;
                        }
                        last_domain = Some((d.to_string(), 1));
                    }
                }
            }
            Err(rej) => {
                let raw: Option<Vec<u8>> = match &text {
                    Col::Bytes(b, nl) if !Col::is_null(nl, i) => Some(b.value(i).to_vec()),
                    Col::Other(_, nl, a) if !Col::is_null(nl, i) => {
                        let f: FieldRef = Arc::new(Field::new("v", a.data_type().clone(), true));
                        make_encoder(&f, a.as_ref(), &opts).ok().map(|mut e| {
                            let mut v = Vec::new();
                            e.encode(i, &mut v);
                            v
                        })
                    }
                    _ => None,
                };
                write_row_reject(
                    &mut r.rejects,
                    &meta.name,
                    c.row_group,
                    row,
                    &rej,
                    raw.as_deref(),
                );
                r.reasons[rej.reason.index()] += 1;
            }
        }
    }
    if let Some((ld, k)) = last_domain {
        *r.domains.entry(ld).or_default() += k;
    }
}

/// Appends one reject record of a Parquet row: `{"source","row_group","row","reason","detail",
/// "bytes"}` plus the text field's bytes as `raw` (or `raw_b64` when not UTF-8) when it has a
/// value.
fn write_row_reject(
    out: &mut Vec<u8>,
    source: &str,
    row_group: usize,
    row: u64,
    r: &Rejection,
    raw: Option<&[u8]>,
) {
    use base64::Engine as _;
    out.extend_from_slice(b"{\"source\":");
    json_str(out, source);
    let _ = write!(
        out,
        ",\"row_group\":{row_group},\"row\":{row},\"reason\":\"{}\",\"detail\":",
        r.reason.as_str()
    );
    json_str(out, &r.detail);
    let _ = write!(out, ",\"bytes\":{}", raw.map_or(0, <[u8]>::len));
    match raw.map(|b| (b, simdutf8::basic::from_utf8(b))) {
        None => {}
        Some((_, Ok(s))) => {
            out.extend_from_slice(b",\"raw\":");
            json_str(out, s);
        }
        Some((b, Err(_))) => {
            out.extend_from_slice(b",\"raw_b64\":");
            json_str(out, &base64::engine::general_purpose::STANDARD.encode(b));
        }
    }
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::strings_without_copy;
    use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, LargeBinaryArray};
    use std::sync::Arc;

    #[test]
    fn byte_columns_become_strings_only_when_every_value_is_utf8() {
        let good: ArrayRef = Arc::new(BinaryArray::from(vec![
            Some("한국어".as_bytes()),
            None,
            Some(b"abc".as_slice()),
            Some(b"".as_slice()),
        ]));
        let s = strings_without_copy(&good).expect("all UTF-8");
        let s = s.as_string::<i32>();
        assert_eq!(
            (s.value(0), s.is_null(1), s.value(2), s.value(3)),
            ("한국어", true, "abc", "")
        );
        let large: ArrayRef = Arc::new(LargeBinaryArray::from(vec![Some("가".as_bytes())]));
        assert_eq!(
            strings_without_copy(&large)
                .unwrap()
                .as_string::<i64>()
                .value(0),
            "가"
        );
        // Bytes that are not UTF-8.
        let bad: ArrayRef = Arc::new(BinaryArray::from(vec![
            Some(b"ok".as_slice()),
            Some(b"\xff".as_slice()),
        ]));
        assert!(strings_without_copy(&bad).is_none());
        // Valid as a whole, but the values split a character: "가" is EA B0 80.
        let split: ArrayRef = Arc::new(BinaryArray::from(vec![
            Some(b"\xea".as_slice()),
            Some(b"\xb0\x80".as_slice()),
        ]));
        assert!(strings_without_copy(&split).is_none());
    }
}
