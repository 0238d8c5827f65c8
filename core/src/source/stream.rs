//! Resolving inputs and streaming their lines: several inputs are read at once (bounded), and
//! their chunks are delivered strictly in input order, so outputs do not depend on timing.

use super::{
    ChunkTotals, CountingReader, Format, LineChunk, Location, Projection, ReadCounters, RowChunk,
    S3Store, S3Url, SourceConfig, SourceError, SourceItem, chunk_lines, decompress, expand_local,
    read_parquet,
};
use crate::Result;
use crossbeam_channel::{Receiver, bounded};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Expands inputs (local paths, directories, globs and `s3://` URLs) into the list of items to
/// read, in the order given (each input's matches sorted). Returns the S3 client when any input
/// is on S3.
pub fn resolve(
    inputs: &[String],
    cfg: &SourceConfig,
) -> Result<(Vec<SourceItem>, Option<S3Store>)> {
    cfg.validate()?;
    if inputs.is_empty() {
        return Err(SourceError::Config("no inputs given".into()).into());
    }
    let mut store: Option<S3Store> = None;
    let mut items = Vec::new();
    for input in inputs {
        if S3Url::is_s3(input) {
            let url = S3Url::parse(input)?;
            if store.is_none() {
                store = Some(S3Store::connect(cfg)?);
            }
            items.extend(store.as_ref().expect("store").list(&url)?);
        } else {
            items.extend(expand_local(input)?);
        }
    }
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert(i.name.clone()));
    Ok((items, store))
}

/// One input finished: its totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceDone {
    /// Index of the input.
    pub source: usize,
    /// Lines (Parquet: rows) and decompressed bytes read.
    pub totals: ChunkTotals,
    /// Bytes read from storage (compressed).
    pub raw_bytes: u64,
    /// Ranged-GET resumes.
    pub resumes: u64,
}

/// What the stream delivers, in input order.
#[derive(Debug)]
pub enum StreamItem {
    /// Lines of a JSONL input.
    Chunk(LineChunk),
    /// Rows of a Parquet input.
    Rows(RowChunk),
    /// An input is complete (after all its chunks).
    Done(SourceDone),
}

impl StreamItem {
    /// Bytes of memory the item holds (its lines, or its rows' arrays).
    pub fn mem_bytes(&self) -> usize {
        match self {
            StreamItem::Chunk(c) => c.data.len(),
            StreamItem::Rows(r) => r.batch.get_array_memory_size(),
            StreamItem::Done(_) => 0,
        }
    }
}

enum Msg {
    Item(StreamItem),
    Err(crate::Error),
}

/// Bytes an input's reader may have queued for the consumer beyond one item: long documents
/// make a Parquet batch of a thousand rows tens of megabytes, so a count of items alone does not
/// bound memory.
const QUEUED_BYTES: usize = 16 << 20;

/// The bytes queued in one input's channel: its reader waits while they exceed
/// [`QUEUED_BYTES`] (one item always passes, however large).
#[derive(Default)]
struct Queued {
    bytes: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

impl Queued {
    fn add(&self, n: usize) {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        while *b > 0 && *b + n > QUEUED_BYTES {
            b = self.freed.wait(b).unwrap_or_else(|e| e.into_inner());
        }
        *b += n;
    }

    fn remove(&self, n: usize) {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        *b = b.saturating_sub(n);
        self.freed.notify_all();
    }
}

/// Chunks of every input, read by background threads (`in_flight` inputs at a time).
pub struct ChunkStream {
    order: Receiver<(Receiver<Msg>, Arc<Queued>)>,
    current: Option<(Receiver<Msg>, Arc<Queued>)>,
    counters: Vec<Arc<ReadCounters>>,
}

fn read_error(item: &SourceItem, counters: &ReadCounters, e: std::io::Error) -> crate::Error {
    let offset = counters.raw_bytes.load(Ordering::Relaxed);
    match e.into_inner() {
        Some(inner) => match inner.downcast::<SourceError>() {
            Ok(se) => (*se).into(),
            Err(other) => SourceError::Read {
                source_name: item.name.clone(),
                offset,
                reason: other.to_string(),
            }
            .into(),
        },
        None => SourceError::Read {
            source_name: item.name.clone(),
            offset,
            reason: "I/O error".into(),
        }
        .into(),
    }
}

fn read_one(
    i: usize,
    item: &SourceItem,
    store: Option<&S3Store>,
    cfg: &SourceConfig,
    counters: Arc<ReadCounters>,
    projection: &Projection,
    mut emit: impl FnMut(StreamItem) -> bool,
) -> Result<ChunkTotals> {
    if item.format == Format::Parquet {
        let t = read_parquet(i, item, store, cfg, projection, counters, |r| {
            emit(StreamItem::Rows(r))
        })?;
        return Ok(ChunkTotals {
            lines: t.rows,
            bytes: t.bytes,
        });
    }
    let raw: Box<dyn std::io::Read + Send> = match &item.location {
        Location::Local(p) => {
            let f = std::fs::File::open(p).map_err(|e| crate::Error::io("open", p, e))?;
            Box::new(CountingReader::new(f, counters.clone()))
        }
        Location::S3(u) => {
            let store = store.ok_or_else(|| SourceError::Config(format!("{}: no S3 client", u)))?;
            Box::new(CountingReader::new(
                store.open(u, item.etag.clone(), counters.clone()),
                counters.clone(),
            ))
        }
    };
    let reader = decompress(raw, item.compression).map_err(|e| read_error(item, &counters, e))?;
    chunk_lines(reader, i, cfg.chunk_bytes, cfg.keep_line_bytes, |c| {
        emit(StreamItem::Chunk(c))
    })
    .map_err(|e| read_error(item, &counters, e))
}

impl ChunkStream {
    /// Starts reading `items` in the background; Parquet inputs read the columns `projection`
    /// names.
    pub fn start(
        items: Arc<Vec<SourceItem>>,
        store: Option<S3Store>,
        cfg: &SourceConfig,
        projection: Projection,
    ) -> Self {
        let cfg = cfg.clone();
        let counters: Vec<Arc<ReadCounters>> = items
            .iter()
            .map(|_| Arc::new(ReadCounters::default()))
            .collect();
        // The consumer holds one input's receiver; `in_flight - 1` more wait in the queue, each
        // with a reader filling its bounded channel. Readers are `in_flight` long-lived threads
        // taking the inputs in order (not a thread per input: a fresh thread starts with fresh
        // allocator pages, and hundreds of shards would fault in memory again and again).
        let (order_tx, order) =
            bounded::<(Receiver<Msg>, Arc<Queued>)>(cfg.in_flight.saturating_sub(1));
        type Job = (usize, crossbeam_channel::Sender<Msg>, Arc<Queued>);
        let (job_tx, job_rx) = bounded::<Job>(cfg.in_flight);
        for w in 0..cfg.in_flight {
            let (job_rx, items, store, cfg, counters, projection) = (
                job_rx.clone(),
                items.clone(),
                store.clone(),
                cfg.clone(),
                counters.clone(),
                projection.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("yunmin-read-{w}"))
                .spawn(move || {
                    for (i, tx, queued) in job_rx {
                        let c = counters[i].clone();
                        let emit = |it: StreamItem| {
                            queued.add(it.mem_bytes());
                            tx.send(Msg::Item(it)).is_ok()
                        };
                        let msg = match read_one(
                            i,
                            &items[i],
                            store.as_ref(),
                            &cfg,
                            c.clone(),
                            &projection,
                            emit,
                        ) {
                            Ok(totals) => Msg::Item(StreamItem::Done(SourceDone {
                                source: i,
                                totals,
                                raw_bytes: c.raw_bytes.load(Ordering::Relaxed),
                                resumes: c.resumes.load(Ordering::Relaxed),
                            })),
                            Err(e) => Msg::Err(e),
                        };
                        let _ = tx.send(msg);
                    }
                });
            if spawned.is_err() {
                // Fewer readers only read with less overlap; none at all is reported below.
                break;
            }
        }
        // Inputs are handed to the readers in order, each after its receiver is queued for the
        // consumer: at most `in_flight` are open, and the one the consumer waits on always has
        // a reader (readers take inputs in order and block only on their own).
        let n = items.len();
        std::thread::Builder::new()
            .name("yunmin-sources".into())
            .spawn(move || {
                for i in 0..n {
                    let (tx, rx) = bounded::<Msg>(4);
                    let queued = Arc::new(Queued::default());
                    if order_tx.send((rx, queued.clone())).is_err()
                        || job_tx.send((i, tx, queued)).is_err()
                    {
                        return;
                    }
                }
            })
            .expect("spawn source thread");
        Self {
            order,
            current: None,
            counters,
        }
    }

    /// Bytes read from storage so far, over all inputs (for progress).
    pub fn raw_bytes_read(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.raw_bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// The next item in input order; `None` when every input is done. A read failure of any
    /// input is returned as an error naming it.
    pub fn next_item(&mut self) -> Result<Option<StreamItem>> {
        if self.current.is_none() {
            match self.order.recv() {
                Ok(rx) => self.current = Some(rx),
                Err(_) => return Ok(None),
            }
        }
        let (rx, queued) = self.current.as_ref().expect("current");
        let (msg, queued) = (rx.recv(), queued.clone());
        match msg {
            Ok(Msg::Item(StreamItem::Done(d))) => {
                self.current = None;
                Ok(Some(StreamItem::Done(d)))
            }
            Ok(Msg::Item(c)) => {
                queued.remove(c.mem_bytes());
                Ok(Some(c))
            }
            Ok(Msg::Err(e)) => Err(e),
            Err(_) => {
                Err(SourceError::Config("a reader thread stopped without a result".into()).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` JSONL files of `i + 1` lines each (file `i`), resolved as one directory input.
    fn files(dir: &std::path::Path, n: usize) -> Vec<SourceItem> {
        for i in 0..n {
            let lines: String = (0..=i)
                .map(|l| format!("{{\"f\":{i},\"l\":{l}}}\n"))
                .collect();
            std::fs::write(dir.join(format!("f{i:02}.jsonl")), lines).unwrap();
        }
        resolve(&[dir.display().to_string()], &SourceConfig::default())
            .unwrap()
            .0
    }

    /// Every chunk and `Done` of the stream, in the order delivered.
    fn drain(items: Vec<SourceItem>, in_flight: usize) -> Result<Vec<StreamItem>> {
        let cfg = SourceConfig {
            in_flight,
            chunk_bytes: 1024,
            ..SourceConfig::default()
        };
        let mut s = ChunkStream::start(Arc::new(items), None, &cfg, None);
        let mut out = Vec::new();
        while let Some(it) = s.next_item()? {
            out.push(it);
        }
        Ok(out)
    }

    #[test]
    fn more_inputs_than_readers_arrive_whole_and_in_order() {
        let d = tempfile::tempdir().unwrap();
        let items = files(d.path(), 11);
        for in_flight in [1, 2, 4, 16] {
            let got = drain(items.clone(), in_flight).unwrap();
            let (mut expect_source, mut lines) = (0, 0);
            for it in &got {
                match it {
                    StreamItem::Chunk(c) => {
                        assert_eq!(c.source, expect_source, "in_flight {in_flight}");
                        lines += c.lines;
                    }
                    StreamItem::Done(done) => {
                        assert_eq!(done.source, expect_source);
                        assert_eq!(done.totals.lines, expect_source as u64 + 1);
                        assert_eq!(lines, expect_source as u64 + 1, "every line of the input");
                        expect_source += 1;
                        lines = 0;
                    }
                    StreamItem::Rows(_) => unreachable!("JSONL only"),
                }
            }
            assert_eq!(expect_source, 11, "every input done, in_flight {in_flight}");
        }
    }

    #[test]
    fn an_input_that_cannot_be_read_is_an_error_naming_it_not_a_hang() {
        let d = tempfile::tempdir().unwrap();
        let items = files(d.path(), 6);
        std::fs::remove_file(d.path().join("f03.jsonl")).unwrap();
        let e = drain(items, 2).expect_err("a missing input fails the stream");
        assert!(e.to_string().contains("f03.jsonl"), "{e}");
    }
}
