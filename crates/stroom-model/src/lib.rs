//! Forecasting for stroom, free of I/O: features from daily series (lags,
//! calendar, trend and the upstream density signal with its lead estimated
//! from the data), member models behind one trait (naive, seasonal naive,
//! moving average, MSTL + AutoETS from augurs, and the direct multi-horizon
//! ElasticNet from linfa), an ensemble and an automatic choice, quantiles
//! and intervals calibrated from out-of-sample residuals, metrics with
//! utilsforecast's conventions, and rolling-origin backtests with
//! statsforecast's fold convention.
//!
//! Callers read the store and pass [`SeriesInput`]s in (a daily target with
//! NaN for unknown days, upstream signals aligned with it, holidays);
//! everything here is a pure function of its inputs.
//!
//! - [`features`]: the upstream signals ([`density_excess`]), their leads
//!   ([`estimate_lead`]) and the rows of the regression.
//! - `models`: the [`Forecaster`] trait and the members, each in linfa's
//!   params → `check()` → valid params shape ([`BaselineParams`],
//!   [`EtsParams`], [`ElasticNetParams`]).
//! - `forecast`: [`forecast_at`], every model from one cutoff, with the
//!   ensemble, the automatic choice and calibrated quantiles.
//! - `exceedance`: the chance that arrivals exceed a capacity, from the
//!   published quantiles ([`Quantiles::exceedance`]).
//! - [`metrics`]: accuracy with utilsforecast's conventions.
//! - `backtest`: statsforecast's folds ([`Folds`]), [`backtest()`] and the
//!   summaries.
//!
//! Every failure is a [`ModelError`].

mod backtest;
mod error;
mod exceedance;
pub mod features;
mod forecast;
pub mod metrics;
mod models;

pub use backtest::{
    Backtest, BacktestRow, Folds, MetricsRow, backtest, backtest_with_progress, last_known, rows_of, summarise,
};
pub use error::ModelError;
pub use exceedance::{Exceedance, Quantiles, Tail};
pub use features::{
    BASELINE_WEEKS, LONG_BASELINE_WEEKS, Lead, RobustScore, density_excess, estimate_lead, robust_score,
};
pub use forecast::{
    Attribution, CutoffForecast, ForecastParams, ModelForecast, Step, ValidForecastParams, conformal_quantile,
    forecast_at,
};
pub use metrics::Metrics;
pub use models::{
    BaselineParams, BaselineValidParams, ElasticNetParams, ElasticNetValidParams, EtsParams, EtsValidParams,
    Forecaster, MemberRun, ModelKind, PointParts, SeriesInput, SignalLead, SignalPart, UpstreamSignal,
};
