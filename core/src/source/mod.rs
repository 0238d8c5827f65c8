//! `source`: where bytes come from. Local files, directories and globs, `s3://bucket/prefix/`
//! objects (aws-sdk-s3), `.gz`/`.zst` decompression on the fly, and line streaming over raw
//! bytes with several inputs in flight.

mod config;
mod error;
mod lines;
mod local;
mod location;
mod s3;
mod stream;

pub use config::SourceConfig;
pub use error::SourceError;
pub use lines::{
    ChunkTotals, CountingReader, LineChunk, Oversize, ReadCounters, chunk_lines, decompress,
};
pub use local::expand_local;
pub use location::{
    Compression, JSONL_EXTENSIONS, Location, S3Url, SourceItem, domain_from_name, is_input_name,
};
pub use s3::{S3Reader, S3Store};
pub use stream::{ChunkStream, SourceDone, StreamItem, resolve};
