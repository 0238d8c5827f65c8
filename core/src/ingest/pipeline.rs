//! The ingest run: resolve inputs, stream their lines (JSONL) or rows (Parquet), validate
//! chunks in parallel (rayon),
//! and write documents, rejects, the preview and the report — in input order, so a rerun
//! gives identical files.

use super::parts::Part;
use super::rows::validate_rows;
use super::validate::{FieldSpec, Rejection, parse_line, write_document, write_reject};
use super::{
    Dataset, DatasetWriter, Document, IngestConfig, IngestError, IngestOutputs, IngestReport,
    RejectReason, SourceReport,
};
use crate::run::{AtomicDir, RunContext, write_atomic};
use crate::source::{ChunkStream, LineChunk, S3Store, S3Url, SourceItem, StreamItem, resolve};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Bump when validation or output format changes (part of the stage-cache key).
pub const INGEST_CODE_VERSION: &str = "ingest-v3";

/// File name of the rejects inside the rejected directory.
pub const REJECTS_FILE: &str = "rejected.jsonl";

/// What [`ingest`] returns.
#[derive(Debug, Clone)]
pub struct IngestOutcome {
    /// The dataset of valid documents.
    pub dataset: Dataset,
    /// Counts and outputs.
    pub report: IngestReport,
    /// Whether the stage cache answered (nothing was read).
    pub cached: bool,
}

/// Result of validating one chunk of lines or rows.
pub(super) struct ChunkResult {
    pub(super) source: usize,
    pub(super) docs: Vec<u8>,
    pub(super) valid: u64,
    pub(super) domains: BTreeMap<String, u64>,
    pub(super) rejects: Vec<u8>,
    pub(super) reasons: [u64; RejectReason::ALL.len()],
    pub(super) lines: u64,
}

impl ChunkResult {
    /// A result writing its documents into `docs` (emptied), with room for `capacity` bytes.
    fn new(source: usize, mut docs: Vec<u8>, capacity: usize) -> Self {
        docs.clear();
        docs.reserve(capacity);
        Self {
            source,
            docs,
            valid: 0,
            domains: BTreeMap::new(),
            rejects: Vec::new(),
            reasons: [0; RejectReason::ALL.len()],
            lines: 0,
        }
    }
}

/// A stream item after validation, numbered for the writer to put back in input order.
enum Validated {
    /// A chunk's result, with the rows or lines the chunk held.
    Chunk(ChunkResult, u64),
    /// An input is complete.
    Done(crate::source::SourceDone),
}

/// Document buffers handed back after writing, so each batch reuses memory already paged in
/// instead of faulting in fresh pages (a tenth of the ingest's time before).
#[derive(Default)]
struct BufferPool(std::sync::Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut p| p.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn give(&self, b: Vec<u8>, keep: usize) {
        if let Ok(mut p) = self.0.lock()
            && p.len() < keep
        {
            p.push(b);
        }
    }
}

/// What validation needs to know of an input.
pub(super) struct SourceMeta {
    /// Input name (path or URL).
    pub(super) name: String,
    /// Domain of records without one.
    pub(super) fallback_domain: String,
    /// Split of a Hugging Face datasets shard, written into each document.
    pub(super) split: Option<String>,
}

fn validate_chunk(
    c: &LineChunk,
    meta: &SourceMeta,
    max_line_bytes: usize,
    fields: &FieldSpec,
    buf: Vec<u8>,
) -> ChunkResult {
    let mut r = ChunkResult::new(c.source, buf, c.data.len() + c.data.len() / 8);
    if let Some(o) = c.oversize {
        let rej = Rejection {
            reason: RejectReason::TooLarge,
            detail: format!(
                "{} bytes, more than max_line_bytes = {max_line_bytes}; only the first {} bytes are kept",
                o.total_bytes,
                c.data.len()
            ),
        };
        write_reject(
            &mut r.rejects,
            &meta.name,
            c.first_line,
            &rej,
            &c.data,
            o.total_bytes,
            true,
        );
        r.reasons[RejectReason::TooLarge.index()] += 1;
        r.lines = 1;
        return r;
    }
    let mut last_domain: Option<(String, u64)> = None;
    for (no, line) in c.lines() {
        r.lines += 1;
        match parse_line(line, max_line_bytes, fields) {
            Ok(f) => {
                write_document(&mut r.docs, &f, &meta.name, no, &meta.fallback_domain);
                r.valid += 1;
                let d = f.domain.as_deref().unwrap_or(&meta.fallback_domain);
                match &mut last_domain {
                    Some((ld, n)) if ld == d => *n += 1,
                    _ => {
                        if let Some((ld, n)) = last_domain.take() {
                            *r.domains.entry(ld).or_default() += n;
                        }
                        last_domain = Some((d.to_string(), 1));
                    }
                }
            }
            Err(rej) => {
                write_reject(
                    &mut r.rejects,
                    &meta.name,
                    no,
                    &rej,
                    line,
                    line.len() as u64,
                    false,
                );
                r.reasons[rej.reason.index()] += 1;
            }
        }
    }
    if let Some((ld, n)) = last_domain {
        *r.domains.entry(ld).or_default() += n;
    }
    r
}

/// Bytes to reserve for the documents of a Parquet chunk: its columns' bytes (of the slice, not
/// of the row group it was cut from) and some room per row for keys and quotes.
fn rows_capacity(c: &crate::source::RowChunk) -> usize {
    let cols: usize = c
        .batch
        .columns()
        .iter()
        .map(|a| a.to_data().get_slice_memory_size().unwrap_or(0))
        .sum();
    cols + cols / 16 + 96 * c.batch.num_rows()
}

/// Reservoir sample of serialized documents, seeded by the run. Document `i`'s draw is a hash
/// of the seed and `i` alone (no generator state), so the sample depends only on the order of
/// the documents, and a draw costs a few nanoseconds.
pub(super) struct Preview {
    k: usize,
    seen: u64,
    key: u64,
    picked: Vec<(u64, Vec<u8>)>,
}

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn splitmix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Preview {
    pub(super) fn new(k: usize, seed: u64) -> Self {
        Self {
            k,
            seen: 0,
            key: splitmix(seed ^ 0x1e57_u64),
            picked: Vec::new(),
        }
    }

    /// Document `i`'s uniform draw in `0..=i` (multiply-shift range reduction; its bias, at most
    /// `i / 2^64`, is far below anything a preview could show).
    fn draw(&self, i: u64) -> u64 {
        let h = splitmix(self.key ^ splitmix(i));
        ((u128::from(h) * (u128::from(i) + 1)) >> 64) as u64
    }

    /// The reservoir draws for the next `n` documents: `(position in this block, index in the
    /// run, the slot it replaces or None to append)`, in order. Only the count matters, so a
    /// run cut into parts draws the same as one pass.
    fn draws(&mut self, n: u64) -> Vec<(u64, u64, Option<usize>)> {
        let mut picks = Vec::new();
        if self.k == 0 {
            self.seen += n;
            return picks;
        }
        for t in 0..n {
            let i = self.seen;
            self.seen += 1;
            if (i as usize) < self.k {
                picks.push((t, i, None));
            } else {
                let j = self.draw(i);
                if (j as usize) < self.k {
                    picks.push((t, i, Some(j as usize)));
                }
            }
        }
        picks
    }

    fn place(&mut self, i: u64, slot: Option<usize>, line: Vec<u8>) {
        match slot {
            None => self.picked.push((i, line)),
            Some(j) => self.picked[j] = (i, line),
        }
    }

    /// Offers the `n` documents of `docs` (one per line). The draws come first; lines are
    /// located only up to the last one picked, which late in a run is rarely any.
    pub(super) fn offer_lines(&mut self, docs: &[u8], n: u64) {
        let mut lines = docs.split(|b| *b == b'\n').enumerate();
        for (t, i, slot) in self.draws(n) {
            let Some((_, line)) = lines.find(|(at, _)| *at as u64 == t) else {
                break;
            };
            self.place(i, slot, line.to_vec());
        }
    }

    /// Offers `n` documents that `line(t)` fetches (in increasing `t`), only the picked ones.
    pub(super) fn offer_with(
        &mut self,
        n: u64,
        mut line: impl FnMut(u64) -> Result<Vec<u8>>,
    ) -> Result<()> {
        for (t, i, slot) in self.draws(n) {
            let l = line(t)?;
            self.place(i, slot, l);
        }
        Ok(())
    }

    pub(super) fn documents(mut self) -> Result<Vec<Document>> {
        self.picked.sort_by_key(|(i, _)| *i);
        self.picked
            .iter()
            .map(|(_, b)| {
                serde_json::from_slice(b)
                    .map_err(|e| Error::invalid(format!("preview document: {e}")))
            })
            .collect()
    }
}

/// Resolved output paths of a run.
#[derive(Debug, Clone)]
pub(super) struct Paths {
    pub(super) dataset: PathBuf,
    pub(super) rejected: PathBuf,
    pub(super) preview: PathBuf,
    pub(super) report: PathBuf,
}

impl Paths {
    /// The outputs inside the run root; one the run's path policy does not let be written
    /// is an error naming it.
    fn new(ctx: &RunContext, cfg: &IngestConfig) -> Result<Self> {
        Ok(Self {
            dataset: ctx.write_path(&cfg.out)?,
            rejected: ctx.write_path(&cfg.rejected)?,
            preview: ctx.write_path(&cfg.preview)?,
            report: ctx.write_path(&cfg.report)?,
        })
    }

    fn all(&self) -> Vec<PathBuf> {
        vec![
            self.dataset.clone(),
            self.rejected.clone(),
            self.preview.clone(),
            self.report.clone(),
        ]
    }
}

/// How an ingest's work is done.
pub enum Plan<'a> {
    /// Every input in this process.
    Whole,
    /// Only part `Part` of the inputs, into this run root (the part's own root,
    /// [`Part::dir`] of the main one); nothing is uploaded.
    Part(Part),
    /// The inputs cut into `count` parts (`None`: one per input object), each ingested
    /// elsewhere into its [`Part::dir`] under this run root by `run` (e.g. as Ray tasks, each
    /// a `yunmin ingest --part I/N`), then joined here into the same outputs as
    /// [`Plan::Whole`]. `run` is called only when the stage is not cached.
    Parts {
        /// Parts, or one per input object.
        count: Option<usize>,
        /// Ingests the given parts (all of them, or fails).
        run: &'a mut dyn FnMut(&[Part]) -> Result<()>,
    },
}

/// Runs the ingest of `inputs` (local paths, directories, globs, `s3://` prefixes) into the
/// run root as a cached stage: valid documents to `cfg.out`, rejects to `cfg.rejected`, a
/// preview and a report; then uploads them when `cfg.upload` is set. The stage key covers the
/// local inputs' content, the S3 objects' ETags and sizes, the config and the seed.
pub fn ingest(ctx: &RunContext, inputs: &[String], cfg: &IngestConfig) -> Result<IngestOutcome> {
    ingest_with(ctx, inputs, cfg, Plan::Whole)
}

/// [`ingest`] done as `plan` says. [`Plan::Parts`] gives the same outputs as [`Plan::Whole`]
/// (the same shard files, rejects, preview and report)
/// under the same stage key, so either answers the other's cache.
pub fn ingest_with(
    ctx: &RunContext,
    inputs: &[String],
    cfg: &IngestConfig,
    plan: Plan<'_>,
) -> Result<IngestOutcome> {
    cfg.validate()?;
    let (mut items, store) = resolve(inputs, &cfg.source)?;
    let all_items = items.len();
    if let Plan::Part(part) = &plan {
        items = items[part.range(all_items)].to_vec();
    }
    let paths = Paths::new(ctx, cfg)?;
    // Local inputs are read as given; the run's path policy may refuse them.
    let local_inputs: Vec<PathBuf> = items
        .iter()
        .filter_map(|i| i.local_path().map(|p| ctx.read_given(p)))
        .collect::<Result<_>>()?;
    let listing: Vec<serde_json::Value> = items
        .iter()
        .map(|i| serde_json::json!({ "name": i.name, "size": i.size, "etag": i.etag }))
        .collect();
    let mut cfg_key = cfg.clone();
    cfg_key.batch_chunks = 0;
    cfg_key.upload = None;
    cfg_key.source.in_flight = 0;
    cfg_key.source.retries = 0;
    cfg_key.source.connect_timeout_s = 0;
    let mut params =
        serde_json::json!({ "inputs": listing, "config": cfg_key, "seed": ctx.seed() });
    if let Plan::Part(part) = &plan {
        params["part"] = serde_json::json!(part.to_string());
    }
    let name = format!("ingest:{}", cfg.out);
    let items = Arc::new(items);
    let is_part = matches!(plan, Plan::Part(_));
    let mut gathered: Vec<PathBuf> = Vec::new();
    let (report, cached) = ctx.stage(
        &name,
        &params,
        &local_inputs,
        &paths.all(),
        INGEST_CODE_VERSION,
        || match plan {
            Plan::Whole | Plan::Part(_) => run_ingest(
                items.clone(),
                store.clone(),
                cfg,
                &paths,
                ctx.seed(),
                ctx.root(),
            ),
            Plan::Parts { count, run } => {
                let n = count.unwrap_or(all_items).max(1);
                let parts: Vec<Part> = (0..n).map(|index| Part { index, count: n }).collect();
                run(&parts)?;
                let r = super::parts::gather(&items, cfg, &paths, ctx.seed(), ctx.root(), &parts)?;
                gathered = parts.iter().map(|p| p.dir(ctx.root())).collect();
                Ok(r)
            }
        },
    )?;
    // The parts' own outputs were copied into the joined ones: no longer needed.
    for d in &gathered {
        let _ = std::fs::remove_dir_all(d);
    }
    if !gathered.is_empty() {
        // `parts/` itself when nothing else is in it.
        let _ = std::fs::remove_dir(ctx.root().join("parts"));
    }
    let upload = if is_part { None } else { cfg.upload.as_ref() };
    let mut report: IngestReport = report;
    if let Some(dest) = upload {
        let dest = S3Url::parse(dest)?;
        let store = match store {
            Some(s) => s,
            None => S3Store::connect(&cfg.source)?,
        };
        let mut n = 0;
        for p in paths.all() {
            let rel = p
                .strip_prefix(ctx.root())
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            let rel = if p.is_dir() {
                rel
            } else {
                rel.rsplit_once('/')
                    .map(|(d, _)| d.to_string())
                    .unwrap_or_default()
            };
            let key = match (dest.key.trim_end_matches('/'), rel.as_str()) {
                ("", r) => r.to_string(),
                (k, "") => k.to_string(),
                (k, r) => format!("{k}/{r}"),
            };
            n += store.upload_dir(&p, &dest.with_key(key))?;
        }
        tracing::info!("uploaded {n} output files to {dest}");
        report.outputs.uploaded_to = Some(dest.to_string());
    }
    let dataset = Dataset::open(&paths.dataset)?;
    tracing::info!(
        "{}{}",
        report.summary_line(),
        if cached { " (cached)" } else { "" }
    );
    Ok(IngestOutcome {
        dataset,
        report,
        cached,
    })
}

pub(super) fn rel_str(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// The uncached ingest: reads `items` and writes every output under `paths`.
fn run_ingest(
    items: Arc<Vec<SourceItem>>,
    store: Option<S3Store>,
    cfg: &IngestConfig,
    paths: &Paths,
    seed: u64,
    root: &Path,
) -> Result<IngestReport> {
    let t0 = Instant::now();
    let metas: Vec<SourceMeta> = items
        .iter()
        .map(|i| {
            let stem = i.domain();
            let fallback = if cfg.domain_from_path && !stem.is_empty() {
                stem
            } else {
                cfg.default_domain.clone()
            };
            SourceMeta {
                name: i.name.clone(),
                fallback_domain: fallback,
                split: i.split.clone(),
            }
        })
        .collect();
    let mut per_source: Vec<SourceReport> = items
        .iter()
        .map(|i| SourceReport {
            source: i.name.clone(),
            format: Some(i.format),
            split: i.split.clone(),
            ..Default::default()
        })
        .collect();
    let total_input: u64 = items.iter().filter_map(|i| i.size).sum();
    let bar = crate::run::progress_bar(total_input, "ingest");
    let threads = rayon::current_num_threads().max(1);
    let batch = if cfg.batch_chunks > 0 {
        cfg.batch_chunks
    } else {
        4 * threads
    };

    let writer = DatasetWriter::create(&paths.dataset, cfg.shard_docs)?;
    let rej_dir = AtomicDir::new(&paths.rejected)?;
    std::fs::create_dir_all(rej_dir.path())
        .map_err(|e| Error::io("create directory", rej_dir.path(), e))?;
    let rej_path = rej_dir.path().join(REJECTS_FILE);
    let rej_file =
        std::fs::File::create(&rej_path).map_err(|e| Error::io("create", &rej_path, e))?;
    let rejects = std::io::BufWriter::with_capacity(1 << 20, rej_file);
    let preview = Preview::new(cfg.preview_docs, seed);

    let fields = cfg.field_spec()?;
    let projection = (!cfg.keep_extras).then(|| Arc::new(fields.columns()));
    let pool = BufferPool::default();
    let mut stream = ChunkStream::start(items.clone(), store, &cfg.source, projection);
    // The stream's items, numbered in input order, are validated by `threads` workers as they
    // arrive (no batch barrier: a long chunk holds up one worker, not all), and a writer thread
    // puts the results back in order: it writes the documents, accounts every row to its
    // input and checks each input's totals. At most `batch` items are between the reader and
    // the writer (tokens the writer hands back), so memory stays bounded whatever the order
    // in which workers finish.
    let (work_tx, work_rx) = crossbeam_channel::bounded::<(u64, StreamItem)>(threads);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<(u64, Validated)>(batch);
    let (token_tx, token_rx) = crossbeam_channel::bounded::<()>(batch);
    let (sunk, read) = std::thread::scope(|scope| {
        let (pool, metas, fields) = (&pool, &metas, &fields);
        for w in 0..threads {
            let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("yunmin-validate-{w}"))
                .spawn_scoped(scope, move || {
                    for (seq, it) in work_rx {
                        let v = match it {
                            StreamItem::Chunk(c) => {
                                let r = validate_chunk(
                                    &c,
                                    &metas[c.source],
                                    cfg.max_line_bytes,
                                    fields,
                                    pool.take(),
                                );
                                Validated::Chunk(r, c.lines.max(1))
                            }
                            StreamItem::Rows(c) => {
                                let mut r =
                                    ChunkResult::new(c.source, pool.take(), rows_capacity(&c));
                                validate_rows(
                                    &c,
                                    &metas[c.source],
                                    fields,
                                    cfg.keep_extras,
                                    cfg.max_line_bytes,
                                    &mut r,
                                );
                                Validated::Chunk(r, c.batch.num_rows() as u64)
                            }
                            StreamItem::Done(d) => Validated::Done(d),
                        };
                        if done_tx.send((seq, v)).is_err() {
                            return;
                        }
                    }
                });
            if let Err(e) = spawned {
                return (Err(Error::io("start a validation thread", root, e)), Ok(()));
            }
        }
        drop((work_rx, done_tx));
        let sink = scope.spawn(move || -> Result<_> {
            let (mut writer, mut rejects, mut preview) = (writer, rejects, preview);
            let mut domains: BTreeMap<String, u64> = BTreeMap::new();
            let mut pending: BTreeMap<u64, Validated> = BTreeMap::new();
            let mut next = 0u64;
            for (seq, v) in done_rx {
                pending.insert(seq, v);
                while let Some(v) = pending.remove(&next) {
                    next += 1;
                    let _ = token_rx.try_recv();
                    match v {
                        Validated::Chunk(r, expected) => {
                            debug_assert_eq!(r.lines, expected);
                            let s = &mut per_source[r.source];
                            s.lines += r.lines;
                            s.valid += r.valid;
                            s.rejected += r.lines - r.valid;
                            s.add_reasons(&r.reasons);
                            writer.write_lines(&r.docs, r.valid, &r.domains)?;
                            preview.offer_lines(&r.docs, r.valid);
                            for (d, n) in r.domains {
                                *domains.entry(d).or_default() += n;
                            }
                            rejects
                                .write_all(&r.rejects)
                                .map_err(|e| Error::io("write", &rej_path, e))?;
                            pool.give(r.docs, 2 * batch);
                        }
                        Validated::Done(d) => {
                            let s = &mut per_source[d.source];
                            s.bytes = d.totals.bytes;
                            s.input_bytes = d.raw_bytes;
                            s.resumes = d.resumes;
                            if s.lines != d.totals.lines {
                                return Err(IngestError::Accounting {
                                    source_name: s.source.clone(),
                                    read: d.totals.lines,
                                    accounted: s.lines,
                                }
                                .into());
                            }
                        }
                    }
                }
            }
            rejects
                .flush()
                .map_err(|e| Error::io("write", &rej_path, e))?;
            Ok((writer, preview, domains, per_source))
        });
        let read = (|| -> Result<()> {
            let mut seq = 0u64;
            while let Some(it) = stream.next_item()? {
                crate::run::check_cancelled()?;
                // Blocks while `batch` items are unwritten; fails once the writer stopped
                // (its error is reported below).
                if token_tx.send(()).is_err() || work_tx.send((seq, it)).is_err() {
                    return Ok(());
                }
                seq += 1;
                bar.set_position(stream.raw_bytes_read());
            }
            Ok(())
        })();
        drop((work_tx, token_tx));
        let sunk = sink
            .join()
            .unwrap_or_else(|_| Err(Error::invalid("the ingest writer thread panicked")));
        (sunk, read)
    });
    let (writer, preview, domains, per_source) = sunk?;
    read?;
    bar.finish_and_clear();
    writer.finish()?;
    rej_dir.commit()?;

    write_preview(&paths.preview, preview)?;
    let report = report_of(paths, root, seed, t0, per_source, domains);
    write_json(&paths.report, &report)?;
    Ok(report)
}

/// The report of a run over `sources` (their totals summed) that started at `t0`.
pub(super) fn report_of(
    paths: &Paths,
    root: &Path,
    seed: u64,
    t0: Instant,
    sources: Vec<SourceReport>,
    domains: BTreeMap<String, u64>,
) -> IngestReport {
    let mut totals = SourceReport {
        source: "total".into(),
        ..Default::default()
    };
    for s in &sources {
        totals.absorb(s);
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    IngestReport {
        mb_per_s: totals.bytes as f64 / 1e6 / secs,
        docs_per_s: totals.valid as f64 / secs,
        sources,
        totals,
        domains,
        outputs: IngestOutputs {
            dataset: rel_str(root, &paths.dataset),
            rejected: rel_str(root, &paths.rejected),
            preview: rel_str(root, &paths.preview),
            report: rel_str(root, &paths.report),
            uploaded_to: None,
        },
        seed,
        seconds: secs,
    }
}

/// Writes the preview's documents to `path`.
pub(super) fn write_preview(path: &Path, preview: Preview) -> Result<()> {
    write_json(path, &preview.documents()?)
}

/// Writes `v` as pretty JSON to `path`, atomically.
pub(super) fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::Preview;

    /// Every document has the same chance, k/n, of being in the preview, and a sample cut
    /// into blocks draws the same as one pass.
    #[test]
    fn preview_picks_uniformly_and_blocks_do_not_matter() {
        let (n, k, seeds) = (50u64, 5, 4000u64);
        let mut hits = vec![0u32; n as usize];
        for seed in 0..seeds {
            let mut slots: Vec<u64> = Vec::new();
            for (t, i, slot) in Preview::new(k, seed).draws(n) {
                assert_eq!(t, i, "one block: positions are indices");
                match slot {
                    None => slots.push(i),
                    Some(j) => slots[j] = i,
                }
            }
            assert_eq!(slots.len(), k);
            for i in &slots {
                hits[*i as usize] += 1;
            }
            let mut blocks = Preview::new(k, seed);
            let cut: Vec<_> = [7, 0, 30, 13]
                .iter()
                .flat_map(|b| {
                    let base = blocks.seen;
                    blocks
                        .draws(*b)
                        .into_iter()
                        .map(move |(t, i, s)| (t + base, i, s))
                })
                .collect();
            assert_eq!(cut, Preview::new(k, seed).draws(n), "seed {seed}");
        }
        // Expected k/n · seeds = 400 hits each; a binomial's sd is ≈ 19.
        for (i, h) in hits.iter().enumerate() {
            assert!(
                (300..500).contains(h),
                "document {i} picked {h} times in {seeds}"
            );
        }
    }
}
