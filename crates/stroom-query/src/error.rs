use thiserror::Error;

/// Every way a query can fail.
///
/// A variant names its cause in its message or returns it as its
/// `source()`, never both, so that a chain printed whole (anyhow's `{:#}`)
/// names each cause once. DataFusion's errors are the exception, shown and
/// not chained: their messages already hold their causes, which their own
/// `source()` returns again (for a SQL typo, the parser's message a second
/// time, in another form).
#[derive(Debug, Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] stroom_store::StoreError),
    #[error(transparent)]
    Core(#[from] stroom_core::CoreError),
    #[error("{0}")]
    DataFusion(datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("Delta table '{table}'")]
    Delta { table: String, source: deltalake::DeltaTableError },
    #[error("Ballista scheduler {url}: {problem}")]
    Cluster { url: String, problem: String },
    #[error("the store has no '{0}' table yet")]
    MissingTable(String),
    #[error("this statement is refused: stroom query is read-only ({0})")]
    ReadOnly(String),
}

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        Self::DataFusion(error)
    }
}
