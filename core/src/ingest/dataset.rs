//! A dataset on disk: a directory of JSONL shards (`part-00000.jsonl`, …) of [`Document`]s,
//! written atomically (the directory appears only when complete).

use super::Document;
use crate::run::AtomicDir;
use crate::{Error, Result};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

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

    /// Flushes and moves the dataset into place.
    pub fn finish(mut self) -> Result<Dataset> {
        if let Some(mut o) = self.out.take() {
            o.flush()
                .map_err(|e| Error::io("write", self.dir.path(), e))?;
        }
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
    }
}
