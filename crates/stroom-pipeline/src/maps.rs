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

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type, Int32Type, TimestampMicrosecondType};
use serde_json::Value;
use stroom_api::{AlertStatus, AlertWindow, MapFormat};
use stroom_core::{DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution, Route, days_to_date};
use stroom_maps::{
    Accuracy, Briefing, CapacityAlert, CapacityAlerts, CellValue, Driver, Drivers, ForecastPoint, Layer, MapSpec,
    Nowcast, TABLE_DAYS, UnusualSegment,
};
use stroom_query::{Engine, QuerySession};
use stroom_store::{Store, TableName};

use crate::alerts::AlertRules;
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
                z: None,
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

/// The open alerts of the route's stations, when one of them has a capacity.
async fn route_alerts(store: &Store, route: &Route, rules: &AlertRules) -> Result<Option<CapacityAlerts>> {
    let name = |id: &str| route.stations.iter().find(|s| s.id == id).map(|s| s.name.clone());
    if !rules.capacities.stations().keys().any(|id| name(id).is_some()) {
        return Ok(None);
    }
    let open = crate::alerts::alerts(store, rules)
        .await?
        .into_iter()
        .filter(|a| a.status == AlertStatus::Open)
        .filter_map(|a| {
            Some(CapacityAlert {
                station: name(&a.station)?,
                date: a.date.parse().ok()?,
                weekly: a.window == AlertWindow::Week,
                capacity: a.capacity,
                probability: a.probability,
                expected_excess: a.expected_excess,
            })
        })
        .collect();
    Ok(Some(CapacityAlerts { level: rules.level, open }))
}

/// What the run's forecast of `target` is made of over its first
/// [`TABLE_DAYS`] days, from the parts the run recorded in its metadata:
/// the level and calendar, each upstream segment (its two baselines
/// together) and the rest. `None` when the run recorded none.
fn drivers(run: Option<&Value>, route: &Route, target: &str) -> Option<Drivers> {
    let days = run?
        .get("targets")?
        .as_array()?
        .iter()
        .find(|t| t.get("target").and_then(Value::as_str) == Some(target))?
        .get("attribution")?
        .as_array()?;
    let days = &days[..days.len().min(TABLE_DAYS)];
    if days.is_empty() {
        return None;
    }
    let (mut level, mut rest) = (0.0, 0.0);
    // segment → (part, (largest |part| of one signal, its lead))
    let mut segments: BTreeMap<String, (f64, (f64, usize))> = BTreeMap::new();
    for parts in days.iter().filter_map(crate::runs::recorded_parts) {
        level += parts.level;
        rest += parts.rest;
        for s in parts.signals {
            let lead = s.lead_days as usize;
            let entry = segments.entry(s.segment).or_insert((0.0, (0.0, lead)));
            entry.0 += s.part;
            if s.part.abs() > entry.1.0 {
                entry.1 = (s.part.abs(), lead);
            }
        }
    }
    let label = |name: &str| {
        let segment = name.split_once('/').map_or(name, |(_, s)| s);
        route.segment(segment).map_or_else(|| name.to_owned(), |s| s.name.clone())
    };
    let mut segments: Vec<Driver> = segments
        .into_iter()
        .map(|(name, (part, (_, lead_days)))| Driver { label: label(&name), lead_days, part })
        .collect();
    segments.sort_by(|a, b| b.part.abs().total_cmp(&a.part.abs()));
    Some(Drivers { days: days.len(), level, segments, rest })
}

/// `spec` as a GeoJSON, SVG or PNG map; `None` for the HTML page.
fn draw(spec: &MapSpec, format: MapFormat) -> Option<Result<Vec<u8>>> {
    match format {
        MapFormat::GeoJson => Some(Ok(stroom_maps::geojson(spec).into_bytes())),
        MapFormat::Svg => Some(Ok(stroom_maps::svg(spec).into_bytes())),
        MapFormat::Png => Some(stroom_maps::png(spec, PNG_WIDTH).map_err(PipelineError::from)),
        MapFormat::Html => None,
    }
}

/// The stations of `route` with an open alert in `alerts`.
fn alert_stations(route: &Route, alerts: Option<&CapacityAlerts>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for a in alerts.iter().flat_map(|a| &a.open) {
        if let Some(s) = route.stations.iter().find(|s| s.name == a.station)
            && !ids.contains(&s.id)
        {
            ids.push(s.id.clone());
        }
    }
    ids
}

/// The nowcast layer's map of `route` on `date` (the latest day the store
/// holds when `None`): each cell's robust z-score against its weekday; a
/// cell that could not be scored (too few weeks, or a count or baseline
/// below k) carries no number.
async fn render_nowcast(
    store: &Store,
    route: &Route,
    date: Option<NaiveDate>,
    format: MapFormat,
    rules: &AlertRules,
) -> Result<Vec<u8>> {
    let nowcast = crate::nowcast::nowcast(store, &Engine::Local, route, date, usize::MAX).await?;
    let day: NaiveDate =
        nowcast.date.parse().map_err(|_| PipelineError::Missing(format!("the nowcast day '{}'", nowcast.date)))?;
    let scored: std::collections::HashMap<&str, &stroom_api::NowcastEntry> =
        nowcast.cells.iter().map(|e| (e.name.as_str(), e)).collect();
    let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION))?;
    let mut cells = Vec::new();
    for segment in route.cells(resolution, DEFAULT_BUFFER_RINGS)?.segments {
        for cell in segment.cells {
            let entry = scored.get(cell.to_string().as_str());
            cells.push(CellValue {
                cell,
                segment: segment.segment_id.clone(),
                mean: entry.map(|e| e.baseline),
                q10: None,
                q90: None,
                observed: entry.map(|e| e.devices as f64),
                z: entry.map(|e| e.z),
                suppressed: false,
            });
        }
    }
    let alerts = route_alerts(store, route, rules).await?;
    let vintage = nowcast.vintage.iter().map(|(k, n)| format!("{k} v{n}")).collect::<Vec<_>>().join(", ");
    let spec = MapSpec {
        route,
        title: format!("{}: how unusual the device density is", route.name),
        forecast_date: day,
        vintage,
        model: format!("robust z-score against the same weekday ({}) of {} weeks", nowcast.weekday, NOWCAST_WEEKS),
        uncertainty: format!(
            "z = (devices − usual) / spread, with the usual count the median of the same weekday over the previous {} \
             weeks and the spread 1.4826 × their median absolute deviation (never below the Poisson noise); beyond ±3 \
             is unusual. Cells with a count or usual count below k = {} carry no number.",
            NOWCAST_WEEKS, nowcast.k
        ),
        value_label: "robust z-score of the day's devices".to_owned(),
        cells,
        alert_stations: alert_stations(route, alerts.as_ref()),
        layer: Layer::Nowcast,
    };
    draw(&spec, format).unwrap_or_else(|| {
        Err(PipelineError::Route(
            "the nowcast layer is drawn on GeoJSON, SVG and PNG maps; the briefing page shows the forecast and \
             names the unusual segments"
                .into(),
        ))
    })
}

/// A route's map or briefing page for a forecast day, with the open capacity
/// alerts of its stations under `rules`; on the nowcast layer, the map of
/// how unusual the density of `date` (the latest day when `None`) is.
pub async fn render(
    store: &Store,
    route: &Route,
    date: Option<NaiveDate>,
    format: MapFormat,
    rules: &AlertRules,
    layer: Layer,
) -> Result<Vec<u8>> {
    if layer == Layer::Nowcast {
        return render_nowcast(store, route, date, format, rules).await;
    }
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
    let run_metadata = history.iter().find(|m| m.get("run_id").and_then(Value::as_str) == Some(run_id.as_str()));
    let vintage = run_metadata
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
    let alerts = route_alerts(store, route, rules).await?;
    let spec = MapSpec {
        route,
        title: format!("{}: expected device density and arrivals forecast", route.name),
        forecast_date: date,
        vintage: format!("{vintage} (data to {})", first.cutoff),
        model: format!("arrivals: {model}; cells: same-weekday median of 8 weeks"),
        uncertainty,
        value_label: "devices per cell and day".to_owned(),
        cells: cell_values(&session, route, date).await?,
        alert_stations: alert_stations(route, alerts.as_ref()),
        layer: Layer::Forecast,
    };
    if let Some(map) = draw(&spec, format) {
        return map;
    }
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
                alerts,
                drivers: drivers(run_metadata, route, &target),
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
