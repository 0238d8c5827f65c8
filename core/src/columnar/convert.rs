//! The streaming conversion: bounded chunks of JSONL → arrow-json with the explicit schema →
//! rejects with reasons → parallel tokenisation → one Parquet file per (domain, split).

use super::ColumnarError;
use super::chunks::{Chunk, ChunkReader};
use super::config::{BrotliEncoder, ConvertConfig, ExtraField, Layout, UnknownFields, parse_codec};
use super::memory::peak_rss_mb;
use super::report::{ConversionReport, FileReport, HELDOUT_DIR, REJECTS_FILE, REPORT_FILE};
use super::schema::{
    CORE_FIELDS, TOKENS_ELEMENT, domain_name_problem, input_schema, output_schema, schema_lines,
    schema_text,
};
use super::writer::{EncodeSlots, PartWriter};
use crate::ingest::Dataset;
use crate::run::{AtomicDir, check_cancelled, progress_bar, write_atomic};
use crate::text::Tokenizer;
use crate::{Error, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, Int32Array, ListArray, RecordBatch,
    StringArray, UInt32Array,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::compute::{concat_batches, filter_record_batch, take};
use arrow::datatypes::{Field, Int32Type, SchemaRef};
use arrow::json::ReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Whether document `id` goes to the held-out split: a seeded xxh3 hash of the id, below
/// `fraction` of the hash range. Stable across runs, machines and input order.
pub fn is_heldout(id: &str, seed: u64, fraction: f64) -> bool {
    fraction > 0.0
        && (xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), seed) as f64)
            < fraction * u64::MAX as f64
}

/// Writer properties: per-column codecs, dictionary and statistics settings.
pub fn writer_properties(
    cfg: &ConvertConfig,
    with_tokens: bool,
    extras: &[ExtraField],
) -> Result<WriterProperties> {
    let text = parse_codec(&cfg.text)?;
    let mut b = WriterProperties::builder()
        .set_compression(parse_codec(&cfg.other)?)
        .set_dictionary_enabled(cfg.dictionary)
        .set_statistics_enabled(cfg.statistics()?)
        .set_column_compression(ColumnPath::from("text"), text)
        .set_column_dictionary_enabled(ColumnPath::from("text"), false)
        .set_column_dictionary_enabled(ColumnPath::from("id"), false)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            "yunmin.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        )]));
    if with_tokens {
        let tokens = ColumnPath::new(vec!["tokens".into(), "list".into(), TOKENS_ELEMENT.into()]);
        b = b
            .set_column_compression(tokens.clone(), parse_codec(&cfg.tokens)?)
            .set_column_dictionary_enabled(tokens, false);
    }
    let _ = extras;
    Ok(b.build())
}

/// Rejected rows: `rejects.jsonl` (one JSON object per row: shard, line, category, reason, raw)
/// and counts per category.
struct Rejects {
    path: PathBuf,
    out: BufWriter<File>,
    total: u64,
    by_category: BTreeMap<String, u64>,
}

impl Rejects {
    fn create(path: PathBuf) -> Result<Self> {
        let f = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
        Ok(Self {
            path,
            out: BufWriter::new(f),
            total: 0,
            by_category: BTreeMap::new(),
        })
    }

    fn add(
        &mut self,
        shard: &Path,
        line: u64,
        category: &str,
        reason: &str,
        raw: &[u8],
    ) -> Result<()> {
        let rec = serde_json::json!({
            "shard": shard.display().to_string(),
            "line": line,
            "category": category,
            "reason": reason,
            "raw": String::from_utf8_lossy(raw),
        });
        serde_json::to_writer(&mut self.out, &rec).map_err(|e| Error::Json {
            path: self.path.clone(),
            source: e,
        })?;
        self.out
            .write_all(b"\n")
            .map_err(|e| Error::io("write", &self.path, e))?;
        self.total += 1;
        *self.by_category.entry(category.to_string()).or_default() += 1;
        tracing::debug!("rejected {}:{line}: {reason}", shard.display());
        Ok(())
    }

    fn finish(mut self) -> Result<(u64, BTreeMap<String, u64>)> {
        self.out
            .flush()
            .map_err(|e| Error::io("write", &self.path, e))?;
        Ok((self.total, self.by_category))
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Why a line does not fit the schema: (category, reason). `arrow_msg` is arrow-json's error,
/// used when the JSON-level checks find nothing more specific.
fn reject_reason(line: &[u8], cfg: &ConvertConfig, arrow_msg: &str) -> (&'static str, String) {
    let v: serde_json::Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return ("json", format!("invalid JSON: {e}")),
    };
    let Some(obj) = v.as_object() else {
        return (
            "json",
            format!("a line must be a JSON object, got {}", json_kind(&v)),
        );
    };
    for f in ["id", "text", "domain", "source"] {
        match obj.get(f) {
            None => return ("schema", format!("missing required field `{f}`")),
            Some(serde_json::Value::String(_)) => {}
            Some(other) => {
                return (
                    "schema",
                    format!("field `{f}` must be a string, got {}", json_kind(other)),
                );
            }
        }
    }
    for e in &cfg.extras {
        let ok = match obj.get(&e.name) {
            None | Some(serde_json::Value::Null) => true,
            Some(v) => match e.ty.as_str() {
                "utf8" | "string" => v.is_string(),
                "int64" | "int" => v.is_i64(),
                "float64" | "float" => v.is_number(),
                _ => v.is_boolean(),
            },
        };
        if !ok {
            return (
                "schema",
                format!(
                    "field `{}` must be {} or null, got {}",
                    e.name,
                    e.ty,
                    json_kind(&obj[&e.name])
                ),
            );
        }
    }
    if cfg.unknown_fields == UnknownFields::Reject
        && let Some(k) = obj.keys().find(|k| {
            !CORE_FIELDS[..4].contains(&k.as_str()) && !cfg.extras.iter().any(|e| &e.name == *k)
        })
    {
        return (
            "unknown_field",
            format!(
                "undeclared field `{k}` (declare it as an extra column or set unknown_fields = ignore)"
            ),
        );
    }
    ("schema", arrow_msg.to_string())
}

/// A chunk decoded by arrow-json.
struct Decoded {
    /// The rows that fit the schema.
    batch: RecordBatch,
    /// Per row of `batch`, the chunk line it came from.
    rows: Vec<usize>,
    /// Lines that do not fit: (chunk line, category, reason), in line order.
    rejected: Vec<(usize, &'static str, String)>,
}

/// Decodes a chunk with arrow-json: the rows that fit the schema and the lines that do not,
/// with their reasons.
fn decode_chunk(chunk: &Chunk, schema: &SchemaRef, cfg: &ConvertConfig) -> Result<Decoded> {
    let strict = cfg.unknown_fields == UnknownFields::Reject;
    let make = |rows: usize| {
        ReaderBuilder::new(schema.clone())
            .with_batch_size(rows.max(1))
            .with_strict_mode(strict)
            .build_decoder()
    };
    let decode = |bytes: &[u8],
                  rows: usize|
     -> std::result::Result<Option<RecordBatch>, arrow::error::ArrowError> {
        let mut dec = make(rows)?;
        let mut off = 0;
        while off < bytes.len() {
            let n = dec.decode(&bytes[off..])?;
            if n == 0 {
                break;
            }
            off += n;
        }
        if off < bytes.len() {
            return Ok(None);
        }
        dec.flush()
    };
    let n = chunk.lines.len();
    let mut out = Decoded {
        batch: RecordBatch::new_empty(schema.clone()),
        rows: Vec::new(),
        rejected: Vec::new(),
    };
    if n == 0 {
        return Ok(out);
    }
    // Fast path: the whole chunk decodes, one row per line.
    if let Ok(Some(b)) = decode(&chunk.buf, n + 1)
        && b.num_rows() == n
    {
        out.batch = b;
        out.rows = (0..n).collect();
        return Ok(out);
    }
    // Slow path: line by line, to find and explain the bad ones.
    let mut good = Vec::new();
    for i in 0..n {
        let line = chunk.line(i);
        match decode(line, 2) {
            Ok(Some(b)) if b.num_rows() == 1 => {
                good.push(b);
                out.rows.push(i);
            }
            Ok(_) => {
                out.rejected
                    .push((i, "json", "a line must hold exactly one JSON object".into()))
            }
            Err(e) => {
                let (cat, reason) = reject_reason(line, cfg, &e.to_string());
                out.rejected.push((i, cat, reason));
            }
        }
    }
    out.batch = concat_batches(schema, &good).map_err(ColumnarError::from)?;
    Ok(out)
}

/// Chunks read ahead on their own thread and decoded there, handed over in order through a
/// bounded channel: the converting thread groups and buffers one chunk while the next one is
/// read and decoded. Dropping the receiver stops the thread.
fn spawn_decoder<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut reader: ChunkReader,
    schema: &'scope SchemaRef,
    cfg: &'scope ConvertConfig,
) -> std::sync::mpsc::Receiver<Result<(Chunk, Decoded)>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(DECODE_AHEAD);
    scope.spawn(move || {
        loop {
            let next = reader.next_chunk().and_then(|c| {
                c.map(|c| decode_chunk(&c, schema, cfg).map(|d| (c, d)))
                    .transpose()
            });
            let stop = !matches!(next, Ok(Some(_)));
            let sent = match next {
                Ok(Some(item)) => tx.send(Ok(item)),
                Ok(None) => Ok(()),
                Err(e) => tx.send(Err(e)),
            };
            if stop || sent.is_err() {
                break;
            }
        }
    });
    rx
}

/// Decoded chunks waiting for the converting thread.
const DECODE_AHEAD: usize = 0;

/// Builds `tokens` (`list<int32>`) and `n_tokens` for the texts of `batch`.
fn tokenize(batch: &RecordBatch, tok: &Tokenizer) -> Result<(ArrayRef, ArrayRef, u64)> {
    let texts = batch.column(1).as_string::<i32>();
    let refs: Vec<&str> = (0..texts.len()).map(|i| texts.value(i)).collect();
    let ids = tok.encode_batch(&refs)?;
    let total: usize = ids.iter().map(Vec::len).sum();
    let mut offsets = Vec::with_capacity(ids.len() + 1);
    let mut values = Vec::with_capacity(total);
    let mut counts = Vec::with_capacity(ids.len());
    offsets.push(0i32);
    for v in &ids {
        values.extend(v.iter().map(|&x| x as i32));
        let end = i32::try_from(values.len()).map_err(|_| {
            ColumnarError::Config("more than 2^31 tokens in one chunk; lower chunk_mb".into())
        })?;
        offsets.push(end);
        counts.push(v.len() as i32);
    }
    let field = Arc::new(Field::new(
        TOKENS_ELEMENT,
        arrow::datatypes::DataType::Int32,
        false,
    ));
    let list = ListArray::try_new(
        field,
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(Int32Array::from(values)),
        None,
    )
    .map_err(ColumnarError::from)?;
    Ok((
        Arc::new(list),
        Arc::new(Int32Array::from(counts)),
        total as u64,
    ))
}

/// Row groups per thread, at the configured size, that the end of the input may hold before
/// [`Outputs::finish`] cuts it evenly instead.
const TAIL_ROW_GROUPS: usize = 2;

/// The smallest row group the end of a conversion is cut into (1 MiB of Arrow data).
const MIN_TAIL_ROW_GROUP: usize = 1 << 20;

/// A finished output file.
struct Written {
    domain: String,
    heldout: bool,
    rows: u64,
    tokens: u64,
    row_groups: usize,
    bytes: u64,
}

/// Everything being written: one [`PartWriter`] per (domain, held out).
struct Outputs {
    dir: PathBuf,
    layout: Layout,
    schema: SchemaRef,
    props: WriterProperties,
    brotli_encoder: BrotliEncoder,
    writers: BTreeMap<(String, bool), PartWriter>,
    slots: EncodeSlots,
    threads: usize,
    /// The input left is at most [`TAIL_ROW_GROUPS`] row groups per thread: from here on rows
    /// stay buffered (within `buffer_cap` and `rg_rows`) and [`Outputs::finish`] cuts them
    /// evenly.
    at_tail: bool,
    /// Row groups submitted because they were full.
    started: usize,
    rg_rows: usize,
    rg_bytes: usize,
    buffer_cap: usize,
}

/// Which documents a conversion takes: all, or those of the domains `ConvertConfig::domains`
/// lists (how a conversion is cut into one part per domain). A line that does not fit the
/// schema belongs to the domain its JSON names; one whose domain cannot be read at all to the
/// dataset's first domain, so every line is counted by exactly one part.
struct DomainFilter {
    only: Option<BTreeMap<String, bool>>,
    first_domain: Option<Option<String>>,
}

impl DomainFilter {
    fn new(domains: &[String]) -> Self {
        Self {
            only: (!domains.is_empty())
                .then(|| domains.iter().map(|d| (d.clone(), false)).collect()),
            first_domain: None,
        }
    }

    /// Whether rows of domain `d` are converted here.
    fn owns(&mut self, d: &str) -> bool {
        match &mut self.only {
            None => true,
            Some(m) => m.get_mut(d).map(|seen| *seen = true).is_some(),
        }
    }

    /// Whether the rejected `line` is reported here.
    fn owns_line(&mut self, line: &[u8], dataset: &Dataset) -> Result<bool> {
        if self.only.is_none() {
            return Ok(true);
        }
        let named = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("domain")?.as_str().map(str::to_string));
        let d = match named {
            Some(d) => d,
            None => {
                if self.first_domain.is_none() {
                    self.first_domain = Some(first_domain(dataset)?);
                }
                match self.first_domain.clone().flatten() {
                    Some(d) => d,
                    None => return Ok(true),
                }
            }
        };
        Ok(self.owns(&d))
    }

    /// Fails naming the listed domains that had no documents.
    fn check_all_seen(&self, dataset: &Dataset) -> Result<()> {
        let missing: Vec<&str> = self
            .only
            .iter()
            .flatten()
            .filter(|(_, seen)| !**seen)
            .map(|(d, _)| d.as_str())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(ColumnarError::Config(format!(
            "`domains` lists {missing:?}, which have no documents in {}",
            dataset.dir().display()
        ))
        .into())
    }
}

/// The dataset's first domain (sorted): from `dataset.json`, else from a scan that skips the
/// lines that are not documents.
fn first_domain(dataset: &Dataset) -> Result<Option<String>> {
    if let Ok(d) = dataset.domains() {
        return Ok(d.into_iter().next());
    }
    let mut first: Option<String> = None;
    for shard in dataset.shards()? {
        let text = std::fs::read(&shard).map_err(|e| Error::io("read", &shard, e))?;
        for line in text.split(|b| *b == b'\n') {
            let d = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("domain")?.as_str().map(str::to_string));
            if let Some(d) = d
                && first.as_ref().is_none_or(|f| d < *f)
            {
                first = Some(d);
            }
        }
    }
    Ok(first)
}

/// The path of a domain's file in `layout`, relative to the output directory.
fn rel_path(layout: Layout, domain: &str, heldout: bool) -> String {
    match (layout, heldout) {
        (Layout::Flat, true) => format!("{HELDOUT_DIR}/{domain}.parquet"),
        (Layout::Flat, false) => format!("{domain}.parquet"),
        (Layout::Hf, true) => format!("{domain}/heldout-00000-of-00001.parquet"),
        (Layout::Hf, false) => format!("{domain}/train-00000-of-00001.parquet"),
    }
}

/// The dataset card of the Hugging Face layout: one config per domain and `all`, each with a
/// `train` and (when held out) a `heldout` split.
pub(super) fn hf_readme(domains: &[String], heldout: bool) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("string");
    let mut s = String::from("---\nconfigs:\n");
    let mut config = |name: &str, dir: &str, default: bool| {
        s.push_str(&format!("- config_name: {}\n", q(name)));
        if default {
            s.push_str("  default: true\n");
        }
        s.push_str("  data_files:\n");
        s.push_str(&format!(
            "  - split: train\n    path: {}\n",
            q(&format!("{dir}/train-*.parquet"))
        ));
        if heldout {
            s.push_str(&format!(
                "  - split: heldout\n    path: {}\n",
                q(&format!("{dir}/heldout-*.parquet"))
            ));
        }
    };
    config("all", "*", true);
    for d in domains {
        config(d, d, false);
    }
    s.push_str("---\n\nWritten by `yunmin parquet convert --layout hf` (or `to_parquet(…, #{ layout: \"hf\" })`): one directory per domain, splits `train` and `heldout`.\n");
    s
}

impl Outputs {
    fn rel(&self, domain: &str, heldout: bool) -> String {
        rel_path(self.layout, domain, heldout)
    }

    fn writer(&mut self, domain: &str, heldout: bool) -> Result<&mut PartWriter> {
        let key = (domain.to_string(), heldout);
        if !self.writers.contains_key(&key) {
            let path = self.dir.join(self.rel(domain, heldout));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("create directory", parent, e))?;
            }
            let w = PartWriter::create(
                &path,
                self.schema.clone(),
                self.props.clone(),
                self.brotli_encoder,
            )?;
            self.writers.insert(key.clone(), w);
        }
        Ok(self.writers.get_mut(&key).expect("inserted"))
    }

    fn push(&mut self, domain: &str, heldout: bool, batch: RecordBatch, tokens: u64) -> Result<()> {
        let (rg_rows, rg_bytes) = (self.rg_rows, self.rg_bytes);
        self.writer(domain, heldout)?.push(batch, tokens);
        let w = self
            .writers
            .get_mut(&(domain.to_string(), heldout))
            .expect("created");
        // The first row groups of a conversion are smaller, so every thread has work early.
        let rg_bytes = if self.started < self.threads {
            (rg_bytes / 4).max(MIN_TAIL_ROW_GROUP)
        } else {
            rg_bytes
        };
        if w.buf_rows >= rg_rows || (!self.at_tail && w.buf_bytes >= rg_bytes) {
            // Whole row groups go; a remainder below both bounds stays buffered.
            let max_bytes = if self.at_tail { usize::MAX } else { rg_bytes };
            w.submit(max_bytes, rg_rows, true, &mut self.slots)?;
            self.started += 1;
        }
        // Memory bound 1: buffered Arrow data across files.
        while self.writers.values().map(|w| w.buf_bytes).sum::<usize>() > self.buffer_cap {
            let w = self
                .writers
                .values_mut()
                .max_by_key(|w| w.buf_bytes)
                .expect("a writer");
            w.submit(rg_bytes, rg_rows, false, &mut self.slots)?;
        }
        // Memory bound 2: row groups being encoded.
        self.slots.wait_for_slot();
        for w in self.writers.values_mut() {
            w.collect_ready()?;
        }
        Ok(())
    }

    /// Submits what is still buffered, then finishes the files in order. The remaining data is
    /// cut into row groups of at most a quarter of it per thread (and at least
    /// [`MIN_TAIL_ROW_GROUP`]), the largest buffers first, so that the last encodes end together
    /// instead of one long row group finishing alone.
    fn finish(mut self) -> Result<Vec<Written>> {
        let buffered: usize = self.writers.values().map(|w| w.buf_bytes).sum();
        let part = (buffered / (4 * self.threads)).max(MIN_TAIL_ROW_GROUP);
        let mut order: Vec<&mut PartWriter> = self.writers.values_mut().collect();
        order.sort_by_key(|w| std::cmp::Reverse(w.buf_bytes));
        for w in order {
            w.submit(part, self.rg_rows, false, &mut self.slots)?;
        }
        let mut done = Vec::with_capacity(self.writers.len());
        for ((domain, heldout), w) in std::mem::take(&mut self.writers) {
            let (rows, tokens) = (w.rows, w.tokens);
            let (bytes, row_groups) = w.finish(self.rg_bytes, self.rg_rows, &mut self.slots)?;
            done.push(Written {
                domain,
                heldout,
                rows,
                tokens,
                row_groups,
                bytes,
            });
        }
        Ok(done)
    }
}

/// Converts `dataset` into Parquet files under `out_dir` (replaced atomically when complete):
/// `<domain>.parquet`, `heldout/<domain>.parquet` (when `cfg.heldout` > 0), a
/// `<domain>.schema.txt` next to each, `schema.txt`, `rejects.jsonl` and `parquet_report.json`.
/// With a tokenizer the files carry `tokens` and `n_tokens`.
///
/// Memory is bounded by the configuration (chunk size, `buffer_mb`, row groups in flight), not
/// by the input size. Rows that do not fit the schema, or whose domain cannot name a file, are
/// written to `rejects.jsonl` with the reason and counted in the report.
pub fn convert(
    dataset: &Dataset,
    out_dir: &Path,
    cfg: &ConvertConfig,
    tokenizer: Option<&Tokenizer>,
) -> Result<ConversionReport> {
    cfg.check()?;
    let t0 = Instant::now();
    let with_tokens = tokenizer.is_some();
    let in_schema = input_schema(&cfg.extras)?;
    let out_schema = output_schema(&cfg.extras, with_tokens)?;
    let shards = dataset.shards()?;
    let input_bytes: u64 = shards
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let atomic = AtomicDir::new(out_dir)?;
    let tmp = atomic.path().to_path_buf();
    let first_dir = match cfg.layout {
        Layout::Flat => tmp.join(HELDOUT_DIR),
        Layout::Hf => tmp.clone(),
    };
    std::fs::create_dir_all(first_dir).map_err(|e| Error::io("create directory", &tmp, e))?;
    let mut rejects = Rejects::create(tmp.join(REJECTS_FILE))?;
    let threads = rayon::current_num_threads().max(1);
    let mut outs = Outputs {
        dir: tmp.clone(),
        layout: cfg.layout,
        schema: out_schema.clone(),
        props: writer_properties(cfg, with_tokens, &cfg.extras)?,
        brotli_encoder: cfg.brotli_encoder,
        writers: BTreeMap::new(),
        slots: EncodeSlots::new(threads),
        threads,
        at_tail: false,
        started: 0,
        rg_rows: cfg.row_group_rows,
        rg_bytes: cfg.row_group_mb << 20,
        buffer_cap: cfg.buffer_mb << 20,
    };
    let reader = ChunkReader::new(shards.clone(), cfg.chunk_rows, cfg.chunk_mb << 20);
    let bar = progress_bar(input_bytes, "parquet");
    let mut domain_problem: HashMap<String, Option<String>> = HashMap::new();
    let mut filter = DomainFilter::new(&cfg.domains);
    let (mut docs_in, mut read_bytes) = (0u64, 0u64);
    std::thread::scope(|scope| -> Result<()> {
        let decoded_chunks = spawn_decoder(scope, reader, &in_schema, cfg);
        for item in decoded_chunks {
            let (chunk, decoded) = item?;
            check_cancelled()?;
            bar.inc(chunk.raw_bytes);
            read_bytes += chunk.raw_bytes;
            outs.at_tail = input_bytes.saturating_sub(read_bytes)
                <= (TAIL_ROW_GROUPS * threads * outs.rg_bytes) as u64;
            let Decoded {
                batch,
                rows,
                rejected,
            } = decoded;
            // The chunk's rejects, in line order: lines that do not fit the schema (with a
            // domain filter, only those of the listed domains), then rows whose domain
            // cannot name a file.
            let mut chunk_rejects: Vec<(usize, &str, String)> = Vec::new();
            for (i, category, reason) in rejected {
                if filter.owns_line(chunk.line(i), dataset)? {
                    chunk_rejects.push((i, category, reason));
                }
            }
            docs_in += chunk_rejects.len() as u64;
            let domains = batch.column(2).as_string::<i32>();
            let mut keep = Vec::with_capacity(batch.num_rows());
            for (r, &line_idx) in rows.iter().enumerate() {
                let d = domains.value(r);
                if !filter.owns(d) {
                    keep.push(false);
                    continue;
                }
                docs_in += 1;
                if !domain_problem.contains_key(d) {
                    domain_problem.insert(d.to_string(), domain_name_problem(d));
                }
                match &domain_problem[d] {
                    None => keep.push(true),
                    Some(problem) => {
                        chunk_rejects.push((line_idx, "domain", problem.clone()));
                        keep.push(false);
                    }
                }
            }
            chunk_rejects.sort_by_key(|(i, _, _)| *i);
            for (i, category, reason) in &chunk_rejects {
                let l = chunk.lines[*i];
                rejects.add(&shards[l.shard], l.line, category, reason, chunk.line(*i))?;
            }
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = if keep.iter().all(|k| *k) {
                batch
            } else {
                filter_record_batch(&batch, &BooleanArray::from(keep))
                    .map_err(ColumnarError::from)?
            };
            if batch.num_rows() == 0 {
                continue;
            }
            // Full output columns (domain still plain utf8; made a dictionary per file below).
            let mut cols: Vec<ArrayRef> = batch.columns()[..4].to_vec();
            if let Some(tok) = tokenizer {
                let (t, n, _) = tokenize(&batch, tok)?;
                cols.push(t);
                cols.push(n);
            }
            cols.extend(batch.columns()[4..].iter().cloned());
            let n_tokens_col = if with_tokens {
                Some(cols[5].as_primitive::<Int32Type>().clone())
            } else {
                None
            };
            // Group rows by (domain, split), keeping input order inside each group.
            let ids = batch.column(0).as_string::<i32>();
            let domains = batch.column(2).as_string::<i32>();
            let mut order: Vec<(String, bool)> = Vec::new();
            let mut groups: HashMap<(String, bool), Vec<u32>> = HashMap::new();
            for r in 0..batch.num_rows() {
                let key = (
                    domains.value(r).to_string(),
                    is_heldout(ids.value(r), cfg.seed, cfg.heldout),
                );
                groups
                    .entry(key.clone())
                    .or_insert_with(|| {
                        order.push(key);
                        Vec::new()
                    })
                    .push(r as u32);
            }
            for key in order {
                let idx = groups.remove(&key).expect("group");
                let n = idx.len();
                let whole = n == batch.num_rows();
                let idx = UInt32Array::from(idx);
                let mut out: Vec<ArrayRef> = Vec::with_capacity(cols.len());
                for (j, c) in cols.iter().enumerate() {
                    if j == 2 {
                        let dict = DictionaryArray::<Int32Type>::try_new(
                            Int32Array::from(vec![0; n]),
                            Arc::new(StringArray::from(vec![key.0.as_str()])),
                        )
                        .map_err(ColumnarError::from)?;
                        out.push(Arc::new(dict));
                    } else if whole {
                        out.push(c.clone());
                    } else {
                        out.push(take(c.as_ref(), &idx, None).map_err(ColumnarError::from)?);
                    }
                }
                let tokens: u64 = match &n_tokens_col {
                    Some(nt) => idx
                        .values()
                        .iter()
                        .map(|&i| nt.value(i as usize) as u64)
                        .sum(),
                    None => 0,
                };
                let b =
                    RecordBatch::try_new(out_schema.clone(), out).map_err(ColumnarError::from)?;
                outs.push(&key.0, key.1, b, tokens)?;
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    filter.check_all_seen(dataset)?;
    // Every domain gets both files (empty when all its rows went to the other split).
    let domains: Vec<String> = {
        let mut d: Vec<String> = outs.writers.keys().map(|(d, _)| d.clone()).collect();
        d.dedup();
        d
    };
    for d in &domains {
        outs.writer(d, false)?;
        if cfg.heldout > 0.0 {
            outs.writer(d, true)?;
        }
    }
    let title_schema = schema_text(&out_schema, "every domain");
    write_atomic(&tmp.join("schema.txt"), title_schema.as_bytes())?;
    let mut files = BTreeMap::new();
    let (mut rows_written, mut tokens_written, mut output_bytes) = (0, 0, 0);
    for w in outs.finish()? {
        let rel = rel_path(cfg.layout, &w.domain, w.heldout);
        let split = if w.heldout { "heldout" } else { "train" };
        let (schema_rel, title) = match cfg.layout {
            Layout::Flat => (
                rel.strip_suffix(".parquet").unwrap_or(&rel).to_string() + ".schema.txt",
                format!("domain {} ({split})", w.domain),
            ),
            // One file per domain directory: a `<split>-…schema.txt` beside the shards would
            // match the `datasets` split patterns.
            Layout::Hf => (
                format!("{}/schema.txt", w.domain),
                format!("domain {}", w.domain),
            ),
        };
        let text = schema_text(&out_schema, &title);
        write_atomic(&tmp.join(&schema_rel), text.as_bytes())?;
        rows_written += w.rows;
        tokens_written += w.tokens;
        output_bytes += w.bytes;
        files.insert(
            rel,
            FileReport {
                domain: w.domain,
                split: split.into(),
                rows: w.rows,
                tokens: w.tokens,
                bytes: w.bytes,
                row_groups: w.row_groups,
                schema_file: schema_rel,
            },
        );
    }
    if cfg.heldout == 0.0 && cfg.layout == Layout::Flat {
        let _ = std::fs::remove_dir(tmp.join(HELDOUT_DIR));
    }
    if cfg.layout == Layout::Hf {
        write_atomic(
            &tmp.join("README.md"),
            hf_readme(&domains, cfg.heldout > 0.0).as_bytes(),
        )?;
    }
    let (rejected, rejected_by_category) = rejects.finish()?;
    if rejected > 0 {
        tracing::warn!(
            "{rejected} rows rejected ({rejected_by_category:?}); reasons in {}/{REJECTS_FILE}",
            out_dir.display()
        );
    }
    let report = ConversionReport {
        input: dataset.dir().to_path_buf(),
        output: out_dir.to_path_buf(),
        config: cfg.clone(),
        tokenizer: tokenizer.map(Tokenizer::info),
        schema: schema_lines(&out_schema),
        domains,
        files,
        docs_in,
        rows_written,
        tokens_written,
        rejected,
        rejected_by_category,
        rejects_file: REJECTS_FILE.into(),
        input_bytes,
        output_bytes,
        seconds: t0.elapsed().as_secs_f64(),
        peak_rss_mb: peak_rss_mb(),
    };
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::Json {
        path: tmp.join(REPORT_FILE),
        source: e,
    })?;
    write_atomic(&tmp.join(REPORT_FILE), &json)?;
    atomic.commit()?;
    Ok(report)
}
