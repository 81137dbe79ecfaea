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
    #[error("{path}: no .csv, .csv.gz, .csv.zst or .parquet files found")]
    NoInputFiles { path: PathBuf },
    #[error("{path}: unsupported file type (expected .csv, .csv.gz, .csv.zst or .parquet)")]
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
    #[error(
        "{cell_hours} (cell, hour) counts of this delivery are stored already (the first: cell {cell} at {hour}); \
         adding them would count them twice, so nothing was written (deliver each hour once; a corrected \
         delivery replaces the stored hours with --replace, a supplementary one adds to them with --add-to-stored)"
    )]
    Repeated { cell_hours: u64, cell: String, hour: String },
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
    /// Whether the error is in the input itself (its name, layout, a row or
    /// a value), which the one who delivered it must mend, rather than in
    /// the store or the machine.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::NoInputFiles { .. }
                | Self::UnsupportedFile { .. }
                | Self::EmptyFile { .. }
                | Self::NoRows { .. }
                | Self::Columns { .. }
                | Self::ColumnType { .. }
                | Self::Field { .. }
                | Self::Csv { .. }
                | Self::Parquet { .. }
                | Self::CountOverflow { .. }
                | Self::Repeated { .. }
                | Self::Option(_)
        )
    }

    /// A bad value at `location`, quoted at most in part (see
    /// [`crate::input::quoted`]): a 5 MB field is not echoed whole.
    pub(crate) fn field(
        path: &std::path::Path,
        location: Location,
        column: &str,
        value: &str,
        problem: impl Into<String>,
    ) -> Self {
        Self::Field {
            path: path.to_owned(),
            location,
            column: crate::input::quoted(column),
            value: crate::input::quoted(value),
            problem: problem.into(),
        }
    }

    pub(crate) fn delta(table: impl Into<String>) -> impl FnOnce(deltalake::DeltaTableError) -> Self {
        let table = table.into();
        move |source| Self::Delta { table, source }
    }

    pub(crate) fn query(table: impl Into<String>) -> impl FnOnce(datafusion::error::DataFusionError) -> Self {
        let table = table.into();
        move |source| Self::Query { table, source }
    }
}
