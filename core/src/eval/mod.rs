//! `eval`: see `docs/architecture.md` for its place in the pipeline.
//!
//! Metrics (see `docs/metrics.md`): [`bleu`] (sacreBLEU-compatible), [`rouge`]
//! (rouge-score-compatible), [`perplexity`] (exact token-level NLL sums), their [`tokenize`]rs,
//! [`runner`] (every model on every domain: perplexity, generations, BLEU, ROUGE) and
//! [`metrics_bench`] (speed against the Python peers).

mod error;

pub mod bleu;
pub mod metrics_bench;
mod ngram;
pub mod perplexity;
pub mod rouge;
pub mod runner;
pub mod tokenize;

pub use error::EvalError;
