//! The wire types of the API. Domain types never go on the wire: these are
//! converted from them, so that the HTTP contract and the models can change
//! independently. Every type here appears in the OpenAPI document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An RFC 9457 problem document, the body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, naming the parameter and value for a 4xx.
    pub detail: String,
}

/// Liveness.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    pub status: String,
}

/// Readiness: the forecast snapshot is loaded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ready`.
    pub status: String,
    /// The version of the `forecasts` table served, when it exists.
    pub forecasts_version: Option<u64>,
    /// Forecast runs in memory.
    pub forecast_runs: usize,
    /// The refreshes: the last one, the data versions, whether the served
    /// run is current.
    pub refresh: RefreshStatus,
}

/// What the server knows of its forecast refreshes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct RefreshStatus {
    /// `auto` (`stroom serve --refresh auto` or an interval) or `off`.
    pub mode: String,
    /// How often the data versions are checked, in seconds (auto only).
    pub check_interval_s: Option<f64>,
    /// The vintage of the newest run served: the version of each data table
    /// it read.
    pub served_vintage: Option<BTreeMap<String, u64>>,
    /// The data tables' versions when last checked (auto only).
    pub data_versions: Option<BTreeMap<String, u64>>,
    /// When they were last checked (RFC 3339).
    pub checked_at: Option<String>,
    /// Whether the served run was made from those versions (auto only).
    pub current: Option<bool>,
    /// The most recent refresh job, started by an admin or automatically.
    pub last_refresh: Option<RefreshJob>,
    /// Refresh jobs that failed since the server started.
    pub failures: u64,
}

/// A route in a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouteSummary {
    /// The route id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The station the route converges on.
    pub destination: String,
    /// Number of stations.
    pub stations: usize,
    /// Number of segments.
    pub segments: usize,
}

/// A station of a route.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StationDto {
    /// The station id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// ISO country code.
    pub country: String,
    /// What the station is on the route (e.g. `crossing`, `destination`).
    pub role: String,
    /// Latitude (WGS 84).
    pub lat: f64,
    /// Longitude (WGS 84).
    pub lng: f64,
}

/// A segment of a route.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SegmentDto {
    /// The segment id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The station it starts at.
    pub from: String,
    /// The station it ends at.
    pub to: String,
    /// `land` or `sea`.
    pub mode: String,
}

/// A route with its stations, segments and geometry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouteDetail {
    /// The route id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What the route is.
    pub description: String,
    /// The station the route converges on.
    pub destination: String,
    /// Stations, upstream first.
    pub stations: Vec<StationDto>,
    /// Segments, upstream first.
    pub segments: Vec<SegmentDto>,
    /// An RFC 7946 FeatureCollection: one LineString per segment and one Point
    /// per station, coordinates as `[longitude, latitude]`.
    #[schema(value_type = Object)]
    pub geometry: serde_json::Value,
}

/// One forecast day of one target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ForecastRow {
    /// The forecast day.
    #[schema(format = Date)]
    pub date: String,
    /// Days after the cutoff (1 = the day after the last data).
    pub horizon: u32,
    /// The mean forecast.
    pub mean: f64,
    /// The 10% quantile (the 80% interval's lower bound).
    pub q10: f64,
    /// The median.
    pub q50: f64,
    /// The 90% quantile (the 80% interval's upper bound).
    pub q90: f64,
    /// Lower bound of the 80% interval.
    pub lo80: f64,
    /// Upper bound of the 80% interval.
    pub hi80: f64,
    /// Lower bound of the 95% interval.
    pub lo95: f64,
    /// Upper bound of the 95% interval.
    pub hi95: f64,
    /// With `explain=true`: the mean split into additive parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<ForecastParts>,
}

/// A forecast day's mean split into parts that sum to it exactly: `level +
/// Σ signals.part + rest = mean`.
///
/// The regression works on `log1p` counts, so its point forecast is split
/// by Shapley values on the count scale: `level` is the forecast with every
/// upstream signal at "no excess", and each signal's part is its average
/// change of the forecast over every order of adding the signals. Models
/// without signals put the whole point forecast in `level`; the ensemble
/// averages its members' parts; `rest` is the calibration's correction of
/// the mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ForecastParts {
    /// Level, lags, trend, weekday and holidays: the forecast without any
    /// upstream signal.
    pub level: f64,
    /// Each upstream signal's part, largest first.
    pub signals: Vec<SignalShare>,
    /// The mean minus the point forecast.
    pub rest: f64,
}

/// One upstream signal's part of a forecast day, in arrivals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SignalShare {
    /// The route segment, `ROUTE/SEGMENT`.
    pub segment: String,
    /// The weeks of the density baseline its excess is measured against (8:
    /// surges; 104: the seasonal level of the flow).
    pub baseline_weeks: u32,
    /// Days its density leads the arrivals.
    pub lead_days: u32,
    /// Arrivals it adds (negative: removes).
    pub part: f64,
}

/// The forecast of one target (arrivals at a station) in one run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TargetForecast {
    /// `station:ID` or `segment:ROUTE/SEGMENT`.
    pub target: String,
    /// The station whose arrivals are forecast.
    pub station: String,
    /// The model asked for (e.g. `auto`).
    pub model: String,
    /// The model `auto` chose, when it chose one.
    pub chosen: Option<String>,
    /// The last day of data the forecast used.
    #[schema(format = Date)]
    pub cutoff: String,
    /// One row per forecast day, nearest first.
    pub forecasts: Vec<ForecastRow>,
}

/// A route's forecasts from one run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouteForecast {
    /// The route id.
    pub route: String,
    /// The run that made the forecasts.
    pub run_id: String,
    /// When the run was made (RFC 3339, UTC).
    pub generated_at: String,
    /// The data vintage: the version of each table the run read.
    pub vintage: BTreeMap<String, u64>,
    /// The days served (the run's horizon, or fewer when asked).
    pub horizon: u32,
    /// One entry per forecast target of the route.
    pub targets: Vec<TargetForecast>,
}

/// A station's forecasts from its latest run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StationForecast {
    /// The station id.
    pub station: String,
    /// The run that made the forecasts.
    pub run_id: String,
    /// When the run was made (RFC 3339, UTC).
    pub generated_at: String,
    /// The data vintage: the version of each table the run read.
    pub vintage: BTreeMap<String, u64>,
    /// The days served.
    pub horizon: u32,
    /// One entry per forecast target at the station.
    pub targets: Vec<TargetForecast>,
}

/// How a route's density is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeriesLevel {
    /// The cells of each segment.
    Segment,
    /// The cells around each station.
    Station,
}

/// The time step of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TimeResolution {
    /// Daily totals.
    Day,
    /// Hourly counts.
    Hour,
}

/// Response representation of tabular endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    /// JSON (the default).
    Json,
    /// CSV with a header row.
    Csv,
}

/// One day (or hour) of a route's density in one group.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouteSeriesPoint {
    /// The segment or station id.
    pub name: String,
    /// The day (`YYYY-MM-DD`) or hour (RFC 3339).
    pub time: String,
    /// Devices counted (sum over the group's reported cell-hours).
    pub devices: i64,
    /// Cell-hours that were reported (not suppressed).
    pub cell_hours: i64,
}

/// A route's density series.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouteSeries {
    /// The route id.
    pub route: String,
    /// How cells are grouped.
    pub level: SeriesLevel,
    /// First day (inclusive).
    #[schema(format = Date)]
    pub from: String,
    /// Last day (exclusive).
    #[schema(format = Date)]
    pub to: String,
    /// The store's privacy threshold: no count below it is ever returned.
    pub k: u32,
    /// The data vintage: the version of each table read.
    pub vintage: BTreeMap<String, u64>,
    /// The points, by group then time.
    pub points: Vec<RouteSeriesPoint>,
}

/// How unusual one segment's or one cell's density is on the nowcast day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NowcastEntry {
    /// The segment id, or the H3 cell (hex) for a cell.
    pub name: String,
    /// For a cell: the segment it lies on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Devices counted on the day.
    pub devices: i64,
    /// The median of the same weekday over the previous weeks.
    pub baseline: f64,
    /// The robust spread of those weeks (1.4826 × the median absolute
    /// deviation, at least √(baseline + 1), the Poisson noise).
    pub spread: f64,
    /// The robust z-score, (devices − baseline) / spread: above 3 is a surge,
    /// below −3 a drop.
    pub z: f64,
    /// Same weekdays the baseline was taken over.
    pub weeks: u32,
}

/// How unusual a day's density is on a route, per segment and per cell.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouteNowcast {
    /// The route id.
    pub route: String,
    /// The day scored.
    #[schema(format = Date)]
    pub date: String,
    /// Its weekday, which the baseline is taken on.
    pub weekday: String,
    /// Weeks of same-weekday history the day is compared with.
    pub baseline_weeks: u32,
    /// The store's privacy threshold: an entry whose devices or baseline
    /// would be below it is left out.
    pub k: u32,
    /// The data vintage: the version of each table read.
    pub vintage: BTreeMap<String, u64>,
    /// Every segment that could be scored, most unusual (largest |z|) first.
    pub segments: Vec<NowcastEntry>,
    /// The most unusual cells, largest |z| first.
    pub cells: Vec<NowcastEntry>,
}

/// A station's capacity: the arrivals it can take per day, per seven
/// consecutive days, or both. The body of `PUT /v1/stations/{station}/capacity`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Arrivals per day; above it on a forecast day is an excess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0.0, example = 900.0)]
    pub daily: Option<f64>,
    /// Arrivals per seven days (a day and the six before it, observed days
    /// included); above it is an excess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0.0, example = 4000.0)]
    pub weekly: Option<f64>,
}

/// A station and its capacity.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StationCapacity {
    /// The station id.
    pub station: String,
    /// Arrivals per day, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<f64>,
    /// Arrivals per seven days, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<f64>,
}

/// What an alert compares with a capacity: one forecast day, or the seven
/// days that end on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertWindow {
    /// The day's arrivals against the daily capacity.
    Day,
    /// The arrivals of the day and the six before it against the weekly capacity.
    Week,
}

/// Whether an alert is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The latest run that forecast the day puts the probability at or above the level.
    Open,
    /// A later run put it below the level, or the day is now observed.
    Closed,
}

/// Which alerts a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertFilter {
    /// Open alerts (the default).
    Open,
    /// Closed alerts.
    Closed,
    /// Both.
    All,
}

/// The chance that arrivals exceed a station's capacity on a day (or in the
/// week ending on it), from the forecast's quantiles.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// The station.
    pub station: String,
    /// The forecast day (for a week, its last day).
    #[schema(format = Date)]
    pub date: String,
    /// A day or a seven-day window.
    pub window: AlertWindow,
    /// The capacity compared with.
    pub capacity: f64,
    /// P(arrivals > capacity), from the latest run that forecast the day.
    pub probability: f64,
    /// Set when the capacity lies beyond the published 95% interval, where
    /// the probability rests on the assumed exponential tail: `upper`
    /// (probability below 0.025) or `lower` (above 0.975).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<String>,
    /// The expected arrivals above the capacity, E[max(arrivals − capacity, 0)].
    pub expected_excess: f64,
    /// The forecast median of the day's (or window's) arrivals.
    pub median: f64,
    /// The run these numbers come from.
    pub run_id: String,
    /// Open or closed.
    pub status: AlertStatus,
    /// The run whose probability first reached the level.
    pub opened_by: String,
    /// When that run was made (RFC 3339, UTC).
    pub opened_at: String,
    /// The run that closed the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
    /// When that run was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    /// Why it closed: `below level` (a later run's probability fell below
    /// the level) or `observed` (a later run's data reach the day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_because: Option<String>,
}

/// The body a webhook receives when an alert opens or closes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertEvent {
    /// `alert.opened` or `alert.closed` (also in the `x-stroom-event` header).
    pub event: String,
    /// The alert as it now stands.
    pub alert: Alert,
}

/// Capacity alerts of the stations on the caller's routes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertList {
    /// An alert opens when the probability reaches this level.
    pub level: f64,
    /// The capacities of those stations.
    pub capacities: Vec<StationCapacity>,
    /// The alerts, by station, window and day.
    pub alerts: Vec<Alert>,
}

/// One step of a cell's density.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CellSeriesPoint {
    /// The day (`YYYY-MM-DD`) or hour (RFC 3339).
    pub time: String,
    /// Devices counted in the cell (and its descendants at the storage resolution).
    pub devices: i64,
    /// Cell-hours that were reported (not suppressed).
    pub cell_hours: i64,
}

/// A cell's density series.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CellSeries {
    /// The H3 cell, as its hexadecimal string.
    pub cell: String,
    /// The H3 resolution of the cell.
    pub cell_resolution: u8,
    /// The time step.
    pub resolution: TimeResolution,
    /// First day (inclusive).
    #[schema(format = Date)]
    pub from: String,
    /// Last day (exclusive).
    #[schema(format = Date)]
    pub to: String,
    /// The store's privacy threshold: no count below it is ever returned.
    pub k: u32,
    /// The data vintage: the version of each table read.
    pub vintage: BTreeMap<String, u64>,
    /// The points, in time order.
    pub points: Vec<CellSeriesPoint>,
}

/// A backtest to run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestRequest {
    /// `station:ID` or `segment:ROUTE/SEGMENT`.
    pub target: String,
    /// Days ahead (1 to 28; 14 when absent).
    #[schema(minimum = 1, maximum = 28)]
    pub horizon: Option<u32>,
    /// Folds (1 to 60; 20 when absent).
    #[schema(minimum = 1, maximum = 60)]
    pub folds: Option<u32>,
    /// Days between fold cutoffs (1 to 90; 7 when absent).
    #[schema(minimum = 1, maximum = 90)]
    pub step: Option<u32>,
    /// Models (e.g. `auto`, `elasticnet`, `seasonal_naive`); the default set when absent.
    pub models: Option<Vec<String>>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// Running.
    Running,
    /// Done; its results are recorded.
    Succeeded,
    /// Stopped with an error.
    Failed,
    /// The server stopped while the job was queued or running; nothing of
    /// it was recorded. Submit it again.
    Interrupted,
}

/// A model's accuracy over a backtest's folds (all horizons).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricsEntry {
    /// The model.
    pub model: String,
    /// Forecasts scored.
    pub n: u64,
    /// Mean absolute error of the median.
    pub mae: Option<f64>,
    /// MASE against the in-sample seasonal-naive error (m = 7).
    pub mase: Option<f64>,
    /// Symmetric MAPE, 0 to 200.
    pub smape: Option<f64>,
    /// Weighted absolute percentage error.
    pub wape: Option<f64>,
    /// Root mean squared error of the mean.
    pub rmse: Option<f64>,
    /// Share of actuals inside the 80% interval.
    pub coverage80: Option<f64>,
    /// Share of actuals inside the 95% interval.
    pub coverage95: Option<f64>,
}

/// A backtest job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BacktestJob {
    /// The job id.
    pub id: String,
    /// Where the job is.
    pub status: JobStatus,
    /// What was asked for.
    pub request: BacktestRequest,
    /// When the job was submitted (RFC 3339).
    pub submitted_at: String,
    /// When it finished.
    pub finished_at: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The run recorded in the `backtests` table.
    pub run_id: Option<String>,
    /// Accuracy per model, once done.
    pub metrics: Vec<MetricsEntry>,
}

/// What started a refresh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RefreshTrigger {
    /// An admin's `POST /v1/forecasts/refresh`.
    #[default]
    Request,
    /// The server, because the data changed (`--refresh auto`).
    Auto,
}

/// A forecast refresh job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefreshJob {
    /// The job id.
    pub id: String,
    /// Where the job is.
    pub status: JobStatus,
    /// What started it.
    #[serde(default)]
    pub trigger: RefreshTrigger,
    /// When the job was submitted (RFC 3339).
    pub submitted_at: String,
    /// When it finished.
    pub finished_at: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The run recorded in the `forecasts` table.
    pub run_id: Option<String>,
    /// The targets forecast.
    pub targets: Vec<String>,
}

/// Query of the route-forecast endpoint.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RouteForecastQuery {
    /// Days to return (1 to 28); every day of the run when absent.
    #[param(minimum = 1, maximum = 28)]
    pub horizon: Option<u32>,
    /// A run id; the latest run that forecast the route when absent.
    pub run: Option<String>,
    /// `json` (default) or `csv`; `Accept: text/csv` also gives CSV.
    pub format: Option<Format>,
    /// Split each day's mean into the level, each upstream signal and the
    /// rest (`parts`; JSON only).
    pub explain: Option<bool>,
}

/// Query of the station-forecast endpoint.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StationForecastQuery {
    /// Days to return (1 to 28); every day of the run when absent.
    #[param(minimum = 1, maximum = 28)]
    pub horizon: Option<u32>,
    /// `json` (default) or `csv`.
    pub format: Option<Format>,
    /// Split each day's mean into the level, each upstream signal and the
    /// rest (`parts`; JSON only).
    pub explain: Option<bool>,
}

/// Query of the route-series endpoint.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RouteSeriesQuery {
    /// First day, inclusive (`YYYY-MM-DD`).
    #[param(format = Date, example = "2024-06-01")]
    pub from: String,
    /// Last day, exclusive (`YYYY-MM-DD`); at most 366 days after `from`.
    #[param(format = Date, example = "2024-06-15")]
    pub to: String,
    /// `segment` (default) or `station`.
    pub level: Option<SeriesLevel>,
    /// `json` (default) or `csv`.
    pub format: Option<Format>,
}

/// Query of the nowcast endpoint.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct NowcastQuery {
    /// The day to score (`YYYY-MM-DD`); the latest day the store holds when absent.
    #[param(format = Date, example = "2024-06-01")]
    pub date: Option<String>,
    /// How many of the most unusual cells to return (0 to 1000, default 50).
    #[param(minimum = 0, maximum = 1000)]
    pub cells: Option<u32>,
}

/// Query of the alerts endpoint.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertsQuery {
    /// `open` (default), `closed` or `all`.
    pub status: Option<AlertFilter>,
    /// Only this station's alerts.
    pub station: Option<String>,
}

/// Query of the cell-series endpoint.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CellSeriesQuery {
    /// First day, inclusive (`YYYY-MM-DD`).
    #[param(format = Date, example = "2024-06-01")]
    pub from: String,
    /// Last day, exclusive (`YYYY-MM-DD`); at most 366 days after `from` (31 for hours).
    #[param(format = Date, example = "2024-06-08")]
    pub to: String,
    /// `day` (default) or `hour`.
    pub resolution: Option<TimeResolution>,
    /// `json` (default) or `csv`.
    pub format: Option<Format>,
}

/// What a map's cells show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MapLayer {
    /// The expected device density on the forecast day (the default).
    #[default]
    Forecast,
    /// How unusual the day's density is: each cell's robust z-score against
    /// the same weekday of the previous eight weeks.
    Nowcast,
}

/// Query of the map endpoints.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct MapQuery {
    /// The forecast day (`YYYY-MM-DD`); the first day of the latest run when
    /// absent. On the nowcast layer, the day scored (the latest day of density
    /// when absent).
    #[param(format = Date)]
    pub date: Option<String>,
    /// `forecast` (default) or `nowcast`.
    pub layer: Option<MapLayer>,
}

/// A closure scenario to run (analyst, admin): `close` on `route` closed
/// from `from` (until `until`, exclusive), and each day `share` of the
/// people held there taking `divert_to`, whose origins they reach
/// `transfer_days` later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioRequest {
    /// The route with the closure.
    #[schema(example = "western-balkans")]
    pub route: String,
    /// The segment closed: nobody enters it from its start station.
    #[schema(example = "horgos-budapest")]
    pub close: String,
    /// The first day of the closure.
    #[schema(format = Date)]
    pub from: String,
    /// The day the segment reopens; open-ended when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Date)]
    pub until: Option<String>,
    /// The route that some of the people held take instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divert_to: Option<String>,
    /// The share of the people held who give up each day and take
    /// `divert_to` (0 to 1; 0 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub share: Option<f64>,
    /// Days from the closure to the origins of `divert_to` (0 to 45; 2 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 45)]
    pub transfer_days: Option<u32>,
    /// Days from the closed segment's start to its route's destination, when
    /// known (0 to 45); estimated from the density leads when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 45)]
    pub travel_days: Option<u32>,
    /// Days from the origins of `divert_to` to its destination, when known
    /// (0 to 45); estimated from the density leads when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 45)]
    pub divert_travel_days: Option<u32>,
}

/// What a scenario took from the data.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScenarioAssumptions {
    /// Where the flow over the closed segment comes from (`station:ID`).
    pub flow_source: String,
    /// Its mean per day over the closure's days up to the horizon.
    pub flow_per_day: f64,
    /// Days from the closed segment to its route's destination.
    pub close_lag_days: u32,
    /// How they were estimated.
    pub close_lag_source: String,
    /// Days from the origins of `divert_to` to its destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divert_lag_days: Option<u32>,
    /// How they were estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divert_lag_source: Option<String>,
}

/// One station of a scenario: the baseline forecast and the scenario, day
/// by day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScenarioTarget {
    /// `station:ID`.
    pub target: String,
    /// `closed route`, `receiving route`, or `closed and receiving route`.
    pub role: String,
    /// The last day of data both forecasts read.
    #[schema(format = Date)]
    pub cutoff: String,
    /// The baseline's model.
    pub model: String,
    /// The baseline forecast, made from the same data (never a row of `forecasts`).
    pub baseline: Vec<ForecastRow>,
    /// The scenario, on the same days.
    pub scenario: Vec<ForecastRow>,
}

/// A recorded closure scenario.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Scenario {
    /// The run id (in the store's `scenarios` table).
    pub run_id: String,
    /// When it was made (RFC 3339, UTC).
    pub generated_at: String,
    /// The closure, with the defaults filled in.
    pub closure: ScenarioRequest,
    pub assumptions: ScenarioAssumptions,
    pub targets: Vec<ScenarioTarget>,
}

/// The scenarios of the caller's routes, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScenarioList {
    pub scenarios: Vec<Scenario>,
}

/// Query of `POST /v1/ingest/density`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DensityUpload {
    /// The delivery's name, recorded with its commit and used in error
    /// messages (letters, digits, `.`, `_`, `-`; `upload` when absent).
    pub name: Option<String>,
    /// Add the counts to cell-hours already stored (a supplementary
    /// delivery, such as a second provider's devices); when false (the
    /// default) a delivery that repeats a stored cell-hour is refused.
    pub add_to_stored: Option<bool>,
    /// A corrected delivery: every stored cell-hour of the hours it covers
    /// is replaced in the same commit (cells it does not bring for such an
    /// hour are no longer stored). Not with `add_to_stored`.
    pub replace: Option<bool>,
}

/// What an empty count in an arrivals upload means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmptyCount {
    /// An empty count is an error.
    #[default]
    Error,
    /// Zero up to the station's last figure; later empty counts are unknown.
    Zero,
}

/// Query of `POST /v1/ingest/arrivals`: the same options as
/// `stroom ingest arrivals`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ArrivalsUpload {
    /// The delivery's name, recorded with its commit and used in error
    /// messages (letters, digits, `.`, `_`, `-`; `upload` when absent).
    pub name: Option<String>,
    /// The station of every row, for files without a station column.
    pub station: Option<String>,
    /// The date column's name (`date` when absent).
    pub date_column: Option<String>,
    /// The count column's name (`count` when absent).
    pub count_column: Option<String>,
    /// The station column's name (`station` when absent).
    pub station_column: Option<String>,
    /// What an empty count means (`error` when absent).
    pub empty: Option<EmptyCount>,
}

/// Whether an upload was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IngestStatus {
    /// Validated and committed (a new table version), or validated with
    /// nothing to write (every count below k).
    Ingested,
    /// The same bytes were ingested before: nothing was read or written.
    AlreadyIngested,
}

/// What an upload did to its table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IngestResult {
    /// `density` or `arrivals`.
    pub table: String,
    /// The delivery's name as recorded with the commit.
    pub file: String,
    /// Hex SHA-256 of the bytes received (after any `Content-Encoding`).
    pub sha256: String,
    pub status: IngestStatus,
    /// One sentence for people.
    pub detail: String,
    /// Data rows in the upload (0 when already ingested).
    pub rows_read: u64,
    /// Rows written: density rows at or above k, or arrivals rows loaded.
    pub rows_written: u64,
    /// Density (cell, hour) pairs below k, left out; 0 for arrivals.
    pub suppressed: u64,
    /// Density: distinct (cell, hour) pairs after summing duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_hours: Option<u64>,
    /// Arrivals: rows for (station, date) pairs not stored before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_rows: Option<u64>,
    /// Arrivals: rows that replaced a different earlier figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revised_rows: Option<u64>,
    /// Density with `replace`: the stored (cell, hour) rows of the
    /// delivery's hours that it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_cell_hours: Option<u64>,
    /// Density with `replace`: stored (cell, hour) counts that the
    /// correction would have moved by less than k, kept as they were (the
    /// versions before and after would differ by a count below k).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_cell_hours: Option<u64>,
    /// The table's version before the upload (absent: no table yet).
    pub version_before: Option<u64>,
    /// The table's version after it; equal to `version_before` when
    /// nothing was committed.
    pub version: Option<u64>,
}
