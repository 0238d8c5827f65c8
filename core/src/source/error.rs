//! Errors of the `source` module.

use std::path::PathBuf;

/// What can go wrong while finding or reading input bytes.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid source configuration: {0}")]
    Config(String),
    /// A local path, directory or glob matched no input file.
    #[error("no input files match {pattern}")]
    NoMatch {
        /// The path, directory or glob as given.
        pattern: String,
    },
    /// A glob pattern does not parse.
    #[error("bad glob pattern {pattern}: {reason}")]
    BadGlob {
        /// The pattern.
        pattern: String,
        /// Why it does not parse.
        reason: String,
    },
    /// Reading or decompressing a local or remote input failed.
    #[error("reading {source_name} at byte {offset}: {reason}")]
    Read {
        /// The input (path or `s3://` URL).
        source_name: String,
        /// Position in the (compressed) input where it failed.
        offset: u64,
        /// The underlying error text.
        reason: String,
    },
    /// A Parquet input is not valid Parquet, or one of its pages does not decode.
    #[error("reading Parquet {source_name}{}: {reason}", row_group.map(|g| format!(" (row group {g})")).unwrap_or_default())]
    Parquet {
        /// The input (path or `s3://` URL).
        source_name: String,
        /// The 0-based row group, when the failure is inside one.
        row_group: Option<usize>,
        /// The underlying error text.
        reason: String,
    },
    /// An `s3://` URL does not parse.
    #[error("bad S3 URL {url}: expected s3://bucket/prefix")]
    BadUrl {
        /// The URL as given.
        url: String,
    },
    /// The bucket does not exist at the endpoint.
    #[error("{url}: bucket `{bucket}` does not exist (endpoint {endpoint})")]
    NoSuchBucket {
        /// The URL being accessed.
        url: String,
        /// The bucket.
        bucket: String,
        /// The endpoint used.
        endpoint: String,
    },
    /// The object does not exist.
    #[error("{url}: no such object (endpoint {endpoint})")]
    NoSuchKey {
        /// The URL being accessed.
        url: String,
        /// The endpoint used.
        endpoint: String,
    },
    /// The credentials were refused or are missing.
    #[error(
        "{url}: access denied by {endpoint}: {code}: {message} — check the credentials \
         (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and the bucket policy"
    )]
    AccessDenied {
        /// The URL being accessed.
        url: String,
        /// The endpoint used.
        endpoint: String,
        /// The S3 error code (`SignatureDoesNotMatch`, `InvalidAccessKeyId`, `AccessDenied`, …).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The endpoint could not be reached (connection refused, DNS, timeout).
    #[error("{url}: cannot reach S3 endpoint {endpoint}: {reason}")]
    Unreachable {
        /// The URL being accessed.
        url: String,
        /// The endpoint used.
        endpoint: String,
        /// The transport error chain.
        reason: String,
    },
    /// Any other S3 failure, with the server's code and message.
    #[error("{url}: S3 {op} failed at {endpoint}: {reason}")]
    S3 {
        /// The URL being accessed.
        url: String,
        /// The operation (`ListObjectsV2`, `GetObject`, `PutObject`).
        op: &'static str,
        /// The endpoint used.
        endpoint: String,
        /// Error code, message and cause chain.
        reason: String,
    },
    /// An object's body kept failing mid-stream after the allowed resumes.
    #[error(
        "{url}: connection dropped at byte {offset} of {size} and {attempts} ranged resumes in a \
         row made no progress (endpoint {endpoint}): {reason}"
    )]
    ResumeExhausted {
        /// The object.
        url: String,
        /// The endpoint used.
        endpoint: String,
        /// Bytes received before the final failure.
        offset: u64,
        /// Object size (or `?`).
        size: String,
        /// Attempts made without progress.
        attempts: usize,
        /// The last error.
        reason: String,
    },
    /// Uploading a local output file failed.
    #[error("uploading {path} to {url}: {reason}")]
    Upload {
        /// The local file.
        path: PathBuf,
        /// The destination URL.
        url: String,
        /// Why.
        reason: String,
    },
}
