//! `columnar`: see `docs/architecture.md` for its place in the pipeline.

mod error;

pub use error::ColumnarError;
