//! `source`: where records come from. Local files, directories and globs, `s3://bucket/prefix/`
//! objects (aws-sdk-s3), `.gz`/`.zst` decompression on the fly, line streaming over raw bytes,
//! and Parquet read by row group with a column projection, with several inputs in flight.

mod config;
mod error;
mod lines;
mod local;
mod location;
mod parquet_rows;
mod s3;
mod stream;

pub use config::SourceConfig;
pub use error::SourceError;
pub use lines::{
    ChunkTotals, CountingReader, LineChunk, Oversize, ReadCounters, chunk_lines, decompress,
};
pub use local::expand_local;
pub use location::{
    Compression, Format, JSONL_EXTENSIONS, Location, PARQUET_EXTENSION, S3Url, SourceItem,
    domain_from_name, hf_split, is_input_name,
};
pub use parquet_rows::{ParquetTotals, Projection, RowChunk, UTF8_AS_BYTES, read_parquet};
pub use s3::{Multipart, S3Reader, S3Store};
pub use stream::{ChunkStream, SourceDone, StreamItem, resolve};
