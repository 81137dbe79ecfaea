//! `stroom serve`, `stroom keys` and `stroom openapi`: the REST API over a
//! store. [`StoreBackend`] answers the API's questions from the store, the
//! query layer, the models and the maps; heavy work (backtests, refreshes,
//! maps) runs on its own threads so that it never stalls the server.

use crate::location::{EngineArgs, StoreArgs};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use serde_json::Value;
use stroom_api::{
    ApiConfig, Backend, BackendError, BackendFuture, BacktestRequest, CellSeries, CellSeriesPoint, ForecastRow,
    ForecastRun, ForecastSnapshot, KeyFile, MapFormat, MetricsEntry, Role, RouteSeries, RouteSeriesPoint, SeriesLevel,
    TargetForecast, TimeResolution,
};
use stroom_core::{Cell, DEFAULT_ROUTE_RESOLUTION, Resolution, Route, days_to_date};
use stroom_query::{QuerySession, SeriesGranularity};
use stroom_store::{Store, TableName};

use crate::export::failed;
use crate::forecast::{BacktestArgs, ForecastArgs, Target};
use crate::routes::load_routes;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) addr: SocketAddr,
    /// The key file (`stroom keys create` writes it).
    #[arg(long, default_value = "keys.toml")]
    pub(crate) keys: PathBuf,
    /// The audit log (JSON lines, appended).
    #[arg(long, default_value = "audit.jsonl")]
    pub(crate) audit: PathBuf,
    /// Folder of route files; the shipped routes when omitted.
    #[arg(long)]
    pub(crate) routes: Option<PathBuf>,
    /// Longest time a request may take, in milliseconds, before it is answered with 503.
    #[arg(long, default_value_t = 60_000)]
    pub(crate) request_timeout_ms: u64,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key: prints the new token alone on stdout (once) and stores only its hash.
    Create {
        /// viewer, analyst, ingest or admin.
        #[arg(long)]
        role: Role,
        /// Routes the key may see (comma-separated); every route when omitted.
        #[arg(long, value_delimiter = ',')]
        routes: Vec<String>,
        /// The key file.
        #[arg(long, default_value = "keys.toml")]
        keys: PathBuf,
    },
    /// List the keys of a key file (ids, roles, routes; never tokens).
    List {
        /// The key file.
        #[arg(long, default_value = "keys.toml")]
        keys: PathBuf,
    },
}

pub(crate) fn keys(command: &KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Create { role, routes, keys } => {
            let known = load_routes(None)?;
            for id in routes {
                if !known.iter().any(|r| r.id == *id) {
                    bail!("--routes: there is no route '{id}'");
                }
            }
            let scope = (!routes.is_empty()).then(|| routes.iter().cloned().collect::<BTreeSet<_>>());
            let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let (token, record) = KeyFile::create_key(keys, *role, scope, created)?;
            println!("{token}");
            eprintln!(
                "created key {} ({}) in {}; the token above is shown only once",
                record.id,
                role.as_str(),
                keys.display()
            );
            Ok(())
        }
        KeysCommand::List { keys } => {
            let file = KeyFile::load(keys)?;
            for key in &file.keys {
                let routes = key
                    .routes
                    .as_ref()
                    .map_or("all routes".to_owned(), |r| r.iter().cloned().collect::<Vec<_>>().join(","));
                println!("{:<18} {:<8} {:<24} {}", key.id, key.role.as_str(), key.created, routes);
            }
            Ok(())
        }
    }
}

/// Serves until Ctrl-C or SIGTERM.
pub(crate) async fn serve(args: &ServeArgs, announce: impl FnOnce(SocketAddr)) -> Result<()> {
    let routes = load_routes(args.routes.as_deref())?;
    args.store.open().await?;
    let keys = KeyFile::load(&args.keys)?;
    if keys.keys.is_empty() {
        eprintln!("warning: {} holds no key; create one with `stroom keys create`", args.keys.display());
    }
    let listener =
        tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("listening on {}", args.addr))?;
    let local = listener.local_addr()?;
    let backend = Arc::new(StoreBackend {
        store: args.store.clone(),
        engine: args.engine.clone(),
        routes,
        routes_dir: args.routes.clone(),
    });
    if args.request_timeout_ms == 0 {
        bail!("--request-timeout-ms must be at least 1");
    }
    let config = ApiConfig {
        keys,
        audit_log: Some(args.audit.clone()),
        request_timeout: std::time::Duration::from_millis(args.request_timeout_ms),
        ..ApiConfig::default()
    };
    println!("listening on http://{local}");
    announce(local);
    stroom_api::serve(listener, backend, config, shutdown_signal()).await?;
    println!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM (the server's, and the cluster processes').
pub(crate) async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

/// The API's data: the store at a location, and the routes.
pub(crate) struct StoreBackend {
    store: StoreArgs,
    engine: EngineArgs,
    routes: Vec<Route>,
    routes_dir: Option<PathBuf>,
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
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(failed)?;
        runtime.block_on(work())
    })
    .await
    .map_err(failed)?
}

impl StoreBackend {
    fn open(&self) -> Result<Store, BackendError> {
        self.store.create().map_err(failed)
    }

    fn backtest_args(&self, request: &BacktestRequest) -> Result<BacktestArgs, BackendError> {
        let target: Target = request.target.parse().map_err(BackendError::Invalid)?;
        let defaults = BacktestArgs::defaults(&self.store, target.clone(), None);
        let models = match &request.models {
            Some(models) if models.is_empty() => return Err(BackendError::Invalid("models=[] names no model".into())),
            Some(models) => models.join(","),
            None => defaults.models.clone(),
        };
        let args = BacktestArgs::for_api(
            &self.store,
            target,
            request.horizon.unwrap_or(14) as usize,
            request.folds.unwrap_or(20) as usize,
            request.step.unwrap_or(7) as usize,
            models,
        )
        .with_routes(self.routes_dir.clone())
        .on(self.engine.clone());
        args.check().map_err(|e| BackendError::Invalid(format!("{e:#}")))?;
        Ok(args)
    }
}

fn string_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>, BackendError> {
    let column = batch.column_by_name(name).ok_or_else(|| failed(anyhow::anyhow!("no column {name}")))?;
    let strings = column.as_string::<i32>();
    Ok((0..batch.num_rows()).map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_owned())).collect())
}

async fn read_forecasts(store: Store) -> Result<ForecastSnapshot, BackendError> {
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
    for metadata in store.commit_history(TableName::Forecasts).await.map_err(failed)? {
        let (Some(run), Some(vintage)) =
            (metadata.get("run_id").and_then(Value::as_str), metadata.get("vintage").and_then(Value::as_object))
        else {
            continue;
        };
        let versions = vintage.iter().filter_map(|(k, v)| Some((k.clone(), v.as_u64()?))).collect();
        vintages.insert(run.to_owned(), versions);
    }
    let mut runs: Vec<ForecastRun> = Vec::new();
    for batch in &batches {
        let run_ids = string_column(batch, "run_id")?;
        let targets = string_column(batch, "target")?;
        let models = string_column(batch, "model")?;
        let chosen = string_column(batch, "chosen")?;
        let created = batch.column_by_name("created_at").ok_or_else(|| failed(anyhow::anyhow!("no created_at")))?;
        let created = created.as_primitive::<TimestampMicrosecondType>();
        let date_of = |name: &str| -> Result<Vec<NaiveDate>, BackendError> {
            let c = batch.column_by_name(name).ok_or_else(|| failed(anyhow::anyhow!("no {name}")))?;
            let c = c.as_primitive::<Date32Type>();
            Ok((0..batch.num_rows()).map(|i| days_to_date(c.value(i))).collect())
        };
        let (cutoffs, dates) = (date_of("cutoff")?, date_of("date")?);
        let horizons = batch.column_by_name("horizon").ok_or_else(|| failed(anyhow::anyhow!("no horizon")))?;
        let horizons = horizons.as_primitive::<Int32Type>();
        let value = |name: &str, i: usize| -> Result<f64, BackendError> {
            let c = batch.column_by_name(name).ok_or_else(|| failed(anyhow::anyhow!("no {name}")))?;
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
        let store = self.store.clone();
        Box::pin(on_worker(move || async move { read_forecasts(store.create().map_err(failed)?).await }))
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
            let session = QuerySession::open_on(&store, None, &self.engine.engine()).await.map_err(failed)?;
            if !session.has_table("density") {
                return Err(BackendError::NotFound("the store holds no density data".into()));
            }
            let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION)).map_err(failed)?;
            let batches = match level {
                SeriesLevel::Segment => {
                    let cells = route.cells(resolution, crate::DEFAULT_BUFFER).map_err(failed)?;
                    session.segment_series(&cells, from, to, SeriesGranularity::Day).await
                }
                SeriesLevel::Station => {
                    session
                        .station_density_series(
                            route,
                            resolution,
                            crate::DEFAULT_BUFFER,
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
                let devices = b.column_by_name("devices").ok_or_else(|| failed(anyhow::anyhow!("no devices")))?;
                let devices = devices.as_primitive::<Int64Type>();
                let hours = b.column_by_name("cell_hours").ok_or_else(|| failed(anyhow::anyhow!("no cell_hours")))?;
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
            let history = store.commit_history(TableName::Density).await.map_err(failed)?;
            let Some(storage) = history.iter().find_map(|m| m.get("resolution").and_then(Value::as_i64)) else {
                return Err(BackendError::NotFound("the store holds no density data".into()));
            };
            let storage = Resolution::new(storage).map_err(failed)?;
            if cell.resolution().get() > storage.get() {
                return Err(BackendError::Invalid(format!(
                    "cell={cell} has resolution {}, finer than the store's {}",
                    cell.resolution().get(),
                    storage.get()
                )));
            }
            let range = cell.descendant_range(storage).map_err(failed)?;
            let session = QuerySession::open_on(&store, None, &self.engine.engine()).await.map_err(failed)?;
            let bucket = match resolution {
                TimeResolution::Day => "CAST(ts AS DATE)",
                TimeResolution::Hour => "ts",
            };
            let sql = format!(
                "SELECT {bucket} AS time, SUM(CAST(count AS BIGINT)) AS devices, COUNT(*) AS cell_hours \
                 FROM density_files WHERE cell BETWEEN {} AND {} \
                 AND ts >= TIMESTAMP '{from} 00:00:00' AND ts < TIMESTAMP '{to} 00:00:00' \
                 GROUP BY {bucket} ORDER BY time",
                *range.start() as i64,
                *range.end() as i64
            );
            let batches: Vec<RecordBatch> =
                session.context().sql(&sql).await.map_err(failed)?.collect().await.map_err(failed)?;
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
                vintage: vintage_of(&session),
                points,
            })
        })
    }

    fn validate_backtest(&self, request: &BacktestRequest) -> Result<(), BackendError> {
        self.backtest_args(request).map(|_| ())
    }

    fn backtest(&self, request: BacktestRequest) -> BackendFuture<'_, (String, Vec<MetricsEntry>)> {
        let args = self.backtest_args(&request);
        Box::pin(async move {
            let args = args?;
            let outcome =
                on_worker(move || async move { crate::forecast::backtest(&args).await.map_err(failed) }).await?;
            let metrics = outcome
                .run
                .get("metrics")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .map(|m| {
                            let f = |name: &str| m.get(name).and_then(Value::as_f64);
                            MetricsEntry {
                                model: m.get("model").and_then(Value::as_str).unwrap_or_default().to_owned(),
                                n: f("n").unwrap_or(0.0) as u64,
                                mae: f("mae"),
                                mase: f("mase"),
                                smape: f("smape"),
                                wape: f("wape"),
                                rmse: f("rmse"),
                                coverage80: f("coverage80"),
                                coverage95: f("coverage95"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok((outcome.run_id, metrics))
        })
    }

    fn refresh(&self) -> BackendFuture<'_, (String, Vec<String>)> {
        let mut args = ForecastArgs::defaults(&self.store).with_routes(self.routes_dir.clone()).on(self.engine.clone());
        args.quiet = true;
        Box::pin(async move {
            let outcome =
                on_worker(move || async move { crate::forecast::forecast(&args).await.map_err(failed) }).await?;
            Ok((outcome.run_id, outcome.targets))
        })
    }

    fn render<'a>(
        &'a self,
        route: &'a Route,
        date: Option<NaiveDate>,
        format: MapFormat,
    ) -> BackendFuture<'a, Vec<u8>> {
        let store = self.store.clone();
        let route = route.clone();
        Box::pin(on_worker(move || async move {
            let store = store.create().map_err(failed)?;
            crate::export::render(&store, &route, date, format).await
        }))
    }
}
