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

/// Whether a file name found in a directory or under a prefix is an input: a JSONL extension,
/// optionally compressed; hidden names (starting with `.`) are skipped.
pub fn is_input_name(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    if base.starts_with('.') || base.is_empty() {
        return false;
    }
    let plain = strip_compression(base);
    JSONL_EXTENSIONS
        .iter()
        .any(|e| plain.len() > e.len() + 1 && plain.ends_with(&format!(".{e}")))
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
    for e in JSONL_EXTENSIONS.iter().chain(&["txt"]) {
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
    /// How the bytes are compressed.
    pub compression: Compression,
}

impl SourceItem {
    /// A local file.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        let path: PathBuf = path.into();
        let name = path.display().to_string();
        let size = std::fs::metadata(&path).ok().map(|m| m.len());
        Self {
            compression: Compression::from_name(&name),
            name,
            location: Location::Local(path),
            size,
            etag: None,
        }
    }

    /// The domain implied by the name.
    pub fn domain(&self) -> String {
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
}
