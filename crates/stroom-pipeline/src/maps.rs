//! A route's map and briefing page: reads the route's latest forecast run,
//! the density of its cells and its latest backtest from the store, and
//! hands them to `stroom-maps` (`stroom export map` and the API's maps).
//!
//! What a cell shows: the expected device density on the forecast day, as
//! the median of the same weekday over the eight weeks before it (a
//! seasonal baseline per cell), with the 10% and 90% quantiles of those
//! weeks; `observed` is the day's count once known. A cell with fewer than
//! four reported weeks, or whose every hour of the day was suppressed, is
//! marked suppressed and carries no number. Every number is a sum of
//! stored counts, so none is below k. The arrivals forecast of the models
//! is the briefing's chart and table.

use chrono::{Duration, NaiveDate, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type, Int32Type, TimestampMicrosecondType};
use serde_json::Value;
use stroom_api::MapFormat;
use stroom_core::{DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution, Route, days_to_date};
use stroom_maps::{Accuracy, Briefing, CellValue, ForecastPoint, MapSpec, Nowcast, UnusualSegment};
use stroom_query::{Engine, QuerySession};
use stroom_store::{Store, TableName};

use crate::error::{PipelineError, Result};
use crate::nowcast::{MIN_WEEKS, NOWCAST_WEEKS, WeekdayHistory};

/// Days of observed arrivals in the briefing's chart.
const OBSERVED_DAYS: i64 = 42;
/// Width of PNG maps, in pixels.
pub const PNG_WIDTH: u32 = 1200;

/// One forecast day of the run, as the table holds it.
struct RunRow {
    model: String,
    chosen: Option<String>,
    cutoff: NaiveDate,
    point: ForecastPoint,
}

/// The latest run that forecast `target`: id, creation time and rows.
async fn latest_run(session: &QuerySession, target: &str) -> Result<Option<(String, String, Vec<RunRow>)>> {
    if !session.has_table("forecasts") {
        return Ok(None);
    }
    let sql = format!(
        "SELECT run_id, created_at, model, chosen, cutoff, date, mean, q10, q50, q90, lo80, hi80, lo95, hi95 \
         FROM forecasts WHERE target = '{}' AND run_id = \
         (SELECT run_id FROM forecasts WHERE target = '{0}' ORDER BY created_at DESC LIMIT 1) ORDER BY date",
        target.replace('\'', "''")
    );
    let batches: Vec<RecordBatch> = session.context().sql(&sql).await?.collect().await?;
    let mut run = None;
    let mut rows = Vec::new();
    for b in &batches {
        let text = |i: usize| b.column(i).as_string::<i32>();
        let number = |i: usize| b.column(i).as_primitive::<Float64Type>();
        let created = b.column(1).as_primitive::<TimestampMicrosecondType>();
        for r in 0..b.num_rows() {
            if run.is_none() {
                let at = chrono::DateTime::from_timestamp_micros(created.value(r)).unwrap_or_default();
                run = Some((text(0).value(r).to_owned(), at.format("%Y-%m-%d %H:%M UTC").to_string()));
            }
            let v = |i: usize| number(i).value(r);
            rows.push(RunRow {
                model: text(2).value(r).to_owned(),
                chosen: (!text(3).is_null(r)).then(|| text(3).value(r).to_owned()),
                cutoff: days_to_date(b.column(4).as_primitive::<Date32Type>().value(r)),
                point: ForecastPoint {
                    date: days_to_date(b.column(5).as_primitive::<Date32Type>().value(r)),
                    mean: v(6),
                    q10: v(7),
                    q50: v(8),
                    q90: v(9),
                    lo80: v(10),
                    hi80: v(11),
                    lo95: v(12),
                    hi95: v(13),
                },
            });
        }
    }
    Ok(run.map(|(id, at)| (id, at, rows)))
}

/// The quantile `q` of sorted values, interpolated.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

/// Each cell's same-weekday baseline for `date` and its observed value.
async fn cell_values(session: &QuerySession, route: &Route, date: NaiveDate) -> Result<Vec<CellValue>> {
    let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION))?;
    let cells = route.cells(resolution, DEFAULT_BUFFER_RINGS)?;
    let history =
        if session.has_table("density") { Some(WeekdayHistory::read(session, &cells, date).await?) } else { None };
    let mut values = Vec::new();
    for segment in &cells.segments {
        for cell in &segment.cells {
            let days = history.as_ref().map_or([None; NOWCAST_WEEKS + 1], |h| h.of(*cell));
            let mut weeks: Vec<f64> = days[..NOWCAST_WEEKS].iter().flatten().copied().collect();
            weeks.sort_by(f64::total_cmp);
            let shown = weeks.len() >= MIN_WEEKS;
            values.push(CellValue {
                cell: *cell,
                segment: segment.segment_id.clone(),
                mean: shown.then(|| quantile(&weeks, 0.5)),
                q10: shown.then(|| quantile(&weeks, 0.1)),
                q90: shown.then(|| quantile(&weeks, 0.9)),
                observed: days[NOWCAST_WEEKS],
                suppressed: !shown,
            });
        }
    }
    Ok(values)
}

/// The latest backtest of `target`: its metrics per model and folds.
async fn accuracy(store: &Store, target: &str, model: &str) -> Result<Option<Accuracy>> {
    let history = store.commit_history(TableName::Backtests).await?;
    let Some(run) = history.iter().find(|m| m.get("target").and_then(Value::as_str) == Some(target)) else {
        return Ok(None);
    };
    let metrics = run.get("metrics").and_then(Value::as_array).cloned().unwrap_or_default();
    let of = |name: &str, field: &str| {
        metrics
            .iter()
            .find(|m| m.get("model").and_then(Value::as_str) == Some(name))
            .and_then(|m| m.get(field))
            .and_then(Value::as_f64)
    };
    let (Some(mase), Some(naive), Some(coverage80), Some(coverage95)) =
        (of(model, "mase"), of("seasonal_naive", "mase"), of(model, "coverage80"), of(model, "coverage95"))
    else {
        return Ok(None);
    };
    Ok(Some(Accuracy {
        model: model.to_owned(),
        mase,
        seasonal_naive_mase: naive,
        coverage80,
        coverage95,
        folds: run.get("folds").and_then(Value::as_u64).unwrap_or(0) as usize,
    }))
}

/// The nowcast of the route's latest day for the briefing, its segments
/// by their names; `None` when the store cannot score that day.
async fn briefing_nowcast(store: &Store, route: &Route) -> Result<Option<Nowcast>> {
    let (date, nowcast) = match crate::nowcast::score(store, &Engine::Local, route, None, 0).await {
        Ok(scored) => scored,
        Err(PipelineError::Missing(_)) => return Ok(None),
        Err(error) => return Err(error),
    };
    let segments = nowcast
        .segments
        .iter()
        .map(|s| UnusualSegment {
            label: route.segment(&s.name).map_or_else(|| s.name.clone(), |segment| segment.name.clone()),
            devices: s.devices as f64,
            baseline: s.baseline,
            z: s.z,
        })
        .collect();
    Ok(Some(Nowcast { date, weeks: NOWCAST_WEEKS, segments }))
}

/// A route's map or briefing page for a forecast day.
pub async fn render(store: &Store, route: &Route, date: Option<NaiveDate>, format: MapFormat) -> Result<Vec<u8>> {
    let session = QuerySession::open(store, None).await?;
    let destination = route.destination();
    let target = format!("station:{}", destination.id);
    let Some((run_id, generated, rows)) = latest_run(&session, &target).await? else {
        return Err(PipelineError::Missing(format!(
            "no forecast of route '{}' has been made yet (run `stroom forecast`)",
            route.id
        )));
    };
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Err(PipelineError::Missing(format!("run '{run_id}' has no rows for '{target}'")));
    };
    let date = date.unwrap_or(first.point.date);
    if date < first.point.date || date > last.point.date {
        return Err(PipelineError::Missing(format!(
            "the latest forecast of route '{}' covers {} to {}, not {date}",
            route.id, first.point.date, last.point.date
        )));
    }
    let model = match &first.chosen {
        Some(chosen) if *chosen != first.model => format!("{} (chose {chosen})", first.model),
        _ => first.model.clone(),
    };
    let history = store.commit_history(TableName::Forecasts).await?;
    let vintage = history
        .iter()
        .find(|m| m.get("run_id").and_then(Value::as_str) == Some(run_id.as_str()))
        .and_then(|m| m.get("vintage"))
        .and_then(Value::as_object)
        .map(|v| v.iter().map(|(k, n)| format!("{k} v{n}")).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "unknown".into());
    let accuracy = accuracy(store, &target, &first.model).await?;
    let at_destination = rows.iter().find(|r| r.point.date == date).map(|r| &r.point);
    let uncertainty = match (&accuracy, at_destination) {
        (Some(a), Some(p)) => format!(
            "Arrivals at {}: 80% interval {:.0}–{:.0}; in backtests {:.0}% of actual days fell inside the 80% interval.",
            destination.name,
            p.lo80,
            p.hi80,
            100.0 * a.coverage80
        ),
        (None, Some(p)) => {
            format!("Arrivals at {}: 80% interval {:.0}–{:.0} (not yet backtested).", destination.name, p.lo80, p.hi80)
        }
        _ => "No interval available.".to_owned(),
    };
    let spec = MapSpec {
        route,
        title: format!("{}: expected device density and arrivals forecast", route.name),
        forecast_date: date,
        vintage: format!("{vintage} (data to {})", first.cutoff),
        model: format!("arrivals: {model}; cells: same-weekday median of 8 weeks"),
        uncertainty,
        value_label: "devices per cell and day".to_owned(),
        cells: cell_values(&session, route, date).await?,
    };
    match format {
        MapFormat::GeoJson => Ok(stroom_maps::geojson(&spec).into_bytes()),
        MapFormat::Svg => Ok(stroom_maps::svg(&spec).into_bytes()),
        MapFormat::Png => stroom_maps::png(&spec, PNG_WIDTH).map_err(PipelineError::from),
        MapFormat::Html => {
            let mut observed = Vec::new();
            let from = first.cutoff - Duration::days(OBSERVED_DAYS - 1);
            if session.has_table("arrivals") {
                let batches = session.arrivals_series(&destination.id, from, first.cutoff + Duration::days(1)).await?;
                for b in &batches {
                    let dates = b.column(0).as_primitive::<Date32Type>();
                    let counts = b.column(1).as_primitive::<Int32Type>();
                    for r in 0..b.num_rows() {
                        observed.push((days_to_date(dates.value(r)), f64::from(counts.value(r))));
                    }
                }
            }
            let briefing = Briefing {
                map: &spec,
                station: destination.name.clone(),
                observed,
                forecast: rows.iter().map(|r| r.point.clone()).collect(),
                accuracy,
                nowcast: briefing_nowcast(store, route).await?,
                provenance: vec![
                    format!("Forecast run {run_id}, made {generated} by model {model}."),
                    format!("Data vintage: {vintage}; data up to {}.", first.cutoff),
                    "Arrivals: official counts per station and day as ingested into the store.".to_owned(),
                    "Device density: aggregated smartphone counts per H3 cell and hour; counts below the store's k are suppressed at ingest.".to_owned(),
                ],
                generated_at: Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            };
            Ok(stroom_maps::briefing_html(&briefing)?.into_bytes())
        }
    }
}
