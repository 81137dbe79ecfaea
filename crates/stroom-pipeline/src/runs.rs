//! Backtests and forecasts of targets: the series from a store vintage,
//! the models of `stroom-model`, the run's metadata, its rows as Arrow
//! batches and files, and its record in the store's `backtests` or
//! `forecasts` table.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use datafusion::arrow::array::{
    Array, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use serde_json::{Value, json};
use stroom_core::{DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Route};
use stroom_model::{
    Backtest, BacktestRow, CutoffForecast, Folds, ForecastParams, MetricsRow, ModelKind, SeriesInput,
    ValidForecastParams,
};
use stroom_query::{Engine, Vintage};
use stroom_store::{RUN_VALUE_COLUMNS, Store, TableName, backtests_schema, forecasts_schema};

use crate::error::{PipelineError, Result};
use crate::target::{Groups, Target, TargetSeries, load, upstream_groups};

/// The models a backtest compares when none are named.
pub const DEFAULT_BACKTEST_MODELS: [ModelKind; 7] = [
    ModelKind::Auto,
    ModelKind::Ensemble,
    ModelKind::ElasticNet,
    ModelKind::Ets,
    ModelKind::MovingAverage,
    ModelKind::SeasonalNaive,
    ModelKind::Naive,
];

/// The model options shared by backtests and forecasts.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    /// Days ahead (1 to 28).
    pub horizon: usize,
    /// Calibration origins before each cutoff (conformal intervals, model choice).
    pub calibration_origins: usize,
    /// Days between calibration origins.
    pub calibration_step: usize,
    /// Days averaged by the moving-average baseline.
    pub window: usize,
    /// Holidays given their own effect in the regression.
    pub holidays: Vec<NaiveDate>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self { horizon: 14, calibration_origins: 28, calibration_step: 6, window: 7, holidays: Vec::new() }
    }
}

impl ModelOptions {
    /// The checked parameters of `models`.
    pub fn params(&self, models: Vec<ModelKind>) -> Result<ValidForecastParams> {
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

    /// Every parameter of a run with `models`, as recorded in its metadata.
    pub fn describe(&self, models: &[ModelKind]) -> Value {
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

/// A rolling-origin backtest of one target.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestSpec {
    pub target: Target,
    /// Number of folds.
    pub folds: usize,
    /// Days between fold cutoffs.
    pub step: usize,
    pub models: Vec<ModelKind>,
    /// Fit each fold on the data vintage that existed at the end of its
    /// cutoff day (Delta time travel) instead of the latest data.
    pub on_vintages: bool,
    pub options: ModelOptions,
}

impl BacktestSpec {
    /// 20 folds a week apart, the default models and options.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            folds: 20,
            step: 7,
            models: DEFAULT_BACKTEST_MODELS.to_vec(),
            on_vintages: false,
            options: ModelOptions::default(),
        }
    }

    /// Checks the parameters without reading the store.
    pub fn check(&self) -> Result<()> {
        self.options.params(self.models.clone())?;
        Ok(())
    }

    fn fold_spec(&self) -> Folds {
        Folds { horizon: self.options.horizon, folds: self.folds, step: self.step }
    }
}

/// A finished backtest: what the models read, what they forecast, how well.
#[derive(Debug)]
pub struct BacktestRun {
    pub run_id: String,
    /// The target as text (`station:ID`, `segment:ROUTE/SEGMENT`).
    pub target: String,
    pub result: Backtest,
    /// The latest series of the target (the actuals).
    pub input: SeriesInput,
    /// How often `auto` chose each model.
    pub chosen: BTreeMap<String, usize>,
    /// The run's metadata (`run.json`, and the commit's metadata when recorded).
    pub run: Value,
}

/// Backtests `spec.target`; `progress(done, total)` is called as folds finish.
pub async fn backtest(
    store: &Store,
    engine: &Engine,
    routes: &[Route],
    spec: &BacktestSpec,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<BacktestRun> {
    let params = spec.options.params(spec.models.clone())?;
    let folds = spec.fold_spec();
    let groups = upstream_groups(&spec.target, routes)?;
    let mut latest = load(store, engine, &groups, None).await?;
    latest.input.holidays = spec.options.holidays.clone();
    let result = if spec.on_vintages {
        backtest_on_vintages(store, engine, &groups, &latest.input, folds, &params, &spec.options, progress).await?
    } else {
        stroom_model::backtest_with_progress(&latest.input, folds, &params, progress)?
    };
    let run_id = uuid::Uuid::new_v4().to_string();
    let target = spec.target.to_string();
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
        "on_vintages": spec.on_vintages,
        "vintage": versions_json(&latest.versions),
        "params": spec.options.describe(&spec.models),
        "leads_at_last_cutoff": leads,
        "auto_choices": chosen,
        "metrics": overall,
    });
    Ok(BacktestRun { run_id, target, result, input: latest.input, chosen, run })
}

/// A backtest whose every fold reads the store as it was at the end of its
/// cutoff day; actuals come from the latest data.
#[allow(clippy::too_many_arguments)]
async fn backtest_on_vintages(
    store: &Store,
    engine: &Engine,
    groups: &Groups,
    latest: &SeriesInput,
    folds: Folds,
    params: &ValidForecastParams,
    options: &ModelOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Backtest> {
    let last = stroom_model::last_known(latest)
        .ok_or_else(|| PipelineError::Missing("the series has no known value".into()))?;
    let cutoffs = folds.cutoffs(last)?;
    let mut rows = Vec::new();
    let mut fold_forecasts = Vec::new();
    for (done, &cutoff) in cutoffs.iter().enumerate() {
        let date = latest.date(cutoff);
        let end_of_day = (date + chrono::Duration::days(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let mut loaded = load(store, engine, groups, Some(Vintage::AsOf(end_of_day))).await.map_err(|e| match e {
            PipelineError::Missing(problem) => PipelineError::Missing(format!("the vintage of {date}: {problem}")),
            other => other,
        })?;
        loaded.input.holidays = options.holidays.clone();
        let Some(index) = loaded.input.index_of(date).filter(|&i| i < loaded.input.target.len()) else {
            return Err(PipelineError::Missing(format!(
                "the vintage of {date} has no data up to that day (it ends {})",
                loaded.input.date(loaded.input.target.len().saturating_sub(1))
            )));
        };
        let forecast = stroom_model::forecast_at(&loaded.input, index, params)?;
        let mut fold_rows = stroom_model::rows_of(&loaded.input, &[], &forecast);
        for row in &mut fold_rows {
            let day = (row.date - latest.start).num_days();
            row.actual = usize::try_from(day).ok().and_then(|d| latest.target.get(d)).copied().unwrap_or(f64::NAN);
        }
        rows.extend(fold_rows);
        fold_forecasts.push(forecast);
        progress(done + 1, cutoffs.len());
    }
    let metrics = stroom_model::summarise(&rows, &params.params().models);
    Ok(Backtest { cutoffs: cutoffs.iter().map(|&c| latest.date(c)).collect(), rows, metrics, folds: fold_forecasts })
}

impl BacktestRun {
    /// The forecasts of every fold and model, with actuals (`forecasts.parquet`).
    pub fn forecasts_batch(&self) -> Result<RecordBatch> {
        forecasts_batch(&self.target, &self.result.rows)
    }

    /// The metrics per model, over all horizons (`horizon` null) and per
    /// horizon (`metrics.csv`).
    pub fn metrics_batch(&self) -> Result<RecordBatch> {
        metrics_batch(&self.result.metrics)
    }

    /// The daily series the models read (`series.csv`).
    pub fn series_batch(&self) -> Result<RecordBatch> {
        series_batch(&self.input)
    }

    /// Writes `forecasts.parquet`, `metrics.csv`, `series.csv` and
    /// `run.json` into `out` (created if missing).
    pub fn write_files(&self, out: &Path) -> Result<()> {
        std::fs::create_dir_all(out).map_err(PipelineError::io(out))?;
        write_parquet(&out.join("forecasts.parquet"), &self.forecasts_batch()?)?;
        write_metrics_csv(&out.join("metrics.csv"), &self.result.metrics)?;
        write_series_csv(&out.join("series.csv"), &self.input)?;
        let path = out.join("run.json");
        std::fs::write(&path, serde_json::to_string_pretty(&self.run)?).map_err(PipelineError::io(&path))
    }

    /// Records the run in the store's `backtests` table; returns the
    /// table's new version.
    pub async fn record(&self, store: &Store) -> Result<u64> {
        let batch = run_batch(&self.run_id, &self.target, &self.result.rows, true)?;
        Ok(store.append_run(TableName::Backtests, batch, self.run.clone()).await?)
    }
}

/// Forecasts of the destinations of routes and of further targets.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastSpec {
    /// Routes whose destination is forecast; every route when this and
    /// `targets` are both empty.
    pub routes: Vec<String>,
    pub targets: Vec<Target>,
    pub model: ModelKind,
    pub options: ModelOptions,
}

impl Default for ForecastSpec {
    fn default() -> Self {
        Self { routes: Vec::new(), targets: Vec::new(), model: ModelKind::Auto, options: ModelOptions::default() }
    }
}

/// One target's forecast in a run.
#[derive(Debug)]
pub struct TargetForecast {
    pub target: Target,
    pub series: TargetSeries,
    /// The index of the last known day of `series` (the cutoff).
    pub cutoff: usize,
    pub result: CutoffForecast,
    pub rows: Vec<BacktestRow>,
}

impl TargetForecast {
    /// The model, with the one `auto` chose (`auto → ets`).
    pub fn model_description(&self) -> String {
        describe_model(&self.result)
    }
}

/// A finished forecast run.
#[derive(Debug)]
pub struct ForecastRun {
    pub run_id: String,
    pub targets: Vec<TargetForecast>,
    /// The run's metadata, as recorded with its commit.
    pub run: Value,
}

/// Forecasts every target of `spec` from its last known day.
pub async fn forecast(store: &Store, engine: &Engine, routes: &[Route], spec: &ForecastSpec) -> Result<ForecastRun> {
    let params = spec.options.params(vec![spec.model])?;
    let mut targets: Vec<Target> = spec.targets.clone();
    let chosen_routes: Vec<&Route> = if spec.routes.is_empty() && spec.targets.is_empty() {
        routes.iter().collect()
    } else {
        spec.routes.iter().map(|id| crate::routes::find_route(routes, id)).collect::<Result<_>>()?
    };
    for route in chosen_routes {
        let target = Target::Station(route.destination().id.clone());
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let mut vintage = Value::Null;
    let mut summaries = Vec::new();
    let mut forecasts = Vec::new();
    for target in targets {
        let mut series = load(store, engine, &upstream_groups(&target, routes)?, None).await?;
        series.input.holidays = spec.options.holidays.clone();
        vintage = versions_json(&series.versions);
        let cutoff = stroom_model::last_known(&series.input)
            .ok_or_else(|| PipelineError::Missing(format!("{target}: the series has no known value")))?;
        let result = stroom_model::forecast_at(&series.input, cutoff, &params)?;
        let rows = stroom_model::rows_of(&series.input, &[], &result);
        let attribution = attribution_json(&series.input, cutoff, &result, spec.model);
        summaries.push(json!({
            "target": target.to_string(),
            "cutoff": series.input.date(cutoff).to_string(),
            "model": describe_model(&result),
            "leads": result
                .leads
                .iter()
                .map(|s| json!({"segment": s.name, "baseline_weeks": s.baseline_weeks, "lead_days": s.lead.map(|l| l.days)}))
                .collect::<Vec<_>>(),
            "attribution": attribution,
        }));
        forecasts.push(TargetForecast { target, series, cutoff, result, rows });
    }
    let run = json!({
        "operation": "forecast",
        "run_id": run_id,
        "vintage": vintage,
        "params": spec.options.describe(&[spec.model]),
        "targets": summaries,
    });
    Ok(ForecastRun { run_id, targets: forecasts, run })
}

impl ForecastRun {
    /// The rows of every target as the `forecasts` table holds them.
    pub fn forecasts_batch(&self) -> Result<RecordBatch> {
        let batches = self
            .targets
            .iter()
            .map(|t| run_batch(&self.run_id, &t.target.to_string(), &t.rows, false))
            .collect::<Result<Vec<_>>>()?;
        Ok(datafusion::arrow::compute::concat_batches(&forecasts_schema(), &batches)?)
    }

    /// Records the run in the store's `forecasts` table; returns the
    /// table's new version, or `None` when the run has no target.
    pub async fn record(&self, store: &Store) -> Result<Option<u64>> {
        if self.targets.is_empty() {
            return Ok(None);
        }
        let batch = self.forecasts_batch()?;
        Ok(Some(store.append_run(TableName::Forecasts, batch, self.run.clone()).await?))
    }
}

/// Each forecast day's mean split into parts (`stroom_model::Attribution`),
/// as the run's metadata records it: `[{date, level, rest, signals:
/// [{segment, baseline_weeks, lead_days, part}]}]`, signals largest first.
fn attribution_json(input: &SeriesInput, cutoff: usize, result: &CutoffForecast, model: ModelKind) -> Value {
    let Some(forecast) = result.forecasts.iter().find(|f| f.model == model) else { return json!([]) };
    let days = forecast.steps.iter().zip(&forecast.attribution).map(|(step, a)| {
        let mut signals = a.signals.clone();
        signals.sort_by(|x, y| y.part.abs().total_cmp(&x.part.abs()));
        json!({
            "date": input.date(cutoff + step.horizon).to_string(),
            "level": a.level,
            "rest": a.rest,
            "signals": signals
                .iter()
                .map(|s| json!({"segment": s.name, "baseline_weeks": s.baseline_weeks, "lead_days": s.lead, "part": s.part}))
                .collect::<Vec<_>>(),
        })
    });
    Value::Array(days.collect())
}

/// One day's parts as [`attribution_json`] records them.
pub(crate) fn recorded_parts(day: &Value) -> Option<stroom_api::ForecastParts> {
    let number = |v: &Value, key: &str| v.get(key).and_then(Value::as_f64);
    let signals = day
        .get("signals")?
        .as_array()?
        .iter()
        .map(|s| {
            Some(stroom_api::SignalShare {
                segment: s.get("segment")?.as_str()?.to_owned(),
                baseline_weeks: u32::try_from(s.get("baseline_weeks")?.as_u64()?).ok()?,
                lead_days: u32::try_from(s.get("lead_days")?.as_u64()?).ok()?,
                part: number(s, "part")?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(stroom_api::ForecastParts { level: number(day, "level")?, signals, rest: number(day, "rest")? })
}

fn versions_json(versions: &BTreeMap<&'static str, u64>) -> Value {
    Value::Object(versions.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect())
}

pub(crate) fn describe_model(result: &CutoffForecast) -> String {
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

/// The columns of [`RUN_VALUE_COLUMNS`], in that order.
fn value_columns(rows: &[BacktestRow]) -> Vec<Arc<dyn Array>> {
    let picks: [fn(&BacktestRow) -> f64; 8] =
        [|r| r.mean, |r| r.q10, |r| r.q50, |r| r.q90, |r| r.lo80, |r| r.hi80, |r| r.lo95, |r| r.hi95];
    picks.iter().map(|pick| Arc::new(Float64Array::from_iter_values(rows.iter().map(pick))) as Arc<dyn Array>).collect()
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// A backtest's forecasts: target, model, cutoff, date, horizon, actual,
/// mean, q10, q50, q90, lo80, hi80, lo95, hi95, chosen.
fn forecasts_batch(target: &str, rows: &[BacktestRow]) -> Result<RecordBatch> {
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
    let mut columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| target))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.model.as_str()))),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| stroom_core::date_to_days(r.cutoff)))),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| stroom_core::date_to_days(r.date)))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.horizon as i32))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| finite(r.actual)))),
    ];
    columns.extend(value_columns(rows));
    columns.push(Arc::new(StringArray::from_iter(rows.iter().map(|r| r.chosen.as_deref()))));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

/// Metrics rows: model, horizon (null: over all horizons), then
/// [`stroom_model::Metrics::COLUMNS`] (null where not finite).
fn metrics_batch(metrics: &[MetricsRow]) -> Result<RecordBatch> {
    let mut fields = vec![Field::new("model", DataType::Utf8, false), Field::new("horizon", DataType::Int32, true)];
    for column in stroom_model::Metrics::COLUMNS {
        fields.push(Field::new(column, DataType::Float64, true));
    }
    let mut columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(StringArray::from_iter_values(metrics.iter().map(|m| m.model.as_str()))),
        Arc::new(Int32Array::from_iter(metrics.iter().map(|m| m.horizon.map(|h| h as i32)))),
    ];
    for i in 0..stroom_model::Metrics::COLUMNS.len() {
        columns.push(Arc::new(Float64Array::from_iter(metrics.iter().map(|m| finite(m.metrics.values()[i])))));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

/// The name of an upstream signal's column: `ROUTE/SEGMENT (8 weeks)`.
fn signal_column(signal: &stroom_model::UpstreamSignal) -> String {
    format!("{} ({} weeks)", signal.name, signal.baseline_weeks)
}

/// The series the models read, one row per day: the target's count and
/// each upstream signal's density excess (null where unknown).
fn series_batch(input: &SeriesInput) -> Result<RecordBatch> {
    let mut fields = vec![Field::new("date", DataType::Date32, false), Field::new("target", DataType::Float64, true)];
    let days = input.target.len();
    let mut columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(Date32Array::from_iter_values((0..days).map(|i| stroom_core::date_to_days(input.date(i))))),
        Arc::new(Float64Array::from_iter(input.target.iter().map(|v| finite(*v)))),
    ];
    for signal in &input.upstream {
        fields.push(Field::new(signal_column(signal), DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from_iter(
            (0..days).map(|i| finite(signal.excess.get(i).copied().unwrap_or(f64::NAN))),
        )));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let file = std::fs::File::create(path).map_err(PipelineError::io(path))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None)?;
    writer.write(batch)?;
    writer.close()?;
    Ok(())
}

/// `series.csv`: the columns of [`series_batch`], empty where unknown.
fn write_series_csv(path: &Path, input: &SeriesInput) -> Result<()> {
    let mut text = String::from("date,target");
    for signal in &input.upstream {
        text.push(',');
        text.push_str(&signal_column(signal));
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
    std::fs::write(path, text).map_err(PipelineError::io(path))
}

/// `metrics.csv`: the columns of [`metrics_batch`], horizon `all` for the
/// row over all horizons.
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
    std::fs::write(path, text).map_err(PipelineError::io(path))
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
        columns.push(Arc::new(Float64Array::from_iter(rows.iter().map(|r| finite(r.actual)))));
    }
    columns.extend(value_columns(rows));
    Ok(RecordBatch::try_new(schema, columns)?)
}
