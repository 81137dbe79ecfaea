//! stroom's simulator: deterministic synthetic smartphone density and
//! official arrivals along the routes, with the ground truth behind them.
//!
//! Real device counts cannot be shipped, so the demo, the tests and the
//! benchmarks stand on this model. It has three layers:
//! - a background population (city kernels and a rural floor, daily and
//!   weekly cycles, overdispersed noise), see `population`;
//! - the flow of migrants (seasonal, bursty departures; random travel times;
//!   border queues with capacity; staging areas; sea legs that close in bad
//!   weather; a border closure that diverts people to another route;
//!   registrations with under-counting and delay), see [`FlowParams`];
//! - the provider's view: hourly counts per H3 cell with the k-threshold
//!   applied before delivery.
//!
//! The output is written in the provider formats that `stroom ingest`
//! accepts: [`simulate`] writes `density/` (one provider Parquet file per
//! day), `arrivals.csv`, `truth.parquet` (people entering, leaving, in
//! transit and waiting, per route, segment and day) and `manifest.json`
//! ([`Manifest`]). A route can follow real arrivals instead of the flow
//! model ([`RealArrivals`]).
//!
//! Days run in parallel, each from its own random stream (`rng`, written out
//! in this crate so that output does not change with a dependency), so the
//! same parameters and seed give byte-identical files, whatever the number
//! of threads. Memory is bounded by the grid, not by `days`: the grid plus
//! the day each thread is writing.

mod density;
mod flow;
mod population;
mod rng;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{ArrayRef, Date32Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use stroom_core::{CoreError, Resolution, Route, date_to_days, parse_date};
use thiserror::Error;

pub use density::{Background, ProviderForm};
pub use flow::{Closure, FlowParams, RealArrivals, RouteTotals, SegmentDay};
pub use population::PopulationParams;

/// Every way a simulation can fail.
#[derive(Debug, Error)]
pub enum SimError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("writing {path}: {problem}")]
    Write { path: PathBuf, problem: String },
    #[error("building Arrow data: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("invalid parameter: {0}")]
    Parameter(String),
    #[error("real arrivals, line {line}: {problem}")]
    RealArrivals { line: usize, problem: String },
}

/// Every parameter of a simulation; written to `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SimParams {
    pub start: NaiveDate,
    pub days: u32,
    pub resolution: u8,
    /// Rings of cells around each segment's path that the provider reports.
    pub buffer_rings: u32,
    pub seed: u64,
    pub background: Background,
    /// Multiplies the background device counts (a larger provider, or a
    /// denser population): more cells clear k, more rows.
    pub scale: f64,
    /// The provider's k-threshold.
    pub k: u32,
    pub population: PopulationParams,
    pub flow: FlowParams,
    /// How the provider identifies places in its files.
    pub provider_form: ProviderForm,
    /// The route driven by real arrivals, if any (its id; the figures are
    /// passed to [`simulate`] separately).
    pub real_arrivals_route: Option<String>,
}

impl Default for SimParams {
    fn default() -> Self {
        Self {
            start: NaiveDate::from_ymd_opt(2023, 1, 1).expect("a date"),
            days: 730,
            resolution: 7,
            buffer_rings: 2,
            seed: 42,
            background: Background::Corridor,
            scale: 1.0,
            k: 15,
            population: PopulationParams::default(),
            flow: FlowParams::default(),
            provider_form: ProviderForm::Cell,
            real_arrivals_route: None,
        }
    }
}

/// A segment's plan: its mean travel time and the expected lead of density
/// seen in it over registrations at the route's destination.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentPlan {
    pub route: String,
    pub segment: String,
    pub mean_travel_days: u32,
    pub lead_days: f64,
}

/// What a simulation wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SimReport {
    pub density_files: usize,
    pub density_rows: u64,
    /// Cell-hours the provider withheld because they were below k.
    pub suppressed_cell_hours: u64,
    pub grid_cells: usize,
    pub arrivals_rows: usize,
    pub truth_rows: usize,
    pub totals: BTreeMap<String, RouteTotals>,
    pub segments: Vec<SegmentPlan>,
}

/// The manifest written beside the outputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub stroom_version: String,
    pub params: SimParams,
    pub routes: Vec<String>,
    pub report: SimReport,
}

impl RealArrivals {
    /// Reads daily arrivals for `start .. start + days` (plus `lookahead`
    /// days, for groups still travelling at the end) from a CSV with a date
    /// column and a count column. Empty counts up to the last published
    /// figure are zero; empty counts after it are unknown.
    pub fn from_csv(
        text: &str,
        date_column: &str,
        count_column: &str,
        route: &str,
        start: NaiveDate,
        days: usize,
    ) -> Result<Self, SimError> {
        let mut lines = text.lines();
        let header = split_csv(lines.next().unwrap_or_default());
        let find = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| SimError::RealArrivals { line: 1, problem: format!("no column '{name}'") })
        };
        let (date_index, count_index) = (find(date_column)?, find(count_column)?);
        let mut by_day: BTreeMap<i64, Option<u32>> = BTreeMap::new();
        for (number, line) in lines.enumerate() {
            let fields = split_csv(line);
            let problem = |problem: String| SimError::RealArrivals { line: number + 2, problem };
            let date = parse_date(fields.get(date_index).map(String::as_str).unwrap_or_default())
                .map_err(|e| problem(e.to_string()))?;
            let text = fields.get(count_index).map(|s| s.trim()).unwrap_or_default();
            let count = if text.is_empty() {
                None
            } else {
                Some(text.parse::<f64>().map_err(|e| problem(e.to_string()))? as u32)
            };
            by_day.insert((date - start).num_days(), count);
        }
        let last_figure = by_day.iter().filter(|(_, c)| c.is_some()).map(|(d, _)| *d).max().unwrap_or(-1);
        let lookahead = 14;
        let daily = (0..(days + lookahead) as i64)
            .map(|d| match by_day.get(&d) {
                Some(Some(count)) => Some(*count),
                Some(None) if d <= last_figure => Some(0),
                _ => None,
            })
            .collect();
        Ok(Self { route: route.to_owned(), daily })
    }
}

/// Splits one CSV line, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    fields.push(current);
    fields
}

/// Runs a simulation and writes `out/density/*.parquet`, `out/arrivals.csv`,
/// `out/truth.parquet` and `out/manifest.json`. `progress` is called with the
/// number of days written so far.
pub fn simulate(
    params: &SimParams,
    routes: &[Route],
    real: Option<&RealArrivals>,
    out: &Path,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<SimReport, SimError> {
    if params.days == 0 {
        return Err(SimError::Parameter("days must be at least 1".into()));
    }
    if !(params.scale > 0.0 && params.scale.is_finite()) {
        return Err(SimError::Parameter(format!("scale must be positive, got {}", params.scale)));
    }
    if routes.is_empty() {
        return Err(SimError::Parameter("no routes".into()));
    }
    let real = match (&params.real_arrivals_route, real) {
        (Some(id), Some(real)) if &real.route == id => Some(real),
        (None, None) => None,
        _ => return Err(SimError::Parameter("real arrivals and real_arrivals_route must name the same route".into())),
    };
    let resolution = Resolution::new(i64::from(params.resolution))?;
    let days = params.days as usize;
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| SimError::Write { path, problem: e.to_string() }
    };
    let density_dir = out.join("density");
    std::fs::create_dir_all(&density_dir).map_err(write_error(&density_dir))?;

    let flows = flow::simulate_flows(routes, days, params.start.ordinal0(), &params.flow, params.seed, real);
    let grid = density::Grid::new(routes, resolution, params.buffer_rings, params.background, &params.population)?;
    let context = density::DayContext {
        grid: &grid,
        flows: &flows,
        population: &params.population,
        scale: params.scale,
        k: params.k,
        seed: params.seed,
        start_micros: params.start.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros(),
        start_weekday: params.start.weekday().num_days_from_monday(),
        form: params.provider_form,
    };

    // Days in parallel; each day's randomness depends only on (seed, day).
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(days);
    let results: Vec<Vec<(usize, Result<density::DayOutput, SimError>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut results = Vec::new();
                    loop {
                        let day = next.fetch_add(1, Ordering::Relaxed);
                        if day >= days {
                            break;
                        }
                        let date = params.start + chrono::Duration::days(day as i64);
                        let result = density::write_day(&context, day, &density::day_path(out, date));
                        let failed = result.is_err();
                        results.push((day, result));
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                        if failed {
                            next.store(days, Ordering::Relaxed);
                        }
                    }
                    results
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a simulation thread panicked")).collect()
    });
    let mut outputs: Vec<(usize, Result<density::DayOutput, SimError>)> = results.into_iter().flatten().collect();
    outputs.sort_by_key(|(day, _)| *day);
    let mut density_rows = 0;
    let mut suppressed = 0;
    for (_, output) in outputs {
        let output = output?;
        density_rows += output.rows;
        suppressed += output.suppressed;
    }

    // Official arrivals.
    let registered = flow::registrations(routes, &flows, &params.flow, days, params.seed, real);
    let mut by_date: Vec<(&(String, usize), &u64)> = registered.iter().collect();
    by_date.sort_by_key(|((station, day), _)| (*day, station.clone()));
    let mut csv = String::from("date,station,count\n");
    for ((station, day), count) in &by_date {
        let date = params.start + chrono::Duration::days(*day as i64);
        csv.push_str(&format!("{},{station},{count}\n", date.format("%Y-%m-%d")));
    }
    let arrivals_path = out.join("arrivals.csv");
    std::fs::write(&arrivals_path, csv).map_err(write_error(&arrivals_path))?;

    // Ground truth per route, segment and day.
    let mut dates = Vec::new();
    let mut route_ids = Vec::new();
    let mut segment_ids = Vec::new();
    let mut columns: [Vec<u64>; 4] = Default::default();
    for (r, route) in routes.iter().enumerate() {
        for (s, segment) in route.segments.iter().enumerate() {
            for day in 0..days {
                let record = flows.segment_days[r][s][day];
                dates.push(date_to_days(params.start) + day as i32);
                route_ids.push(route.id.clone());
                segment_ids.push(segment.id.clone());
                columns[0].push(record.entered);
                columns[1].push(record.exited);
                columns[2].push(record.in_transit);
                columns[3].push(record.waiting_at_start);
            }
        }
    }
    let truth_rows = dates.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("route", DataType::Utf8, false),
        Field::new("segment", DataType::Utf8, false),
        Field::new("date", DataType::Date32, false),
        Field::new("entered", DataType::UInt64, false),
        Field::new("exited", DataType::UInt64, false),
        Field::new("in_transit", DataType::UInt64, false),
        Field::new("waiting_at_start", DataType::UInt64, false),
    ]));
    let [entered, exited, in_transit, waiting] = columns;
    let truth = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(route_ids)) as ArrayRef,
            Arc::new(StringArray::from(segment_ids)),
            Arc::new(Date32Array::from(dates)),
            Arc::new(UInt64Array::from(entered)),
            Arc::new(UInt64Array::from(exited)),
            Arc::new(UInt64Array::from(in_transit)),
            Arc::new(UInt64Array::from(waiting)),
        ],
    )?;
    let truth_path = out.join("truth.parquet");
    density::write_parquet(&truth_path, &truth)
        .map_err(|problem| SimError::Write { path: truth_path.clone(), problem })?;

    let segments = routes
        .iter()
        .enumerate()
        .flat_map(|(r, route)| {
            let flows = &flows;
            route.segments.iter().enumerate().map(move |(s, segment)| SegmentPlan {
                route: route.id.clone(),
                segment: segment.id.clone(),
                mean_travel_days: flows.mean_days[r][s],
                lead_days: flow::lead_days(route, &flows.mean_days[r], &params.flow, s),
            })
        })
        .collect();
    let report = SimReport {
        density_files: days,
        density_rows,
        suppressed_cell_hours: suppressed,
        grid_cells: grid.cells.len(),
        arrivals_rows: by_date.len(),
        truth_rows,
        totals: routes.iter().zip(&flows.totals).map(|(r, t)| (r.id.clone(), *t)).collect(),
        segments,
    };
    let manifest = Manifest {
        stroom_version: env!("CARGO_PKG_VERSION").to_owned(),
        params: params.clone(),
        routes: routes.iter().map(|r| r.id.clone()).collect(),
        report: report.clone(),
    };
    let manifest_path = out.join("manifest.json");
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| SimError::Write { path: manifest_path.clone(), problem: e.to_string() })?;
    std::fs::write(&manifest_path, text + "\n").map_err(write_error(&manifest_path))?;
    Ok(report)
}

/// The path cells (no buffer) that a segment's groups are placed in, as the
/// simulator sees them; for tests and analyses of the output.
pub fn segment_path_cells(
    routes: &[Route],
    params: &SimParams,
    route: &str,
    segment: &str,
) -> Result<Vec<u64>, SimError> {
    let resolution = Resolution::new(i64::from(params.resolution))?;
    let r =
        routes.iter().position(|x| x.id == route).ok_or_else(|| SimError::Parameter(format!("no route '{route}'")))?;
    let s = routes[r]
        .segments
        .iter()
        .position(|x| x.id == segment)
        .ok_or_else(|| SimError::Parameter(format!("no segment '{segment}'")))?;
    let grid = density::Grid::new(routes, resolution, params.buffer_rings, params.background, &params.population)?;
    Ok(grid.segment_path(r, s))
}
