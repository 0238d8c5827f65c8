//! Parquet inputs: read row group by row group with a projection of the needed columns, so
//! memory is bounded by one row group's projected column chunks whatever the file size. Local
//! files are read in place; S3 objects through ranged GETs of the footer and of each row group's
//! projected column chunks.

use super::{Location, ReadCounters, S3Store, S3Url, SourceConfig, SourceError, SourceItem};
use crate::Result;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use std::io::Cursor;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Rows of one row group of a Parquet input (at most `SourceConfig::batch_rows` of them).
#[derive(Debug, Clone)]
pub struct RowChunk {
    /// Index of the input in the resolved source list.
    pub source: usize,
    /// 0-based row group.
    pub row_group: usize,
    /// 0-based index in the file of the first row of `batch`.
    pub first_row: u64,
    /// The projected columns.
    pub batch: RecordBatch,
}

/// Which columns of a Parquet input are read: dotted paths (`metadata.domain` reads that leaf of
/// the `metadata` struct; `tags` reads every leaf under `tags`), or every column when `None`.
pub type Projection = Option<Arc<Vec<String>>>;

/// Field metadata key marking a column stored as Parquet strings but delivered as bytes, for
/// the ingest to check value by value (see [`strings_as_bytes`]); its value is the Arrow type
/// the file declares (`Utf8` or `LargeUtf8`).
pub const UTF8_AS_BYTES: &str = "yunmin.utf8_as_bytes";

/// What one Parquet input gave.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParquetTotals {
    /// Rows delivered (always the footer's row count when reading succeeds).
    pub rows: u64,
    /// Uncompressed bytes of the projected column chunks.
    pub bytes: u64,
}

fn perr(item: &SourceItem, row_group: Option<usize>, e: impl std::fmt::Display) -> crate::Error {
    SourceError::Parquet {
        source_name: item.name.clone(),
        row_group,
        reason: e.to_string(),
    }
    .into()
}

/// A local file shared by the row groups' readers.
#[derive(Clone)]
struct LocalFile(Arc<std::fs::File>);

impl Length for LocalFile {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl ChunkReader for LocalFile {
    type T = <std::fs::File as ChunkReader>::T;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        self.0.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.0.get_bytes(start, length)
    }
}

/// An S3 object as a Parquet [`ChunkReader`]: byte ranges come from ranged GETs, and the
/// ranges fetched for the current row group are kept in memory until the next one.
#[derive(Clone)]
struct S3Chunks {
    store: S3Store,
    url: S3Url,
    etag: Option<String>,
    size: u64,
    cache: Arc<Mutex<Vec<(u64, Bytes)>>>,
    counters: Arc<ReadCounters>,
}

impl S3Chunks {
    fn fetch(&self, start: u64, len: u64) -> Result<Bytes> {
        let b = self
            .store
            .get_range(&self.url, self.etag.as_deref(), start, len)?;
        self.counters
            .raw_bytes
            .fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(b)
    }

    /// Replaces the cache with the given ranges (adjacent ones merged into one GET).
    fn prefetch(&self, mut ranges: Vec<(u64, u64)>) -> Result<()> {
        ranges.sort();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, l) in ranges {
            match merged.last_mut() {
                Some((ms, ml)) if *ms + *ml >= s => *ml = (*ml).max(s + l - *ms),
                _ => merged.push((s, l)),
            }
        }
        let mut cache = Vec::with_capacity(merged.len());
        self.cache.lock().expect("cache").clear();
        for (s, l) in merged {
            cache.push((s, self.fetch(s, l)?));
        }
        *self.cache.lock().expect("cache") = cache;
        Ok(())
    }

    fn cached(&self, start: u64, len: u64) -> Option<Bytes> {
        let cache = self.cache.lock().expect("cache");
        cache.iter().find_map(|(s, b)| {
            (start >= *s && start + len <= s + b.len() as u64)
                .then(|| b.slice((start - s) as usize..(start - s + len) as usize))
        })
    }
}

impl Length for S3Chunks {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for S3Chunks {
    type T = Cursor<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let cache = self.cache.lock().expect("cache");
        if let Some((s, b)) = cache
            .iter()
            .find(|(s, b)| start >= *s && start < s + b.len() as u64)
        {
            return Ok(Cursor::new(b.slice((start - s) as usize..)));
        }
        drop(cache);
        let len = (self.size.saturating_sub(start)).min(1 << 20);
        self.fetch(start, len)
            .map(Cursor::new)
            .map_err(|e| ParquetError::External(Box::new(e)))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        if let Some(b) = self.cached(start, length as u64) {
            return Ok(b);
        }
        self.fetch(start, length as u64)
            .map_err(|e| ParquetError::External(Box::new(e)))
    }
}

/// Reads one Parquet input, calling `emit` with each batch in file order (`emit` returns false
/// to stop early). Fails naming the file (and row group) when it is not Parquet or a page does
/// not decode; the rows delivered always add up to the footer's row count.
pub fn read_parquet(
    source: usize,
    item: &SourceItem,
    store: Option<&S3Store>,
    cfg: &SourceConfig,
    projection: &Projection,
    counters: Arc<ReadCounters>,
    mut emit: impl FnMut(RowChunk) -> bool,
) -> Result<ParquetTotals> {
    match &item.location {
        Location::Local(p) => {
            let f = std::fs::File::open(p).map_err(|e| crate::Error::io("open", p, e))?;
            let size = f.len();
            let f = LocalFile(Arc::new(f));
            let t = read_with(source, item, f, cfg, projection, None, &mut emit)?;
            counters.raw_bytes.fetch_add(size, Ordering::Relaxed);
            Ok(t)
        }
        Location::S3(u) => {
            let store = store.ok_or_else(|| SourceError::Config(format!("{u}: no S3 client")))?;
            let size = match item.size {
                Some(s) => s,
                None => return Err(perr(item, None, "object size unknown")),
            };
            let r = S3Chunks {
                store: store.clone(),
                url: u.clone(),
                etag: item.etag.clone(),
                size,
                cache: Arc::new(Mutex::new(Vec::new())),
                counters,
            };
            // Footer: one GET of the last 64 KiB (or the whole object) covers most footers.
            let tail = size.min(64 << 10);
            r.prefetch(vec![(size - tail, tail)])?;
            let pre = r.clone();
            read_with(source, item, r, cfg, projection, Some(&pre), &mut emit)
        }
    }
}

fn read_with<R: ChunkReader + Clone + 'static>(
    source: usize,
    item: &SourceItem,
    reader: R,
    cfg: &SourceConfig,
    projection: &Projection,
    s3: Option<&S3Chunks>,
    emit: &mut impl FnMut(RowChunk) -> bool,
) -> Result<ParquetTotals> {
    let meta = ArrowReaderMetadata::load(&reader, ArrowReaderOptions::new())
        .map_err(|e| perr(item, None, e))?;
    let schema = meta.metadata().file_metadata().schema_descr_ptr();
    let mask = match projection {
        None => ProjectionMask::all(),
        Some(cols) => ProjectionMask::columns(&schema, cols.iter().map(String::as_str)),
    };
    let leaves: Vec<usize> = (0..schema.num_columns())
        .filter(|i| mask.leaf_included(*i))
        .collect();
    let strings = top_level_strings(&meta, &mask);
    let meta = if strings.is_empty() {
        meta
    } else {
        strings_as_bytes(&meta, &strings).map_err(|e| perr(item, None, e))?
    };
    let mut totals = ParquetTotals::default();
    let expected = meta.metadata().file_metadata().num_rows().max(0) as u64;
    for g in 0..meta.metadata().num_row_groups() {
        crate::run::check_cancelled()?;
        let rg = meta.metadata().row_group(g);
        totals.bytes += leaves
            .iter()
            .map(|i| rg.column(*i).uncompressed_size().max(0) as u64)
            .sum::<u64>();
        if let Some(s3) = s3 {
            let ranges = leaves.iter().map(|i| rg.column(*i).byte_range()).collect();
            s3.prefetch(ranges)?;
        }
        let batches =
            ParquetRecordBatchReaderBuilder::new_with_metadata(reader.clone(), meta.clone())
                .with_row_groups(vec![g])
                .with_projection(mask.clone())
                .with_batch_size(cfg.batch_rows)
                .build()
                .map_err(|e| perr(item, Some(g), e))?;
        for batch in batches {
            let batch = batch.map_err(|e| perr(item, Some(g), e))?;
            let n = batch.num_rows() as u64;
            let chunk = RowChunk {
                source,
                row_group: g,
                first_row: totals.rows,
                batch,
            };
            totals.rows += n;
            if !emit(chunk) {
                return Ok(totals);
            }
        }
    }
    if totals.rows != expected {
        return Err(perr(
            item,
            None,
            format!(
                "the footer declares {expected} rows but {} were read",
                totals.rows
            ),
        ));
    }
    Ok(totals)
}

/// The projection's top-level string fields (plain, not repeated) with their leaf column:
/// `(field index, leaf index)`.
fn top_level_strings(meta: &ArrowReaderMetadata, mask: &ProjectionMask) -> Vec<(usize, usize)> {
    use arrow::datatypes::DataType;
    use parquet::basic::Type as Physical;
    let descr = meta.metadata().file_metadata().schema_descr_ptr();
    let mut raw = Vec::new();
    for (fi, f) in meta.schema().fields().iter().enumerate() {
        if !matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
            continue;
        }
        let leaf = (0..descr.num_columns()).find(|&i| {
            let c = descr.column(i);
            c.path().parts() == [f.name().clone()]
                && c.max_rep_level() == 0
                && c.physical_type() == Physical::BYTE_ARRAY
        });
        if let Some(leaf) = leaf.filter(|l| mask.leaf_included(*l)) {
            raw.push((fi, leaf));
        }
    }
    raw
}

/// The reader metadata of `meta` with the top-level string columns `raw` (from
/// [`top_level_strings`]) read as bytes: their String type is dropped from the Parquet schema,
/// so the Arrow reader decodes them into `Binary`/`LargeBinary` arrays without its own UTF-8
/// check, marked with [`UTF8_AS_BYTES`]. The ingest checks them value by value (simdutf8,
/// several times faster than the reader's check, which was a fifth of its time), so a bad value
/// rejects only its row. Everything else reads as the file's embedded Arrow schema says.
fn strings_as_bytes(
    meta: &ArrowReaderMetadata,
    raw: &[(usize, usize)],
) -> parquet::errors::Result<ArrowReaderMetadata> {
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::file::metadata::{FileMetaData, ParquetMetaData};
    use parquet::schema::types::{SchemaDescriptor, Type};

    let md = meta.metadata();
    let fm = md.file_metadata();
    let root = fm.schema_descr().root_schema();
    let names: Vec<&str> = raw
        .iter()
        .map(|(fi, _)| meta.schema().field(*fi).name().as_str())
        .collect();
    let fields = root
        .get_fields()
        .iter()
        .map(|t| {
            if !(t.is_primitive() && names.contains(&t.name())) {
                return Ok(t.clone());
            }
            let info = t.get_basic_info();
            let plain = Type::primitive_type_builder(t.name(), t.get_physical_type())
                .with_repetition(info.repetition())
                .with_id(info.has_id().then(|| info.id()))
                .build()?;
            Ok(Arc::new(plain))
        })
        .collect::<parquet::errors::Result<Vec<_>>>()?;
    let root = Type::group_type_builder(root.name())
        .with_fields(fields)
        .build()?;
    let file = FileMetaData::new(
        fm.version(),
        fm.num_rows(),
        fm.created_by().map(str::to_owned),
        fm.key_value_metadata().cloned(),
        Arc::new(SchemaDescriptor::new(Arc::new(root))),
        fm.column_orders().cloned(),
    );
    let plain = ParquetMetaData::new(file, md.row_groups().to_vec());
    let schema = meta.schema();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(fi, f)| {
            if !raw.iter().any(|r| r.0 == fi) {
                return f.as_ref().clone();
            }
            let bytes = match f.data_type() {
                DataType::LargeUtf8 => DataType::LargeBinary,
                _ => DataType::Binary,
            };
            let mut md = f.metadata().clone();
            md.insert(UTF8_AS_BYTES.to_string(), f.data_type().to_string());
            Field::new(f.name(), bytes, f.is_nullable()).with_metadata(md)
        })
        .collect();
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    ArrowReaderMetadata::try_new(
        Arc::new(plain),
        ArrowReaderOptions::new().with_schema(Arc::new(schema)),
    )
}
