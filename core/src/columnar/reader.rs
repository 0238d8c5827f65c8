//! Reading token sequences back for training: `tokens` only (column projection), in batches.

use super::ColumnarError;
use super::report::ConversionReport;
use crate::{Error, Result};
use arrow::array::{Array, AsArray};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Which part of a conversion to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// `<domain>.parquet`.
    Train,
    /// `heldout/<domain>.parquet`.
    Heldout,
    /// Both.
    All,
}

impl Split {
    /// `train`, `heldout` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Heldout => "heldout",
            Split::All => "all",
        }
    }
}

impl std::str::FromStr for Split {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "train" => Ok(Split::Train),
            "heldout" => Ok(Split::Heldout),
            "all" => Ok(Split::All),
            _ => Err(ColumnarError::Config(format!(
                "split must be train, heldout or all, got `{s}`"
            ))
            .into()),
        }
    }
}

/// A conversion's output directory, opened through its `parquet_report.json`.
#[derive(Debug, Clone)]
pub struct ParquetSet {
    dir: PathBuf,
    report: ConversionReport,
}

impl ParquetSet {
    /// Opens the output directory of [`super::convert`].
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(super::ColumnarError::Missing {
                what: "Parquet set directory (written by to_parquet or `yunmin parquet convert`)",
                path: dir,
            }
            .into());
        }
        if !dir.join(super::report::REPORT_FILE).is_file() {
            return Err(super::ColumnarError::Missing {
                what: "conversion report (the directory is not a Parquet set written by to_parquet or `yunmin parquet convert`)",
                path: dir.join(super::report::REPORT_FILE),
            }
            .into());
        }
        let report = ConversionReport::load(&dir)?;
        Ok(Self { dir, report })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The conversion report.
    pub fn report(&self) -> &ConversionReport {
        &self.report
    }

    /// Domains, sorted.
    pub fn domains(&self) -> &[String] {
        &self.report.domains
    }

    /// The files of one domain (or all domains) and split.
    pub fn files(&self, domain: Option<&str>, split: Split) -> Result<TokenFiles> {
        if let Some(d) = domain
            && !self.report.domains.iter().any(|x| x == d)
        {
            return Err(ColumnarError::Config(format!(
                "no domain `{d}` in {} (domains: {})",
                self.dir.display(),
                self.report.domains.join(", ")
            ))
            .into());
        }
        let name = format!("{}:{}", domain.unwrap_or("*"), split.as_str());
        Ok(TokenFiles {
            name,
            paths: self.report.paths(&self.dir, domain, split.as_str()),
        })
    }

    /// All token sequences of a domain (or every domain) and split.
    pub fn read_tokens(&self, domain: Option<&str>, split: Split) -> Result<Vec<Vec<u32>>> {
        self.files(domain, split)?.read_tokens()
    }
}

/// A named list of Parquet files with a `tokens` column (a domain's train part, the held-out
/// parts, …): what training and evaluation read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFiles {
    /// A label such as `law:train` or `*:heldout`.
    pub name: String,
    /// The files, in order.
    pub paths: Vec<PathBuf>,
}

impl TokenFiles {
    /// Batches of up to `batch_docs` token sequences, file after file.
    pub fn batches(&self, batch_docs: usize) -> TokenBatches {
        TokenBatches {
            files: self.paths.clone().into_iter(),
            current: None,
            batch_docs: batch_docs.max(1),
        }
    }

    /// Every token sequence.
    pub fn read_tokens(&self) -> Result<Vec<Vec<u32>>> {
        let mut out = Vec::new();
        for b in self.batches(8192) {
            out.extend(b?);
        }
        Ok(out)
    }

    /// Total rows, from the files' metadata (no data read).
    pub fn rows(&self) -> Result<u64> {
        let mut n = 0;
        for p in &self.paths {
            let f = File::open(p).map_err(|e| Error::io("open", p, e))?;
            let b = ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| ColumnarError::parquet(p, e))?;
            n += b.metadata().file_metadata().num_rows() as u64;
        }
        Ok(n)
    }
}

/// Every token sequence of one Parquet file (the `tokens` column only).
pub fn read_tokens(path: &Path) -> Result<Vec<Vec<u32>>> {
    TokenFiles {
        name: path.display().to_string(),
        paths: vec![path.to_path_buf()],
    }
    .read_tokens()
}

/// Opens `path` reading only its `tokens` column.
pub fn open_tokens(path: &Path, batch_docs: usize) -> Result<ParquetRecordBatchReader> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let b =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| ColumnarError::parquet(path, e))?;
    if b.schema().field_with_name("tokens").is_err() {
        return Err(ColumnarError::Config(format!(
            "{} has no `tokens` column (convert with a tokenizer)",
            path.display()
        ))
        .into());
    }
    let mask = ProjectionMask::columns(b.parquet_schema(), ["tokens"]);
    b.with_projection(mask)
        .with_batch_size(batch_docs)
        .build()
        .map_err(|e| ColumnarError::parquet(path, e))
}

/// Iterator of token batches over files (see [`TokenFiles::batches`]).
pub struct TokenBatches {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<(PathBuf, ParquetRecordBatchReader)>,
    batch_docs: usize,
}

impl Iterator for TokenBatches {
    type Item = Result<Vec<Vec<u32>>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let p = self.files.next()?;
                match open_tokens(&p, self.batch_docs) {
                    Ok(r) => self.current = Some((p, r)),
                    Err(e) => return Some(Err(e)),
                }
            }
            let (path, reader) = self.current.as_mut().expect("open file");
            match reader.next() {
                None => self.current = None,
                Some(Err(e)) => {
                    return Some(Err(Error::invalid(format!(
                        "reading {}: {e}",
                        path.display()
                    ))));
                }
                Some(Ok(batch)) => {
                    let list = batch.column(0).as_list::<i32>();
                    let values = list.values().as_primitive::<arrow::datatypes::Int32Type>();
                    let offs = list.value_offsets();
                    let mut out = Vec::with_capacity(list.len());
                    for i in 0..list.len() {
                        let (a, b) = (offs[i] as usize, offs[i + 1] as usize);
                        out.push(values.values()[a..b].iter().map(|&x| x as u32).collect());
                    }
                    return Some(Ok(out));
                }
            }
        }
    }
}
