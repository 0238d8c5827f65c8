//! Errors of the `dedup` module.

/// What can go wrong in `dedup`.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid dedup configuration: {0}")]
    Config(String),
    /// The Redis index at `url` failed (unreachable, died mid-run, or refused a command).
    #[error("Redis LSH index at {url}: {op} failed: {msg}")]
    Redis {
        /// The `redis://` URL as configured.
        url: String,
        /// What was being done ("connect", "insert", "query", "clear").
        op: &'static str,
        /// The client's message.
        msg: String,
    },
    /// A signature file is unreadable, truncated, or was made with other settings.
    #[error("signature file {path}: {msg}")]
    Signatures {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// The signature files of a sharded run are incomplete or inconsistent.
    #[error("sharded dedup: {0}")]
    Shards(String),
}
