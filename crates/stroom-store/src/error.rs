use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// Where in an input file a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A line of a CSV file, 1-based, the header being line 1.
    Line(u64),
    /// A data row of a Parquet file, 1-based.
    Row(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// Every way reading, validating or committing to a store can fail. Input
/// errors name the file, the row and the column, and carry the offending
/// value; nothing is written when one occurs.
///
/// A variant names its cause in its message or returns it as its
/// `source()`, never both, so that a chain printed whole (anyhow's `{:#}`)
/// names each cause once; a message shown alone leaves the cause out.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: no .csv or .parquet files found")]
    NoInputFiles { path: PathBuf },
    #[error("{path}: unsupported file type (expected .csv or .parquet)")]
    UnsupportedFile { path: PathBuf },
    #[error("{path}: the file is empty")]
    EmptyFile { path: PathBuf },
    #[error("{path}: the header has no data rows below it")]
    NoRows { path: PathBuf },
    #[error("{path}: {problem}; found columns [{found}], expected {expected}")]
    Columns { path: PathBuf, problem: String, found: String, expected: String },
    #[error("{path}, column '{column}': type {found} is not usable ({expected})")]
    ColumnType { path: PathBuf, column: String, found: String, expected: String },
    #[error("{path}, {location}, column '{column}', value '{value}': {problem}")]
    Field { path: PathBuf, location: Location, column: String, value: String, problem: String },
    #[error("{path}, {location}: malformed CSV: {problem}")]
    Csv { path: PathBuf, location: Location, problem: String },
    #[error("{path}: not a readable Parquet file: {problem}")]
    Parquet { path: PathBuf, problem: String },
    #[error("the sum of counts for cell {cell} at {hour} exceeds {max}")]
    CountOverflow { cell: String, hour: String, max: i64 },
    #[error("invalid option: {0}")]
    Option(String),
    #[error("the density table holds resolution {stored} cells; this ingest asked for resolution {requested}")]
    ResolutionMismatch { stored: u8, requested: u8 },
    #[error("store location '{location}' is not usable: {problem}")]
    Location { location: String, problem: String },
    #[error("Delta table '{table}'")]
    Delta { table: String, source: deltalake::DeltaTableError },
    #[error("query on table '{table}'")]
    Query { table: String, source: datafusion::error::DataFusionError },
    #[error("building Arrow data")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

impl StoreError {
    pub(crate) fn delta(table: impl Into<String>) -> impl FnOnce(deltalake::DeltaTableError) -> Self {
        let table = table.into();
        move |source| Self::Delta { table, source }
    }

    pub(crate) fn query(table: impl Into<String>) -> impl FnOnce(datafusion::error::DataFusionError) -> Self {
        let table = table.into();
        move |source| Self::Query { table, source }
    }
}
