//! `eval`: see `docs/architecture.md` for its place in the pipeline.
//!
//! Metrics (see `docs/metrics.md`): [`bleu`] (sacreBLEU-compatible), [`rouge`]
//! (rouge-score-compatible), [`perplexity`] (exact token-level NLL sums), their [`tokenize`]rs,
//! and [`runner`] (every model on every domain: perplexity, generations, BLEU, ROUGE).

mod error;

pub mod bleu;
mod ngram;
pub mod perplexity;
pub mod rouge;
pub mod runner;
pub mod tokenize;

pub use error::EvalError;
