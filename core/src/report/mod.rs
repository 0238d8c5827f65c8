//! Reporting: result tables backed by polars, and (later phases) plots, notebooks and markdown.
//! A leaf module: every pipeline module may return a [`Table`].

mod error;
mod table;

pub use error::ReportError;
pub use table::{FilterOp, JoinHow, Table};
