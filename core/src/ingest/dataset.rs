//! A dataset on disk: a directory of JSONL shards (`part-00000.jsonl`, …) of [`Document`]s,
//! written atomically (the directory appears only when complete).

use super::Document;
use crate::run::AtomicDir;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Name of the statistics file [`DatasetWriter::finish`] writes next to the shards.
pub const STATS_FILE: &str = "dataset.json";

/// Document count and documents per domain of a dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DatasetStats {
    /// Number of documents.
    pub documents: u64,
    /// Documents per domain.
    pub domains: BTreeMap<String, u64>,
}

/// A directory of JSONL shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    dir: PathBuf,
}

impl Dataset {
    /// Opens an existing dataset directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(Error::invalid(format!(
                "dataset {} does not exist or is not a directory",
                dir.display()
            )));
        }
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Shard files in name order.
    pub fn shards(&self) -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::io("list", &self.dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Calls `f` on every document in shard order.
    pub fn for_each(&self, mut f: impl FnMut(Document) -> Result<()>) -> Result<()> {
        for shard in self.shards()? {
            let file = std::fs::File::open(&shard).map_err(|e| Error::io("open", &shard, e))?;
            for (i, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| Error::io("read", &shard, e))?;
                if line.is_empty() {
                    continue;
                }
                let doc: Document = serde_json::from_str(&line).map_err(|e| {
                    Error::invalid(format!(
                        "{}:{}: not a dataset document: {e}",
                        shard.display(),
                        i + 1
                    ))
                })?;
                crate::run::check_cancelled()?;
                f(doc)?;
            }
        }
        Ok(())
    }

    /// Document count and per-domain counts: read from `dataset.json` when the writer left
    /// one, else counted by reading every shard.
    pub fn stats(&self) -> Result<DatasetStats> {
        let p = self.dir.join(STATS_FILE);
        if let Ok(text) = std::fs::read_to_string(&p) {
            return serde_json::from_str(&text).map_err(|e| Error::Json { path: p, source: e });
        }
        let mut st = DatasetStats::default();
        self.for_each(|d| {
            st.documents += 1;
            *st.domains.entry(d.domain).or_default() += 1;
            Ok(())
        })?;
        Ok(st)
    }

    /// Number of documents.
    pub fn count(&self) -> Result<u64> {
        Ok(self.stats()?.documents)
    }

    /// Domains present, sorted.
    pub fn domains(&self) -> Result<Vec<String>> {
        Ok(self.stats()?.domains.into_keys().collect())
    }

    /// Every document, in shard order.
    pub fn read_all(&self) -> Result<Vec<Document>> {
        let mut v = Vec::new();
        self.for_each(|d| {
            v.push(d);
            Ok(())
        })?;
        Ok(v)
    }
}

/// Writes documents into shards of at most `shard_docs` documents under a temporary directory,
/// renamed into place by [`DatasetWriter::finish`].
#[derive(Debug)]
pub struct DatasetWriter {
    dir: AtomicDir,
    shard_docs: usize,
    in_shard: usize,
    shard_no: usize,
    out: Option<BufWriter<std::fs::File>>,
    written: u64,
    domains: BTreeMap<String, u64>,
}

impl DatasetWriter {
    /// Starts writing the dataset that will live at `dir`.
    pub fn create(dir: impl Into<PathBuf>, shard_docs: usize) -> Result<Self> {
        let dir = AtomicDir::new(dir)?;
        std::fs::create_dir_all(dir.path())
            .map_err(|e| Error::io("create directory", dir.path(), e))?;
        Ok(Self {
            dir,
            shard_docs: shard_docs.max(1),
            in_shard: 0,
            shard_no: 0,
            out: None,
            written: 0,
            domains: BTreeMap::new(),
        })
    }

    /// Appends one document.
    pub fn write(&mut self, doc: &Document) -> Result<()> {
        if self.out.is_none() || self.in_shard >= self.shard_docs {
            self.rotate()?;
        }
        let out = self.out.as_mut().expect("open shard");
        serde_json::to_writer(&mut *out, doc).map_err(|e| Error::Json {
            path: self.dir.target().to_path_buf(),
            source: e,
        })?;
        out.write_all(b"\n")
            .map_err(|e| Error::io("write", self.dir.path(), e))?;
        self.in_shard += 1;
        self.written += 1;
        *self.domains.entry(doc.domain.clone()).or_default() += 1;
        Ok(())
    }

    /// [`Self::write_serialized`] for `lines` known to hold `n` documents: written without
    /// looking for line ends when they fit in the current shard.
    pub fn write_lines(
        &mut self,
        lines: &[u8],
        n: u64,
        domains: &BTreeMap<String, u64>,
    ) -> Result<()> {
        let fits = self.out.is_some() && self.in_shard as u64 + n <= self.shard_docs as u64;
        if !fits || lines.last().is_some_and(|b| *b != b'\n') {
            return self.write_serialized(lines, domains);
        }
        let out = self.out.as_mut().expect("open shard");
        out.write_all(lines)
            .map_err(|e| Error::io("write", self.dir.path(), e))?;
        self.in_shard += n as usize;
        self.written += n;
        for (d, k) in domains {
            *self.domains.entry(d.clone()).or_default() += k;
        }
        Ok(())
    }

    /// Appends documents already serialized as JSON lines (each a [`Document`] object ending in
    /// `\n`), e.g. produced in parallel; `domains` counts them per domain for `dataset.json`.
    /// Shards still rotate every `shard_docs` documents.
    pub fn write_serialized(
        &mut self,
        mut lines: &[u8],
        domains: &BTreeMap<String, u64>,
    ) -> Result<()> {
        while !lines.is_empty() {
            if self.out.is_none() || self.in_shard >= self.shard_docs {
                self.rotate()?;
            }
            let room = self.shard_docs - self.in_shard;
            let (take, n) = match memchr::memchr_iter(b'\n', lines).enumerate().nth(room - 1) {
                Some((_, pos)) => (pos + 1, room),
                None => {
                    let mut n = memchr::memchr_iter(b'\n', lines).count();
                    if lines.last() != Some(&b'\n') {
                        n += 1;
                    }
                    (lines.len(), n)
                }
            };
            let out = self.out.as_mut().expect("open shard");
            out.write_all(&lines[..take])
                .map_err(|e| Error::io("write", self.dir.path(), e))?;
            if lines[..take].last() != Some(&b'\n') {
                out.write_all(b"\n")
                    .map_err(|e| Error::io("write", self.dir.path(), e))?;
            }
            self.in_shard += n;
            self.written += n as u64;
            lines = &lines[take..];
        }
        for (d, n) in domains {
            *self.domains.entry(d.clone()).or_default() += n;
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        if let Some(mut o) = self.out.take() {
            o.flush()
                .map_err(|e| Error::io("write", self.dir.path(), e))?;
        }
        let p = self
            .dir
            .path()
            .join(format!("part-{:05}.jsonl", self.shard_no));
        let f = std::fs::File::create(&p).map_err(|e| Error::io("create", &p, e))?;
        self.out = Some(BufWriter::with_capacity(1 << 20, f));
        self.shard_no += 1;
        self.in_shard = 0;
        Ok(())
    }

    /// Documents written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes, writes `dataset.json` (counts per domain) and moves the dataset into place.
    pub fn finish(mut self) -> Result<Dataset> {
        if let Some(mut o) = self.out.take() {
            o.flush()
                .map_err(|e| Error::io("write", self.dir.path(), e))?;
        }
        let stats = DatasetStats {
            documents: self.written,
            domains: std::mem::take(&mut self.domains),
        };
        let p = self.dir.path().join(STATS_FILE);
        let bytes = serde_json::to_vec_pretty(&stats).map_err(|e| Error::Json {
            path: p.clone(),
            source: e,
        })?;
        std::fs::write(&p, bytes).map_err(|e| Error::io("write", &p, e))?;
        let dir = self.dir.commit()?;
        Dataset::open(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_shards_and_reads_back_in_order() {
        let d = tempfile::tempdir().unwrap();
        let mut w = DatasetWriter::create(d.path().join("ds"), 2).unwrap();
        for i in 0..5 {
            let mut extra = serde_json::Map::new();
            extra.insert("label".into(), i.into());
            w.write(&Document {
                id: format!("d{i}"),
                text: "한국어".into(),
                domain: "x".into(),
                source: "s".into(),
                extra,
            })
            .unwrap();
        }
        let ds = w.finish().unwrap();
        assert_eq!(ds.shards().unwrap().len(), 3);
        let docs = ds.read_all().unwrap();
        assert_eq!(
            docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["d0", "d1", "d2", "d3", "d4"]
        );
        assert_eq!(docs[4].extra["label"], 4);
        assert_eq!(ds.count().unwrap(), 5);
        assert_eq!(ds.domains().unwrap(), ["x"]);
    }

    #[test]
    fn serialized_lines_rotate_shards_and_count_domains() {
        let d = tempfile::tempdir().unwrap();
        let mut w = DatasetWriter::create(d.path().join("ds"), 3).unwrap();
        let mut buf = Vec::new();
        for i in 0..7 {
            let doc = Document {
                id: format!("d{i}"),
                text: "t".into(),
                domain: "a".into(),
                source: "s".into(),
                extra: Default::default(),
            };
            serde_json::to_writer(&mut buf, &doc).unwrap();
            buf.push(b'\n');
        }
        let counts = BTreeMap::from([("a".to_string(), 7u64)]);
        w.write_serialized(&buf, &counts).unwrap();
        assert_eq!(w.written(), 7);
        let ds = w.finish().unwrap();
        assert_eq!(ds.shards().unwrap().len(), 3);
        assert_eq!(
            ds.read_all()
                .unwrap()
                .iter()
                .map(|d| d.id.clone())
                .collect::<Vec<_>>(),
            ["d0", "d1", "d2", "d3", "d4", "d5", "d6"]
        );
        assert_eq!(ds.stats().unwrap().domains["a"], 7);
        std::fs::remove_file(ds.dir().join(STATS_FILE)).unwrap();
        assert_eq!(
            ds.stats().unwrap(),
            DatasetStats {
                documents: 7,
                domains: counts
            }
        );
    }
}
