//! `stroom backtest` and `stroom forecast`: read a target's daily series and
//! its upstream density signals from the store, run the models of
//! `stroom-model`, and write the results to files and to the store.

use crate::location::{EngineArgs, StoreArgs};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::{NaiveDate, Utc};
use clap::Args;
use datafusion::arrow::array::{
    Array, AsArray, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Int32Type, Int64Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use serde_json::{Value, json};
use stroom_core::{Cell, DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution, Route, days_to_date};
use stroom_model::{
    Backtest, BacktestRow, Folds, ForecastParams, MetricsRow, ModelKind, SeriesInput, UpstreamSignal,
    ValidForecastParams,
};
use stroom_query::{Engine, QuerySession, Vintage};
use stroom_store::{RUN_VALUE_COLUMNS, Store, TableName, backtests_schema, forecasts_schema};

use crate::routes::load_routes;

/// What is forecast: official arrivals at a station, or at the end station
/// of a route segment (with only that segment and those upstream of it as
/// signals).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    Station(String),
    Segment { route: String, segment: String },
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let problem = || format!("'{text}' is not a target: use station:ID or segment:ROUTE/SEGMENT");
        let (kind, id) = text.split_once(':').ok_or_else(problem)?;
        match kind {
            "station" if !id.is_empty() => Ok(Target::Station(id.to_owned())),
            "segment" => {
                let (route, segment) = id.split_once('/').ok_or_else(problem)?;
                if route.is_empty() || segment.is_empty() {
                    return Err(problem());
                }
                Ok(Target::Segment { route: route.to_owned(), segment: segment.to_owned() })
            }
            _ => Err(problem()),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Station(id) => write!(f, "station:{id}"),
            Target::Segment { route, segment } => write!(f, "segment:{route}/{segment}"),
        }
    }
}

/// The model options shared by `backtest` and `forecast`.
#[derive(Debug, Args, Clone)]
pub(crate) struct ModelOptions {
    /// Days ahead (1 to 28).
    #[arg(long, default_value_t = 14)]
    horizon: usize,
    /// Calibration origins before each cutoff (conformal intervals, model choice).
    #[arg(long, default_value_t = 28)]
    calibration_origins: usize,
    /// Days between calibration origins.
    #[arg(long, default_value_t = 6)]
    calibration_step: usize,
    /// Days averaged by the moving-average baseline.
    #[arg(long, default_value_t = 7)]
    window: usize,
    /// Holidays (YYYY-MM-DD, comma-separated) given their own effect in the regression.
    #[arg(long, value_delimiter = ',')]
    holidays: Vec<NaiveDate>,
    /// Folder of route files; the shipped routes when omitted.
    #[arg(long)]
    routes: Option<PathBuf>,
}

impl ModelOptions {
    fn params(&self, models: Vec<ModelKind>) -> Result<ValidForecastParams> {
        Ok(ForecastParams {
            horizon: self.horizon,
            models,
            calibration_origins: self.calibration_origins,
            calibration_step: self.calibration_step,
            moving_average_window: self.window,
            ..ForecastParams::default()
        }
        .check()?)
    }

    fn describe(&self, models: &[ModelKind]) -> Value {
        let defaults = ForecastParams::default();
        json!({
            "horizon": self.horizon,
            "models": models.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "calibration_origins": self.calibration_origins,
            "calibration_step": self.calibration_step,
            "calibration_pool": defaults.calibration_pool,
            "moving_average_window": self.window,
            "ets_window": defaults.ets.window,
            "elasticnet": {
                "penalties": defaults.elasticnet.penalties,
                "l1_ratio": defaults.elasticnet.l1_ratio,
                "max_train_days": defaults.elasticnet.max_train_days,
                "max_lead": defaults.elasticnet.max_lead,
            },
            "ensemble_size": defaults.ensemble_size,
            "holidays": self.holidays.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "resolution": DEFAULT_ROUTE_RESOLUTION,
            "buffer_rings": DEFAULT_BUFFER_RINGS,
        })
    }
}

#[derive(Debug, Args)]
pub(crate) struct BacktestArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// station:ID or segment:ROUTE/SEGMENT.
    #[arg(long)]
    target: Target,
    /// Number of folds.
    #[arg(long, default_value_t = 20)]
    folds: usize,
    /// Days between fold cutoffs.
    #[arg(long, default_value_t = 7)]
    step: usize,
    /// Models, comma-separated: auto, ensemble, elasticnet, elasticnet_univariate, ets,
    /// moving_average, seasonal_naive, naive.
    #[arg(long, default_value = "auto,ensemble,elasticnet,ets,moving_average,seasonal_naive,naive")]
    pub(crate) models: String,
    /// Output folder for forecasts.parquet, metrics.csv, series.csv and run.json.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Fit each fold on the data vintage that existed at the end of its cutoff day
    /// (Delta time travel), instead of the latest data.
    #[arg(long)]
    vintage: bool,
    /// Do not record the run in the store's backtests table.
    #[arg(long)]
    no_record: bool,
    #[command(flatten)]
    options: ModelOptions,
    /// Print nothing (the API's jobs).
    #[arg(skip)]
    quiet: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ForecastArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// Routes whose destination is forecast (repeatable); every route when
    /// neither --route nor --target is given.
    #[arg(long)]
    route: Vec<String>,
    /// Targets: station:ID or segment:ROUTE/SEGMENT (repeatable).
    #[arg(long)]
    target: Vec<Target>,
    /// The model: auto, ensemble, elasticnet, ets, moving_average, seasonal_naive, naive.
    #[arg(long, default_value = "auto")]
    model: String,
    /// Do not record the run in the store's forecasts table.
    #[arg(long)]
    no_record: bool,
    #[command(flatten)]
    options: ModelOptions,
    /// Print nothing (the API's jobs).
    #[arg(skip)]
    pub(crate) quiet: bool,
}

impl ModelOptions {
    /// The defaults of the command line.
    pub(crate) fn defaults() -> Self {
        Self {
            horizon: 14,
            calibration_origins: 28,
            calibration_step: 6,
            window: 7,
            holidays: Vec::new(),
            routes: None,
        }
    }
}

impl BacktestArgs {
    /// The command line's defaults for one target (the demo's backtests).
    pub(crate) fn defaults(store: &StoreArgs, target: Target, out: Option<PathBuf>) -> Self {
        Self {
            store: store.clone(),
            engine: EngineArgs::default(),
            target,
            folds: 20,
            step: 7,
            models: "auto,ensemble,elasticnet,elasticnet_univariate,ets,moving_average,seasonal_naive,naive".into(),
            out,
            vintage: false,
            no_record: false,
            options: ModelOptions::defaults(),
            quiet: false,
        }
    }

    /// A backtest asked for through the API: recorded, printed nowhere, no files.
    pub(crate) fn for_api(
        store: &StoreArgs,
        target: Target,
        horizon: usize,
        folds: usize,
        step: usize,
        models: String,
    ) -> Self {
        let mut args = Self::defaults(store, target, None);
        args.options.horizon = horizon;
        args.folds = folds;
        args.step = step;
        args.models = models;
        args.quiet = true;
        args
    }

    /// Reads routes from `folder` instead of the shipped ones.
    pub(crate) fn with_routes(mut self, folder: Option<PathBuf>) -> Self {
        self.options.routes = folder;
        self
    }

    /// Runs the queries on `engine`.
    pub(crate) fn on(mut self, engine: EngineArgs) -> Self {
        self.engine = engine;
        self
    }

    /// Checks the options without reading the store.
    pub(crate) fn check(&self) -> Result<()> {
        let models = ModelKind::parse_list(&self.models)?;
        self.options.params(models)?;
        Folds { horizon: self.options.horizon, folds: self.folds, step: self.step };
        Ok(())
    }
}

impl ForecastArgs {
    /// Reads routes from `folder` instead of the shipped ones.
    pub(crate) fn with_routes(mut self, folder: Option<PathBuf>) -> Self {
        self.options.routes = folder;
        self
    }

    /// Runs the queries on `engine`.
    pub(crate) fn on(mut self, engine: EngineArgs) -> Self {
        self.engine = engine;
        self
    }

    /// The command line's defaults: every route, model `auto`.
    pub(crate) fn defaults(store: &StoreArgs) -> Self {
        Self {
            store: store.clone(),
            engine: EngineArgs::default(),
            route: Vec::new(),
            target: Vec::new(),
            model: "auto".into(),
            no_record: false,
            options: ModelOptions::defaults(),
            quiet: false,
        }
    }
}

/// A target's series as read from one vintage of the store.
struct Loaded {
    input: SeriesInput,
    versions: BTreeMap<&'static str, u64>,
}

/// The upstream segments of a target, as (name, cells) groups: for a
/// station, every segment of every route that leads to it; for a segment,
/// the segment and those upstream of it.
fn upstream_groups(target: &Target, routes: &[Route]) -> Result<(String, Vec<(String, Vec<Cell>)>)> {
    let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION))?;
    let mut groups = Vec::new();
    let station = match target {
        Target::Station(station) => {
            for route in routes {
                let segments: BTreeSet<&str> = route
                    .segments
                    .iter()
                    .filter(|s| s.to == *station)
                    .flat_map(|s| {
                        std::iter::once(s.id.as_str())
                            .chain(route.upstream_segments(&s.id).into_iter().map(|u| u.id.as_str()))
                    })
                    .collect();
                if segments.is_empty() {
                    continue;
                }
                let cells = route.cells(resolution, DEFAULT_BUFFER_RINGS)?;
                for segment in &cells.segments {
                    if segments.contains(segment.segment_id.as_str()) {
                        groups.push((format!("{}/{}", route.id, segment.segment_id), segment.cells.clone()));
                    }
                }
            }
            station.clone()
        }
        Target::Segment { route, segment } => {
            let Some(found) = routes.iter().find(|r| r.id == *route) else { bail!("no route '{route}'") };
            let Some(seg) = found.segment(segment) else { bail!("route '{route}' has no segment '{segment}'") };
            let wanted: BTreeSet<&str> = std::iter::once(seg.id.as_str())
                .chain(found.upstream_segments(&seg.id).into_iter().map(|u| u.id.as_str()))
                .collect();
            let cells = found.cells(resolution, DEFAULT_BUFFER_RINGS)?;
            for s in &cells.segments {
                if wanted.contains(s.segment_id.as_str()) {
                    groups.push((format!("{}/{}", found.id, s.segment_id), s.cells.clone()));
                }
            }
            seg.to.clone()
        }
    };
    Ok((station, groups))
}

/// A target's station and its upstream segments' cells, as
/// [`upstream_groups`] gives them.
type Groups = (String, Vec<(String, Vec<Cell>)>);

/// Reads the target's daily arrivals (at `station`) and the density excess
/// of its upstream segments (`groups`) from one vintage of the store.
async fn load(store: &Store, engine: &Engine, (station, groups): &Groups, vintage: Option<Vintage>) -> Result<Loaded> {
    let session = QuerySession::open_on(store, vintage, engine).await?;
    if !session.has_table("arrivals") {
        bail!("the store has no arrivals table{}", if vintage.is_some() { " in that vintage" } else { "" });
    }
    let far_past = NaiveDate::from_ymd_opt(1900, 1, 1).expect("a date");
    let far_future = NaiveDate::from_ymd_opt(2200, 1, 1).expect("a date");
    let mut days: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for batch in session.arrivals_series(station, far_past, far_future).await? {
        let dates = batch.column(0).as_primitive::<Date32Type>();
        let counts = batch.column(1).as_primitive::<Int32Type>();
        for i in 0..batch.num_rows() {
            days.insert(days_to_date(dates.value(i)), f64::from(counts.value(i)));
        }
    }
    let (Some(&start), Some(&end)) = (days.keys().next(), days.keys().next_back()) else {
        bail!("station '{station}' has no arrivals in the store");
    };
    let length = usize::try_from((end - start).num_days()).unwrap_or(0) + 1;
    let mut target_values = vec![f64::NAN; length];
    for (date, count) in &days {
        target_values[usize::try_from((*date - start).num_days()).unwrap_or(0)] = *count;
    }

    let mut upstream = Vec::new();
    if session.has_table("density") && !groups.is_empty() {
        let all: Vec<Cell> = groups.iter().flat_map(|(_, cells)| cells.iter().copied()).collect();
        let batches = session.cell_day_series(&all, start, end + chrono::Duration::days(1)).await?;
        // cell → (day index, devices); and the days the store covers.
        let mut found: HashMap<i64, Vec<(usize, f64)>> = HashMap::new();
        let mut covered: Option<(usize, usize)> = None;
        for batch in &batches {
            let ids = batch.column(0).as_primitive::<Int64Type>();
            let dates = batch.column(1).as_primitive::<Date32Type>();
            let devices = batch.column(2).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                let day = usize::try_from((days_to_date(dates.value(i)) - start).num_days()).unwrap_or(0);
                covered = Some(covered.map_or((day, day), |(a, b)| (a.min(day), b.max(day))));
                found.entry(ids.value(i)).or_default().push((day, devices.value(i) as f64));
            }
        }
        if let Some((first, last)) = covered {
            let present: Vec<&(String, Vec<Cell>)> = groups
                .iter()
                .filter(|(_, group)| group.iter().any(|cell| found.contains_key(&(cell.to_u64() as i64))))
                .collect();
            // The segments' matrices and signals, in one contiguous share of
            // the segments per core; the order of `upstream` stays that of
            // `groups`.
            let signals = |(name, group): &(String, Vec<Cell>)| -> Vec<UpstreamSignal> {
                let matrix: Vec<Vec<f64>> = group
                    .iter()
                    .map(|cell| {
                        // No row inside the covered days: every hour suppressed (zero).
                        let mut series: Vec<f64> =
                            (0..length).map(|d| if (first..=last).contains(&d) { 0.0 } else { f64::NAN }).collect();
                        for (day, value) in found.get(&(cell.to_u64() as i64)).into_iter().flatten() {
                            series[*day] = *value;
                        }
                        series
                    })
                    .collect();
                [stroom_model::BASELINE_WEEKS, stroom_model::LONG_BASELINE_WEEKS]
                    .into_iter()
                    .map(|weeks| UpstreamSignal {
                        name: name.clone(),
                        baseline_weeks: weeks,
                        excess: stroom_model::density_excess(&matrix, weeks),
                    })
                    .collect()
            };
            let threads = std::thread::available_parallelism().map_or(1, usize::from).min(present.len()).max(1);
            let per_thread = present.len().div_ceil(threads);
            let parts: Vec<Vec<UpstreamSignal>> = std::thread::scope(|scope| {
                let handles: Vec<_> = present
                    .chunks(per_thread.max(1))
                    .map(|chunk| scope.spawn(move || chunk.iter().flat_map(|g| signals(g)).collect::<Vec<_>>()))
                    .collect();
                handles.into_iter().map(|h| h.join().expect("a signal thread does not panic")).collect()
            });
            upstream.extend(parts.into_iter().flatten());
        }
    }
    Ok(Loaded {
        input: SeriesInput { start, target: target_values, upstream, holidays: Vec::new() },
        versions: session.versions().clone(),
    })
}

fn versions_json(versions: &BTreeMap<&'static str, u64>) -> Value {
    Value::Object(versions.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect())
}

/// A recorded run: its id and the metadata committed with it.
#[derive(Debug)]
pub(crate) struct RunOutcome {
    pub(crate) run_id: String,
    pub(crate) run: Value,
    pub(crate) targets: Vec<String>,
}

pub(crate) async fn backtest(args: &BacktestArgs) -> Result<RunOutcome> {
    let started = std::time::Instant::now();
    let store = args.store.open().await?;
    let engine = args.engine.engine();
    let routes = load_routes(args.options.routes.as_deref())?;
    let models = ModelKind::parse_list(&args.models)?;
    let params = args.options.params(models.clone())?;
    let folds = Folds { horizon: args.options.horizon, folds: args.folds, step: args.step };
    let groups = upstream_groups(&args.target, &routes)?;
    let mut latest = load(&store, &engine, &groups, None).await?;
    latest.input.holidays = args.options.holidays.clone();
    let result = if args.vintage {
        backtest_on_vintages(&store, &engine, &groups, &latest.input, folds, &params, &args.options).await?
    } else {
        stroom_model::backtest(&latest.input, folds, &params)?
    };
    let run_id = uuid::Uuid::new_v4().to_string();
    let target = args.target.to_string();
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        write_forecasts_parquet(&out.join("forecasts.parquet"), &target, &result.rows)?;
        write_metrics_csv(&out.join("metrics.csv"), &result.metrics)?;
        write_series_csv(&out.join("series.csv"), &latest.input)?;
    }
    let leads: Vec<Value> = result
        .folds
        .last()
        .map(|f| {
            f.leads
                .iter()
                .map(|s| {
                    json!({"segment": s.name, "baseline_weeks": s.baseline_weeks, "lead_days": s.lead.map(|l| l.days), "correlation": s.lead.map(|l| l.correlation)})
                })
                .collect()
        })
        .unwrap_or_default();
    let mut chosen: BTreeMap<String, usize> = BTreeMap::new();
    for fold in &result.folds {
        for f in fold.forecasts.iter().filter(|f| f.model == ModelKind::Auto) {
            *chosen.entry(f.chosen.map(|k| k.name().to_owned()).unwrap_or_default()).or_default() += 1;
        }
    }
    let overall: Vec<Value> = result
        .metrics
        .iter()
        .filter(|m| m.horizon.is_none())
        .map(|m| {
            let mut o = serde_json::Map::new();
            o.insert("model".into(), json!(m.model));
            for (name, value) in stroom_model::Metrics::COLUMNS.iter().zip(m.metrics.values()) {
                o.insert((*name).into(), if value.is_finite() { json!(value) } else { Value::Null });
            }
            Value::Object(o)
        })
        .collect();
    let run = json!({
        "operation": "backtest",
        "run_id": run_id,
        "target": target,
        "horizon": folds.horizon,
        "folds": folds.folds,
        "step": folds.step,
        "cutoffs": result.cutoffs.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "on_vintages": args.vintage,
        "vintage": versions_json(&latest.versions),
        "params": args.options.describe(&models),
        "leads_at_last_cutoff": leads,
        "auto_choices": chosen,
        "metrics": overall,
    });
    if let Some(out) = &args.out {
        std::fs::write(out.join("run.json"), serde_json::to_string_pretty(&run)?)
            .with_context(|| format!("writing {}", out.join("run.json").display()))?;
    }
    if !args.quiet {
        print_metrics(&target, &result, &chosen);
        println!(
            "\nbacktest: {} folds × {} days, cutoffs {} .. {}, {:.1} s",
            folds.folds,
            folds.horizon,
            result.cutoffs.first().map(|c| c.to_string()).unwrap_or_default(),
            result.cutoffs.last().map(|c| c.to_string()).unwrap_or_default(),
            started.elapsed().as_secs_f64()
        );
    }
    if let (Some(out), false) = (&args.out, args.quiet) {
        println!("wrote {}/forecasts.parquet, metrics.csv, series.csv, run.json", out.display());
    }
    if !args.no_record {
        let batch = run_batch(&run_id, &target, &result.rows, true)?;
        let version = store.append_run(TableName::Backtests, batch, run.clone()).await?;
        if !args.quiet {
            println!("recorded run {run_id} in the backtests table (version {version})");
        }
    }
    Ok(RunOutcome { run_id, run, targets: vec![target] })
}

/// A backtest whose every fold reads the store as it was at the end of its
/// cutoff day; actuals come from the latest data.
async fn backtest_on_vintages(
    store: &Store,
    engine: &Engine,
    groups: &Groups,
    latest: &SeriesInput,
    folds: Folds,
    params: &ValidForecastParams,
    options: &ModelOptions,
) -> Result<Backtest> {
    let last = stroom_model::last_known(latest).context("the series has no known value")?;
    let cutoffs = folds.cutoffs(last)?;
    let mut rows = Vec::new();
    let mut fold_forecasts = Vec::new();
    for &cutoff in &cutoffs {
        let date = latest.date(cutoff);
        let end_of_day = (date + chrono::Duration::days(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let mut loaded = load(store, engine, groups, Some(Vintage::AsOf(end_of_day)))
            .await
            .with_context(|| format!("reading the vintage of {date}"))?;
        loaded.input.holidays = options.holidays.clone();
        let index = loaded.input.index_of(date).filter(|&i| i < loaded.input.target.len()).with_context(|| {
            format!(
                "the vintage of {date} has no data up to that day (it ends {})",
                loaded.input.date(loaded.input.target.len().saturating_sub(1))
            )
        })?;
        let forecast = stroom_model::forecast_at(&loaded.input, index, params)?;
        let mut fold_rows = stroom_model::rows_of(&loaded.input, &[], &forecast);
        for row in &mut fold_rows {
            let day = (row.date - latest.start).num_days();
            row.actual = usize::try_from(day).ok().and_then(|d| latest.target.get(d)).copied().unwrap_or(f64::NAN);
        }
        rows.extend(fold_rows);
        fold_forecasts.push(forecast);
    }
    let metrics = stroom_model::summarise(&rows, &params.params().models);
    Ok(Backtest { cutoffs: cutoffs.iter().map(|&c| latest.date(c)).collect(), rows, metrics, folds: fold_forecasts })
}

pub(crate) async fn forecast(args: &ForecastArgs) -> Result<RunOutcome> {
    let store = args.store.open().await?;
    let engine = args.engine.engine();
    let routes = load_routes(args.options.routes.as_deref())?;
    let model = ModelKind::parse(&args.model)?;
    let params = args.options.params(vec![model])?;
    let mut targets: Vec<Target> = args.target.clone();
    let chosen_routes: Vec<&Route> = if args.route.is_empty() && args.target.is_empty() {
        routes.iter().collect()
    } else {
        args.route
            .iter()
            .map(|id| routes.iter().find(|r| r.id == *id).with_context(|| format!("no route '{id}'")))
            .collect::<Result<_>>()?
    };
    for route in chosen_routes {
        let target = Target::Station(route.destination().id.clone());
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let mut batches = Vec::new();
    let mut vintage = Value::Null;
    let mut summaries = Vec::new();
    for target in &targets {
        let mut loaded = load(&store, &engine, &upstream_groups(target, &routes)?, None).await?;
        loaded.input.holidays = args.options.holidays.clone();
        vintage = versions_json(&loaded.versions);
        let cutoff = stroom_model::last_known(&loaded.input).context("the series has no known value")?;
        let result = stroom_model::forecast_at(&loaded.input, cutoff, &params)
            .with_context(|| format!("forecasting {target}"))?;
        let rows = stroom_model::rows_of(&loaded.input, &[], &result);
        if !args.quiet {
            print_forecast(target, &loaded, cutoff, &result, &rows, params.params().horizon);
        }
        summaries.push(json!({
            "target": target.to_string(),
            "cutoff": loaded.input.date(cutoff).to_string(),
            "model": describe_model(&result),
            "leads": result
                .leads
                .iter()
                .map(|s| json!({"segment": s.name, "baseline_weeks": s.baseline_weeks, "lead_days": s.lead.map(|l| l.days)}))
                .collect::<Vec<_>>(),
        }));
        batches.push(run_batch(&run_id, &target.to_string(), &rows, false)?);
    }
    let metadata = json!({
        "operation": "forecast",
        "run_id": run_id,
        "vintage": vintage,
        "params": args.options.describe(&[model]),
        "targets": summaries,
    });
    if !args.no_record && !batches.is_empty() {
        let batch = datafusion::arrow::compute::concat_batches(&forecasts_schema(), &batches)?;
        let version = store.append_run(TableName::Forecasts, batch, metadata.clone()).await?;
        if !args.quiet {
            println!("\nrecorded run {run_id} in the forecasts table (version {version})");
        }
    }
    Ok(RunOutcome { run_id, run: metadata, targets: targets.iter().map(|t| t.to_string()).collect() })
}

fn print_forecast(
    target: &Target,
    loaded: &Loaded,
    cutoff: usize,
    result: &stroom_model::CutoffForecast,
    rows: &[BacktestRow],
    horizon: usize,
) {
    println!(
        "\n# {target}: {} from {} (data up to {}), {} days ahead",
        describe_model(result),
        loaded.input.date(cutoff + 1),
        loaded.input.date(cutoff),
        horizon
    );
    println!("{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}", "date", "mean", "q10", "q50", "q90", "lo95", "hi95");
    for r in rows {
        println!(
            "{:<12} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            r.date.to_string(),
            r.mean,
            r.q10,
            r.q50,
            r.q90,
            r.lo95,
            r.hi95
        );
    }
}

fn describe_model(result: &stroom_model::CutoffForecast) -> String {
    result
        .forecasts
        .first()
        .map(|f| match (f.model, f.chosen) {
            (ModelKind::Auto, Some(ModelKind::Ensemble)) => {
                format!("auto → ensemble of {}", f.members.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "))
            }
            (ModelKind::Auto, Some(k)) => format!("auto → {}", k.name()),
            (k, _) => k.name().to_owned(),
        })
        .unwrap_or_default()
}

fn print_metrics(target: &str, result: &Backtest, chosen: &BTreeMap<String, usize>) {
    let overall: Vec<&MetricsRow> = result.metrics.iter().filter(|m| m.horizon.is_none()).collect();
    let reference = overall.iter().find(|m| m.model == ModelKind::SeasonalNaive.name()).map(|m| m.metrics.mase);
    println!(
        "# backtest of {target}: metrics averaged over folds (MAE, MASE, sMAPE 0-200, WAPE of q50; RMSE, RMSSE of the mean)"
    );
    println!(
        "{:<22} {:>9} {:>7} {:>8} {:>7} {:>9} {:>7} {:>6} {:>6} {:>9} {:>9} {:>8} {:>9}",
        "model",
        "MAE",
        "MASE",
        "sMAPE",
        "WAPE",
        "RMSE",
        "RMSSE",
        "cov80",
        "cov95",
        "IS80",
        "IS95",
        "pinball",
        "MASE/sn"
    );
    for m in overall {
        let x = &m.metrics;
        let relative = reference.filter(|r| *r > 0.0).map(|r| format!("{:.3}", x.mase / r)).unwrap_or("-".into());
        println!(
            "{:<22} {:>9.2} {:>7.3} {:>8.2} {:>7.3} {:>9.2} {:>7.3} {:>6.3} {:>6.3} {:>9.1} {:>9.1} {:>8.2} {:>9}",
            m.model,
            x.mae,
            x.mase,
            x.smape,
            x.wape,
            x.rmse,
            x.rmsse,
            x.coverage80,
            x.coverage95,
            x.interval_score80,
            x.interval_score95,
            x.pinball,
            relative
        );
    }
    if !chosen.is_empty() {
        let text: Vec<String> = chosen.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        println!("auto chose: {}", text.join(", "));
    }
    if let Some(last) = result.folds.last() {
        let leads: Vec<String> = last
            .leads
            .iter()
            .map(|s| match s.lead {
                Some(l) => format!("{} ({} w) {} d (r={:.2})", s.name, s.baseline_weeks, l.days, l.correlation),
                None => format!("{} ({} w) -", s.name, s.baseline_weeks),
            })
            .collect();
        if !leads.is_empty() {
            println!("upstream leads at the last cutoff: {}", leads.join(", "));
        }
    }
}

/// `series.csv` of a backtest: the daily series the models read, one row per
/// day: the target's count and each upstream segment's density excess
/// (empty where unknown).
fn write_series_csv(path: &Path, input: &SeriesInput) -> Result<()> {
    let mut text = String::from("date,target");
    for signal in &input.upstream {
        text.push_str(&format!(",{} ({} weeks)", signal.name, signal.baseline_weeks));
    }
    text.push('\n');
    let cell = |v: f64| if v.is_finite() { v.to_string() } else { String::new() };
    for (i, value) in input.target.iter().enumerate() {
        text.push_str(&input.date(i).to_string());
        text.push(',');
        text.push_str(&cell(*value));
        for signal in &input.upstream {
            text.push(',');
            text.push_str(&cell(signal.excess.get(i).copied().unwrap_or(f64::NAN)));
        }
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn write_metrics_csv(path: &Path, metrics: &[MetricsRow]) -> Result<()> {
    let mut text = String::from("model,horizon");
    for column in stroom_model::Metrics::COLUMNS {
        text.push(',');
        text.push_str(column);
    }
    text.push('\n');
    for m in metrics {
        text.push_str(&m.model);
        text.push(',');
        text.push_str(&m.horizon.map(|h| h.to_string()).unwrap_or_else(|| "all".into()));
        for value in m.metrics.values() {
            text.push(',');
            if value.is_finite() {
                text.push_str(&value.to_string());
            }
        }
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The columns of [`RUN_VALUE_COLUMNS`], in that order.
fn value_columns(rows: &[BacktestRow]) -> Vec<Arc<dyn Array>> {
    let picks: [fn(&BacktestRow) -> f64; 8] =
        [|r| r.mean, |r| r.q10, |r| r.q50, |r| r.q90, |r| r.lo80, |r| r.hi80, |r| r.lo95, |r| r.hi95];
    picks.iter().map(|pick| Arc::new(Float64Array::from_iter_values(rows.iter().map(pick))) as Arc<dyn Array>).collect()
}

/// `forecasts.parquet` of a backtest: target, model, cutoff, date, horizon,
/// actual, mean, q10, q50, q90, lo80, hi80, lo95, hi95, chosen.
fn write_forecasts_parquet(path: &Path, target: &str, rows: &[BacktestRow]) -> Result<()> {
    let mut fields = vec![
        Field::new("target", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("cutoff", DataType::Date32, false),
        Field::new("date", DataType::Date32, false),
        Field::new("horizon", DataType::Int32, false),
        Field::new("actual", DataType::Float64, true),
    ];
    for q in RUN_VALUE_COLUMNS {
        fields.push(Field::new(q, DataType::Float64, false));
    }
    fields.push(Field::new("chosen", DataType::Utf8, true));
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| target))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.model.as_str()))),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| stroom_core::date_to_days(r.cutoff)))),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| stroom_core::date_to_days(r.date)))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.horizon as i32))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.actual.is_finite().then_some(r.actual)))),
    ];
    columns.extend(value_columns(rows));
    columns.push(Arc::new(StringArray::from_iter(rows.iter().map(|r| r.chosen.as_deref()))));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = ArrowWriter::try_new(file, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

/// Rows of a run for the `forecasts` (no actual) or `backtests` table.
fn run_batch(run_id: &str, target: &str, rows: &[BacktestRow], with_actual: bool) -> Result<RecordBatch> {
    let schema = if with_actual { backtests_schema() } else { forecasts_schema() };
    let now = Utc::now().timestamp_micros();
    let mut columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| run_id))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|_| now)).with_timezone("UTC")),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| target))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.model.as_str()))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.chosen.as_deref()))),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| stroom_core::date_to_days(r.cutoff)))),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| stroom_core::date_to_days(r.date)))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.horizon as i32))),
    ];
    if with_actual {
        columns.push(Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.actual.is_finite().then_some(r.actual)))));
    }
    columns.extend(value_columns(rows));
    Ok(RecordBatch::try_new(schema, columns)?)
}
