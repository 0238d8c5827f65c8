//! String columns whose pages are compressed by the reference C brotli encoder (`brotlic`)
//! instead of parquet's pure-Rust one.
//!
//! The format and the level are unchanged: parquet's column writer encodes the pages with the
//! column set to `UNCOMPRESSED`, [`BrotliPages`] compresses each page (`BrotliEncoderCompress`,
//! the call Arrow C++ and so pyarrow make) before it is serialised, and the chunk metadata names
//! `BROTLI`. Any Parquet reader decodes the result. On Korean text the C encoder needs about
//! 1.5× less CPU than the Rust port at the same level (`docs/bench/columnar.md`), and Brotli on
//! the `text` column is most of a conversion's work.
//!
//! [`BrotliColumns::plan`] picks the columns: top-level `utf8` fields whose codec is Brotli and
//! which are not dictionary-encoded. Every other column keeps parquet's own encoder.

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Schema};
use bytes::Bytes;
use parquet::basic::Compression;
use parquet::column::page::{CompressedPage, Page, PageWriteSpec, PageWriter};
use parquet::column::writer::ColumnWriterImpl;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::{SerializedPageWriter, SerializedRowGroupWriter, TrackedWrite};
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};
use std::io::Write;
use std::sync::Arc;

/// Runs per data page: the writer is handed about a quarter of a page's bytes at a time, so a
/// page ends within a quarter of its size limit.
const SLICES_PER_PAGE: usize = 4;

/// At most this many rows per run (parquet's default write batch).
const MAX_SLICE_ROWS: usize = 1024;

/// Brotli window of every page: 2^22 bytes, parquet's and Arrow C++'s default.
const LG_WINDOW: u8 = 22;

/// Which leaf columns of a file are compressed here, and the properties their column writers
/// use (those columns set to `UNCOMPRESSED`).
#[derive(Clone)]
pub(crate) struct BrotliColumns {
    quality: Vec<Option<u8>>,
    props: WriterPropertiesPtr,
}

impl BrotliColumns {
    /// Plans `schema` (one Parquet leaf per Arrow field) under `props`.
    pub fn plan(schema: &Schema, descr: &SchemaDescriptor, props: &WriterProperties) -> Self {
        let mut quality = Vec::with_capacity(schema.fields().len());
        let mut builder = props.clone().into_builder();
        for (i, field) in schema.fields().iter().enumerate() {
            let col = (i < descr.num_columns()).then(|| descr.column(i));
            let q = col.and_then(|col| {
                let path = col.path();
                let single_leaf = path.parts() == [field.name().as_str()];
                match (field.data_type(), props.compression(path)) {
                    (DataType::Utf8, Compression::BROTLI(level))
                        if single_leaf && !props.dictionary_enabled(path) =>
                    {
                        Some((path.clone(), level.compression_level() as u8))
                    }
                    _ => None,
                }
            });
            if let Some((path, _)) = &q {
                builder = builder.set_column_compression(path.clone(), Compression::UNCOMPRESSED);
            }
            quality.push(q.map(|(_, l)| l));
        }
        Self {
            quality,
            props: Arc::new(builder.build()),
        }
    }

    /// The Brotli quality of leaf `i` when this module compresses it.
    pub fn quality(&self, i: usize) -> Option<u8> {
        self.quality.get(i).copied().flatten()
    }

    /// Encodes column `i` of `batches` (a `utf8` column planned here) as one column chunk.
    pub fn encode(
        &self,
        descr: ColumnDescPtr,
        i: usize,
        batches: &[RecordBatch],
    ) -> Result<EncodedColumn> {
        let quality = self
            .quality(i)
            .ok_or_else(|| ParquetError::General(format!("column {i} is not a brotli column")))?;
        let mut sink = TrackedWrite::new(Vec::new());
        let mut close = {
            let pages = BrotliPages {
                inner: SerializedPageWriter::new(&mut sink),
                quality: brotlic::Quality::new(quality)
                    .map_err(|e| ParquetError::General(format!("brotli quality: {e}")))?,
            };
            let mut writer = ColumnWriterImpl::<ByteArrayType>::new(
                descr.clone(),
                self.props.clone(),
                Box::new(pages),
            );
            let nullable = descr.max_def_level() > 0;
            let page_limit = self.props.column_data_page_size_limit(descr.path());
            let slice_bytes = (page_limit / SLICES_PER_PAGE).max(1);
            for b in batches {
                let array = b
                    .column(i)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| ParquetError::General(format!("column {i} is not utf8")))?;
                let (values, levels) = byte_arrays(array, nullable)?;
                for s in slices(&values, levels.as_deref(), slice_bytes) {
                    let levels = levels.as_deref().map(|l| &l[s.rows.clone()]);
                    writer.write_batch(&values[s.values], levels, None)?;
                }
            }
            writer.close()?
        };
        let level = parquet::basic::BrotliLevel::try_new(quality as u32)?;
        close.metadata = close
            .metadata
            .into_builder()
            .set_compression(Compression::BROTLI(level))
            .build()?;
        Ok(EncodedColumn {
            data: Bytes::from(sink.into_inner()?),
            close,
        })
    }
}

/// A run of rows handed to the column writer at once, and the values among them.
#[derive(Debug, Clone, PartialEq)]
struct Slice {
    rows: std::ops::Range<usize>,
    values: std::ops::Range<usize>,
}

/// Cuts a column into runs of at most about `max_bytes` of values (and at most
/// [`MAX_SLICE_ROWS`] rows; a longer single value is a run of its own). The column writer checks
/// the page size only between the batches it is given (every 1024 values), so without this a
/// page of long documents would grow to many megabytes, and Brotli compresses 8 MiB inputs about
/// 20 % slower per byte than 1 MiB ones. `levels` are the definition levels of a nullable column
/// (1 = a value), one per row.
fn slices(values: &[ByteArray], levels: Option<&[i16]>, max_bytes: usize) -> Vec<Slice> {
    let rows = levels.map_or(values.len(), <[i16]>::len);
    let mut out = Vec::new();
    let (mut row0, mut value0, mut value, mut bytes) = (0, 0, 0, 0);
    for row in 0..rows {
        if levels.is_none_or(|l| l[row] > 0) {
            bytes += values[value].len();
            value += 1;
        }
        if bytes >= max_bytes || row + 1 - row0 >= MAX_SLICE_ROWS || row + 1 == rows {
            out.push(Slice {
                rows: row0..row + 1,
                values: value0..value,
            });
            (row0, value0, bytes) = (row + 1, value, 0);
        }
    }
    out
}

/// The values of `array` as parquet byte arrays sharing its buffer, and the definition levels
/// when the column is nullable.
fn byte_arrays(array: &StringArray, nullable: bool) -> Result<(Vec<ByteArray>, Option<Vec<i16>>)> {
    let data = Bytes::from(array.values().clone());
    let offsets = array.value_offsets();
    let mut values = Vec::with_capacity(array.len() - array.null_count());
    let mut levels = nullable.then(|| Vec::with_capacity(array.len()));
    for i in 0..array.len() {
        if array.is_valid(i) {
            let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
            values.push(ByteArray::from(data.slice(start..end)));
        } else if !nullable {
            return Err(ParquetError::General(
                "a null in a required utf8 column".into(),
            ));
        }
        if let Some(l) = levels.as_mut() {
            l.push(i16::from(array.is_valid(i)));
        }
    }
    Ok((values, levels))
}

/// A column chunk encoded in memory, ready to be spliced into a row group.
pub(crate) struct EncodedColumn {
    data: Bytes,
    close: parquet::column::writer::ColumnCloseResult,
}

impl EncodedColumn {
    /// Appends the chunk as the row group's next column.
    pub fn append_to_row_group<W: Write + Send>(
        self,
        rg: &mut SerializedRowGroupWriter<'_, W>,
    ) -> Result<()> {
        rg.append_column(&self.data, self.close)
    }
}

/// Compresses each page with the C brotli encoder, then serialises it.
struct BrotliPages<'a> {
    inner: SerializedPageWriter<'a, Vec<u8>>,
    quality: brotlic::Quality,
}

impl BrotliPages<'_> {
    /// `buf` with its first `keep` bytes as they are and the rest compressed.
    fn compress(&self, buf: &[u8], keep: usize) -> Result<Bytes> {
        let (head, body) = buf.split_at(keep.min(buf.len()));
        // `BrotliEncoderMaxCompressedSize` does not depend on the quality (brotlic only offers it
        // from quality 2): `BrotliEncoderCompress` falls back to an uncompressed stream rather
        // than exceed it, at every quality.
        let at_least_2 = brotlic::Quality::new(2).expect("2 is a valid quality");
        let bound = brotlic::compress_bound(body.len(), at_least_2)
            .filter(|&b| b > 0)
            .ok_or_else(|| {
                ParquetError::General(format!(
                    "a {} byte page is too large for brotli",
                    body.len()
                ))
            })?;
        let window = brotlic::WindowSize::new(LG_WINDOW).expect("22 is a valid window");
        let mut out = Vec::with_capacity(head.len() + bound);
        out.extend_from_slice(head);
        out.resize(head.len() + bound, 0);
        let n = brotlic::compress(
            body,
            &mut out[head.len()..],
            self.quality,
            window,
            brotlic::CompressionMode::Generic,
        )
        .map_err(|e| ParquetError::General(format!("brotli: {e}")))?;
        out.truncate(head.len() + n);
        Ok(Bytes::from(out))
    }
}

impl PageWriter for BrotliPages<'_> {
    fn write_page(&mut self, page: CompressedPage) -> Result<PageWriteSpec> {
        let uncompressed = page.uncompressed_size();
        let compressed = match page.compressed_page() {
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                rep_level_encoding,
                statistics,
            } => Page::DataPage {
                buf: self.compress(buf, 0)?,
                num_values: *num_values,
                encoding: *encoding,
                def_level_encoding: *def_level_encoding,
                rep_level_encoding: *rep_level_encoding,
                statistics: statistics.clone(),
            },
            Page::DataPageV2 {
                buf,
                num_values,
                encoding,
                num_nulls,
                num_rows,
                def_levels_byte_len,
                rep_levels_byte_len,
                statistics,
                ..
            } => Page::DataPageV2 {
                // V2 pages keep their levels uncompressed in front of the values.
                buf: self.compress(buf, (*def_levels_byte_len + *rep_levels_byte_len) as usize)?,
                num_values: *num_values,
                encoding: *encoding,
                num_nulls: *num_nulls,
                num_rows: *num_rows,
                def_levels_byte_len: *def_levels_byte_len,
                rep_levels_byte_len: *rep_levels_byte_len,
                is_compressed: true,
                statistics: statistics.clone(),
            },
            Page::DictionaryPage {
                buf,
                num_values,
                encoding,
                is_sorted,
            } => Page::DictionaryPage {
                buf: self.compress(buf, 0)?,
                num_values: *num_values,
                encoding: *encoding,
                is_sorted: *is_sorted,
            },
        };
        self.inner
            .write_page(CompressedPage::new(compressed, uncompressed))
    }

    fn close(&mut self) -> Result<()> {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::ArrayRef;
    use arrow::datatypes::Field;
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::BrotliLevel;
    use parquet::file::properties::WriterVersion;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn korean(n: usize) -> Vec<Option<String>> {
        (0..n)
            .map(|i| {
                (i % 7 != 3).then(|| {
                    format!(
                        "{i}번째 문서입니다. 대한민국 헌법 제{}조는 국민의 권리를 정한다.",
                        i % 31
                    )
                    .repeat(1 + i % 5)
                })
            })
            .collect()
    }

    /// A Parquet file of one row group whose column 0 (`batches`) is encoded by
    /// [`BrotliColumns`] under `props`, and the plan used.
    fn write_row_group(
        schema: &Arc<Schema>,
        props: &WriterProperties,
        batches: &[RecordBatch],
    ) -> (Bytes, BrotliColumns) {
        let mut out = Vec::new();
        let w = ArrowWriter::try_new(&mut out, schema.clone(), Some(props.clone())).unwrap();
        let (mut file, _factory) = w.into_serialized_writer().unwrap();
        let plan = BrotliColumns::plan(schema, file.schema_descr(), props);
        let chunk = plan
            .encode(file.schema_descr().column(0), 0, batches)
            .unwrap();
        let mut rg = file.next_row_group().unwrap();
        chunk.append_to_row_group(&mut rg).unwrap();
        rg.close().unwrap();
        file.close().unwrap();
        (Bytes::from(out), plan)
    }

    /// Writes 5000 Korean strings as one row group through [`BrotliColumns`] and reads them back:
    /// (written, read, codec of the chunk).
    fn roundtrip(
        nullable: bool,
        version: WriterVersion,
        level: u32,
    ) -> (Vec<Option<String>>, Vec<Option<String>>, Compression) {
        let mut rows = korean(5000);
        if !nullable {
            rows.iter_mut().for_each(|r| {
                r.get_or_insert_with(|| "빈 문서".to_string());
            });
        }
        let schema = Arc::new(Schema::new(vec![Field::new(
            "text",
            DataType::Utf8,
            nullable,
        )]));
        let array: ArrayRef = Arc::new(StringArray::from(rows.clone()));
        let batch = RecordBatch::try_new(schema.clone(), vec![array]).unwrap();
        let props = WriterProperties::builder()
            .set_writer_version(version)
            .set_compression(Compression::BROTLI(BrotliLevel::try_new(level).unwrap()))
            .set_dictionary_enabled(false)
            .set_data_page_size_limit(64 << 10)
            .build();
        let batches = [batch.slice(0, 2000), batch.slice(2000, 3000)];
        let (bytes, plan) = write_row_group(&schema, &props, &batches);
        assert_eq!(plan.quality(0), Some(level as u8));
        let reader = SerializedFileReader::new(bytes.clone()).unwrap();
        let col = reader.metadata().row_group(0).column(0);
        assert!(
            col.compressed_size() < col.uncompressed_size() / 2,
            "pages are compressed"
        );
        let codec = col.compression();
        let mut back = Vec::new();
        for b in ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
        {
            let b = b.unwrap();
            let s = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            back.extend((0..s.len()).map(|i| s.is_valid(i).then(|| s.value(i).to_string())));
        }
        (rows, back, codec)
    }

    #[test]
    fn required_column_reads_back_identical_with_brotli_codec_at_every_quality_range() {
        for level in [0, 1, 5, 11] {
            let (rows, back, codec) = roundtrip(false, WriterVersion::PARQUET_1_0, level);
            assert_eq!(rows, back, "level {level}");
            // Parquet records the codec, not its level.
            assert!(matches!(codec, Compression::BROTLI(_)), "level {level}");
        }
    }

    #[test]
    fn nullable_column_and_v2_pages_read_back_identical() {
        let (rows, back, _) = roundtrip(true, WriterVersion::PARQUET_2_0, 5);
        assert!(rows.iter().any(Option::is_none));
        assert_eq!(rows, back);
        let (rows, back, _) = roundtrip(true, WriterVersion::PARQUET_1_0, 5);
        assert_eq!(rows, back);
    }

    #[test]
    fn slices_bound_bytes_and_rows_and_cover_every_row_and_value_once() {
        let lens = [10usize, 300, 5, 0, 700, 50, 2000, 1, 1];
        let values: Vec<ByteArray> = lens
            .iter()
            .map(|&n| ByteArray::from(vec![b'x'; n]))
            .collect();
        // Required column: rows and values coincide.
        let s = slices(&values, None, 500);
        assert_eq!(
            s.iter().map(|s| s.rows.clone()).collect::<Vec<_>>(),
            vec![0..5, 5..7, 7..9],
            "a run ends with the value that brings it to 500 bytes"
        );
        assert!(s.iter().all(|s| s.rows == s.values));
        // Nullable column: nulls take rows but no values.
        let levels = [1i16, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1];
        let s = slices(&values, Some(&levels), 500);
        let rows: usize = s.iter().map(|s| s.rows.len()).sum();
        let vals: usize = s.iter().map(|s| s.values.len()).sum();
        assert_eq!((rows, vals), (levels.len(), values.len()));
        for w in s.windows(2) {
            assert_eq!(w[0].rows.end, w[1].rows.start);
            assert_eq!(w[0].values.end, w[1].values.start);
        }
        for x in &s {
            let n = levels[x.rows.clone()].iter().filter(|&&l| l > 0).count();
            assert_eq!(n, x.values.len(), "{x:?}");
        }
        // Short values: the row bound.
        let small = vec![ByteArray::from(vec![b'y'; 1]); 2500];
        let s = slices(&small, None, usize::MAX);
        assert_eq!(
            s.iter().map(|s| s.rows.len()).collect::<Vec<_>>(),
            vec![MAX_SLICE_ROWS, MAX_SLICE_ROWS, 2500 - 2 * MAX_SLICE_ROWS]
        );
        assert!(slices(&[], None, 10).is_empty());
    }

    #[test]
    fn long_documents_make_pages_near_the_size_limit() {
        // 4 KiB documents: 1024 of them per writer batch would make 4 MiB pages.
        let text: Vec<String> = (0..3000).map(|i| format!("{i:04}").repeat(1024)).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, false)]));
        let array: ArrayRef = Arc::new(StringArray::from(text));
        let batch = RecordBatch::try_new(schema.clone(), vec![array]).unwrap();
        let props = WriterProperties::builder()
            .set_compression(Compression::BROTLI(BrotliLevel::try_new(1).unwrap()))
            .set_dictionary_enabled(false)
            .set_data_page_size_limit(256 << 10)
            .build();
        let (bytes, _) = write_row_group(&schema, &props, &[batch]);
        let reader = SerializedFileReader::new(bytes).unwrap();
        let mut pages = reader
            .get_row_group(0)
            .unwrap()
            .get_column_page_reader(0)
            .unwrap();
        let mut sizes = Vec::new();
        while let Some(p) = pages.get_next_page().unwrap() {
            sizes.push(p.buffer().len());
        }
        // 12 MB of text in pages of at most the limit plus one quarter of it.
        assert!(sizes.len() >= 40, "{sizes:?}");
        assert!(
            sizes.iter().all(|&n| n <= (256 << 10) * 5 / 4 + 4096),
            "{sizes:?}"
        );
    }

    #[test]
    fn plan_skips_dictionary_other_codecs_and_non_strings() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Utf8, false),
            Field::new("b", DataType::Utf8, false),
            Field::new("c", DataType::Int64, false),
            Field::new("d", DataType::Utf8, false),
        ]);
        let brotli = Compression::BROTLI(BrotliLevel::try_new(7).unwrap());
        let props = WriterProperties::builder()
            .set_compression(brotli)
            .set_dictionary_enabled(false)
            .set_column_dictionary_enabled("b".into(), true)
            .set_column_compression("d".into(), Compression::SNAPPY)
            .build();
        let descr = parquet::arrow::ArrowSchemaConverter::new()
            .convert(&schema)
            .unwrap();
        let plan = BrotliColumns::plan(&schema, &descr, &props);
        assert_eq!(
            (0..4).map(|i| plan.quality(i)).collect::<Vec<_>>(),
            vec![Some(7), None, None, None]
        );
        assert_eq!(
            plan.props.compression(&"a".into()),
            Compression::UNCOMPRESSED
        );
        assert_eq!(plan.props.compression(&"c".into()), brotli);
    }
}
