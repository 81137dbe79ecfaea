//! What is forecast, and its series: a target's daily arrivals and the
//! density excess of the segments upstream of it, read from one vintage
//! of a store.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Date32Type, Int32Type, Int64Type};
use stroom_core::{Cell, DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution, Route, days_to_date};
use stroom_model::{SeriesInput, UpstreamSignal};
use stroom_query::{Engine, QuerySession, Vintage};
use stroom_store::Store;

use crate::error::{PipelineError, Result};

/// What is forecast: official arrivals at a station, or at the end station
/// of a route segment (with only that segment and those upstream of it as
/// signals).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Station(String),
    Segment { route: String, segment: String },
}

impl std::str::FromStr for Target {
    type Err = PipelineError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let problem =
            || PipelineError::Route(format!("'{text}' is not a target: use station:ID or segment:ROUTE/SEGMENT"));
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

/// A target's series as read from one vintage of the store.
#[derive(Debug, Clone)]
pub struct TargetSeries {
    /// The daily arrivals and upstream signals the models read.
    pub input: SeriesInput,
    /// The table versions read.
    pub versions: BTreeMap<&'static str, u64>,
}

/// The upstream segments of a target, as (name, cells) groups: for a
/// station, every segment of every route that leads to it; for a segment,
/// the segment and those upstream of it.
pub(crate) fn upstream_groups(target: &Target, routes: &[Route]) -> Result<Groups> {
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
            let found = crate::routes::find_route(routes, route)?;
            let Some(seg) = found.segment(segment) else {
                let known: Vec<&str> = found.segments.iter().map(|s| s.id.as_str()).collect();
                return Err(PipelineError::Route(format!(
                    "route '{route}' has no segment '{segment}' (segments: {})",
                    known.join(", ")
                )));
            };
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
pub(crate) type Groups = (String, Vec<(String, Vec<Cell>)>);

/// Reads the target's daily arrivals (at `station`) and the density excess
/// of its upstream segments (`groups`) from one vintage of the store.
pub(crate) async fn load(
    store: &Store,
    engine: &Engine,
    (station, groups): &Groups,
    vintage: Option<Vintage>,
) -> Result<TargetSeries> {
    let session = QuerySession::open_on(store, vintage, engine).await?;
    if !session.has_table("arrivals") {
        return Err(PipelineError::Missing(format!(
            "the store has no arrivals table{}",
            if vintage.is_some() { " in that vintage" } else { "" }
        )));
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
        return Err(PipelineError::Missing(format!("station '{station}' has no arrivals in the store")));
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
    Ok(TargetSeries {
        input: SeriesInput { start, target: target_values, upstream, holidays: Vec::new() },
        versions: session.versions().clone(),
    })
}

/// Reads `target`'s series (its arrivals, and the density excess of the
/// segments upstream of it on `routes`) from the store as it was at
/// `vintage` (the latest when `None`).
pub async fn target_series(
    store: &Store,
    engine: &Engine,
    routes: &[Route],
    target: &Target,
    vintage: Option<Vintage>,
) -> Result<TargetSeries> {
    load(store, engine, &upstream_groups(target, routes)?, vintage).await
}
