//! `text`: byte-level BPE tokenizers (Hugging Face `tokenizers`), trained on a dataset or loaded
//! from a `tokenizer.json`.
//!
//! ```no_run
//! use yunmin_core::ingest::Dataset;
//! use yunmin_core::text::{Tokenizer, TokenizerConfig};
//! let ds = Dataset::open("data/dedup_ready")?;
//! let mut tok = Tokenizer::train(&ds, &TokenizerConfig { vocab_size: 8000, ..Default::default() })?;
//! tok.save("data/tokenizer.json".as_ref())?;
//! let ids = Tokenizer::load("data/tokenizer.json")?.encode("안녕하세요")?;
//! # Ok::<(), yunmin_core::Error>(())
//! ```
//!
//! The tokenizer is a GPT-2 style byte-level BPE: NFC normalisation, the byte-level
//! pre-tokenizer (GPT-2 split regex, no prefix space), a BPE model whose initial alphabet is the
//! 256 byte symbols (so every input is encodable and `<unk>` is never produced), and the
//! byte-level decoder. The special tokens come first, with fixed ids:
//!
//! | id | token | use |
//! |---|---|---|
//! | 0 | `<s>` | beginning of a sequence |
//! | 1 | `</s>` | end of a document (training concatenates documents with it) |
//! | 2 | `<pad>` | padding |
//! | 3 | `<unk>` | unknown (kept for compatibility; byte-level BPE never emits it) |
//!
//! [`Tokenizer::encode`] adds no special tokens; the token columns written by
//! [`crate::columnar`] hold the plain encoding of each text.
//!
//! Training is deterministic: the same corpus, configuration and seed give the same
//! `tokenizer.json` byte for byte (the seed selects the sampled documents when
//! [`TokenizerConfig::sample`] < 1).

mod error;
pub mod staged;
mod tokenizer;

pub use error::TextError;
pub use tokenizer::{SPECIAL_TOKENS, Tokenizer, TokenizerConfig, TokenizerInfo};
