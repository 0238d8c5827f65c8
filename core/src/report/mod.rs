//! Reporting: result tables backed by polars, PNG charts (plotters) and notebooks with their
//! outputs. A leaf module: every pipeline module may return a [`Table`].

mod error;
mod markdown;
mod notebook;
mod plot;
mod summary;
mod table;

pub use error::ReportError;
pub use notebook::{CellOutput, Notebook};
pub use plot::{BarChart, ChartConfig, LineChart};
pub use table::{CsvConfig, FilterOp, JoinHow, Table};

/// Revision of what the report functions draw and write from the same tables (charts,
/// notebooks): raised when that changes, so cached stages that call them redraw. 1: bar charts
/// start at zero and stagger category names that would overlap.
pub const RENDER_REVISION: u32 = 1;
