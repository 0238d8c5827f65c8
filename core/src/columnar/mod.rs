//! `columnar`: JSONL datasets → Arrow → Parquet, one file per domain, tokenised, with
//! per-column compression, schema files, validation and readers for training.
//!
//! # Converting
//!
//! [`convert`] streams a [`crate::ingest::Dataset`] (a directory of `part-*.jsonl`) in bounded
//! chunks, decodes each with arrow-json against an **explicit** schema, tokenises the texts in
//! parallel (when given a [`crate::text::Tokenizer`]) and writes, under the output directory
//! (replaced atomically when complete):
//!
//! | file | content |
//! |---|---|
//! | `<domain>.parquet` | the domain's training rows |
//! | `heldout/<domain>.parquet` | its held-out rows (seeded hash of the id < `heldout`) |
//! | `<domain>.schema.txt`, `heldout/<domain>.schema.txt`, `schema.txt` | the schema, one field per line |
//! | `rejects.jsonl` | rows that were not written, with shard, line, category and reason |
//! | `parquet_report.json` | [`ConversionReport`]: files, rows, tokens, bytes, rejects, config |
//!
//! Columns: `id: utf8, text: utf8, domain: dictionary<int32, utf8>, source: utf8,
//! tokens: list<int32>, n_tokens: int32` (the last two only with a tokenizer), then the
//! declared extras ([`ExtraField`], nullable). The list element is named `element`, so the
//! Parquet column path is `tokens.list.element` (pyarrow's per-column key). Default codecs:
//! `text` Brotli 5, `tokens` Zstd 3, other columns Zstd 3 ([`ConvertConfig`]).
//!
//! Domain names may be any Unicode; names that cannot safely name a file (empty, `.`/`..`,
//! leading `.`, path separators, control characters, > 200 bytes; see
//! [`domain_name_problem`]) reject their rows (category `domain`) — nothing escapes the output
//! directory. Every domain with at least one accepted row gets both its train and held-out
//! files, either possibly with zero rows. Memory is bounded by the configuration, not the
//! input size.
//!
//! # Reading token sequences for training
//!
//! ```no_run
//! use yunmin_core::columnar::{ParquetSet, Split, read_tokens};
//! let set = ParquetSet::open("runs/x/data/parquet")?;
//! for d in set.domains() {
//!     let train: Vec<Vec<u32>> = set.read_tokens(Some(d), Split::Train)?;
//!     let heldout = set.read_tokens(Some(d), Split::Heldout)?;
//! }
//! // Streaming, in batches of 512 documents, reading only the `tokens` column:
//! for batch in set.files(None, Split::Train)?.batches(512) {
//!     let batch: Vec<Vec<u32>> = batch?;
//! }
//! // One file:
//! let seqs = read_tokens("runs/x/data/parquet/law.parquet".as_ref())?;
//! # Ok::<(), yunmin_core::Error>(())
//! ```
//!
//! Token ids are those of the tokenizer recorded in the report (no special tokens added; the
//! tokenizer's `</s>` is id 1, see [`crate::text`]).

mod brotli_column;
mod chunks;
mod config;
mod convert;
mod error;
mod memory;
mod parts;
mod reader;
mod report;
mod schema;
pub mod staged;
mod validate;
mod writer;

pub use config::{
    BrotliEncoder, ConvertConfig, ExtraField, Layout, UnknownFields, codec_name, parse_codec,
};
pub use convert::{convert, is_heldout, writer_properties};
pub use error::ColumnarError;
pub use memory::{peak_rss_mb, reset_peak_rss, rss_mb};
pub use parts::{gather, part_dir};
pub use reader::{ParquetSet, Split, TokenBatches, TokenFiles, open_tokens, read_tokens};
pub use report::{ConversionReport, FileReport, HELDOUT_DIR, REJECTS_FILE, REPORT_FILE};
pub use schema::{
    CORE_FIELDS, TOKENS_ELEMENT, domain_name_problem, input_schema, output_schema,
    parse_schema_text, schema_lines, schema_text, type_name,
};
pub use validate::{Validation, column_codecs, validate};

#[cfg(test)]
mod tests;
