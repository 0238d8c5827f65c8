//! Errors of the `ingest` module.

/// What can go wrong in `ingest`.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Invalid configuration, with the offending setting named.
    #[error("invalid ingest configuration: {0}")]
    Config(String),
    /// Lines read and lines written disagree for an input (a bug; nothing is committed).
    #[error("{source_name}: {read} lines read but {accounted} accounted for")]
    Accounting {
        /// The input.
        source_name: String,
        /// Lines the reader counted.
        read: u64,
        /// Valid + rejected.
        accounted: u64,
    },
    /// A part of a parted ingest is missing or holds other inputs.
    #[error("ingest part {part}: {problem}")]
    Part {
        /// `I/N`.
        part: String,
        /// What is wrong and what to do.
        problem: String,
    },
}
