//! The one error type of the use cases.

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong in a use case. A variant names its cause in its
/// message or returns it as its `source()`, never both (as in the crates
/// below), so that a chain printed whole names each cause once.
#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] stroom_store::StoreError),
    #[error(transparent)]
    Query(#[from] stroom_query::QueryError),
    #[error(transparent)]
    Model(#[from] stroom_model::ModelError),
    #[error(transparent)]
    Core(#[from] stroom_core::CoreError),
    #[error(transparent)]
    Sim(#[from] stroom_sim::SimError),
    #[error(transparent)]
    Map(#[from] stroom_maps::MapError),
    /// A route, segment, station or target that the routes or the store do
    /// not have, or a request that names none.
    #[error("{0}")]
    Route(String),
    /// The store lacks what the use case reads (no arrivals, no forecast yet).
    #[error("{0}")]
    Missing(String),
    /// A station capacity that is refused (the file, station, field and value).
    #[error("{0}")]
    Capacity(String),
    /// A closure scenario that is refused (the field and value).
    #[error("{0}")]
    Scenario(String),
    /// A file the use case reads or writes.
    #[error("{path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("building Arrow data")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("writing Parquet")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("encoding JSON")]
    Json(#[from] serde_json::Error),
}

impl PipelineError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

impl From<datafusion::error::DataFusionError> for PipelineError {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        Self::Query(error.into())
    }
}

/// The result of a use case.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

impl PipelineError {
    /// The error and each of its causes once, joined by ": " (what a log
    /// line or an exception shows).
    pub fn text(&self) -> String {
        chain_text(self)
    }
}

/// `error` and each of its causes once, joined by ": ".
pub fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let message = next.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = next.source();
    }
    text
}

impl From<PipelineError> for stroom_api::BackendError {
    fn from(error: PipelineError) -> Self {
        match error {
            PipelineError::Missing(problem) => Self::NotFound(problem),
            PipelineError::Route(problem) | PipelineError::Scenario(problem) => Self::Invalid(problem),
            PipelineError::Model(
                stroom_model::ModelError::InvalidParameter { .. } | stroom_model::ModelError::UnknownModel(..),
            ) => Self::Invalid(error.text()),
            other => Self::Failed(other.text()),
        }
    }
}
