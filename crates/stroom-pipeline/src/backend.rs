//! The API's backend: [`StoreBackend`] answers `stroom-api`'s [`Backend`]
//! from a store, with the same use cases as the command line (forecast
//! snapshots, route and cell series, backtests, forecast refreshes, maps).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use serde_json::Value;
use stroom_api::{
    Alert, ArrivalsUpload, Backend, BackendError, BackendFuture, BacktestRequest, Capacity, CellSeries,
    CellSeriesPoint, DensityUpload, EmptyCount, ForecastParts, ForecastRow, ForecastRun, ForecastSnapshot,
    IngestResult, IngestStatus, MapFormat, MapLayer, MetricsEntry, RouteNowcast, RouteSeries, RouteSeriesPoint,
    Scenario, ScenarioRequest, SeriesLevel, StationCapacity, TargetForecast, TimeResolution,
};
use stroom_core::{Cell, DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution, Route, days_to_date};
use stroom_model::ModelKind;
use stroom_query::{Engine, QuerySession, SeriesGranularity};
use stroom_store::{StorageOptions, Store, TableName};

use crate::alerts::{Capacities, DEFAULT_ALERT_LEVEL};
use crate::error::PipelineError;
use crate::runs::{BacktestSpec, ForecastSpec, ModelOptions};
use crate::target::Target;

/// The API's data: the store at a location, and the routes.
#[derive(Debug)]
pub struct StoreBackend {
    location: String,
    options: StorageOptions,
    engine: Engine,
    routes: Vec<Route>,
    capacities: RwLock<Capacities>,
    /// Bumped by every capacity change, so cached alerts are recomputed.
    capacities_revision: AtomicU64,
    alert_level: f64,
    /// The alerts of one (forecasts version, capacities revision).
    alerts: Mutex<Option<AlertCache>>,
    /// The observed arrivals the weekly windows read, per arrivals version.
    observed: crate::alerts::ObservedCache,
}

type AlertCache = (Option<u64>, u64, Arc<Vec<Alert>>);

/// A failure the API answers with a 500 (and logs), with its causes.
fn failed(error: impl Into<PipelineError>) -> BackendError {
    BackendError::Failed(error.into().text())
}

/// An upload's error: refused input (a 422) or a failure (a 500), its text
/// naming the delivery by its name, not by the server's folder.
fn upload_error(path: &std::path::Path) -> impl Fn(stroom_store::StoreError) -> BackendError {
    let folder = path.parent().map(|p| format!("{}/", p.display())).unwrap_or_default();
    move |error| {
        let bad_input = error.is_bad_input();
        let text = PipelineError::from(error).text().replace(&folder, "");
        if bad_input { BackendError::BadInput(text) } else { BackendError::Failed(text) }
    }
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// An internal inconsistency: a column the query produced is missing.
fn no_column(name: &str) -> BackendError {
    BackendError::Failed(format!("the query result has no column '{name}'"))
}

/// Runs `work` on a thread of its own with its own runtime, so that CPU-heavy
/// model fitting or rendering never blocks the server's workers.
async fn on_worker<T, F, Fut>(work: F) -> Result<T, BackendError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, BackendError>>,
{
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BackendError::Failed(format!("starting a worker's runtime: {e}")))?;
        runtime.block_on(work())
    })
    .await
    .map_err(|e| BackendError::Failed(format!("a worker stopped: {e}")))?
}

impl StoreBackend {
    /// The backend of the store at `location` (reached with `options`),
    /// running its queries on `engine`, over `routes`.
    pub fn new(location: String, options: StorageOptions, engine: Engine, routes: Vec<Route>) -> Self {
        Self {
            location,
            options,
            engine,
            routes,
            capacities: RwLock::new(Capacities::default()),
            capacities_revision: AtomicU64::new(0),
            alert_level: DEFAULT_ALERT_LEVEL,
            alerts: Mutex::new(None),
            observed: crate::alerts::ObservedCache::default(),
        }
    }

    /// The backend with station capacities (saved to their file when
    /// changed) and the probability at which an alert opens.
    pub fn with_capacities(mut self, capacities: Capacities, level: f64) -> Self {
        self.capacities = RwLock::new(capacities);
        self.alert_level = level;
        self
    }

    fn current_capacities(&self) -> Capacities {
        self.capacities.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn open(&self) -> Result<Store, BackendError> {
        Store::create(&self.location, self.options.clone()).map_err(failed)
    }

    fn backtest_spec(&self, request: &BacktestRequest) -> Result<BacktestSpec, BackendError> {
        let target: Target = request.target.parse().map_err(BackendError::from)?;
        let mut spec = BacktestSpec::new(target);
        if let Some(models) = &request.models {
            if models.is_empty() {
                return Err(BackendError::Invalid("models=[] names no model".into()));
            }
            spec.models = ModelKind::parse_list(&models.join(",")).map_err(|e| BackendError::Invalid(e.to_string()))?;
        }
        spec.options = ModelOptions { horizon: request.horizon.unwrap_or(14) as usize, ..ModelOptions::default() };
        spec.folds = request.folds.unwrap_or(20) as usize;
        spec.step = request.step.unwrap_or(7) as usize;
        spec.check().map_err(|e| BackendError::Invalid(e.text()))?;
        Ok(spec)
    }
}

fn string_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>, BackendError> {
    let column = batch.column_by_name(name).ok_or_else(|| no_column(name))?;
    let strings = column.as_string::<i32>();
    Ok((0..batch.num_rows()).map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_owned())).collect())
}

pub(crate) async fn read_forecasts(store: Store) -> Result<ForecastSnapshot, BackendError> {
    let session = QuerySession::open(&store, None).await.map_err(failed)?;
    let Some(&version) = session.run_versions().get("forecasts") else {
        return Ok(ForecastSnapshot { version: None, runs: Vec::new() });
    };
    let batches: Vec<RecordBatch> = session
        .context()
        .sql("SELECT * FROM forecasts ORDER BY created_at DESC, run_id, target, horizon")
        .await
        .map_err(failed)?
        .collect()
        .await
        .map_err(failed)?;
    let mut vintages: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut parts: BTreeMap<(String, String, String), ForecastParts> = BTreeMap::new();
    for metadata in store.commit_history(TableName::Forecasts).await.map_err(failed)? {
        let (Some(run), Some(vintage)) =
            (metadata.get("run_id").and_then(Value::as_str), metadata.get("vintage").and_then(Value::as_object))
        else {
            continue;
        };
        for target in metadata.get("targets").and_then(Value::as_array).into_iter().flatten() {
            let name = target.get("target").and_then(Value::as_str).unwrap_or_default();
            for day in target.get("attribution").and_then(Value::as_array).into_iter().flatten() {
                if let Some(found) = crate::runs::recorded_parts(day) {
                    let date = day.get("date").and_then(Value::as_str).unwrap_or_default();
                    parts.insert((run.to_owned(), name.to_owned(), date.to_owned()), found);
                }
            }
        }
        let versions = vintage.iter().filter_map(|(k, v)| Some((k.clone(), v.as_u64()?))).collect();
        vintages.insert(run.to_owned(), versions);
    }
    let mut runs: Vec<ForecastRun> = Vec::new();
    for batch in &batches {
        let run_ids = string_column(batch, "run_id")?;
        let targets = string_column(batch, "target")?;
        let models = string_column(batch, "model")?;
        let chosen = string_column(batch, "chosen")?;
        let created = batch.column_by_name("created_at").ok_or_else(|| no_column("created_at"))?;
        let created = created.as_primitive::<TimestampMicrosecondType>();
        let date_of = |name: &str| -> Result<Vec<NaiveDate>, BackendError> {
            let c = batch.column_by_name(name).ok_or_else(|| no_column(name))?;
            let c = c.as_primitive::<Date32Type>();
            Ok((0..batch.num_rows()).map(|i| days_to_date(c.value(i))).collect())
        };
        let (cutoffs, dates) = (date_of("cutoff")?, date_of("date")?);
        let horizons = batch.column_by_name("horizon").ok_or_else(|| no_column("horizon"))?;
        let horizons = horizons.as_primitive::<Int32Type>();
        let value = |name: &str, i: usize| -> Result<f64, BackendError> {
            let c = batch.column_by_name(name).ok_or_else(|| no_column(name))?;
            Ok(c.as_primitive::<Float64Type>().value(i))
        };
        for i in 0..batch.num_rows() {
            let run_id = run_ids[i].clone().unwrap_or_default();
            if runs.last().is_none_or(|r| r.run_id != run_id) {
                let at = chrono::DateTime::from_timestamp_micros(created.value(i)).unwrap_or_default();
                runs.push(ForecastRun {
                    run_id: run_id.clone(),
                    generated_at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    vintage: vintages.get(&run_id).cloned().unwrap_or_default(),
                    targets: Vec::new(),
                });
            }
            let run = runs.last_mut().expect("a run was pushed");
            let target = targets[i].clone().unwrap_or_default();
            if run.targets.last().is_none_or(|t| t.target != target) {
                let station = match target.parse::<Target>() {
                    Ok(Target::Station(s)) => s,
                    Ok(Target::Segment { .. }) | Err(_) => target.clone(),
                };
                run.targets.push(TargetForecast {
                    target: target.clone(),
                    station,
                    model: models[i].clone().unwrap_or_default(),
                    chosen: chosen[i].clone(),
                    cutoff: cutoffs[i].to_string(),
                    forecasts: Vec::new(),
                });
            }
            let row = ForecastRow {
                date: dates[i].to_string(),
                horizon: u32::try_from(horizons.value(i)).unwrap_or(0),
                mean: value("mean", i)?,
                q10: value("q10", i)?,
                q50: value("q50", i)?,
                q90: value("q90", i)?,
                lo80: value("lo80", i)?,
                hi80: value("hi80", i)?,
                lo95: value("lo95", i)?,
                hi95: value("hi95", i)?,
                parts: parts.get(&(run_id.clone(), target.clone(), dates[i].to_string())).cloned(),
            };
            run.targets.last_mut().expect("a target was pushed").forecasts.push(row);
        }
    }
    Ok(ForecastSnapshot { version: Some(version), runs })
}

fn vintage_of(session: &QuerySession) -> BTreeMap<String, u64> {
    session.versions().iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn time_text(batch: &RecordBatch, i: usize) -> String {
    let column = batch.column_by_name("time").expect("a time column");
    if let Some(days) = column.as_primitive_opt::<Date32Type>() {
        days_to_date(days.value(i)).to_string()
    } else if let Some(micros) = column.as_primitive_opt::<TimestampMicrosecondType>() {
        chrono::DateTime::from_timestamp_micros(micros.value(i))
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    } else {
        String::new()
    }
}

impl Backend for StoreBackend {
    fn routes(&self) -> &[Route] {
        &self.routes
    }

    fn forecasts_version(&self) -> BackendFuture<'_, Option<u64>> {
        Box::pin(async move {
            let store = self.open()?;
            Ok(store.table(TableName::Forecasts).await.map_err(failed)?.and_then(|t| t.version()).map(|v| v as u64))
        })
    }

    fn forecasts(&self) -> BackendFuture<'_, ForecastSnapshot> {
        let store = self.open();
        Box::pin(on_worker(move || async move { read_forecasts(store?).await }))
    }

    fn route_series<'a>(
        &'a self,
        route: &'a Route,
        level: SeriesLevel,
        from: NaiveDate,
        to: NaiveDate,
    ) -> BackendFuture<'a, RouteSeries> {
        Box::pin(async move {
            let store = self.open()?;
            let k = store.privacy_k().await.map_err(failed)?;
            let session = QuerySession::open_on(&store, None, &self.engine).await.map_err(failed)?;
            if !session.has_table("density") {
                return Err(BackendError::NotFound("the store holds no density data".into()));
            }
            let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION)).map_err(failed)?;
            let batches = match level {
                SeriesLevel::Segment => {
                    let cells = route.cells(resolution, DEFAULT_BUFFER_RINGS).map_err(failed)?;
                    session.segment_series(&cells, from, to, SeriesGranularity::Day).await
                }
                SeriesLevel::Station => {
                    session
                        .station_density_series(
                            route,
                            resolution,
                            DEFAULT_BUFFER_RINGS,
                            from,
                            to,
                            SeriesGranularity::Day,
                        )
                        .await
                }
            }
            .map_err(failed)?;
            let mut points = Vec::new();
            for b in &batches {
                let names = string_column(b, "name")?;
                let devices = b.column_by_name("devices").ok_or_else(|| no_column("devices"))?;
                let devices = devices.as_primitive::<Int64Type>();
                let hours = b.column_by_name("cell_hours").ok_or_else(|| no_column("cell_hours"))?;
                let hours = hours.as_primitive::<Int64Type>();
                for i in 0..b.num_rows() {
                    points.push(RouteSeriesPoint {
                        name: names[i].clone().unwrap_or_default(),
                        time: time_text(b, i),
                        devices: devices.value(i),
                        cell_hours: hours.value(i),
                    });
                }
            }
            Ok(RouteSeries {
                route: route.id.clone(),
                level,
                from: from.to_string(),
                to: to.to_string(),
                k,
                vintage: vintage_of(&session),
                points,
            })
        })
    }

    fn nowcast<'a>(
        &'a self,
        route: &'a Route,
        date: Option<NaiveDate>,
        cells: usize,
    ) -> BackendFuture<'a, RouteNowcast> {
        Box::pin(async move {
            let store = self.open()?;
            Ok(crate::nowcast::nowcast(&store, &self.engine, route, date, cells).await?)
        })
    }

    fn cell_series(
        &self,
        cell: Cell,
        resolution: TimeResolution,
        from: NaiveDate,
        to: NaiveDate,
    ) -> BackendFuture<'_, CellSeries> {
        Box::pin(async move {
            let store = self.open()?;
            let k = store.privacy_k().await.map_err(failed)?;
            let hourly = matches!(resolution, TimeResolution::Hour);
            let crate::series::CellDensity { batches, versions, .. } =
                crate::series::cell_series(&store, &self.engine, cell, from, to, hourly).await?;
            let mut points = Vec::new();
            for b in &batches {
                let devices = b.column(1).as_primitive::<Int64Type>();
                let hours = b.column(2).as_primitive::<Int64Type>();
                for i in 0..b.num_rows() {
                    points.push(CellSeriesPoint {
                        time: time_text(b, i),
                        devices: devices.value(i),
                        cell_hours: hours.value(i),
                    });
                }
            }
            Ok(CellSeries {
                cell: cell.to_string(),
                cell_resolution: cell.resolution().get(),
                resolution,
                from: from.to_string(),
                to: to.to_string(),
                k,
                vintage: versions,
                points,
            })
        })
    }

    fn capacities(&self) -> Vec<StationCapacity> {
        let capacities = self.capacities.read().unwrap_or_else(|p| p.into_inner());
        capacities.stations().keys().filter_map(|s| capacities.station(s)).collect()
    }

    fn set_capacity<'a>(&'a self, station: &'a str, capacity: Capacity) -> BackendFuture<'a, StationCapacity> {
        Box::pin(async move {
            if !self.routes.iter().any(|r| r.stations.iter().any(|s| s.id == station)) {
                return Err(BackendError::NotFound(format!("there is no station '{station}'")));
            }
            let mut capacities = self.capacities.write().unwrap_or_else(|p| p.into_inner());
            capacities.set(station, capacity).map_err(|e| match e {
                PipelineError::Capacity(text) => BackendError::Invalid(text),
                other => failed(other),
            })?;
            self.capacities_revision.fetch_add(1, Ordering::SeqCst);
            capacities.station(station).ok_or_else(|| BackendError::Failed("a capacity just set is missing".into()))
        })
    }

    fn alerts<'a>(&'a self, snapshot: &'a ForecastSnapshot) -> BackendFuture<'a, (f64, Vec<Alert>)> {
        Box::pin(async move {
            let revision = self.capacities_revision.load(Ordering::SeqCst);
            let cached = self.alerts.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some((version, at, alerts)) = cached
                && version == snapshot.version
                && at == revision
            {
                return Ok((self.alert_level, alerts.to_vec()));
            }
            let capacities = self.current_capacities();
            let observed = if capacities.stations().is_empty() {
                Vec::new()
            } else {
                crate::alerts::observed_for(&self.open()?, &snapshot.runs, &capacities, &self.observed)
                    .await
                    .map_err(failed)?
            };
            let alerts =
                Arc::new(crate::alerts::derive_alerts(&snapshot.runs, &observed, &capacities, self.alert_level));
            *self.alerts.lock().unwrap_or_else(|p| p.into_inner()) = Some((snapshot.version, revision, alerts.clone()));
            Ok((self.alert_level, alerts.to_vec()))
        })
    }

    fn validate_backtest(&self, request: &BacktestRequest) -> Result<(), BackendError> {
        self.backtest_spec(request).map(|_| ())
    }

    fn backtest(&self, request: BacktestRequest) -> BackendFuture<'_, (String, Vec<MetricsEntry>)> {
        let spec = self.backtest_spec(&request);
        let (store, engine, routes) = (self.open(), self.engine.clone(), self.routes.clone());
        Box::pin(async move {
            let (spec, store) = (spec?, store?);
            let run = on_worker(move || async move {
                let run = crate::runs::backtest(&store, &engine, &routes, &spec, &|_, _| {}).await?;
                run.record(&store).await?;
                Ok(run)
            })
            .await?;
            let metrics = run
                .result
                .metrics
                .iter()
                .filter(|m| m.horizon.is_none())
                .map(|m| {
                    let finite = |v: f64| v.is_finite().then_some(v);
                    let x = &m.metrics;
                    MetricsEntry {
                        model: m.model.clone(),
                        n: x.n as u64,
                        mae: finite(x.mae),
                        mase: finite(x.mase),
                        smape: finite(x.smape),
                        wape: finite(x.wape),
                        rmse: finite(x.rmse),
                        coverage80: finite(x.coverage80),
                        coverage95: finite(x.coverage95),
                    }
                })
                .collect();
            Ok((run.run_id, metrics))
        })
    }

    fn refresh(&self) -> BackendFuture<'_, (String, Vec<String>)> {
        let (store, engine, routes) = (self.open(), self.engine.clone(), self.routes.clone());
        Box::pin(async move {
            let store = store?;
            on_worker(move || async move {
                let run = crate::runs::forecast(&store, &engine, &routes, &ForecastSpec::default()).await?;
                run.record(&store).await?;
                Ok((run.run_id, run.targets.iter().map(|t| t.target.to_string()).collect()))
            })
            .await
        })
    }

    fn data_versions(&self) -> BackendFuture<'_, BTreeMap<String, u64>> {
        Box::pin(async move {
            let store = self.open()?;
            let mut versions = BTreeMap::new();
            for name in [TableName::Density, TableName::Arrivals] {
                if let Some(version) = store.table(name).await.map_err(failed)?.and_then(|t| t.version()) {
                    versions.insert(name.as_str().to_owned(), version as u64);
                }
            }
            Ok(versions)
        })
    }

    fn validate_scenario(&self, request: &ScenarioRequest) -> Result<(), BackendError> {
        let spec = crate::scenario::ScenarioSpec::new(crate::scenario::Closure::from_request(request)?);
        Ok(spec.check(&self.routes)?)
    }

    fn run_scenario(&self, request: ScenarioRequest) -> BackendFuture<'_, Scenario> {
        let (store, engine, routes) = (self.open(), self.engine.clone(), self.routes.clone());
        Box::pin(async move {
            let store = store?;
            let spec = crate::scenario::ScenarioSpec::new(crate::scenario::Closure::from_request(&request)?);
            on_worker(move || async move {
                let run = crate::scenario::scenario(&store, &engine, &routes, &spec).await?;
                run.record(&store).await?;
                crate::scenario::recorded_scenarios(&store)
                    .await?
                    .into_iter()
                    .find(|s| s.run_id == run.run_id)
                    .ok_or_else(|| {
                        BackendError::Failed(format!("scenario '{}' was recorded but is not found", run.run_id))
                    })
            })
            .await
        })
    }

    fn scenarios(&self) -> BackendFuture<'_, Vec<Scenario>> {
        let store = self.open();
        Box::pin(on_worker(move || async move { Ok(crate::scenario::recorded_scenarios(&store?).await?) }))
    }

    fn scenario_page<'a>(&'a self, run_id: &'a str) -> BackendFuture<'a, Vec<u8>> {
        let (store, routes, run_id) = (self.open(), self.routes.clone(), run_id.to_owned());
        Box::pin(on_worker(move || async move { Ok(crate::scenario::scenario_page(&store?, &routes, &run_id).await?) }))
    }

    fn ingest_density<'a>(
        &'a self,
        path: &'a std::path::Path,
        options: &'a DensityUpload,
    ) -> BackendFuture<'a, IngestResult> {
        let (store, path) = (self.open(), path.to_owned());
        let on_stored = match (options.add_to_stored.unwrap_or(false), options.replace.unwrap_or(false)) {
            (true, true) => {
                return Box::pin(async {
                    Err(BackendError::Invalid("add_to_stored and replace exclude each other".into()))
                });
            }
            (true, false) => stroom_store::OnStored::Add,
            (false, true) => stroom_store::OnStored::Replace,
            (false, false) => stroom_store::OnStored::Refuse,
        };
        Box::pin(async move {
            let store = store?;
            on_worker(move || async move {
                let refused = upload_error(&path);
                let resolution = match store.density_resolution().await.map_err(&refused)? {
                    Some(resolution) => resolution,
                    None => Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION)).map_err(PipelineError::from)?,
                };
                let k = store.privacy_k().await.map_err(&refused)?;
                let ingest = stroom_store::DensityIngest {
                    on_stored,
                    ..stroom_store::DensityIngest::new(resolution, k).map_err(&refused)?
                };
                let report = ingest.run(&store, std::slice::from_ref(&path), &|_| {}).await.map_err(&refused)?;
                let source = report.sources.first().ok_or_else(|| BackendError::Failed("no source read".into()))?;
                let already = source.already_ingested;
                let detail = if already {
                    "already ingested: these bytes were committed before; nothing was written".to_owned()
                } else {
                    let replaced = match on_stored {
                        stroom_store::OnStored::Replace => format!(
                            "; {} stored (cell, hour) counts of the {} hours delivered replaced, {} held (moved by less than k)",
                            report.replaced, report.hours, report.held
                        ),
                        _ => String::new(),
                    };
                    format!(
                        "{} rows read, {} (cell, hour) counts written, {} below k = {k} suppressed{replaced}",
                        report.rows_read, report.rows_written, report.suppressed
                    )
                };
                Ok(IngestResult {
                    table: TableName::Density.as_str().to_owned(),
                    file: file_name(&path),
                    sha256: source.sha256.clone(),
                    status: if already { IngestStatus::AlreadyIngested } else { IngestStatus::Ingested },
                    detail,
                    rows_read: report.rows_read,
                    rows_written: report.rows_written,
                    suppressed: report.suppressed,
                    cell_hours: Some(report.cell_hours),
                    new_rows: None,
                    revised_rows: None,
                    replaced_cell_hours: (on_stored == stroom_store::OnStored::Replace).then_some(report.replaced),
                    held_cell_hours: (on_stored == stroom_store::OnStored::Replace).then_some(report.held),
                    version_before: report.version_before,
                    version: report.version,
                })
            })
            .await
        })
    }

    fn ingest_arrivals<'a>(
        &'a self,
        path: &'a std::path::Path,
        options: &'a ArrivalsUpload,
    ) -> BackendFuture<'a, IngestResult> {
        let (store, path) = (self.open(), path.to_owned());
        let ingest = stroom_store::ArrivalsIngest {
            station: options.station.clone(),
            date_column: options.date_column.clone(),
            station_column: options.station_column.clone(),
            count_column: options.count_column.clone(),
            empty: match options.empty.unwrap_or_default() {
                EmptyCount::Error => stroom_store::EmptyCounts::Error,
                EmptyCount::Zero => stroom_store::EmptyCounts::Zero,
            },
        };
        Box::pin(async move {
            let store = store?;
            on_worker(move || async move {
                let report = ingest.run(&store, &path).await.map_err(upload_error(&path))?;
                let detail = if report.already_ingested {
                    "already ingested: these bytes were committed before; nothing was written".to_owned()
                } else {
                    format!(
                        "{} rows read, {} loaded ({} new, {} revised) for {} station(s)",
                        report.rows_read,
                        report.rows_loaded,
                        report.new_rows,
                        report.revised_rows,
                        report.stations.len()
                    )
                };
                Ok(IngestResult {
                    table: TableName::Arrivals.as_str().to_owned(),
                    file: file_name(&path),
                    sha256: report.sha256,
                    status: if report.already_ingested {
                        IngestStatus::AlreadyIngested
                    } else {
                        IngestStatus::Ingested
                    },
                    detail,
                    rows_read: report.rows_read,
                    rows_written: report.rows_loaded,
                    suppressed: 0,
                    cell_hours: None,
                    new_rows: Some(report.new_rows),
                    revised_rows: Some(report.revised_rows),
                    replaced_cell_hours: None,
                    held_cell_hours: None,
                    version_before: report.version_before,
                    version: report.version,
                })
            })
            .await
        })
    }

    fn render<'a>(
        &'a self,
        route: &'a Route,
        date: Option<NaiveDate>,
        format: MapFormat,
        layer: MapLayer,
    ) -> BackendFuture<'a, Vec<u8>> {
        let store = self.open();
        let layer = match layer {
            MapLayer::Forecast => stroom_maps::Layer::Forecast,
            MapLayer::Nowcast => stroom_maps::Layer::Nowcast,
        };
        let route = route.clone();
        let rules = crate::alerts::AlertRules { capacities: self.current_capacities(), level: self.alert_level };
        Box::pin(on_worker(move || async move {
            Ok(crate::maps::render(&store?, &route, date, format, &rules, layer).await?)
        }))
    }
}
