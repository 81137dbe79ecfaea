//! The REST API of stroom: planners read forecasts, maps and briefings;
//! analysts read density series and start backtests; admins refresh
//! forecasts and read metrics. Everything but the health checks needs a
//! bearer token, whose role and route scope are enforced on every endpoint,
//! and every request is written to a JSON-lines audit log.
//!
//! The crate is the HTTP layer only: routing, keys and roles, the audit log,
//! request metrics, the wire types (DTOs) and the OpenAPI document generated
//! from them. What the endpoints return comes from a [`Backend`], which
//! `stroom-pipeline`'s `StoreBackend` implements over the store, the query
//! layer, the models and the maps. Forecasts are served from an in-memory
//! snapshot of the `forecasts` table that is reloaded when the table's
//! version changes, so that reading a forecast costs no query.
//!
//! - `backend`: the [`Backend`] trait and the [`ForecastSnapshot`] it loads.
//! - `auth`: [`KeyFile`] (SHA-256 hashes only), [`Role::allows`], the whole
//!   policy, and [`KeyRecord::sees_route`], the route scope.
//! - `audit`, `metrics`: the audit log and the Prometheus metrics.
//! - `dto`: the wire types, converted from domain types.
//! - `error`: [`ApiError`] and the one `IntoResponse`, RFC 9457 problems.
//! - `openapi`: the OpenAPI 3.1 document ([`openapi_json`]).
//! - `state`: what every handler shares ([`ApiConfig`], the forecast
//!   snapshot and its response cache, the jobs, the role and scope checks).
//! - `handlers`: the endpoints.
//! - `upload`: request bodies streamed to a local file for ingest.
//! - `server`: the middleware, the router, the snapshot's reloading and
//!   [`serve`].
//!
//! The modules import in one direction: `state` ← `handlers` ← `server`.

mod audit;
mod auth;
mod backend;
mod dto;
mod error;
mod handlers;
mod journal;
mod metrics;
mod openapi;
mod refresh;
mod server;
mod state;
mod upload;
mod webhooks;

pub use auth::{KeyFile, KeyRecord, KeyState, Permission, Role, expiry};
pub use backend::{Backend, BackendError, BackendFuture, ForecastRun, ForecastSnapshot, MapFormat};
pub use dto::{
    Alert, AlertEvent, AlertFilter, AlertList, AlertStatus, AlertWindow, ArrivalsUpload, BacktestJob, BacktestRequest,
    Capacity, CellSeries, CellSeriesPoint, DensityUpload, EmptyCount, ForecastParts, ForecastRow, IngestResult,
    IngestStatus, JobStatus, MapLayer, MetricsEntry, NowcastEntry, Problem, RefreshJob, RouteDetail, RouteForecast,
    RouteNowcast, RouteSeries, RouteSeriesPoint, RouteSummary, Scenario, ScenarioAssumptions, ScenarioList,
    ScenarioRequest, ScenarioTarget, SegmentDto, SeriesLevel, SignalShare, StationCapacity, StationDto,
    StationForecast, TargetForecast, TimeResolution,
};
pub use error::ApiError;
pub use openapi::openapi_json;
pub use refresh::parse_refresh;
pub use server::serve;
pub use state::ApiConfig;
