use thiserror::Error;

/// Errors of model fitting, forecasting and backtests.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A parameter is out of its valid range.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter { name: &'static str, value: String, reason: String },
    /// A model name that stroom does not know.
    #[error("unknown model '{0}' (known: {1})")]
    UnknownModel(String, String),
    /// The series is too short for what was asked.
    #[error("not enough data: {0}")]
    NotEnoughData(String),
    /// A fit failed inside a model library.
    #[error("{model}: fit failed: {reason}")]
    Fit { model: String, reason: String },
}
