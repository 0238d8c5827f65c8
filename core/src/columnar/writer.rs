//! One output Parquet file, written row group by row group. Buffered Arrow batches become a row
//! group when they reach the configured rows or bytes; the row group's columns are encoded and
//! compressed on the rayon pool (row groups of different files, and columns of one row group, in
//! parallel) and appended to the file in order. Brotli string columns are encoded by
//! [`BrotliColumns`] (the C encoder), every other column by parquet's Arrow column writers.

use super::ColumnarError;
use super::brotli_column::{BrotliColumns, EncodedColumn};
use super::config::BrotliEncoder;
use crate::Result;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::types::ColumnDescPtr;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

/// One encoded column chunk of a row group.
enum Chunk {
    /// From parquet's Arrow column writer.
    Arrow(ArrowColumnChunk),
    /// From [`BrotliColumns`].
    Brotli(EncodedColumn),
}

impl Chunk {
    fn append_to_row_group(
        self,
        rg: &mut SerializedRowGroupWriter<'_, BufWriter<File>>,
    ) -> std::result::Result<(), ParquetError> {
        match self {
            Chunk::Arrow(c) => c.append_to_row_group(rg),
            Chunk::Brotli(c) => c.append_to_row_group(rg),
        }
    }
}

type Encoded = std::result::Result<Vec<Chunk>, ParquetError>;

/// How a file's columns are encoded: the Parquet schema and, with the C Brotli encoder, the
/// columns it compresses.
#[derive(Clone)]
struct Columns {
    schema: SchemaRef,
    leaves: Vec<ColumnDescPtr>,
    brotli: Option<BrotliColumns>,
}

/// The row-group encodes running on the rayon pool, across all files. Each reports its end
/// here, so the converter waits for *any* encode to finish (not the oldest of a file) before it
/// submits more: the pool never idles while a slow row group holds up the queue. Results are
/// still appended to each file in order by [`PartWriter::collect_ready`].
pub(crate) struct EncodeSlots {
    done_tx: Sender<()>,
    done_rx: Receiver<()>,
    running: usize,
    max: usize,
}

/// Reports an encode's end when dropped, also when the encode panics.
struct Finished(Sender<()>);

impl Drop for Finished {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

impl EncodeSlots {
    /// At most `max` (≥ 1) encodes running at once.
    pub fn new(max: usize) -> Self {
        let (done_tx, done_rx) = channel();
        Self {
            done_tx,
            done_rx,
            running: 0,
            max: max.max(1),
        }
    }

    fn start(&mut self) -> Finished {
        self.running += 1;
        Finished(self.done_tx.clone())
    }

    /// Blocks until at most `max` encodes are running.
    pub fn wait_for_slot(&mut self) {
        while self.done_rx.try_recv().is_ok() {
            self.running -= 1;
        }
        while self.running > self.max && self.done_rx.recv().is_ok() {
            self.running -= 1;
        }
    }
}

/// A Parquet file being written.
pub(crate) struct PartWriter {
    path: PathBuf,
    file: SerializedFileWriter<BufWriter<File>>,
    factory: ArrowRowGroupWriterFactory,
    columns: Columns,
    buf: Vec<RecordBatch>,
    /// Rows buffered, not yet submitted.
    pub buf_rows: usize,
    /// Arrow bytes buffered, not yet submitted.
    pub buf_bytes: usize,
    pending: VecDeque<Receiver<Encoded>>,
    row_groups: usize,
    /// Rows written or submitted.
    pub rows: u64,
    /// Tokens written or submitted.
    pub tokens: u64,
}

fn encode(columns: Columns, writers: Vec<ArrowColumnWriter>, batches: Vec<RecordBatch>) -> Encoded {
    let schema = &columns.schema;
    if writers.len() != schema.fields().len() {
        return Err(ParquetError::General(
            "expected one Parquet leaf per Arrow field".into(),
        ));
    }
    writers
        .into_par_iter()
        .enumerate()
        .map(|(i, mut w)| {
            if let Some(b) = columns.brotli.as_ref().filter(|b| b.quality(i).is_some()) {
                let descr = columns.leaves[i].clone();
                return b.encode(descr, i, &batches).map(Chunk::Brotli);
            }
            let field = schema.field(i);
            for b in &batches {
                for leaf in compute_leaves(field, b.column(i))? {
                    w.write(&leaf)?;
                }
            }
            w.close().map(Chunk::Arrow)
        })
        .collect()
}

impl PartWriter {
    /// Creates `path` for batches of `schema`, its Brotli string columns compressed by `encoder`.
    pub fn create(
        path: &Path,
        schema: SchemaRef,
        props: WriterProperties,
        encoder: BrotliEncoder,
    ) -> Result<Self> {
        let f = File::create(path).map_err(|e| crate::Error::io("create", path, e))?;
        let w = ArrowWriter::try_new(
            BufWriter::with_capacity(1 << 20, f),
            schema.clone(),
            Some(props.clone()),
        )
        .map_err(|e| ColumnarError::parquet(path, e))?;
        let (file, factory) = w
            .into_serialized_writer()
            .map_err(|e| ColumnarError::parquet(path, e))?;
        let descr = file.schema_descr();
        let brotli =
            (encoder == BrotliEncoder::C).then(|| BrotliColumns::plan(&schema, descr, &props));
        let leaves = (0..descr.num_columns()).map(|i| descr.column(i)).collect();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            factory,
            columns: Columns {
                schema,
                leaves,
                brotli,
            },
            buf: Vec::new(),
            buf_rows: 0,
            buf_bytes: 0,
            pending: VecDeque::new(),
            row_groups: 0,
            rows: 0,
            tokens: 0,
        })
    }

    /// Buffers a batch (of this file's schema) carrying `tokens` tokens.
    pub fn push(&mut self, batch: RecordBatch, tokens: u64) {
        self.buf_rows += batch.num_rows();
        self.buf_bytes += batch.get_array_memory_size();
        self.rows += batch.num_rows() as u64;
        self.tokens += tokens;
        self.buf.push(batch);
    }

    /// Sends the buffered rows to the rayon pool as row groups of at most about `max_bytes` and
    /// at most `max_rows` rows each (batches are cut by rows where needed), each taking one of
    /// `slots`. With `keep_rest`, rows that do not fill a whole row group stay buffered.
    ///
    /// At the end of a conversion, small `max_bytes` spread the last work over the pool's
    /// threads instead of leaving one long row group to finish alone.
    pub fn submit(
        &mut self,
        max_bytes: usize,
        max_rows: usize,
        keep_rest: bool,
        slots: &mut EncodeSlots,
    ) -> Result<()> {
        let (max_bytes, max_rows) = (max_bytes.max(1), max_rows.max(1));
        let mut group: Vec<RecordBatch> = Vec::new();
        let (mut group_bytes, mut group_rows) = (0usize, 0usize);
        for b in self.take_buffer() {
            let rows = b.num_rows();
            let per_row = b
                .get_array_memory_size()
                .max(1)
                .div_ceil(rows.max(1))
                .max(1);
            let mut at = 0;
            while at < rows {
                let room = max_bytes.saturating_sub(group_bytes).max(per_row);
                let n = (room / per_row)
                    .min(max_rows - group_rows)
                    .clamp(1, rows - at);
                group.push(b.slice(at, n));
                group_bytes += n * per_row;
                group_rows += n;
                at += n;
                if group_bytes >= max_bytes || group_rows >= max_rows {
                    self.spawn_row_group(std::mem::take(&mut group), slots)?;
                    (group_bytes, group_rows) = (0, 0);
                }
            }
        }
        if keep_rest {
            self.buf = group;
            self.buf_rows = group_rows;
            self.buf_bytes = group_bytes;
            Ok(())
        } else {
            self.spawn_row_group(group, slots)
        }
    }

    fn take_buffer(&mut self) -> Vec<RecordBatch> {
        self.buf_rows = 0;
        self.buf_bytes = 0;
        std::mem::take(&mut self.buf)
    }

    fn spawn_row_group(
        &mut self,
        batches: Vec<RecordBatch>,
        slots: &mut EncodeSlots,
    ) -> Result<()> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(());
        }
        let writers = self
            .factory
            .create_column_writers(self.row_groups)
            .map_err(|e| ColumnarError::parquet(&self.path, e))?;
        self.row_groups += 1;
        let columns = self.columns.clone();
        let (tx, rx) = channel();
        let finished = slots.start();
        rayon::spawn(move || {
            let _ = tx.send(encode(columns, writers, batches));
            drop(finished);
        });
        self.pending.push_back(rx);
        Ok(())
    }

    fn append(&mut self, chunks: Encoded) -> Result<()> {
        let chunks = chunks.map_err(|e| ColumnarError::parquet(&self.path, e))?;
        let mut rg = self
            .file
            .next_row_group()
            .map_err(|e| ColumnarError::parquet(&self.path, e))?;
        for c in chunks {
            c.append_to_row_group(&mut rg)
                .map_err(|e| ColumnarError::parquet(&self.path, e))?;
        }
        rg.close()
            .map_err(|e| ColumnarError::parquet(&self.path, e))?;
        Ok(())
    }

    /// Appends every finished encode at the front of the queue without waiting.
    pub fn collect_ready(&mut self) -> Result<()> {
        while let Some(rx) = self.pending.front() {
            match rx.try_recv() {
                Ok(r) => {
                    self.pending.pop_front();
                    self.append(r)?;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    return Err(ColumnarError::Config("an encoding task panicked".into()).into());
                }
            }
        }
        Ok(())
    }

    /// Waits for the oldest in-flight encode and appends it.
    pub fn wait_oldest(&mut self) -> Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let r = rx
                .recv()
                .map_err(|_| ColumnarError::Config("an encoding task panicked".into()))?;
            self.append(r)?;
        }
        Ok(())
    }

    /// Encodes what is buffered (as row groups within the bounds), waits for everything and
    /// writes the footer. Returns the file size in bytes and the number of row groups.
    pub fn finish(
        mut self,
        max_bytes: usize,
        max_rows: usize,
        slots: &mut EncodeSlots,
    ) -> Result<(u64, usize)> {
        self.submit(max_bytes, max_rows, false, slots)?;
        while !self.pending.is_empty() {
            self.wait_oldest()?;
        }
        self.file
            .close()
            .map_err(|e| ColumnarError::parquet(&self.path, e))?;
        let meta =
            std::fs::metadata(&self.path).map_err(|e| crate::Error::io("stat", &self.path, e))?;
        Ok((meta.len(), self.row_groups))
    }
}
