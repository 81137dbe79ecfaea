//! The use cases of stroom, one code path for the command line, the API
//! backend and the Python package: a target's series read from a store
//! vintage ([`target_series`]); a cell's density series ([`cell_series`]); backtests and forecasts, their rows as
//! Arrow batches and files, and their records in the store ([`backtest`],
//! [`forecast`]); a route's map or briefing page ([`render`]); capacity alerts from the forecast runs ([`alerts`], [`Capacities`]); closure scenarios beside their baseline ([`scenario`]); how unusual a day's density is on a route ([`nowcast`]); simulation
//! with the shipped real arrivals ([`simulate`]); the routes
//! ([`load_routes`]); and [`StoreBackend`], the API's [`stroom_api::Backend`]
//! over a store.
//!
//! The crate parses no arguments and prints nothing: callers pass plain
//! values ([`BacktestSpec`], [`ForecastSpec`]) and get results back,
//! with progress reported through callbacks. One error type,
//! [`PipelineError`].

mod alerts;
mod backend;
mod error;
mod maps;
mod nowcast;
mod routes;
mod runs;
mod scenario;
mod series;
mod simulate;
mod target;

pub use alerts::{
    AlertRules, Capacities, DEFAULT_ALERT_LEVEL, ExceedanceCalibration, Observed, ObservedCache, ReliabilityBin,
    WINDOW_DAYS, alerts, derive_alerts, exceedance_calibration, observed_for, recent_quantile,
};
pub use backend::StoreBackend;
pub use error::{PipelineError, Result, chain_text};
pub use maps::{PNG_WIDTH, render};
pub use nowcast::{NOWCAST_WEEKS, nowcast};
pub use routes::{find_route, load_routes, route_geojson};
pub use runs::{
    BacktestRun, BacktestSpec, DEFAULT_BACKTEST_MODELS, ForecastRun, ForecastSpec, ModelOptions, TargetForecast,
    backtest, forecast,
};
pub use scenario::{
    Closure, DEFAULT_TRANSFER_DAYS, MAX_TRAVEL_DAYS, ScenarioAssumptions, ScenarioRun, ScenarioSpec, ScenarioTarget,
    recorded_scenarios, scenario, scenario_page,
};
pub use series::{CellDensity, cell_series};
pub use simulate::{UK_ARRIVALS, simulate};
pub use target::{Target, TargetSeries, target_series};
