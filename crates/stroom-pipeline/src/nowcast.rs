//! The nowcast: how unusual one day's density is on a route, per segment
//! and per cell, each against its own same weekday of the previous weeks.
//!
//! A segment's (or a cell's) day total is scored with
//! [`stroom_model::robust_score`] against the same weekday of the
//! [`NOWCAST_WEEKS`] weeks before: the median, a robust spread that is never
//! below the Poisson noise of the median, and the z-score. A cell-day that
//! the store covers but has no row for had every hour suppressed (below k),
//! so it counts as zero in the history; days outside what the store holds
//! are unknown. The k-rule applies to every count: an entry whose day or
//! baseline is below the store's k is left out.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, Duration, NaiveDate};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Date32Type, Int64Type};
use stroom_api::{NowcastEntry, RouteNowcast};
use stroom_core::{Cell, DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution, Route, RouteCells, days_to_date};
use stroom_model::robust_score;
use stroom_query::{Engine, QuerySession};
use stroom_store::Store;

use crate::error::{PipelineError, Result};

/// Weeks of same-weekday history a nowcast compares the day with.
pub const NOWCAST_WEEKS: usize = 8;

/// Same weekdays that must be known for a score (or a map cell's value).
pub(crate) const MIN_WEEKS: usize = 4;

/// The nowcast of `route` on `date` (the latest day the store holds when
/// `None`): every segment, most unusual first, and the `cells` most unusual
/// cells.
pub async fn nowcast(
    store: &Store,
    engine: &Engine,
    route: &Route,
    date: Option<NaiveDate>,
    cells: usize,
) -> Result<RouteNowcast> {
    Ok(score(store, engine, route, date, cells).await?.1)
}

/// [`nowcast`], with the day it scored.
pub(crate) async fn score(
    store: &Store,
    engine: &Engine,
    route: &Route,
    date: Option<NaiveDate>,
    cells: usize,
) -> Result<(NaiveDate, RouteNowcast)> {
    let k = store.privacy_k().await?;
    let session = QuerySession::open_on(store, None, engine).await?;
    if !session.has_table("density") {
        return Err(PipelineError::Missing("the store holds no density data".into()));
    }
    let day = match date {
        Some(day) => day,
        None => latest_day(&session).await?,
    };
    let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION))?;
    let route_cells = route.cells(resolution, DEFAULT_BUFFER_RINGS)?;
    let history = WeekdayHistory::read(&session, &route_cells, day).await?;
    if !history.covered[NOWCAST_WEEKS] {
        return Err(PipelineError::Missing(format!("the store holds no density on route '{}' on {day}", route.id)));
    }
    // A covered day without a row had every hour suppressed: zero.
    let series_of = |cell: Cell| -> [f64; NOWCAST_WEEKS + 1] {
        let values = history.of(cell);
        std::array::from_fn(|w| if history.covered[w] { values[w].unwrap_or(0.0) } else { f64::NAN })
    };
    let entry = |name: String, segment: Option<String>, series: &[f64; NOWCAST_WEEKS + 1]| {
        let value = series[NOWCAST_WEEKS];
        let score = robust_score(&series[..NOWCAST_WEEKS], value, MIN_WEEKS)?;
        if value < f64::from(k) || score.baseline < f64::from(k) {
            return None;
        }
        Some(NowcastEntry {
            name,
            segment,
            devices: value as i64,
            baseline: score.baseline,
            spread: score.spread,
            z: score.z,
            weeks: series[..NOWCAST_WEEKS].iter().filter(|v| v.is_finite()).count() as u32,
        })
    };
    let mut segments = Vec::new();
    let mut scored_cells = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for segment in &route_cells.segments {
        let mut total = [0.0; NOWCAST_WEEKS + 1];
        for cell in &segment.cells {
            let series = series_of(*cell);
            for (sum, value) in total.iter_mut().zip(series) {
                *sum += value;
            }
            if seen.insert(*cell) {
                scored_cells.extend(entry(cell.to_string(), Some(segment.segment_id.clone()), &series));
            }
        }
        segments.extend(entry(segment.segment_id.clone(), None, &total));
    }
    let most_unusual = |a: &NowcastEntry, b: &NowcastEntry| b.z.abs().total_cmp(&a.z.abs()).then(a.name.cmp(&b.name));
    segments.sort_by(most_unusual);
    scored_cells.sort_by(most_unusual);
    scored_cells.truncate(cells);
    Ok((
        day,
        RouteNowcast {
            route: route.id.clone(),
            date: day.to_string(),
            weekday: day.weekday().to_string(),
            baseline_weeks: NOWCAST_WEEKS as u32,
            k,
            vintage: session.versions().iter().map(|(name, v)| ((*name).to_owned(), *v)).collect::<BTreeMap<_, _>>(),
            segments,
            cells: scored_cells,
        },
    ))
}

/// Each route cell's devices on the same weekday of the [`NOWCAST_WEEKS`]
/// weeks before a day (index 0 the oldest) and on the day itself (index
/// [`NOWCAST_WEEKS`]), `None` where the cell has no row; and which of those
/// days the store covers on the route. The nowcast and the map's cells read
/// it.
pub(crate) struct WeekdayHistory {
    cells: HashMap<i64, [Option<f64>; NOWCAST_WEEKS + 1]>,
    pub(crate) covered: [bool; NOWCAST_WEEKS + 1],
}

impl WeekdayHistory {
    pub(crate) async fn read(session: &QuerySession, route_cells: &RouteCells, day: NaiveDate) -> Result<Self> {
        let first = day - Duration::weeks(NOWCAST_WEEKS as i64);
        let all: Vec<Cell> = route_cells.segments.iter().flat_map(|s| s.cells.iter().copied()).collect();
        let batches = session.cell_day_series(&all, first, day + Duration::days(1)).await?;
        let mut history = Self { cells: HashMap::new(), covered: [false; NOWCAST_WEEKS + 1] };
        for batch in &batches {
            let ids = batch.column(0).as_primitive::<Int64Type>();
            let dates = batch.column(1).as_primitive::<Date32Type>();
            let devices = batch.column(2).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                let offset = (days_to_date(dates.value(i)) - first).num_days();
                if offset % 7 != 0 {
                    continue;
                }
                let week = (offset / 7) as usize;
                history.covered[week] = true;
                history.cells.entry(ids.value(i)).or_insert([None; NOWCAST_WEEKS + 1])[week] =
                    Some(devices.value(i) as f64);
            }
        }
        Ok(history)
    }

    /// A cell's devices on each of the days.
    pub(crate) fn of(&self, cell: Cell) -> [Option<f64>; NOWCAST_WEEKS + 1] {
        self.cells.get(&(cell.to_u64() as i64)).copied().unwrap_or([None; NOWCAST_WEEKS + 1])
    }
}

/// The latest day the density table holds.
async fn latest_day(session: &QuerySession) -> Result<NaiveDate> {
    let sql = if session.daily_version().is_some() {
        "SELECT max(day) AS day FROM density_daily"
    } else {
        "SELECT CAST(max(ts) AS DATE) AS day FROM density_files"
    };
    let batches = session.context().sql(sql).await?.collect().await?;
    batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| b.column(0).as_primitive::<Date32Type>())
        .find(|days| days.is_valid(0))
        .map(|days| days_to_date(days.value(0)))
        .ok_or_else(|| PipelineError::Missing("the store holds no density data".into()))
}
