//! Capacity alerts: the chance that a station's arrivals exceed its
//! capacity on a forecast day, or in the seven days ending on it, from each
//! forecast run's quantiles (`stroom_model::Quantiles::exceedance`, whose
//! docs state the interpolation and the tails).
//!
//! Capacities live in a TOML file the admin manages (`[stations.ID]` with
//! `daily` and/or `weekly`), written whole to a temporary file and renamed,
//! so a reader never sees half of it. Alerts are derived, not stored: the
//! forecast runs are replayed oldest first, an alert opens on the first run
//! whose probability for a (station, window, day) reaches the level, and
//! closes on a later run that puts it below the level, or whose data reach
//! the day (`observed`). The same runs and capacities always give the same
//! alerts, in the API, on the briefing page and on the command line.
//!
//! A seven-day window that starts before a run's first forecast day takes
//! those days from the `arrivals` table at the run's vintage; a window with
//! an unknown day (a gap in the counts) is not assessed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Int32Type};
use serde::{Deserialize, Serialize};
use stroom_api::{Alert, AlertStatus, AlertWindow, Capacity, ForecastRun, StationCapacity};
use stroom_core::days_to_date;
use stroom_model::Quantiles;
use stroom_query::{QuerySession, Vintage};
use stroom_store::Store;

use crate::error::{PipelineError, Result};

/// The probability at which an alert opens, unless configured otherwise.
pub const DEFAULT_ALERT_LEVEL: f64 = 0.8;
/// Days in a weekly capacity's window.
pub const WINDOW_DAYS: i64 = 7;

/// Capacities and the probability at which an alert opens.
#[derive(Debug, Clone)]
pub struct AlertRules {
    /// The stations' capacities.
    pub capacities: Capacities,
    /// An alert opens when P(arrivals > capacity) reaches this.
    pub level: f64,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self { capacities: Capacities::default(), level: DEFAULT_ALERT_LEVEL }
    }
}

/// The capacity file's layout.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CapacityToml {
    #[serde(default)]
    stations: BTreeMap<String, Capacity>,
}

/// The stations' capacities, as read from (and saved to) their file.
#[derive(Debug, Clone, Default)]
pub struct Capacities {
    path: Option<PathBuf>,
    stations: BTreeMap<String, Capacity>,
}

/// Checks one station's capacity, naming the file, station and field.
fn check(origin: &str, station: &str, capacity: &Capacity) -> Result<()> {
    if station.is_empty() || station.chars().any(|c| c.is_control() || c == '"') {
        return Err(PipelineError::Capacity(format!("{origin}: '{station}' is not a station id")));
    }
    if capacity.daily.is_none() && capacity.weekly.is_none() {
        return Err(PipelineError::Capacity(format!(
            "{origin}: station '{station}' gives neither 'daily' nor 'weekly'"
        )));
    }
    for (field, value) in [("daily", capacity.daily), ("weekly", capacity.weekly)] {
        if let Some(v) = value
            && !(v.is_finite() && v > 0.0)
        {
            return Err(PipelineError::Capacity(format!(
                "{origin}: station '{station}', field '{field}': {v} is not a positive number of arrivals"
            )));
        }
    }
    Ok(())
}

impl Capacities {
    /// Capacities held in memory only (tests, scripts).
    pub fn new(stations: BTreeMap<String, Capacity>) -> Result<Self> {
        for (station, capacity) in &stations {
            check("capacities", station, capacity)?;
        }
        Ok(Self { path: None, stations })
    }

    /// Reads the capacity file at `path`; a file that does not exist yet
    /// holds no capacity (it is created by the first [`Capacities::set`]).
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(PipelineError::io(path)(e)),
        };
        let origin = path.display().to_string();
        let parsed: CapacityToml = toml::from_str(&text)
            .map_err(|e| PipelineError::Capacity(format!("{origin}: {}", e.to_string().trim())))?;
        for (station, capacity) in &parsed.stations {
            check(&origin, station, capacity)?;
        }
        Ok(Self { path: Some(path.to_owned()), stations: parsed.stations })
    }

    /// Every station's capacity.
    pub fn stations(&self) -> &BTreeMap<String, Capacity> {
        &self.stations
    }

    /// One station's capacity and id, in the API's form.
    pub fn station(&self, station: &str) -> Option<StationCapacity> {
        self.stations.get(station).map(|c| StationCapacity {
            station: station.to_owned(),
            daily: c.daily,
            weekly: c.weekly,
        })
    }

    /// Sets a station's capacity and saves the file (when there is one):
    /// written whole beside it, then renamed over it. Nothing changes when
    /// the capacity is invalid or the file cannot be written.
    pub fn set(&mut self, station: &str, capacity: Capacity) -> Result<()> {
        check("the capacity", station, &capacity)?;
        let mut stations = self.stations.clone();
        stations.insert(station.to_owned(), capacity);
        if let Some(path) = &self.path {
            let mut text = String::from(
                "# Station capacities (arrivals per day and/or per seven days), managed by stroom's admins.\n",
            );
            let body = toml::to_string(&CapacityToml { stations: stations.clone() })
                .map_err(|e| PipelineError::Capacity(format!("writing {}: {e}", path.display())))?;
            text.push_str(&body);
            let temporary = path.with_extension("toml.partial");
            std::fs::write(&temporary, text).map_err(PipelineError::io(&temporary))?;
            std::fs::rename(&temporary, path).map_err(PipelineError::io(path))?;
        }
        self.stations = stations;
        Ok(())
    }
}

/// One assessment of a (station, window, day) by one run.
#[derive(Debug, Clone)]
struct Assessment {
    station: String,
    date: NaiveDate,
    window: AlertWindow,
    capacity: f64,
    probability: f64,
    tail: Option<&'static str>,
    expected_excess: f64,
    median: f64,
}

/// Observed arrivals per (station, day), at one run's vintage.
pub type Observed = BTreeMap<(String, NaiveDate), f64>;

fn quantiles(row: &stroom_api::ForecastRow) -> Quantiles {
    Quantiles { lo95: row.lo95, q10: row.q10, q50: row.q50, q90: row.q90, hi95: row.hi95 }
}

/// The run's assessments of every station with a capacity.
fn assess(run: &ForecastRun, capacities: &Capacities, observed: &Observed) -> Vec<Assessment> {
    let mut out = Vec::new();
    for target in &run.targets {
        let Some(station) = target.target.strip_prefix("station:") else { continue };
        let Some(capacity) = capacities.stations.get(station) else { continue };
        let Ok(cutoff) = target.cutoff.parse::<NaiveDate>() else { continue };
        let days: Vec<(NaiveDate, Quantiles)> =
            target.forecasts.iter().filter_map(|r| Some((r.date.parse().ok()?, quantiles(r)))).collect();
        let mut push = |date, window, capacity: f64, q: Quantiles| {
            let e = q.exceedance(capacity);
            if e.probability.is_finite() {
                out.push(Assessment {
                    station: station.to_owned(),
                    date,
                    window,
                    capacity,
                    probability: e.probability,
                    tail: e.tail.map(|t| t.as_str()),
                    expected_excess: e.expected_excess,
                    median: q.q50,
                });
            }
        };
        for (i, &(date, q)) in days.iter().enumerate() {
            if let Some(daily) = capacity.daily {
                push(date, AlertWindow::Day, daily, q);
            }
            let Some(weekly) = capacity.weekly else { continue };
            let start = date - Duration::days(WINDOW_DAYS - 1);
            let forecast: Vec<Quantiles> = days[..=i].iter().filter(|(d, _)| *d >= start).map(|(_, q)| *q).collect();
            // The window's days up to the cutoff are observed; all must be known.
            let mut known = 0.0;
            let mut complete = forecast.len() as i64 == (date - cutoff).num_days().min(WINDOW_DAYS);
            let mut day = start;
            while day <= cutoff && complete {
                match observed.get(&(station.to_owned(), day)) {
                    Some(count) => known += count,
                    None => complete = false,
                }
                day += Duration::days(1);
            }
            if complete {
                push(date, AlertWindow::Week, weekly, Quantiles::comonotonic_sum(&forecast, known));
            }
        }
    }
    out
}

/// Every alert, open and closed, from `runs` (newest first, as the
/// forecast snapshot holds them), with `observed[i]` the arrivals at run
/// `i`'s vintage. Sorted by station, window, day and opening.
pub fn derive_alerts(runs: &[ForecastRun], observed: &[Observed], capacities: &Capacities, level: f64) -> Vec<Alert> {
    let mut alerts: Vec<Alert> = Vec::new();
    let mut open: BTreeMap<(String, AlertWindow, NaiveDate), usize> = BTreeMap::new();
    let empty = Observed::new();
    for (i, run) in runs.iter().enumerate().rev() {
        let observed = observed.get(i).unwrap_or(&empty);
        for a in assess(run, capacities, observed) {
            let key = (a.station.clone(), a.window, a.date);
            let update = |alert: &mut Alert| {
                alert.capacity = a.capacity;
                alert.probability = a.probability;
                alert.tail = a.tail.map(str::to_owned);
                alert.expected_excess = a.expected_excess;
                alert.median = a.median;
                alert.run_id = run.run_id.clone();
            };
            match (open.get(&key), a.probability >= level) {
                (Some(&index), true) => update(&mut alerts[index]),
                (Some(&index), false) => {
                    let alert = &mut alerts[index];
                    update(alert);
                    close(alert, run, "below level");
                    open.remove(&key);
                }
                (None, true) => {
                    let mut alert = Alert {
                        station: a.station.clone(),
                        date: a.date.to_string(),
                        window: a.window,
                        capacity: 0.0,
                        probability: 0.0,
                        tail: None,
                        expected_excess: 0.0,
                        median: 0.0,
                        run_id: String::new(),
                        status: AlertStatus::Open,
                        opened_by: run.run_id.clone(),
                        opened_at: run.generated_at.clone(),
                        closed_by: None,
                        closed_at: None,
                        closed_because: None,
                    };
                    update(&mut alert);
                    open.insert(key, alerts.len());
                    alerts.push(alert);
                }
                (None, false) => {}
            }
        }
        // A day this run's data reach is observed: its alerts close.
        for target in &run.targets {
            let Some(station) = target.target.strip_prefix("station:") else { continue };
            let Ok(cutoff) = target.cutoff.parse::<NaiveDate>() else { continue };
            let reached: Vec<_> = open.keys().filter(|(s, _, date)| s == station && *date <= cutoff).cloned().collect();
            for key in reached {
                if let Some(index) = open.remove(&key) {
                    close(&mut alerts[index], run, "observed");
                }
            }
        }
    }
    alerts.sort_by(|a, b| {
        (&a.station, a.window, &a.date, &a.opened_at).cmp(&(&b.station, b.window, &b.date, &b.opened_at))
    });
    alerts
}

fn close(alert: &mut Alert, run: &ForecastRun, because: &str) {
    alert.status = AlertStatus::Closed;
    alert.closed_by = Some(run.run_id.clone());
    alert.closed_at = Some(run.generated_at.clone());
    alert.closed_because = Some(because.to_owned());
}

/// Observed arrivals already read, per `arrivals` version (a version never
/// changes), with the first day read: a server reads each version once.
#[derive(Debug, Default)]
pub struct ObservedCache(std::sync::Mutex<BTreeMap<u64, (NaiveDate, Observed)>>);

impl ObservedCache {
    fn get(&self, version: u64, from: NaiveDate) -> Option<Observed> {
        let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&version).filter(|(first, _)| *first <= from).map(|(_, observed)| observed.clone())
    }

    fn keep(&self, version: u64, from: NaiveDate, observed: &Observed) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(version, (from, observed.clone()));
    }
}

/// The observed arrivals that the weekly windows of `runs` need: for each
/// run, the six days up to each station target's cutoff, read from
/// `arrivals` at the version the run recorded (through `cache`). Runs with
/// no weekly capacity to assess read nothing.
pub async fn observed_for(
    store: &Store,
    runs: &[ForecastRun],
    capacities: &Capacities,
    cache: &ObservedCache,
) -> Result<Vec<Observed>> {
    let weekly: Vec<&String> = capacities.stations.iter().filter(|(_, c)| c.weekly.is_some()).map(|(s, _)| s).collect();
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        let earliest = run
            .targets
            .iter()
            .filter(|t| t.target.strip_prefix("station:").is_some_and(|s| weekly.iter().any(|w| *w == s)))
            .filter_map(|t| t.cutoff.parse::<NaiveDate>().ok())
            .min();
        let (Some(earliest), Some(&version)) = (earliest, run.vintage.get("arrivals")) else {
            out.push(Observed::new());
            continue;
        };
        let from = earliest - Duration::days(WINDOW_DAYS);
        let observed = match cache.get(version, from) {
            Some(observed) => observed,
            None => {
                let observed = read_arrivals(store, version, from).await?;
                cache.keep(version, from, &observed);
                observed
            }
        };
        out.push(observed);
    }
    Ok(out)
}

async fn read_arrivals(store: &Store, version: u64, from: NaiveDate) -> Result<Observed> {
    let session = QuerySession::open(store, Some(Vintage::Version(version))).await?;
    let mut observed = Observed::new();
    if !session.has_table("arrivals") {
        return Ok(observed);
    }
    let sql = format!("SELECT station, date, count FROM arrivals WHERE date >= DATE '{from}'");
    let batches: Vec<RecordBatch> = session.context().sql(&sql).await?.collect().await?;
    for b in &batches {
        let (stations, dates, counts) =
            (b.column(0).as_string::<i32>(), b.column(1).as_primitive::<Date32Type>(), b.column(2));
        let counts = counts.as_primitive::<Int32Type>();
        for i in 0..b.num_rows() {
            if !counts.is_null(i) {
                observed
                    .insert((stations.value(i).to_owned(), days_to_date(dates.value(i))), f64::from(counts.value(i)));
            }
        }
    }
    Ok(observed)
}

/// The `quantile` of a station's daily arrivals over its last 365 days in
/// the store (`None` when it has none): where a demo or a first
/// configuration can put a capacity that only the busiest days exceed.
pub async fn recent_quantile(store: &Store, station: &str, quantile: f64) -> Result<Option<f64>> {
    let session = QuerySession::open(store, None).await?;
    if !session.has_table("arrivals") {
        return Ok(None);
    }
    let id = station.replace('\'', "''");
    let sql = format!(
        "SELECT count FROM arrivals WHERE station = '{id}' AND date > \
         (SELECT max(date) FROM arrivals WHERE station = '{id}') - INTERVAL '365' DAY"
    );
    let batches: Vec<RecordBatch> = session.context().sql(&sql).await?.collect().await?;
    let mut counts: Vec<f64> = batches
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_primitive::<Int32Type>();
            (0..b.num_rows()).filter(|&i| !c.is_null(i)).map(|i| f64::from(c.value(i))).collect::<Vec<_>>()
        })
        .collect();
    if counts.is_empty() {
        return Ok(None);
    }
    counts.sort_by(f64::total_cmp);
    // The nearest-rank quantile.
    let rank = ((quantile.clamp(0.0, 1.0) * counts.len() as f64).ceil() as usize).clamp(1, counts.len());
    Ok(Some(counts[rank - 1]))
}

/// Every alert, open and closed, from the forecast runs recorded in `store`.
pub async fn alerts(store: &Store, rules: &AlertRules) -> Result<Vec<Alert>> {
    if rules.capacities.stations.is_empty() {
        return Ok(Vec::new());
    }
    let snapshot =
        crate::backend::read_forecasts(store.clone()).await.map_err(|e| PipelineError::Missing(e.to_string()))?;
    let observed = observed_for(store, &snapshot.runs, &rules.capacities, &ObservedCache::default()).await?;
    Ok(derive_alerts(&snapshot.runs, &observed, &rules.capacities, rules.level))
}

/// Days of a backtest in one band of exceedance probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// The band's lowest probability (inclusive).
    pub from: f64,
    /// The band's highest probability (exclusive, but 1 is in the last band).
    pub to: f64,
    /// Forecast days with a known actual in the band.
    pub days: usize,
    /// Their mean probability of exceeding the capacity.
    pub mean_probability: f64,
    /// The share of them whose actual exceeded it.
    pub exceeded: f64,
}

/// How calibrated one model's exceedance probabilities were in a backtest:
/// of the days given probability p, the share that exceeded the capacity
/// should be about p.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExceedanceCalibration {
    /// The model.
    pub model: String,
    /// The daily capacity the probabilities are of.
    pub capacity: f64,
    /// The alert level.
    pub level: f64,
    /// The days given a probability at or above the level: the alerts the
    /// model would have raised.
    pub at_level: ReliabilityBin,
    /// Five bands of probability, 0–0.2 to 0.8–1.
    pub bins: Vec<ReliabilityBin>,
}

fn bin(from: f64, to: f64, days: &[(f64, bool)]) -> ReliabilityBin {
    let n = days.len();
    let share =
        |f: &dyn Fn(&(f64, bool)) -> f64| if n == 0 { f64::NAN } else { days.iter().map(f).sum::<f64>() / n as f64 };
    ReliabilityBin {
        from,
        to,
        days: n,
        mean_probability: share(&|d| d.0),
        exceeded: share(&|d| f64::from(u8::from(d.1))),
    }
}

/// The calibration of each model's probabilities that a day exceeds
/// `capacity`, over the backtest rows with a known actual.
pub fn exceedance_calibration(
    rows: &[stroom_model::BacktestRow],
    capacity: f64,
    level: f64,
) -> Vec<ExceedanceCalibration> {
    let mut by_model: BTreeMap<&str, Vec<(f64, bool)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.actual.is_finite()) {
        let q = Quantiles { lo95: r.lo95, q10: r.q10, q50: r.q50, q90: r.q90, hi95: r.hi95 };
        let p = q.exceedance(capacity).probability;
        if p.is_finite() {
            by_model.entry(r.model.as_str()).or_default().push((p, r.actual > capacity));
        }
    }
    by_model
        .into_iter()
        .map(|(model, days)| {
            let edges = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
            let bins = edges
                .windows(2)
                .map(|w| {
                    let inside: Vec<(f64, bool)> =
                        days.iter().copied().filter(|d| d.0 >= w[0] && (d.0 < w[1] || w[1] == 1.0)).collect();
                    bin(w[0], w[1], &inside)
                })
                .collect();
            let alerted: Vec<(f64, bool)> = days.iter().copied().filter(|d| d.0 >= level).collect();
            ExceedanceCalibration {
                model: model.to_owned(),
                capacity,
                level,
                at_level: bin(level, 1.0, &alerted),
                bins,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stroom_api::{ForecastRow, TargetForecast};

    /// A run of one station whose every day has the same quantiles.
    fn run(id: &str, cutoff: &str, days: u32, q: Quantiles) -> ForecastRun {
        let cutoff_day: NaiveDate = cutoff.parse().unwrap();
        let forecasts = (1..=days)
            .map(|h| ForecastRow {
                date: (cutoff_day + Duration::days(i64::from(h))).to_string(),
                horizon: h,
                mean: q.q50,
                q10: q.q10,
                q50: q.q50,
                q90: q.q90,
                lo80: q.q10,
                hi80: q.q90,
                lo95: q.lo95,
                hi95: q.hi95,
                parts: None,
            })
            .collect();
        ForecastRun {
            run_id: id.to_owned(),
            generated_at: format!("{cutoff}T06:00:00Z"),
            vintage: BTreeMap::new(),
            targets: vec![TargetForecast {
                target: "station:dover".into(),
                station: "dover".into(),
                model: "auto".into(),
                chosen: None,
                cutoff: cutoff.to_owned(),
                forecasts,
            }],
        }
    }

    fn q(median: f64) -> Quantiles {
        Quantiles { lo95: median * 0.5, q10: median * 0.7, q50: median, q90: median * 1.3, hi95: median * 1.5 }
    }

    fn daily(capacity: f64) -> Capacities {
        Capacities::new(BTreeMap::from([("dover".to_owned(), Capacity { daily: Some(capacity), weekly: None })]))
            .unwrap()
    }

    #[test]
    fn an_alert_opens_at_the_level_and_closes_when_a_later_run_drops_below_it() {
        // Capacity 72 against a median of 100: P(X > 72) ≈ 0.93 in the first run.
        let first = run("a", "2024-06-01", 3, q(100.0));
        let second = run("b", "2024-06-02", 3, q(50.0));
        let runs = vec![second, first];
        let alerts = derive_alerts(&runs, &[], &daily(72.0), 0.8);
        assert_eq!(alerts.len(), 3, "{alerts:#?}");
        // 06-02 is observed by run b; 06-03 and 06-04 drop below the level.
        let by_day: BTreeMap<&str, &Alert> = alerts.iter().map(|a| (a.date.as_str(), a)).collect();
        assert_eq!(by_day["2024-06-02"].closed_because.as_deref(), Some("observed"));
        for day in ["2024-06-03", "2024-06-04"] {
            let a = by_day[day];
            assert_eq!(a.status, AlertStatus::Closed);
            assert_eq!((a.opened_by.as_str(), a.closed_by.as_deref()), ("a", Some("b")));
            assert_eq!(a.closed_because.as_deref(), Some("below level"));
            assert!(a.probability < 0.8);
        }
        // Run b alone opens nothing; a's first day stays open when no later run exists.
        assert!(derive_alerts(&runs[..1], &[], &daily(72.0), 0.8).is_empty());
        let only_a = derive_alerts(&runs[1..], &[], &daily(72.0), 0.8);
        assert!(only_a.iter().all(|a| a.status == AlertStatus::Open && a.probability >= 0.8));
        assert_eq!(only_a.len(), 3);
    }

    #[test]
    fn a_week_adds_the_observed_days_and_skips_a_window_with_a_gap() {
        let runs = vec![run("a", "2024-06-10", 3, q(100.0))];
        let capacities =
            Capacities::new(BTreeMap::from([("dover".to_owned(), Capacity { daily: None, weekly: Some(700.0) })]))
                .unwrap();
        let cutoff: NaiveDate = "2024-06-10".parse().unwrap();
        let mut observed: Observed =
            (0..6).map(|d| (("dover".to_owned(), cutoff - Duration::days(d)), 100.0)).collect();
        let alerts = derive_alerts(&runs, std::slice::from_ref(&observed), &capacities, 0.0);
        // The first window: six observed days (600) and one forecast day.
        let first = alerts.iter().find(|a| a.date == "2024-06-11").unwrap();
        assert_eq!(first.window, AlertWindow::Week);
        assert!((first.median - 700.0).abs() < 1e-9, "{first:?}");
        assert!((first.probability - 0.5).abs() < 1e-9);
        // A gap in the observed days: that window is not assessed.
        observed.remove(&("dover".to_owned(), cutoff - Duration::days(5)));
        let alerts = derive_alerts(&runs, &[observed], &capacities, 0.0);
        assert!(alerts.iter().all(|a| a.date != "2024-06-11"), "{alerts:#?}");
        assert!(alerts.iter().any(|a| a.date == "2024-06-12"));
    }

    #[test]
    fn calibration_bins_count_the_days_that_exceeded() {
        let row = |actual: f64, median: f64| stroom_model::BacktestRow {
            model: "auto".into(),
            cutoff: NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
            date: NaiveDate::from_ymd_opt(2024, 6, 2).unwrap(),
            horizon: 1,
            actual,
            mean: median,
            q10: median * 0.7,
            q50: median,
            q90: median * 1.3,
            lo80: median * 0.7,
            hi80: median * 1.3,
            lo95: median * 0.5,
            hi95: median * 1.5,
            chosen: None,
            scale_abs: 1.0,
            scale_sq: 1.0,
        };
        // Capacity 70 = q10 of a median of 100: P = 0.9 on those days.
        let rows = vec![row(120.0, 100.0), row(60.0, 100.0), row(80.0, 100.0), row(10.0, 10.0), row(f64::NAN, 100.0)];
        let calibration = exceedance_calibration(&rows, 70.0, 0.8);
        assert_eq!(calibration.len(), 1);
        let c = &calibration[0];
        assert_eq!(c.at_level.days, 3);
        assert!((c.at_level.mean_probability - 0.9).abs() < 1e-12);
        assert!((c.at_level.exceeded - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.bins[0].days, 1);
        assert_eq!(c.bins[0].exceeded, 0.0);
        assert!(c.bins[2].exceeded.is_nan());
        assert_eq!(c.bins.iter().map(|b| b.days).sum::<usize>(), 4);
    }

    #[test]
    fn a_capacity_file_names_the_station_and_field_it_refuses() {
        let dir = std::env::temp_dir().join(format!("stroom-capacities-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("capacities.toml");
        std::fs::write(&path, "[stations.dover]\ndaily = -3\n").unwrap();
        let error = Capacities::load(&path).unwrap_err().text();
        assert!(error.contains("capacities.toml") && error.contains("'dover'") && error.contains("'daily'"), "{error}");
        std::fs::write(&path, "[stations.dover]\ndialy = 3\n").unwrap();
        let error = Capacities::load(&path).unwrap_err().text();
        assert!(error.contains("dialy"), "{error}");
        std::fs::remove_file(&path).unwrap();
        let mut capacities = Capacities::load(&path).unwrap();
        assert!(capacities.stations().is_empty());
        capacities.set("dover", Capacity { daily: Some(900.0), weekly: Some(4000.0) }).unwrap();
        assert!(capacities.set("dover", Capacity { daily: None, weekly: None }).is_err());
        let again = Capacities::load(&path).unwrap();
        assert_eq!(again.stations()["dover"], Capacity { daily: Some(900.0), weekly: Some(4000.0) });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
