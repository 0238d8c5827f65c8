//! Errors of the `report` module.

/// What can go wrong building tables, plots or reports.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A column was asked for that the table does not have.
    #[error("no column `{name}` (columns: {known})")]
    NoColumn {
        /// The missing column.
        name: String,
        /// The table's columns, comma-separated.
        known: String,
    },
    /// A value cannot be stored in a table cell.
    #[error("column `{column}`: unsupported value {value} (use numbers, strings, booleans or ())")]
    Value {
        /// The column.
        column: String,
        /// The offending value, as JSON.
        value: String,
    },
    /// An unknown operator or join kind.
    #[error("unknown {what} `{got}` (expected one of: {expected})")]
    Unknown {
        /// "filter operator", "join kind", …
        what: &'static str,
        /// What was given.
        got: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// A column cannot be summarised or reshaped as asked (not numeric, empty, a value out of
    /// range, two values for one pivot cell).
    #[error("column `{column}`: {problem}")]
    Column {
        /// The column.
        column: String,
        /// What is wrong, with the offending row or value.
        problem: String,
    },
    /// Drawing a chart failed.
    #[error("plot: {0}")]
    Plot(String),
}
