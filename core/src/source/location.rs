//! Where an input lives (a local file or an S3 object), how it is compressed, and the names
//! derived from it.

use super::SourceError;
use std::fmt;
use std::path::{Path, PathBuf};

/// An `s3://bucket/key` address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct S3Url {
    /// Bucket name.
    pub bucket: String,
    /// Key or prefix (no leading slash; may be empty).
    pub key: String,
}

impl S3Url {
    /// Parses `s3://bucket[/key]`.
    pub fn parse(url: &str) -> Result<Self, SourceError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| SourceError::BadUrl { url: url.into() })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(SourceError::BadUrl { url: url.into() });
        }
        Ok(Self {
            bucket: bucket.into(),
            key: key.into(),
        })
    }

    /// Whether a string is an `s3://` URL.
    pub fn is_s3(s: &str) -> bool {
        s.starts_with("s3://")
    }

    /// The URL of `key` in the same bucket.
    pub fn with_key(&self, key: impl Into<String>) -> Self {
        Self {
            bucket: self.bucket.clone(),
            key: key.into(),
        }
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Where one input's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Location {
    /// A local file.
    Local(PathBuf),
    /// An S3 object.
    S3(S3Url),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3(u) => u.fmt(f),
        }
    }
}

/// Compression of an input, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain bytes.
    None,
    /// gzip (`.gz`), multi-member files included.
    Gzip,
    /// Zstandard (`.zst`), multi-frame files included.
    Zstd,
}

impl Compression {
    /// From the file name's last extension.
    pub fn from_name(name: &str) -> Self {
        if name.ends_with(".gz") {
            Compression::Gzip
        } else if name.ends_with(".zst") || name.ends_with(".zstd") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Extensions of JSONL inputs picked up when a directory or prefix is listed (each optionally
/// followed by `.gz` or `.zst`).
pub const JSONL_EXTENSIONS: &[&str] = &["jsonl", "ndjson", "json"];

/// Extension of Parquet inputs.
pub const PARQUET_EXTENSION: &str = "parquet";

/// How an input's records are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line (optionally `.gz`/`.zst`).
    Jsonl,
    /// Apache Parquet, read row group by row group.
    Parquet,
}

impl Format {
    /// From the file name: `.parquet` is Parquet, anything else JSONL.
    pub fn from_name(name: &str) -> Self {
        if name.ends_with(".parquet") {
            Format::Parquet
        } else {
            Format::Jsonl
        }
    }
}

/// Whether a file name found in a directory or under a prefix is an input: a JSONL extension,
/// optionally compressed, or `.parquet`; hidden names (starting with `.` or `_`, as Spark and
/// Hugging Face write `_SUCCESS` and `_metadata`) are skipped.
pub fn is_input_name(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    if base.starts_with('.') || base.is_empty() {
        return false;
    }
    if base.len() > PARQUET_EXTENSION.len() + 1 && base.ends_with(".parquet") {
        return !base.starts_with('_');
    }
    let plain = strip_compression(base);
    JSONL_EXTENSIONS
        .iter()
        .any(|e| plain.len() > e.len() + 1 && plain.ends_with(&format!(".{e}")))
}

/// Split names of the Hugging Face datasets layout, with the spellings that map to each.
const SPLIT_KEYWORDS: &[(&str, &[&str])] = &[
    ("train", &["train", "training"]),
    ("validation", &["validation", "valid", "dev", "val"]),
    ("test", &["test", "testing", "eval", "evaluation"]),
];

fn split_keyword(word: &str) -> Option<&'static str> {
    let w = word.to_ascii_lowercase();
    SPLIT_KEYWORDS
        .iter()
        .find(|(_, ks)| ks.contains(&w.as_str()))
        .map(|(s, _)| *s)
}

/// `train-00000-of-00004` → `train` (any split name before the shard numbers).
fn sharded_split(stem: &str) -> Option<&str> {
    let (head, tail) = stem.rsplit_once("-of-")?;
    let (split, shard) = head.rsplit_once('-')?;
    let digits = |s: &str| s.len() >= 5 && s.bytes().all(|b| b.is_ascii_digit());
    let total: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
    (digits(shard) && digits(&total) && !split.is_empty()).then_some(split)
}

/// The Hugging Face datasets split of a Parquet path, and the domain the layout implies.
///
/// Recognised as in `datasets`: `<split>-00000-of-00004.parquet` (any split name), a file name
/// that is a split keyword followed only by separators and digits (`train.parquet`,
/// `test_0.parquet`; not a malformed shard name like `train-0-of-4`), or a parent directory named
/// after one (`train/0000.parquet`). Keywords map to `train`, `validation` (`valid`, `dev`,
/// `val`) and `test` (`testing`, `eval`, `evaluation`). The domain is the nearest parent
/// directory that is neither `data` nor a split name (`kowiki/data/train-…` → `kowiki`); `None`
/// when there is none.
pub fn hf_split(name: &str) -> Option<(String, Option<String>)> {
    let parts: Vec<&str> = name.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    let (base, dirs) = parts.split_last()?;
    let stem = base.strip_suffix(".parquet")?;
    let split = sharded_split(stem)
        .map(str::to_string)
        .or_else(|| {
            // A keyword followed only by separators and digits (`test_0`, `train.0`); a
            // malformed shard name such as `train-0-of-4` is not one.
            let first = stem.split(['-', '_', '.']).next().unwrap_or(stem);
            let rest = &stem[first.len()..];
            rest.chars()
                .all(|c| c.is_ascii_digit() || "-_. ".contains(c))
                .then(|| split_keyword(first))
                .flatten()
                .map(str::to_string)
        })
        .or_else(|| {
            dirs.iter()
                .rev()
                .take(2)
                .find_map(|d| split_keyword(d))
                .map(str::to_string)
        })?;
    let domain = dirs
        .iter()
        .rev()
        .find(|d| {
            **d != "data"
                && **d != split
                && split_keyword(d).is_none()
                && !d.ends_with(':')
                && !d.contains("://")
        })
        .map(|d| d.to_string());
    Some((split, domain))
}

fn strip_compression(name: &str) -> &str {
    for ext in [".gz", ".zst", ".zstd"] {
        if let Some(s) = name.strip_suffix(ext) {
            return s;
        }
    }
    name
}

/// The domain a file name implies: its base name without compression and JSONL extensions
/// (`news.jsonl.zst` → `news`).
pub fn domain_from_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut s = strip_compression(base);
    for e in JSONL_EXTENSIONS.iter().chain(&["txt", PARQUET_EXTENSION]) {
        if let Some(x) = s.strip_suffix(&format!(".{e}")) {
            s = x;
            break;
        }
    }
    s.to_string()
}

/// One input to read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceItem {
    /// Display name: the local path or the `s3://` URL (used in ids, reports and rejects).
    pub name: String,
    /// Where its bytes are.
    pub location: Location,
    /// Size in bytes as stored (compressed), when known.
    pub size: Option<u64>,
    /// S3 ETag, when the input is an object (part of the stage-cache key).
    pub etag: Option<String>,
    /// How the bytes are compressed (JSONL; Parquet compresses inside the file).
    pub compression: Compression,
    /// How the records are stored.
    pub format: Format,
    /// Split of a Parquet file in the Hugging Face datasets layout (see [`hf_split`]).
    pub split: Option<String>,
}

impl SourceItem {
    /// An input at `location` named `name`; compression, format and split follow from the name.
    pub fn new(name: String, location: Location, size: Option<u64>, etag: Option<String>) -> Self {
        let format = Format::from_name(&name);
        let split = match format {
            Format::Parquet => hf_split(&name).map(|(s, _)| s),
            Format::Jsonl => None,
        };
        Self {
            compression: Compression::from_name(&name),
            format,
            split,
            name,
            location,
            size,
            etag,
        }
    }

    /// A local file.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        let path: PathBuf = path.into();
        let name = path.display().to_string();
        let size = std::fs::metadata(&path).ok().map(|m| m.len());
        Self::new(name, Location::Local(path), size, None)
    }

    /// The domain implied by the name: for a Hugging Face datasets shard the dataset's
    /// directory (see [`hf_split`]; empty when there is none), else the file name stem.
    pub fn domain(&self) -> String {
        if self.split.is_some() {
            return hf_split(&self.name)
                .and_then(|(_, d)| d)
                .unwrap_or_default();
        }
        domain_from_name(&self.name)
    }

    /// The local path, for local inputs.
    pub fn local_path(&self) -> Option<&Path> {
        match &self.location {
            Location::Local(p) => Some(p),
            Location::S3(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_domains_and_urls() {
        assert_eq!(domain_from_name("data/news.jsonl.zst"), "news");
        assert_eq!(domain_from_name("s3://b/p/law.jsonl"), "law");
        assert_eq!(domain_from_name("chat.json.gz"), "chat");
        assert!(
            is_input_name("a/b/x.jsonl.gz")
                && is_input_name("x.ndjson")
                && !is_input_name(".x.jsonl")
        );
        assert!(!is_input_name("README.md") && !is_input_name("dir/"));
        let u = S3Url::parse("s3://bkt/a/b/").unwrap();
        assert_eq!((u.bucket.as_str(), u.key.as_str()), ("bkt", "a/b/"));
        assert_eq!(S3Url::parse("s3://bkt").unwrap().key, "");
        assert!(S3Url::parse("s3:///x").is_err() && S3Url::parse("/x").is_err());
        assert_eq!(Compression::from_name("a.jsonl.zst"), Compression::Zstd);
    }

    #[test]
    fn parquet_names_and_hf_layout() {
        assert!(is_input_name("d/x.parquet") && !is_input_name("d/_metadata.parquet"));
        assert_eq!(domain_from_name("s3://b/law.parquet"), "law");
        let hf = |n: &str| hf_split(n).map(|(s, d)| (s, d.unwrap_or_default()));
        let p = |s: &str, d: &str| Some((s.to_string(), d.to_string()));
        assert_eq!(
            hf("/x/kowiki/data/train-00000-of-00004.parquet"),
            p("train", "kowiki")
        );
        assert_eq!(
            hf("s3://b/news/data/heldout-00001-of-00002.parquet"),
            p("heldout", "news")
        );
        assert_eq!(hf("/x/chat/dev/0000.parquet"), p("validation", "chat"));
        assert_eq!(hf("/x/law/test.parquet"), p("test", "law"));
        assert_eq!(hf("/x/law/news.parquet"), None);
        assert_eq!(hf("/x/a/train-0-of-4.parquet"), None);
        let it = SourceItem::new(
            "/r/kowiki/data/train-00000-of-00001.parquet".into(),
            Location::Local("/r".into()),
            None,
            None,
        );
        assert_eq!(
            (it.format, it.split.as_deref(), it.domain().as_str()),
            (Format::Parquet, Some("train"), "kowiki")
        );
    }
}
