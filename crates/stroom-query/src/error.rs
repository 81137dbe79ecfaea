use thiserror::Error;

/// Every way a query can fail.
#[derive(Debug, Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] stroom_store::StoreError),
    #[error(transparent)]
    Core(#[from] stroom_core::CoreError),
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("{0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("Delta table '{table}': {source}")]
    Delta { table: String, source: deltalake::DeltaTableError },
    #[error("the store has no '{0}' table yet")]
    MissingTable(String),
    #[error("this statement is refused: stroom query is read-only ({0})")]
    ReadOnly(String),
}
