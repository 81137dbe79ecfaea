//! Closure scenarios: what the forecasts become if a route segment closes
//! from a date and some of the people held at it take another route.
//!
//! The scenario is a flow account laid over a baseline forecast made from
//! the same data, never a refit: a closure announced for a future day
//! cannot change the model's inputs, which are all known by the cutoff.
//! What it assumes, in the order it is computed:
//!
//! - **The flow that would have crossed the segment.** When the segment's
//!   start station has its own arrivals series, the baseline forecast of
//!   that station (its observed counts up to the cutoff); otherwise the
//!   baseline forecast of the route's destination, shifted back by the
//!   travel time, as if all of the destination's arrivals passed the
//!   segment (wrong where other routes end there too: give the start
//!   station's counts to the store). Beyond the forecast horizon the flow is held at the mean of
//!   the horizon's last seven days.
//! - **Travel times come from the data's leads** (lagged cross-correlation,
//!   as for the upstream signals). The lead of a segment's density over the
//!   destination's arrivals is the travel time from its middle, so each
//!   segment of the route gives a pace in days per kilometre to the
//!   destination; a station's travel time is its distance along the route
//!   at the median pace (weighted by the leads' correlations), unless the
//!   caller knows it (`travel_days`, `divert_travel_days`). That is the closed segment's start for the closed
//!   route, and the mean over the other route's origins for the diverted
//!   flow. Arrivals are spread over that day and its two neighbours
//!   (¼, ½, ¼).
//! - **A queue at the closure.** Nobody crosses while it is closed; those
//!   who reach it wait, and each day `share` of those waiting give up and
//!   reach the other route's origin `transfer_days` later. When it reopens
//!   the queue crosses at the usual rate on top of the usual flow.
//! - **Counts at different stations are on one scale** (the same share of
//!   people registered), and the baseline's uncertainty carries over: a
//!   loss scales every quantile, an added flow shifts them.
//!
//! A closure already in the data before the cutoff is partly in the
//! baseline already (its upstream signals see the queue); the scenario then
//! counts its effect again, so a scenario is meant for closures from the
//! cutoff on.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, NaiveDate, Utc};
use datafusion::arrow::array::{
    Array, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use serde_json::{Value, json};
use stroom_core::Route;
use stroom_model::{BacktestRow, ModelKind, SeriesInput};
use stroom_query::Engine;
use stroom_store::{Store, TableName, scenarios_schema};

use crate::error::{PipelineError, Result};
use crate::runs::ModelOptions;
use crate::target::{Target, load, upstream_groups};

/// The longest travel time, in days, that a lead is searched for.
pub const MAX_TRAVEL_DAYS: usize = 45;

/// Days with arrivals that a station needs for its counts to stand for the
/// flow over a closed segment.
const MIN_FLOW_DAYS: usize = 60;

/// How the arrivals of one day's movers spread over the arrival days
/// around the travel time (one day early, on time, one day late).
const SPREAD: [(i64, f64); 3] = [(-1, 0.25), (0, 0.5), (1, 0.25)];

/// A closure: `segment` of `route` closed from `from` (until `until`,
/// exclusive, or past the horizon), and each day `share` of the people held
/// at it taking `divert_to`, whose origins they reach `transfer_days` later.
#[derive(Debug, Clone, PartialEq)]
pub struct Closure {
    pub route: String,
    pub segment: String,
    pub from: NaiveDate,
    pub until: Option<NaiveDate>,
    pub divert_to: Option<String>,
    pub share: f64,
    pub transfer_days: u32,
    /// Days from the closed segment's start to its route's destination, and
    /// from the other route's origins to its destination, when known; both
    /// are estimated from the data otherwise.
    pub travel_days: Option<u32>,
    pub divert_travel_days: Option<u32>,
}

/// A scenario: a closure, the model of the baseline and its options, and
/// optionally the day the data are taken to end (`as_of`; the last known
/// day when `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioSpec {
    pub closure: Closure,
    pub model: ModelKind,
    pub options: ModelOptions,
    pub as_of: Option<NaiveDate>,
}

impl ScenarioSpec {
    /// A scenario of `closure` with the `auto` model and default options.
    pub fn new(closure: Closure) -> Self {
        Self { closure, model: ModelKind::Auto, options: ModelOptions::default(), as_of: None }
    }

    /// Checks the closure against the routes without reading the store.
    pub fn check(&self, routes: &[Route]) -> Result<()> {
        let c = &self.closure;
        let route = crate::routes::find_route(routes, &c.route)?;
        if route.segment(&c.segment).is_none() {
            let known: Vec<&str> = route.segments.iter().map(|s| s.id.as_str()).collect();
            return Err(PipelineError::Scenario(format!(
                "route '{}' has no segment '{}' (segments: {})",
                c.route,
                c.segment,
                known.join(", ")
            )));
        }
        if let Some(until) = c.until
            && until <= c.from
        {
            return Err(PipelineError::Scenario(format!(
                "the closure must end after it starts: until {until} is not after from {}",
                c.from
            )));
        }
        if !(0.0..=1.0).contains(&c.share) || !c.share.is_finite() {
            return Err(PipelineError::Scenario(format!(
                "share {} is not a share of the people held per day (0 to 1)",
                c.share
            )));
        }
        for (field, days) in [
            ("transfer_days", Some(c.transfer_days)),
            ("travel_days", c.travel_days),
            ("divert_travel_days", c.divert_travel_days),
        ] {
            if let Some(days) = days
                && days > MAX_TRAVEL_DAYS as u32
            {
                return Err(PipelineError::Scenario(format!("{field} {days} is more than {MAX_TRAVEL_DAYS} days")));
            }
        }
        if c.divert_travel_days.is_some() && c.divert_to.is_none() {
            return Err(PipelineError::Scenario("divert_travel_days needs a route to divert to (divert_to)".into()));
        }
        match &c.divert_to {
            Some(other) if *other == c.route => {
                return Err(PipelineError::Scenario(format!("divert_to '{other}' is the closed route itself")));
            }
            Some(other) => {
                crate::routes::find_route(routes, other)?;
            }
            None if c.share > 0.0 => {
                return Err(PipelineError::Scenario(format!(
                    "share {} needs a route to divert to (divert_to)",
                    c.share
                )));
            }
            None => {}
        }
        self.options.params(vec![self.model])?;
        Ok(())
    }
}

/// What a scenario took from the data, recorded with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioAssumptions {
    /// Where the flow over the closed segment comes from (`station:ID`).
    pub flow_source: String,
    /// Its mean per day over the closure days up to the horizon.
    pub flow_per_day: f64,
    /// Days from the closed segment to the closed route's destination, and
    /// how they were estimated.
    pub close_lag_days: usize,
    pub close_lag_source: String,
    /// Days from the other route's origins to its destination, and how.
    pub divert_lag_days: Option<usize>,
    pub divert_lag_source: Option<String>,
}

/// One target of a scenario: its baseline rows and the scenario's.
#[derive(Debug, Clone)]
pub struct ScenarioTarget {
    pub target: Target,
    /// `closed route`, `receiving route` or both (`closed and receiving route`).
    pub role: String,
    pub cutoff: NaiveDate,
    pub baseline: Vec<BacktestRow>,
    pub scenario: Vec<BacktestRow>,
}

/// A finished scenario.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    pub run_id: String,
    pub closure: Closure,
    pub assumptions: ScenarioAssumptions,
    pub targets: Vec<ScenarioTarget>,
    /// People held at the closure at the end of each day, and those who
    /// gave up that day.
    pub queue: Vec<(NaiveDate, f64, f64)>,
    /// The run's metadata, as recorded with its commit.
    pub run: Value,
}

/// A day-indexed series by date.
type Daily = BTreeMap<NaiveDate, f64>;

/// Known values of a series, by date.
fn known(input: &SeriesInput, upto: usize) -> Daily {
    input
        .target
        .iter()
        .enumerate()
        .take(upto + 1)
        .filter(|(_, v)| v.is_finite())
        .map(|(i, v)| (input.date(i), *v))
        .collect()
}

/// The best lead over `input`'s target of the density of `segment` (either
/// baseline), estimated up to `cutoff`.
fn density_lead(input: &SeriesInput, segment: &str, cutoff: usize) -> Option<stroom_model::Lead> {
    input
        .upstream
        .iter()
        .filter(|s| s.name == segment)
        .filter_map(|s| stroom_model::estimate_lead(&input.target, &s.excess, cutoff, MAX_TRAVEL_DAYS))
        .max_by(|a, b| a.correlation.total_cmp(&b.correlation))
}

/// Days from `station` to the destination of `route`, from the leads over
/// `input`'s target (the destination's arrivals) of the density of the
/// route's segments, up to `cutoff`. A segment's lead is the travel time
/// from its middle, so each gives a pace (its lead over its middle's
/// distance to the destination); the estimate is the station's distance at
/// the median pace, each pace weighted by its correlation, and the text
/// says which leads it used.
fn travel_days(input: &SeriesInput, route: &Route, station: &str, cutoff: usize) -> Option<(usize, String)> {
    let distance = route.km_to_destination(station)?;
    let mut paces: Vec<(f64, f64, String)> = Vec::new();
    for s in &route.segments {
        let Some(lead) = density_lead(input, &format!("{}/{}", route.id, s.id), cutoff) else { continue };
        let middle = route.km_to_destination(&s.to)? + s.length_km() / 2.0;
        if middle > 0.0 {
            let text = format!("{} {} d (r = {:.2})", s.id, lead.days, lead.correlation);
            paces.push((lead.days as f64 / middle, lead.correlation, text));
        }
    }
    if paces.is_empty() {
        return None;
    }
    // The median weighted by correlation: a weak lead counts for little.
    paces.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = paces.iter().map(|p| p.1).sum();
    let mut seen = 0.0;
    let pace = paces
        .iter()
        .find(|p| {
            seen += p.1;
            seen >= total / 2.0
        })?
        .0;
    let days = (pace * distance).round() as usize;
    let used: Vec<&str> = paces.iter().map(|(_, _, s)| s.as_str()).collect();
    Some((
        days,
        format!(
            "{station} is {distance:.0} km from {}; median pace (weighted by correlation) of the density leads of {}",
            route.destination().id,
            used.join(", ")
        ),
    ))
}

/// The last known day index of `input` at or before `as_of`.
fn cutoff_of(input: &SeriesInput, as_of: Option<NaiveDate>, what: &Target) -> Result<usize> {
    let last = stroom_model::last_known(input)
        .ok_or_else(|| PipelineError::Missing(format!("{what}: the series has no known value")))?;
    let Some(as_of) = as_of else { return Ok(last) };
    let bound = input.index_of(as_of).ok_or_else(|| {
        PipelineError::Missing(format!("{what}: the series starts on {}, after {as_of}", input.start))
    })?;
    (0..=bound.min(last))
        .rev()
        .find(|&i| input.target[i].is_finite())
        .ok_or_else(|| PipelineError::Missing(format!("{what}: no known value on or before {as_of}")))
}

/// A forecast of one target at the scenario's cutoff.
#[derive(Clone)]
struct Baseline {
    target: Target,
    input: SeriesInput,
    cutoff: usize,
    rows: Vec<BacktestRow>,
    model: String,
}

async fn baseline(
    store: &Store,
    engine: &Engine,
    routes: &[Route],
    target: Target,
    spec: &ScenarioSpec,
) -> Result<(Baseline, serde_json::Map<String, Value>)> {
    let mut series = load(store, engine, &upstream_groups(&target, routes)?, None).await?;
    series.input.holidays = spec.options.holidays.clone();
    let cutoff = cutoff_of(&series.input, spec.as_of, &target)?;
    let params = spec.options.params(vec![spec.model])?;
    let result = stroom_model::forecast_at(&series.input, cutoff, &params)?;
    let rows = stroom_model::rows_of(&series.input, &[], &result);
    let model = crate::runs::describe_model(&result);
    let vintage = series.versions.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    Ok((Baseline { target, input: series.input, cutoff, rows, model }, vintage))
}

/// Mean of the last (up to) seven values of a forecast's means.
fn tail_mean(rows: &[BacktestRow]) -> f64 {
    let tail = &rows[rows.len().saturating_sub(7)..];
    if tail.is_empty() { 0.0 } else { tail.iter().map(|r| r.mean).sum::<f64>() / tail.len() as f64 }
}

/// The flow on each day: observed up to the cutoff, the forecast's means
/// after it, then held at the mean of its last week.
fn flow_of(observed: &Daily, rows: &[BacktestRow], shift: i64) -> impl Fn(NaiveDate) -> f64 + use<> {
    let forecast: Daily = rows.iter().map(|r| (r.date, r.mean.max(0.0))).collect();
    let last = rows.last().map(|r| r.date);
    let hold = tail_mean(rows).max(0.0);
    let observed = observed.clone();
    move |day: NaiveDate| {
        let at = day + Duration::days(shift);
        if let Some(v) = forecast.get(&at) {
            return *v;
        }
        if last.is_some_and(|l| at > l) {
            return hold;
        }
        observed.get(&at).copied().unwrap_or(hold)
    }
}

/// Runs a closure scenario: the baseline forecasts of the closed route's
/// destination and of the receiving route's, and the scenario's.
pub async fn scenario(store: &Store, engine: &Engine, routes: &[Route], spec: &ScenarioSpec) -> Result<ScenarioRun> {
    spec.check(routes)?;
    let c = &spec.closure;
    let route = crate::routes::find_route(routes, &c.route)?;
    let segment = route.segment(&c.segment).expect("checked");
    let closed_dest = Target::Station(route.destination().id.clone());
    let (closed, vintage) = baseline(store, engine, routes, closed_dest.clone(), spec).await?;
    let cutoff_date = closed.input.date(closed.cutoff);
    let horizon = spec.options.horizon as i64;
    let last_day = cutoff_date + Duration::days(horizon);
    let earliest = cutoff_date - Duration::days(MAX_TRAVEL_DAYS as i64 + horizon);
    if c.from < earliest {
        return Err(PipelineError::Scenario(format!(
            "from {} is before {earliest}: a closure that old is in the data up to {cutoff_date} already",
            c.from
        )));
    }

    // The travel time from the closed segment's start to the destination.
    let given = |days: u32| (days as usize, "given".to_owned());
    let estimated =
        c.travel_days.map(given).or_else(|| travel_days(&closed.input, route, &segment.from, closed.cutoff));
    let (close_lag, close_lag_source) = estimated.ok_or_else(|| {
        PipelineError::Missing(format!(
            "no travel time from station '{}' to {closed_dest} can be estimated: the density of no segment of \
                 route '{}' leads the destination's arrivals",
            segment.from, route.id
        ))
    })?;
    // The flow over the segment: the start station's own forecast when the
    // store has its counts, else the destination's, shifted back.
    let start = Target::Station(segment.from.clone());
    let station_flow = match baseline(store, engine, routes, start.clone(), spec).await {
        Ok((b, _)) => {
            let counts = known(&b.input, b.cutoff);
            (counts.values().filter(|v| **v > 0.0).count() >= MIN_FLOW_DAYS).then_some((b, counts))
        }
        Err(PipelineError::Missing(_)) => None,
        Err(other) => return Err(other),
    };
    let (flow, flow_source): (Box<dyn Fn(NaiveDate) -> f64>, String) = match station_flow {
        Some((b, counts)) => (Box::new(flow_of(&counts, &b.rows, 0)), start.to_string()),
        None => {
            let counts = known(&closed.input, closed.cutoff);
            (Box::new(flow_of(&counts, &closed.rows, close_lag as i64)), closed_dest.to_string())
        }
    };

    // The queue at the closure, day by day from its start to the horizon.
    let closed_on = |day: NaiveDate| day >= c.from && c.until.is_none_or(|u| day < u);
    let mut queue = Vec::new();
    let mut lost: Daily = BTreeMap::new();
    let mut released: Daily = BTreeMap::new();
    let (mut held, mut flow_sum, mut flow_days) = (0.0f64, 0.0f64, 0usize);
    let mut day = c.from;
    while day <= last_day {
        let f = flow(day);
        if closed_on(day) {
            held += f;
            lost.insert(day, f);
            flow_sum += f;
            flow_days += 1;
            let gave_up = held * c.share;
            held -= gave_up;
            queue.push((day, held, gave_up));
        } else if held > 0.0 {
            let crossing = held.min(f);
            held -= crossing;
            released.insert(day, crossing);
            queue.push((day, held, 0.0));
        }
        day += Duration::days(1);
    }

    // The receiving route's travel time and its added arrivals.
    let mut receiving: Option<(Baseline, usize, String)> = None;
    if let Some(other) = &c.divert_to {
        let other_route = crate::routes::find_route(routes, other)?;
        let dest = Target::Station(other_route.destination().id.clone());
        let b = if dest == closed_dest {
            closed.clone()
        } else {
            baseline(store, engine, routes, dest.clone(), spec).await?.0
        };
        let origins = other_route.stations.iter().filter(|s| s.role == stroom_core::StationRole::Origin);
        let estimates: Vec<(usize, String)> = match c.divert_travel_days {
            Some(days) => vec![given(days)],
            None => origins.filter_map(|o| travel_days(&b.input, other_route, &o.id, b.cutoff)).collect(),
        };
        if estimates.is_empty() {
            return Err(PipelineError::Missing(format!(
                "no travel time along route '{other}' can be estimated: the density of none of its segments leads \
                 {dest}'s arrivals"
            )));
        }
        let days = (estimates.iter().map(|(d, _)| *d as f64).sum::<f64>() / estimates.len() as f64).round() as usize;
        let source = estimates.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join("; ");
        receiving = Some((b, days, source));
    }

    // Each target's change per day.
    let mut changes: BTreeMap<Target, (Daily, Daily)> = BTreeMap::new();
    {
        let (loss, gain) = changes.entry(closed_dest.clone()).or_default();
        for (d, f) in &lost {
            *loss.entry(*d + Duration::days(close_lag as i64)).or_default() += f;
        }
        for (d, f) in &released {
            *gain.entry(*d + Duration::days(close_lag as i64)).or_default() += f;
        }
    }
    if let Some((b, lag, _)) = &receiving {
        let (_, gain) = changes.entry(b.target.clone()).or_default();
        for (d, _, gave_up) in &queue {
            for (offset, weight) in SPREAD {
                let at = *d + Duration::days(i64::from(c.transfer_days) + *lag as i64 + offset);
                *gain.entry(at).or_default() += gave_up * weight;
            }
        }
    }
    let apply = |b: &Baseline| -> Vec<BacktestRow> {
        let (loss, gain) = changes.get(&b.target).cloned().unwrap_or_default();
        b.rows
            .iter()
            .map(|r| {
                let mut row = r.clone();
                let lost = loss.get(&r.date).copied().unwrap_or(0.0).min(r.mean.max(0.0));
                if lost > 0.0 && r.mean > 0.0 {
                    let factor = (r.mean - lost) / r.mean;
                    for v in values_mut(&mut row) {
                        *v = (*v * factor).max(0.0);
                    }
                }
                let added = gain.get(&r.date).copied().unwrap_or(0.0);
                for v in values_mut(&mut row) {
                    *v = (*v + added).max(0.0);
                }
                row
            })
            .collect()
    };
    let mut targets = vec![ScenarioTarget {
        target: closed.target.clone(),
        role: "closed route".into(),
        cutoff: cutoff_date,
        baseline: closed.rows.clone(),
        scenario: apply(&closed),
    }];
    let mut models = vec![(closed.target.to_string(), closed.model.clone())];
    let (divert_lag, divert_source) = match &receiving {
        Some((b, lag, source)) => {
            if b.target == closed.target {
                targets[0].role = "closed and receiving route".into();
            } else {
                targets.push(ScenarioTarget {
                    target: b.target.clone(),
                    role: "receiving route".into(),
                    cutoff: b.input.date(b.cutoff),
                    baseline: b.rows.clone(),
                    scenario: apply(b),
                });
                models.push((b.target.to_string(), b.model.clone()));
            }
            (Some(*lag), Some(source.clone()))
        }
        None => (None, None),
    };
    let assumptions = ScenarioAssumptions {
        flow_source,
        flow_per_day: if flow_days == 0 { 0.0 } else { flow_sum / flow_days as f64 },
        close_lag_days: close_lag,
        close_lag_source,
        divert_lag_days: divert_lag,
        divert_lag_source: divert_source,
    };
    let run_id = uuid::Uuid::new_v4().to_string();
    let run = json!({
        "operation": "scenario",
        "run_id": run_id,
        "vintage": Value::Object(vintage),
        "params": spec.options.describe(&[spec.model]),
        "as_of": spec.as_of.map(|d| d.to_string()),
        "closure": closure_json(c),
        "assumptions": {
            "flow_source": assumptions.flow_source,
            "flow_per_day": assumptions.flow_per_day,
            "close_lag_days": assumptions.close_lag_days,
            "close_lag_source": assumptions.close_lag_source,
            "divert_lag_days": assumptions.divert_lag_days,
            "divert_lag_source": assumptions.divert_lag_source,
        },
        "targets": targets.iter().zip(&models).map(|(t, (_, model))| json!({
            "target": t.target.to_string(),
            "role": t.role,
            "cutoff": t.cutoff.to_string(),
            "model": model,
        })).collect::<Vec<_>>(),
        "queue": queue.iter().map(|(d, held, gave_up)| json!({"date": d.to_string(), "held": held, "diverted": gave_up})).collect::<Vec<_>>(),
    });
    Ok(ScenarioRun { run_id, closure: c.clone(), assumptions, targets, queue, run })
}

fn values_mut(row: &mut BacktestRow) -> [&mut f64; 8] {
    [
        &mut row.mean,
        &mut row.q10,
        &mut row.q50,
        &mut row.q90,
        &mut row.lo80,
        &mut row.hi80,
        &mut row.lo95,
        &mut row.hi95,
    ]
}

/// A closure as a run's metadata records it.
pub(crate) fn closure_json(c: &Closure) -> Value {
    json!({
        "route": c.route,
        "segment": c.segment,
        "from": c.from.to_string(),
        "until": c.until.map(|d| d.to_string()),
        "divert_to": c.divert_to,
        "share": c.share,
        "transfer_days": c.transfer_days,
        "travel_days": c.travel_days,
        "divert_travel_days": c.divert_travel_days,
    })
}

impl ScenarioRun {
    /// The rows of every target, baseline and scenario, as the `scenarios`
    /// table holds them.
    pub fn batch(&self) -> Result<RecordBatch> {
        let now = Utc::now().timestamp_micros();
        let mut rows: Vec<(&str, String, &BacktestRow)> = Vec::new();
        for t in &self.targets {
            for r in &t.baseline {
                rows.push(("baseline", t.target.to_string(), r));
            }
            for r in &t.scenario {
                rows.push(("scenario", t.target.to_string(), r));
            }
        }
        let value = |pick: fn(&BacktestRow) -> f64| {
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, _, r)| pick(r)))) as Arc<dyn Array>
        };
        let columns: Vec<Arc<dyn Array>> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|_| self.run_id.as_str()))),
            Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|_| now)).with_timezone("UTC")),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|(_, t, _)| t.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|(_, _, r)| r.model.as_str()))),
            Arc::new(StringArray::from_iter(rows.iter().map(|(_, _, r)| r.chosen.as_deref()))),
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|(_, _, r)| stroom_core::date_to_days(r.cutoff)))),
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|(_, _, r)| stroom_core::date_to_days(r.date)))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|(_, _, r)| r.horizon as i32))),
            value(|r| r.mean),
            value(|r| r.q10),
            value(|r| r.q50),
            value(|r| r.q90),
            value(|r| r.lo80),
            value(|r| r.hi80),
            value(|r| r.lo95),
            value(|r| r.hi95),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|(v, _, _)| *v))),
        ];
        Ok(RecordBatch::try_new(scenarios_schema(), columns)?)
    }

    /// Records the scenario in the store's `scenarios` table (never in
    /// `forecasts`); returns the table's new version.
    pub async fn record(&self, store: &Store) -> Result<u64> {
        Ok(store.append_run(TableName::Scenarios, self.batch()?, self.run.clone()).await?)
    }
}

impl Closure {
    /// The closure of an API request, with its defaults (share 0, two days
    /// to the other route).
    pub fn from_request(request: &stroom_api::ScenarioRequest) -> Result<Self> {
        let date = |field: &str, text: &str| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| PipelineError::Scenario(format!("{field}='{text}' is not a date (YYYY-MM-DD)")))
        };
        Ok(Self {
            route: request.route.clone(),
            segment: request.close.clone(),
            from: date("from", &request.from)?,
            until: request.until.as_deref().map(|u| date("until", u)).transpose()?,
            divert_to: request.divert_to.clone(),
            share: request.share.unwrap_or(0.0),
            transfer_days: request.transfer_days.unwrap_or(DEFAULT_TRANSFER_DAYS),
            travel_days: request.travel_days,
            divert_travel_days: request.divert_travel_days,
        })
    }

    /// The closure as the API shows it.
    pub fn request(&self) -> stroom_api::ScenarioRequest {
        stroom_api::ScenarioRequest {
            route: self.route.clone(),
            close: self.segment.clone(),
            from: self.from.to_string(),
            until: self.until.map(|d| d.to_string()),
            divert_to: self.divert_to.clone(),
            share: Some(self.share),
            transfer_days: Some(self.transfer_days),
            travel_days: self.travel_days,
            divert_travel_days: self.divert_travel_days,
        }
    }

    fn from_json(value: &Value) -> Option<Self> {
        let text = |key: &str| value.get(key).and_then(Value::as_str);
        let date = |key: &str| text(key).and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok());
        Some(Self {
            route: text("route")?.to_owned(),
            segment: text("segment")?.to_owned(),
            from: date("from")?,
            until: date("until"),
            divert_to: text("divert_to").map(str::to_owned),
            share: value.get("share").and_then(Value::as_f64)?,
            transfer_days: u32::try_from(value.get("transfer_days").and_then(Value::as_u64)?).ok()?,
            travel_days: value.get("travel_days").and_then(Value::as_u64).and_then(|d| u32::try_from(d).ok()),
            divert_travel_days: value
                .get("divert_travel_days")
                .and_then(Value::as_u64)
                .and_then(|d| u32::try_from(d).ok()),
        })
    }
}

/// Days from a closure to the other route's origins when not given.
pub const DEFAULT_TRANSFER_DAYS: u32 = 2;

/// Every scenario recorded in the store, newest first, as the API shows it.
pub async fn recorded_scenarios(store: &Store) -> Result<Vec<stroom_api::Scenario>> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Date32Type, Float64Type, Int32Type, TimestampMicrosecondType};

    let session = stroom_query::QuerySession::open(store, None).await?;
    if !session.has_table("scenarios") {
        return Ok(Vec::new());
    }
    let mut metadata: BTreeMap<String, Value> = BTreeMap::new();
    for m in store.commit_history(TableName::Scenarios).await? {
        if let Some(id) = m.get("run_id").and_then(Value::as_str) {
            metadata.insert(id.to_owned(), m.clone());
        }
    }
    let batches = session
        .context()
        .sql("SELECT * FROM scenarios ORDER BY created_at DESC, run_id, target, variant, horizon")
        .await
        .map_err(stroom_query::QueryError::from)?
        .collect()
        .await
        .map_err(stroom_query::QueryError::from)?;
    let mut scenarios: Vec<stroom_api::Scenario> = Vec::new();
    for batch in &batches {
        let column = |name: &str| batch.column_by_name(name).expect("the scenarios schema");
        let strings = |name: &str| column(name).as_string::<i32>().clone();
        let (runs, targets, variants) = (strings("run_id"), strings("target"), strings("variant"));
        let created = column("created_at").as_primitive::<TimestampMicrosecondType>().clone();
        let dates = column("date").as_primitive::<Date32Type>().clone();
        let cutoffs = column("cutoff").as_primitive::<Date32Type>().clone();
        let horizons = column("horizon").as_primitive::<Int32Type>().clone();
        let models = strings("model");
        let chosen = strings("chosen");
        let value = |name: &str, i: usize| column(name).as_primitive::<Float64Type>().value(i);
        for i in 0..batch.num_rows() {
            let run_id = runs.value(i);
            if scenarios.last().is_none_or(|s| s.run_id != run_id) {
                let Some(m) = metadata.get(run_id) else { continue };
                let Some(closure) = m.get("closure").and_then(Closure::from_json) else { continue };
                let a = m.get("assumptions").cloned().unwrap_or(Value::Null);
                let text = |key: &str| a.get(key).and_then(Value::as_str).map(str::to_owned);
                let days = |key: &str| a.get(key).and_then(Value::as_u64).and_then(|d| u32::try_from(d).ok());
                let at = chrono::DateTime::from_timestamp_micros(created.value(i)).unwrap_or_default();
                scenarios.push(stroom_api::Scenario {
                    run_id: run_id.to_owned(),
                    generated_at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    closure: closure.request(),
                    assumptions: stroom_api::ScenarioAssumptions {
                        flow_source: text("flow_source").unwrap_or_default(),
                        flow_per_day: a.get("flow_per_day").and_then(Value::as_f64).unwrap_or(0.0),
                        close_lag_days: days("close_lag_days").unwrap_or(0),
                        close_lag_source: text("close_lag_source").unwrap_or_default(),
                        divert_lag_days: days("divert_lag_days"),
                        divert_lag_source: text("divert_lag_source"),
                    },
                    targets: Vec::new(),
                });
            }
            let Some(scenario) = scenarios.last_mut().filter(|s| s.run_id == run_id) else { continue };
            let target = targets.value(i);
            if scenario.targets.last().is_none_or(|t| t.target != target) {
                let recorded = metadata
                    .get(run_id)
                    .and_then(|m| m.get("targets"))
                    .and_then(Value::as_array)
                    .and_then(|ts| ts.iter().find(|t| t.get("target").and_then(Value::as_str) == Some(target)));
                let field = |key: &str| recorded.and_then(|t| t.get(key)).and_then(Value::as_str).map(str::to_owned);
                let model = models.value(i);
                scenario.targets.push(stroom_api::ScenarioTarget {
                    target: target.to_owned(),
                    role: field("role").unwrap_or_default(),
                    cutoff: stroom_core::days_to_date(cutoffs.value(i)).to_string(),
                    model: field("model").unwrap_or_else(|| match chosen.is_null(i) {
                        true => model.to_owned(),
                        false => format!("{model} → {}", chosen.value(i)),
                    }),
                    baseline: Vec::new(),
                    scenario: Vec::new(),
                });
            }
            let t = scenario.targets.last_mut().expect("a target was pushed");
            let row = stroom_api::ForecastRow {
                date: stroom_core::days_to_date(dates.value(i)).to_string(),
                horizon: u32::try_from(horizons.value(i)).unwrap_or(0),
                mean: value("mean", i),
                q10: value("q10", i),
                q50: value("q50", i),
                q90: value("q90", i),
                lo80: value("lo80", i),
                hi80: value("hi80", i),
                lo95: value("lo95", i),
                hi95: value("hi95", i),
                parts: None,
            };
            match variants.value(i) {
                "baseline" => t.baseline.push(row),
                _ => t.scenario.push(row),
            }
        }
    }
    Ok(scenarios)
}

/// A recorded scenario's page (`stroom_maps::scenario_html`), with each
/// station's last four weeks of arrivals.
pub async fn scenario_page(store: &Store, routes: &[Route], run_id: &str) -> Result<Vec<u8>> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Date32Type, Int32Type};

    let scenario = recorded_scenarios(store)
        .await?
        .into_iter()
        .find(|s| s.run_id == run_id)
        .ok_or_else(|| PipelineError::Missing(format!("there is no scenario '{run_id}'")))?;
    let session = stroom_query::QuerySession::open(store, None).await?;
    let c = &scenario.closure;
    let route = crate::routes::find_route(routes, &c.route)?;
    let segment = route.segment(&c.close).map_or(c.close.clone(), |s| s.name.clone());
    let point = |r: &stroom_api::ForecastRow| {
        Some(stroom_maps::ForecastPoint {
            date: NaiveDate::parse_from_str(&r.date, "%Y-%m-%d").ok()?,
            mean: r.mean,
            q10: r.q10,
            q50: r.q50,
            q90: r.q90,
            lo80: r.lo80,
            hi80: r.hi80,
            lo95: r.lo95,
            hi95: r.hi95,
        })
    };
    let mut targets = Vec::new();
    for t in &scenario.targets {
        let station = t.target.strip_prefix("station:").unwrap_or(&t.target).to_owned();
        let name = routes
            .iter()
            .flat_map(|r| &r.stations)
            .find(|s| s.id == station)
            .map_or(station.clone(), |s| s.name.clone());
        let cutoff = NaiveDate::parse_from_str(&t.cutoff, "%Y-%m-%d")
            .map_err(|_| PipelineError::Missing(format!("scenario '{run_id}' has no cutoff for {}", t.target)))?;
        let mut observed = Vec::new();
        if session.has_table("arrivals") {
            for b in session.arrivals_series(&station, cutoff - Duration::days(27), cutoff + Duration::days(1)).await? {
                let dates = b.column(0).as_primitive::<Date32Type>();
                let counts = b.column(1).as_primitive::<Int32Type>();
                for r in 0..b.num_rows() {
                    observed.push((stroom_core::days_to_date(dates.value(r)), f64::from(counts.value(r))));
                }
            }
        }
        targets.push(stroom_maps::ScenarioTarget {
            station: name,
            role: t.role.clone(),
            observed,
            baseline: t.baseline.iter().filter_map(point).collect(),
            scenario: t.scenario.iter().filter_map(point).collect(),
        });
    }
    let a = &scenario.assumptions;
    let mut assumptions = vec![format!(
        "{segment} ({}) is closed from {}{}: nobody crosses it, and those who reach it wait.",
        route.name,
        c.from,
        c.until.as_ref().map_or(" on".to_owned(), |u| format!(" until {u}"))
    )];
    if let Some(other) = &c.divert_to {
        assumptions.push(format!(
            "Each day {:.0}% of those waiting give up and reach the origins of {other} {} days later; they then \
             travel {} days to its destination ({}).",
            100.0 * c.share.unwrap_or(0.0),
            c.transfer_days.unwrap_or(DEFAULT_TRANSFER_DAYS),
            a.divert_lag_days.unwrap_or(0),
            a.divert_lag_source.clone().unwrap_or_default()
        ));
    }
    assumptions.push(format!(
        "The flow that would have crossed is {:.0} a day on average, from the baseline forecast of {}; it is held \
         at the last week's mean beyond the horizon.",
        a.flow_per_day, a.flow_source
    ));
    assumptions.push(format!(
        "It would have reached the route's destination {} days later ({}).",
        a.close_lag_days, a.close_lag_source
    ));
    assumptions.push(
        "Counts at different stations are taken to be on one scale; a loss scales the baseline's quantiles, an added \
         flow shifts them, so the intervals carry the baseline's uncertainty and not that of the closure."
            .to_owned(),
    );
    let page = stroom_maps::ScenarioPage {
        title: format!("{}: {segment} closed from {}", route.name, c.from),
        assumptions,
        targets,
        provenance: vec![
            format!("Scenario run {run_id}, made {}.", scenario.generated_at),
            "Baselines: forecasts made with the scenario from the same data, kept in the scenarios table apart from \
             the published forecasts."
                .to_owned(),
        ],
        generated_at: Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
    };
    Ok(stroom_maps::scenario_html(&page)?.into_bytes())
}
