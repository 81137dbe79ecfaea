//! What the API serves comes from a [`Backend`]: `stroom-pipeline`'s
//! `StoreBackend` implements it over the store, the query layer, the models
//! and the maps. The API only routes, authorises, converts and caches.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use chrono::NaiveDate;
use stroom_core::{Cell, Route};

use crate::dto::{
    Alert, ArrivalsUpload, BacktestRequest, Capacity, CellSeries, DensityUpload, IngestResult, MapLayer, MetricsEntry,
    RouteNowcast, RouteSeries, Scenario, ScenarioRequest, SeriesLevel, StationCapacity, TargetForecast, TimeResolution,
};

/// The future a [`Backend`] method returns.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// Why a backend call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The thing asked for does not exist (a 404).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be served as asked (a 400).
    #[error("{0}")]
    Invalid(String),
    /// The uploaded data is refused (a 422): the text names the file, the
    /// line or row, the column and the value.
    #[error("{0}")]
    BadInput(String),
    /// Anything else (a 500; the text is logged, not returned).
    #[error("{0}")]
    Failed(String),
}

/// One forecast run as read from the `forecasts` table.
#[derive(Debug, Clone)]
pub struct ForecastRun {
    /// The run id.
    pub run_id: String,
    /// When the run was made (RFC 3339, UTC).
    pub generated_at: String,
    /// The data vintage: the version of each table the run read.
    pub vintage: BTreeMap<String, u64>,
    /// The run's targets.
    pub targets: Vec<TargetForecast>,
}

/// Every forecast run, newest first, as of one version of the table.
#[derive(Debug, Clone, Default)]
pub struct ForecastSnapshot {
    /// The `forecasts` table's version; `None` when it does not exist yet.
    pub version: Option<u64>,
    /// Runs, newest first.
    pub runs: Vec<ForecastRun>,
}

/// The representations of a route's map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapFormat {
    /// RFC 7946 GeoJSON.
    GeoJson,
    /// A static SVG map.
    Svg,
    /// A static PNG map.
    Png,
    /// The printable HTML briefing page.
    Html,
}

impl MapFormat {
    /// The response content type.
    pub fn content_type(self) -> &'static str {
        match self {
            MapFormat::GeoJson => "application/geo+json",
            MapFormat::Svg => "image/svg+xml",
            MapFormat::Png => "image/png",
            MapFormat::Html => "text/html; charset=utf-8",
        }
    }
}

/// The data behind the API.
pub trait Backend: Send + Sync + 'static {
    /// The routes served.
    fn routes(&self) -> &[Route];

    /// The current version of the `forecasts` table (cheap; polled).
    fn forecasts_version(&self) -> BackendFuture<'_, Option<u64>>;

    /// Every forecast run.
    fn forecasts(&self) -> BackendFuture<'_, ForecastSnapshot>;

    /// A route's density per segment or station, `to` exclusive. Every count
    /// returned is at least the store's k.
    fn route_series<'a>(
        &'a self,
        route: &'a Route,
        level: SeriesLevel,
        from: NaiveDate,
        to: NaiveDate,
    ) -> BackendFuture<'a, RouteSeries>;

    /// A cell's density (the sum of its descendants at the storage
    /// resolution), `to` exclusive. Every count returned is at least k.
    fn cell_series(
        &self,
        cell: Cell,
        resolution: TimeResolution,
        from: NaiveDate,
        to: NaiveDate,
    ) -> BackendFuture<'_, CellSeries>;

    /// How unusual a day's density is on a route (the latest day the store
    /// holds when `date` is `None`): every segment and the `cells` most
    /// unusual cells. No count in it is below k.
    fn nowcast<'a>(
        &'a self,
        route: &'a Route,
        date: Option<NaiveDate>,
        cells: usize,
    ) -> BackendFuture<'a, RouteNowcast>;

    /// Every station capacity, by station.
    fn capacities(&self) -> Vec<StationCapacity>;

    /// Sets a station's capacity and saves it: 404 for a station no route
    /// has, 400 for a capacity that is not positive.
    fn set_capacity<'a>(&'a self, station: &'a str, capacity: Capacity) -> BackendFuture<'a, StationCapacity>;

    /// Every capacity alert, open and closed, that the snapshot's runs give
    /// with the current capacities, and the probability level at which an
    /// alert opens.
    fn alerts<'a>(&'a self, snapshot: &'a ForecastSnapshot) -> BackendFuture<'a, (f64, Vec<Alert>)>;

    /// Checks a backtest request before it is queued.
    fn validate_backtest(&self, request: &BacktestRequest) -> Result<(), BackendError>;

    /// Runs a backtest and records it in the `backtests` table: returns the
    /// run id and the accuracy per model.
    fn backtest(&self, request: BacktestRequest) -> BackendFuture<'_, (String, Vec<MetricsEntry>)>;

    /// Forecasts every route from the latest data and records the run in the
    /// `forecasts` table: returns the run id and the targets.
    fn refresh(&self) -> BackendFuture<'_, (String, Vec<String>)>;

    /// The version of each data table a forecast reads (`density`,
    /// `arrivals`; those that exist): compared with a run's vintage, it
    /// tells whether the run is current.
    fn data_versions(&self) -> BackendFuture<'_, BTreeMap<String, u64>>;

    /// Checks a scenario request against the routes: 400 for a closure
    /// that cannot be run.
    fn validate_scenario(&self, request: &ScenarioRequest) -> Result<(), BackendError>;

    /// Runs a closure scenario from the latest data and records it in the
    /// `scenarios` table (never in `forecasts`).
    fn run_scenario(&self, request: ScenarioRequest) -> BackendFuture<'_, Scenario>;

    /// Every recorded scenario, newest first.
    fn scenarios(&self) -> BackendFuture<'_, Vec<Scenario>>;

    /// A recorded scenario's page: each station's baseline and scenario in
    /// one chart and one table.
    fn scenario_page<'a>(&'a self, run_id: &'a str) -> BackendFuture<'a, Vec<u8>>;

    /// Ingests an uploaded density file (CSV, possibly gzip or zstd, or
    /// Parquet) at `path`, exactly as `stroom ingest density` would: one
    /// commit or none. The file's name is the delivery's name.
    fn ingest_density<'a>(
        &'a self,
        path: &'a std::path::Path,
        options: &'a DensityUpload,
    ) -> BackendFuture<'a, IngestResult>;

    /// Ingests an uploaded arrivals CSV at `path`, as `stroom ingest
    /// arrivals` would with the same options.
    fn ingest_arrivals<'a>(
        &'a self,
        path: &'a std::path::Path,
        options: &'a ArrivalsUpload,
    ) -> BackendFuture<'a, IngestResult>;

    /// A route's map or briefing page for a forecast day (the first day of
    /// the latest run when `None`); on the nowcast layer, the map of how
    /// unusual a day's density is (the latest day when `None`).
    fn render<'a>(
        &'a self,
        route: &'a Route,
        date: Option<NaiveDate>,
        format: MapFormat,
        layer: MapLayer,
    ) -> BackendFuture<'a, Vec<u8>>;
}
