//! The printable HTML briefing page of one route and station: map, fan chart,
//! the next 14 days as a table, the model's backtest accuracy, data vintage
//! and provenance, in one self-contained file.
//!
//! The series are validated first (a forecast, dates in order, finite
//! values). The page has inline CSS, with print rules for A4, and inline SVG:
//! the map without its namespace URL, and the fan chart from `chart`.

use std::fmt::Write;

use chrono::NaiveDate;

use crate::basemap::ATTRIBUTION;
use crate::chart::fan_chart;
use crate::map::{self, Embedding};
use crate::text::{escape, format_percent, format_value};
use crate::{MapError, MapSpec};

/// The number of forecast days the briefing's table shows.
pub const TABLE_DAYS: usize = 14;

/// The forecast of one day at the briefing's station.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastPoint {
    /// The day forecast.
    pub date: NaiveDate,
    /// The point forecast (mean).
    pub mean: f64,
    /// The 10% quantile.
    pub q10: f64,
    /// The median (50% quantile).
    pub q50: f64,
    /// The 90% quantile.
    pub q90: f64,
    /// The lower end of the 80% prediction interval.
    pub lo80: f64,
    /// The upper end of the 80% prediction interval.
    pub hi80: f64,
    /// The lower end of the 95% prediction interval.
    pub lo95: f64,
    /// The upper end of the 95% prediction interval.
    pub hi95: f64,
}

/// How well the model did in rolling-origin backtests, beside the seasonal
/// naive forecast on the same folds.
#[derive(Debug, Clone, PartialEq)]
pub struct Accuracy {
    /// The model evaluated.
    pub model: String,
    /// The model's MASE (scaled by the in-sample seasonal naive error, m = 7).
    pub mase: f64,
    /// The seasonal naive forecast's MASE on the same folds.
    pub seasonal_naive_mase: f64,
    /// Share of actual values inside the 80% interval, 0..=1.
    pub coverage80: f64,
    /// Share of actual values inside the 95% interval, 0..=1.
    pub coverage95: f64,
    /// Number of backtest folds.
    pub folds: usize,
}

/// One open capacity alert on the briefing.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityAlert {
    /// How the page names the station, e.g. "Dover".
    pub station: String,
    /// The forecast day (for a week, its last day).
    pub date: NaiveDate,
    /// Whether the capacity is per seven days (else per day).
    pub weekly: bool,
    /// The capacity.
    pub capacity: f64,
    /// The chance that arrivals exceed it, 0..=1.
    pub probability: f64,
    /// The expected arrivals above it.
    pub expected_excess: f64,
}

/// What the forecast is made of over the table's days: the mean split into
/// the level and calendar, each upstream segment and the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Drivers {
    /// Days summed (the table's days).
    pub days: usize,
    /// The sum of the days' level and calendar parts.
    pub level: f64,
    /// Each upstream segment's summed part, largest first.
    pub segments: Vec<Driver>,
    /// The sum of the days' rest (the calibration's correction of the mean).
    pub rest: f64,
}

/// One upstream segment's part of the forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Driver {
    /// How the page names the segment, e.g. "Belgrade – Horgoš".
    pub label: String,
    /// Days its density leads the arrivals (of its larger signal).
    pub lead_days: usize,
    /// Arrivals it adds over the days (negative: removes).
    pub part: f64,
}

/// The capacity alerts of the route's stations.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityAlerts {
    /// The probability at which an alert opens, 0..=1.
    pub level: f64,
    /// The open alerts, by station and day.
    pub open: Vec<CapacityAlert>,
}

/// How unusual one segment's density was on the nowcast day.
#[derive(Debug, Clone, PartialEq)]
pub struct UnusualSegment {
    /// How the page names the segment, e.g. "Belgrade – Horgoš".
    pub label: String,
    /// Devices counted on the day.
    pub devices: f64,
    /// The usual count: the median of the same weekday over the previous weeks.
    pub baseline: f64,
    /// The robust z-score of the day against those weeks.
    pub z: f64,
}

/// The nowcast on the briefing: how unusual the latest day's density was
/// on each segment of the route.
#[derive(Debug, Clone, PartialEq)]
pub struct Nowcast {
    /// The day scored.
    pub date: NaiveDate,
    /// Weeks of same-weekday history it was compared with.
    pub weeks: usize,
    /// The segments, most unusual (largest |z|) first.
    pub segments: Vec<UnusualSegment>,
}

/// The |z| from which the briefing calls a segment's density unusual.
pub const UNUSUAL_Z: f64 = 3.0;

/// Everything on a briefing page.
#[derive(Debug, Clone)]
pub struct Briefing<'a> {
    /// The map (also gives the title, route, forecast date, vintage, model and
    /// uncertainty statement of the page).
    pub map: &'a MapSpec<'a>,
    /// The station whose series the chart and the table show, e.g. the route's
    /// destination.
    pub station: String,
    /// The recent observed series, dates strictly increasing.
    pub observed: Vec<(NaiveDate, f64)>,
    /// The forecast, dates strictly increasing; the table shows the first 14 days.
    pub forecast: Vec<ForecastPoint>,
    /// The backtest accuracy of the model used, when a backtest exists.
    pub accuracy: Option<Accuracy>,
    /// How unusual the latest day's density was along the route, when the
    /// store holds enough of it.
    pub nowcast: Option<Nowcast>,
    /// The capacity alerts, when a station of the route has a capacity.
    pub alerts: Option<CapacityAlerts>,
    /// What the forecast is made of, when the run recorded it.
    pub drivers: Option<Drivers>,
    /// Where the data and the forecast come from, one statement per item
    /// (sources, table versions, run ids, parameters).
    pub provenance: Vec<String>,
    /// When the page was made, as the caller wants it shown (this crate reads
    /// no clock).
    pub generated_at: String,
}

pub(crate) const STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; color: #1a1a1a; background: #ffffff;
  margin: 0 auto; padding: 16px 24px 32px; max-width: 1000px; font-size: 14px; line-height: 1.45; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 22px 0 8px; padding-bottom: 3px; border-bottom: 1px solid #cccccc; }
.subtitle { color: #555555; margin: 0 0 12px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0;
  padding: 8px 12px; background: #f4f4f4; border-left: 4px solid #3b528b; }
dl.facts dt { font-weight: bold; }
dl.facts dd { margin: 0; }
.summary { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 12px; }
.figure { border: 1px solid #cccccc; padding: 8px 12px; min-width: 220px; }
.figure .value { font-size: 22px; font-weight: bold; }
.figure .label { color: #555555; font-size: 12px; }
svg { display: block; max-width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 8px; border-bottom: 1px solid #dddddd; text-align: right; }
th { border-bottom: 2px solid #999999; }
th.text, td.text { text-align: left; }
tr.map-date { background: #eef3fa; font-weight: bold; }
.note { color: #555555; font-size: 12px; }
footer { margin-top: 24px; padding-top: 6px; border-top: 1px solid #cccccc; color: #555555; font-size: 12px; }
@page { size: A4 portrait; margin: 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 9.5pt; }
  h1 { font-size: 17pt; }
  h2 { font-size: 12pt; margin-top: 12pt; }
  .figure .value { font-size: 15pt; }
  section, figure, table, svg, .summary, dl.facts { break-inside: avoid; page-break-inside: avoid; }
  h2 { break-after: avoid; page-break-after: avoid; }
  .chart { break-before: page; page-break-before: always; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// Checks the series of a briefing: finite values, strictly increasing dates,
/// at least one forecast day, valid accuracy figures.
/// Checks that a forecast's dates strictly increase and its values are finite.
pub(crate) fn check_points(series: &'static str, points: &[ForecastPoint]) -> Result<(), MapError> {
    for pair in points.windows(2) {
        if pair[1].date <= pair[0].date {
            return Err(MapError::UnorderedDates { series, previous: pair[0].date, date: pair[1].date });
        }
    }
    for p in points {
        let fields = [
            ("mean", p.mean),
            ("q10", p.q10),
            ("q50", p.q50),
            ("q90", p.q90),
            ("lo80", p.lo80),
            ("hi80", p.hi80),
            ("lo95", p.lo95),
            ("hi95", p.hi95),
        ];
        if let Some((field, _)) = fields.iter().find(|(_, v)| !v.is_finite()) {
            return Err(MapError::NonFiniteValue { series, field, date: p.date });
        }
    }
    Ok(())
}

fn validate(b: &Briefing) -> Result<(), MapError> {
    if b.forecast.is_empty() {
        return Err(MapError::EmptyForecast { station: b.station.clone() });
    }
    for pair in b.observed.windows(2) {
        if pair[1].0 <= pair[0].0 {
            return Err(MapError::UnorderedDates { series: "observed", previous: pair[0].0, date: pair[1].0 });
        }
    }
    for &(date, value) in &b.observed {
        if !value.is_finite() {
            return Err(MapError::NonFiniteValue { series: "observed", field: "value", date });
        }
    }
    check_points("forecast", &b.forecast)?;
    if let Some(n) = &b.nowcast {
        for segment in &n.segments {
            let fields = [("devices", segment.devices), ("baseline", segment.baseline), ("z", segment.z)];
            if let Some((field, _)) = fields.iter().find(|(_, v)| !v.is_finite()) {
                return Err(MapError::NonFiniteValue { series: "nowcast", field, date: n.date });
            }
        }
    }
    if let Some(alerts) = &b.alerts {
        for a in &alerts.open {
            let fields =
                [("capacity", a.capacity), ("probability", a.probability), ("expected_excess", a.expected_excess)];
            if let Some((field, _)) = fields.iter().find(|(_, v)| !v.is_finite()) {
                return Err(MapError::NonFiniteValue { series: "alerts", field, date: a.date });
            }
        }
    }
    if let Some(d) = &b.drivers {
        let parts =
            [("level", d.level), ("rest", d.rest)].into_iter().chain(d.segments.iter().map(|s| ("part", s.part)));
        if let Some((field, _)) = parts.clone().find(|(_, v)| !v.is_finite()) {
            return Err(MapError::NonFiniteValue { series: "drivers", field, date: b.map.forecast_date });
        }
    }
    if let Some(a) = &b.accuracy {
        for (field, value) in [("mase", a.mase), ("seasonal_naive_mase", a.seasonal_naive_mase)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(MapError::InvalidAccuracy { field, value, expected: "non-negative number" });
            }
        }
        for (field, value) in [("coverage80", a.coverage80), ("coverage95", a.coverage95)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(MapError::InvalidAccuracy { field, value, expected: "share between 0 and 1" });
            }
        }
    }
    Ok(())
}

/// The briefing as one self-contained HTML page: inline CSS and inline SVG,
/// no scripts, no external requests (no fonts, images or styles from
/// anywhere), print-ready on A4.
///
/// The page holds, in order: the title with forecast date, data vintage,
/// model and uncertainty statement; the next day's forecast in numbers; what
/// is unusual on the route (the nowcast, when given); the map (as [`svg`](crate::svg) draws it); a fan chart of the observed series
/// and the forecast with its 80% and 95% intervals; a table of the first 14
/// forecast days; the model's backtest accuracy (MASE beside the seasonal
/// naive MASE, interval coverage); and the provenance list. Every text the
/// caller passes in is HTML-escaped.
pub fn briefing_html(b: &Briefing) -> Result<String, MapError> {
    validate(b)?;
    let spec = b.map;
    let mut html = String::with_capacity(256 * 1024);
    let date = spec.forecast_date.format("%Y-%m-%d").to_string();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"stroom\">\n<title>{} · {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&spec.title),
        escape(&b.station)
    );

    // Header and key facts.
    let _ = writeln!(html, "<header>\n<h1>{}</h1>", escape(&spec.title));
    let _ = writeln!(
        html,
        "<p class=\"subtitle\">{} · {} · forecast for {} ({})</p>",
        escape(&spec.route.name),
        escape(&b.station),
        date,
        spec.forecast_date.format("%A")
    );
    html.push_str("<dl class=\"facts\">\n");
    for (term, value) in [
        ("Forecast date", date.as_str()),
        ("Data vintage", spec.vintage.as_str()),
        ("Model", spec.model.as_str()),
        ("Uncertainty", spec.uncertainty.as_str()),
        ("Generated", b.generated_at.as_str()),
    ] {
        let _ = writeln!(html, "<dt>{term}</dt><dd>{}</dd>", escape(value));
    }
    html.push_str("</dl>\n</header>\n");

    // The first forecast day and the two-week total in numbers.
    let first = &b.forecast[0];
    let table_days = &b.forecast[..b.forecast.len().min(TABLE_DAYS)];
    let total: f64 = table_days.iter().map(|p| p.mean).sum();
    html.push_str("<section class=\"summary\">\n");
    let _ = writeln!(
        html,
        "<div class=\"figure\"><div class=\"label\">{} on {}</div><div class=\"value\">{}</div>\
         <div class=\"label\">80% interval {} – {}</div></div>",
        escape(&b.station),
        first.date.format("%a %Y-%m-%d"),
        format_value(first.mean),
        format_value(first.lo80),
        format_value(first.hi80)
    );
    let _ = writeln!(
        html,
        "<div class=\"figure\"><div class=\"label\">{} over the next {} days</div><div class=\"value\">{}</div>\
         <div class=\"label\">sum of the daily means</div></div>",
        escape(&b.station),
        table_days.len(),
        format_value(total)
    );
    html.push_str("</section>\n");

    if let Some(alerts) = &b.alerts {
        alerts_section(&mut html, alerts);
    }
    if let Some(nowcast) = &b.nowcast {
        nowcast_section(&mut html, nowcast);
    }

    // Map.
    html.push_str("<section class=\"map\">\n<h2>Map</h2>\n");
    html.push_str(&map::render(spec, Embedding::InlineHtml));
    html.push_str("</section>\n");

    // Chart.
    let _ = writeln!(html, "<section class=\"chart\">\n<h2>{}: observed and forecast</h2>", escape(&b.station));
    html.push_str(&fan_chart(&b.station, &b.observed, &b.forecast, None));
    html.push_str(
        "<p class=\"note\">The solid line is what was observed; the dashed line the forecast mean. The darker band \
         holds the 80% prediction interval (8 days in 10 should fall inside), the lighter band the 95% interval.</p>\n",
    );
    html.push_str("</section>\n");
    if let Some(drivers) = &b.drivers {
        drivers_section(&mut html, drivers, &b.station);
    }

    // Table of the next 14 days.
    let origin = b.observed.last().map_or(first.date - chrono::Days::new(1), |o| o.0);
    let _ = writeln!(html, "<section class=\"table\">\n<h2>The next {} days</h2>", table_days.len());
    html.push_str(
        "<table class=\"forecast\">\n<thead><tr><th class=\"text\">Date</th><th class=\"text\">Day</th>\
         <th>Days ahead</th><th>Mean</th><th>Median</th><th>80% interval</th><th>95% interval</th></tr></thead>\n<tbody>\n",
    );
    for p in table_days {
        let class = if p.date == spec.forecast_date { " class=\"map-date\"" } else { "" };
        let _ = writeln!(
            html,
            "<tr{class}><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{} – {}</td><td>{} – {}</td></tr>",
            p.date.format("%Y-%m-%d"),
            p.date.format("%a"),
            (p.date - origin).num_days(),
            format_value(p.mean),
            format_value(p.q50),
            format_value(p.lo80),
            format_value(p.hi80),
            format_value(p.lo95),
            format_value(p.hi95)
        );
    }
    html.push_str("</tbody>\n</table>\n");
    if table_days.iter().any(|p| p.date == spec.forecast_date) {
        html.push_str("<p class=\"note\">The highlighted row is the day the map shows.</p>\n");
    }
    html.push_str("</section>\n");

    // Accuracy.
    html.push_str("<section class=\"accuracy\">\n<h2>How accurate has this model been?</h2>\n");
    match &b.accuracy {
        Some(a) => accuracy_section(&mut html, a),
        None => html.push_str("<p>No backtest of this model is available, so its accuracy is not known.</p>\n"),
    }
    html.push_str("</section>\n");

    // Provenance.
    html.push_str("<section class=\"provenance\">\n<h2>Data and provenance</h2>\n");
    let _ = writeln!(html, "<p>Data vintage: {}. Model: {}.</p>", escape(&spec.vintage), escape(&spec.model));
    if b.provenance.is_empty() {
        html.push_str("<p>No further provenance was recorded.</p>\n");
    } else {
        html.push_str("<ul>\n");
        for item in &b.provenance {
            let _ = writeln!(html, "<li>{}</li>", escape(item));
        }
        html.push_str("</ul>\n");
    }
    html.push_str(
        "<p class=\"note\">Counts are aggregates of devices per H3 cell; counts below the privacy threshold are \
         suppressed and never shown.</p>\n</section>\n",
    );
    let _ = writeln!(html, "<footer>Generated {} by stroom. {ATTRIBUTION}.</footer>", escape(&b.generated_at));
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

/// "What drives the forecast": one sentence naming the segment that adds the
/// most, and a bar chart of every part.
fn drivers_section(html: &mut String, d: &Drivers, station: &str) {
    html.push_str("<section class=\"drivers\">\n<h2>What drives the forecast</h2>\n");
    let upstream: f64 = d.segments.iter().map(|s| s.part).sum();
    let total = d.level + upstream + d.rest;
    let top = d.segments.iter().filter(|s| s.part > 0.0).max_by(|a, b| a.part.total_cmp(&b.part));
    let line = match top {
        Some(s) if upstream > 0.0 && s.part >= 0.5 && s.part >= 0.1 * total.abs() => format!(
            "Upstream density adds {} arrivals at {} over the next {} days; most of the expected rise comes from \
             {}, {} days upstream ({} arrivals).",
            format_value(upstream),
            escape(station),
            d.days,
            escape(&s.label),
            s.lead_days,
            format_value(s.part)
        ),
        _ if d.segments.is_empty() => format!(
            "The forecast of {} over the next {} days rests on the level and the calendar of its own series: no \
             upstream signal entered it.",
            escape(station),
            d.days
        ),
        _ => format!(
            "Upstream density changes the forecast of {} over the next {} days little ({}{} arrivals).",
            escape(station),
            d.days,
            if upstream > 0.0 { "+" } else { "" },
            format_value(upstream)
        ),
    };
    let _ = writeln!(html, "<p class=\"drivers-line\">{line}</p>");
    let mut bars = vec![("Level and calendar".to_owned(), d.level)];
    bars.extend(d.segments.iter().map(|s| (format!("{} ({} days ahead)", s.label, s.lead_days), s.part)));
    bars.push(("Mean correction (past errors)".to_owned(), d.rest));
    html.push_str(&crate::chart::bar_chart(&format!("Expected arrivals over {} days, by source", d.days), &bars));
    html.push_str(
        "<p class=\"note\">The parts add up to the sum of the daily means. A segment's part is what its density \
         excess (against its usual weekday) changes in the forecast, shared fairly when several segments move it \
         together (Shapley values). The regression forecasts on a log scale, close to a median; the mean \
         correction adds the average error of past forecasts on the count scale, large when arrivals come in \
         bursts.</p>\n\
         </section>\n",
    );
}

/// "Capacity alerts": one sentence on the most likely excess, and every open
/// alert in a table.
fn alerts_section(html: &mut String, alerts: &CapacityAlerts) {
    html.push_str("<section class=\"alerts\">\n<h2>Capacity alerts</h2>\n");
    let level = format_percent(alerts.level);
    let Some(top) = alerts.open.iter().max_by(|a, b| a.probability.total_cmp(&b.probability)) else {
        let _ = writeln!(
            html,
            "<p class=\"alerts-line\">No open alert: on no forecast day is the chance that arrivals exceed a \
             station's capacity {level} or more.</p>\n</section>"
        );
        return;
    };
    let per = |a: &CapacityAlert| if a.weekly { "seven-day" } else { "daily" };
    let when = |a: &CapacityAlert| {
        if a.weekly {
            format!("in the seven days to {}", a.date.format("%a %Y-%m-%d"))
        } else {
            format!("on {}", a.date.format("%a %Y-%m-%d"))
        }
    };
    let _ = writeln!(
        html,
        "<p class=\"alerts-line\">{} open alert{} (a chance of {level} or more that arrivals exceed capacity). \
         Most likely: {} may exceed its {} capacity of {} {} ({} chance; {} arrivals expected above it).</p>",
        alerts.open.len(),
        if alerts.open.len() == 1 { "" } else { "s" },
        escape(&top.station),
        per(top),
        format_value(top.capacity),
        when(top),
        format_percent(top.probability),
        format_value(top.expected_excess)
    );
    html.push_str(
        "<table class=\"alerts\">\n<thead><tr><th class=\"text\">Station</th><th class=\"text\">When</th>\
         <th>Capacity</th><th>Chance above</th><th>Expected excess</th></tr></thead>\n<tbody>\n",
    );
    for a in &alerts.open {
        let _ = writeln!(
            html,
            "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{} ({})</td><td>{}</td><td>{}</td></tr>",
            escape(&a.station),
            when(a),
            format_value(a.capacity),
            per(a),
            format_percent(a.probability),
            format_value(a.expected_excess)
        );
    }
    html.push_str(
        "</tbody>\n</table>\n<p class=\"note\">The chance comes from the forecast's quantiles, interpolated \
         between them; beyond the 95% interval it rests on an assumed exponential tail. A seven-day window adds \
         the observed days to the forecast ones and assumes that the days' errors move together.</p>\n</section>\n",
    );
}

/// "What is unusual on the route": one sentence naming the segments whose
/// |z| is at least [`UNUSUAL_Z`], and every segment in a table.
fn nowcast_section(html: &mut String, n: &Nowcast) {
    let day = n.date.format("%A %Y-%m-%d");
    let weekday = n.date.format("%A");
    html.push_str("<section class=\"nowcast\">\n<h2>What is unusual on the route</h2>\n");
    let unusual: Vec<&UnusualSegment> = n.segments.iter().filter(|s| s.z.abs() >= UNUSUAL_Z).take(3).collect();
    let ratio = |s: &UnusualSegment| {
        if s.baseline > 0.0 { format!("{:.1}× its usual {weekday}", s.devices / s.baseline) } else { String::new() }
    };
    if unusual.is_empty() {
        let _ = writeln!(
            html,
            "<p class=\"nowcast-line\">On {day}, the density on every segment was within its usual range for a \
             {weekday} (no robust z-score beyond ±{UNUSUAL_Z:.0}).</p>"
        );
    } else {
        let parts: Vec<String> = unusual
            .iter()
            .map(|s| {
                format!("{} ({} devices, {}; z = {:+.1})", escape(&s.label), format_value(s.devices), ratio(s), s.z)
            })
            .collect();
        let _ = writeln!(html, "<p class=\"nowcast-line\">Most unusual on {day}: {}.</p>", parts.join("; "));
    }
    html.push_str(
        "<table class=\"nowcast\">\n<thead><tr><th class=\"text\">Segment</th><th>Devices</th>\
         <th>Usual</th><th>z</th></tr></thead>\n<tbody>\n",
    );
    for s in &n.segments {
        let _ = writeln!(
            html,
            "<tr><td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{:+.1}</td></tr>",
            escape(&s.label),
            format_value(s.devices),
            format_value(s.baseline),
            s.z
        );
    }
    html.push_str("</tbody>\n</table>\n");
    let _ = writeln!(
        html,
        "<p class=\"note\">Each segment's devices on the day against the same weekday of the previous {} weeks: \
         \"usual\" is their median, z the difference in robust spreads (beyond ±{UNUSUAL_Z:.0} is unusual). \
         Segments with counts below the privacy threshold are left out.</p>\n</section>",
        n.weeks
    );
}

fn accuracy_section(html: &mut String, a: &Accuracy) {
    let relative = if a.seasonal_naive_mase > 0.0 { Some(a.mase / a.seasonal_naive_mase - 1.0) } else { None };
    let verdict = match relative {
        Some(r) if r < 0.0 => format!(
            "Over {} backtest folds, the errors of {} were {} smaller than those of the seasonal naive forecast \
             (the same weekday of last week).",
            a.folds,
            escape(&a.model),
            format_percent(-r)
        ),
        Some(r) => format!(
            "Over {} backtest folds, the errors of {} were {} larger than those of the seasonal naive forecast \
             (the same weekday of last week): read this forecast with extra caution.",
            a.folds,
            escape(&a.model),
            format_percent(r)
        ),
        None => format!("Over {} backtest folds, both the model and the seasonal naive forecast were exact.", a.folds),
    };
    let _ = writeln!(html, "<p>{verdict}</p>");
    html.push_str(
        "<table class=\"accuracy\">\n<thead><tr><th class=\"text\">Measure</th><th>This model</th>\
         <th>Seasonal naive</th><th>Target</th></tr></thead>\n<tbody>\n",
    );
    let _ = writeln!(
        html,
        "<tr><td class=\"text\">MASE (lower is better)</td><td>{:.2}</td><td>{:.2}</td><td>below seasonal naive</td></tr>",
        a.mase, a.seasonal_naive_mase
    );
    let _ = writeln!(
        html,
        "<tr><td class=\"text\">Actual inside the 80% interval</td><td>{}</td><td>–</td><td>80%</td></tr>",
        format_percent(a.coverage80)
    );
    let _ = writeln!(
        html,
        "<tr><td class=\"text\">Actual inside the 95% interval</td><td>{}</td><td>–</td><td>95%</td></tr>",
        format_percent(a.coverage95)
    );
    let _ = writeln!(
        html,
        "<tr><td class=\"text\">Backtest folds</td><td>{}</td><td>{}</td><td></td></tr>",
        a.folds, a.folds
    );
    html.push_str("</tbody>\n</table>\n");
    html.push_str(
        "<p class=\"note\">MASE: mean absolute error divided by the in-sample error of the seasonal naive forecast \
         (weekly, m = 7), on the same rolling-origin folds. Coverage: the share of backtest days whose actual value \
         fell inside the interval.</p>\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cell_values, route, spec};

    fn date(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 11, day).unwrap()
    }

    fn observed() -> Vec<(NaiveDate, f64)> {
        (1..=16).map(|d| (date(d), 40.0 + 10.0 * f64::from(d % 7))).collect()
    }

    fn forecast(days: u32) -> Vec<ForecastPoint> {
        (0..days)
            .map(|h| {
                let mean = 50.0 + f64::from(h % 7) * 5.0;
                let width = 1.0 + f64::from(h) * 0.05;
                ForecastPoint {
                    date: date(17) + chrono::Days::new(u64::from(h)),
                    mean,
                    q10: mean - 12.0 * width,
                    q50: mean - 1.0,
                    q90: mean + 12.0 * width,
                    lo80: mean - 12.0 * width,
                    hi80: mean + 12.0 * width,
                    lo95: mean - 20.0 * width,
                    hi95: mean + 20.0 * width,
                }
            })
            .collect()
    }

    fn accuracy() -> Accuracy {
        Accuracy {
            model: "ridge-upstream-v1".to_owned(),
            mase: 0.71,
            seasonal_naive_mase: 1.04,
            coverage80: 0.78,
            coverage95: 0.93,
            folds: 12,
        }
    }

    fn briefing<'a>(map: &'a MapSpec<'a>) -> Briefing<'a> {
        Briefing {
            map,
            station: "Ter Apel".to_owned(),
            observed: observed(),
            forecast: forecast(28),
            accuracy: Some(accuracy()),
            nowcast: None,
            alerts: None,
            drivers: None,
            provenance: vec!["Arrivals: registrations at Ter Apel, daily".to_owned()],
            generated_at: "2025-11-17 06:00 UTC".to_owned(),
        }
    }

    /// The rows of the table with `class`.
    fn table_rows<'h>(html: &'h str, class: &str) -> Vec<&'h str> {
        let start = html.find(&format!("<table class=\"{class}\">")).expect("the table");
        let table = &html[start..start + html[start..].find("</table>").unwrap()];
        let body = &table[table.find("<tbody>").unwrap()..];
        body.split("<tr").skip(1).collect()
    }

    #[test]
    fn page_is_self_contained_and_printable() {
        let route = route("western-balkans");
        let map = spec(&route, cell_values(&route, 6, 1));
        let html = briefing_html(&briefing(&map)).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        for forbidden in ["http://", "https://", "://", "<script", "<link", "@import", "src=", "<img", "<iframe"] {
            assert!(!html.contains(forbidden), "the page contains '{forbidden}'");
        }
        // Every url() reference points inside the page.
        for (i, _) in html.match_indices("url(") {
            assert_eq!(&html[i..i + 5], "url(#", "external url() at {i}");
        }
        assert!(html.contains("@media print") && html.contains("size: A4"));
        assert!(html.contains("<svg class=\"map\"") && html.contains("<svg class=\"fan-chart\""));
        for text in ["2025-11-17", "density v42, arrivals v7", "ridge-upstream-v1", "78% of backtest days", "Ter Apel"]
        {
            assert!(html.contains(text), "the page lacks '{text}'");
        }
    }

    #[test]
    fn the_nowcast_names_the_unusual_segments() {
        let route = route("channel");
        let map = spec(&route, Vec::new());
        let segment = |label: &str, devices: f64, z: f64| UnusualSegment {
            label: label.to_owned(),
            devices,
            baseline: 1000.0,
            z,
        };
        let mut page = briefing(&map);
        let date = NaiveDate::from_ymd_opt(2025, 11, 16).unwrap();
        page.nowcast = Some(Nowcast {
            date,
            weeks: 8,
            segments: vec![segment("Calais – Dover", 2500.0, 7.31), segment("Lille – Calais <", 900.0, -1.0)],
        });
        let html = briefing_html(&page).unwrap();
        assert!(
            html.contains(
                "Most unusual on Sunday 2025-11-16: Calais – Dover (2500 devices, 2.5× its usual Sunday; z = +7.3)."
            ),
            "{html}"
        );
        let rows = table_rows(&html, "nowcast");
        assert_eq!(rows.len(), 2);
        assert!(rows[1].contains("Lille – Calais &lt;</td><td>900</td><td>1000</td><td>-1.0</td>"), "{}", rows[1]);

        page.nowcast.as_mut().unwrap().segments.truncate(0);
        page.nowcast.as_mut().unwrap().segments.push(segment("Calais – Dover", 1010.0, 0.3));
        let html = briefing_html(&page).unwrap();
        assert!(html.contains("within its usual range for a Sunday"), "{html}");

        page.nowcast.as_mut().unwrap().segments[0].z = f64::NAN;
        assert!(matches!(briefing_html(&page), Err(MapError::NonFiniteValue { series: "nowcast", field: "z", .. })));
    }

    #[test]
    fn the_drivers_name_the_segment_that_adds_most_and_sum_in_the_chart() {
        let route = route("western-balkans");
        let map = spec(&route, Vec::new());
        let mut page = briefing(&map);
        let driver = |label: &str, lead_days, part| Driver { label: label.to_owned(), lead_days, part };
        page.drivers = Some(Drivers {
            days: 14,
            level: 700.0,
            segments: vec![driver("Belgrade – Horgoš", 12, 180.0), driver("Skopje – Belgrade", 15, -20.0)],
            rest: 4.0,
        });
        let html = briefing_html(&page).unwrap();
        assert!(
            html.contains(
                "Upstream density adds 160 arrivals at Ter Apel over the next 14 days; most of the expected \
                 rise comes from Belgrade – Horgoš, 12 days upstream (180 arrivals)."
            ),
            "{html}"
        );
        assert_eq!(html.matches("class=\"driver\"").count(), 4);
        assert!(html.contains(">+180</text>") && html.contains(">-20</text>"));
        page.drivers = Some(Drivers { days: 14, level: 700.0, segments: Vec::new(), rest: 0.0 });
        assert!(briefing_html(&page).unwrap().contains("no upstream signal entered it"));
        page.drivers = Some(Drivers { days: 14, level: f64::NAN, segments: Vec::new(), rest: 0.0 });
        assert!(matches!(briefing_html(&page), Err(MapError::NonFiniteValue { series: "drivers", .. })));
    }

    #[test]
    fn open_capacity_alerts_are_named_with_their_chance() {
        let route = route("channel");
        let map = spec(&route, Vec::new());
        let mut page = briefing(&map);
        let date = NaiveDate::from_ymd_opt(2025, 11, 18).unwrap();
        let alert = |station: &str, weekly, probability| CapacityAlert {
            station: station.to_owned(),
            date,
            weekly,
            capacity: 900.0,
            probability,
            expected_excess: 120.0,
        };
        page.alerts =
            Some(CapacityAlerts { level: 0.8, open: vec![alert("Dover <", false, 0.86), alert("Dover", true, 0.93)] });
        let html = briefing_html(&page).unwrap();
        assert!(
            html.contains(
                "2 open alerts (a chance of 80% or more that arrivals exceed capacity). Most likely: Dover \
                 may exceed its seven-day capacity of 900 in the seven days to Tue 2025-11-18 (93% chance; 120 \
                 arrivals expected above it)."
            ),
            "{html}"
        );
        let rows = table_rows(&html, "alerts");
        assert_eq!(rows.len(), 2);
        assert!(
            rows[0]
                .contains("Dover &lt;</td><td class=\"text\">on Tue 2025-11-18</td><td>900 (daily)</td><td>86%</td>"),
            "{}",
            rows[0]
        );
        page.alerts = Some(CapacityAlerts { level: 0.8, open: Vec::new() });
        assert!(briefing_html(&page).unwrap().contains("No open alert"));
        page.alerts = Some(CapacityAlerts { level: 0.8, open: vec![alert("Dover", false, f64::NAN)] });
        assert!(matches!(briefing_html(&page), Err(MapError::NonFiniteValue { series: "alerts", .. })));
    }

    #[test]
    fn table_shows_the_next_14_days_with_the_map_day_marked() {
        let route = route("channel");
        let map = spec(&route, Vec::new());
        let html = briefing_html(&briefing(&map)).unwrap();
        let rows = table_rows(&html, "forecast");
        assert_eq!(rows.len(), TABLE_DAYS);
        assert!(rows[0].starts_with(
            " class=\"map-date\"><td class=\"text\">2025-11-17</td><td class=\"text\">Mon</td><td>1</td>"
        ));
        assert!(rows[13].contains("2025-11-30"));
        assert_eq!(rows.iter().filter(|r| r.contains("map-date")).count(), 1);
        // Mean, median, 80% and 95% intervals of the first day.
        assert!(rows[0].contains("<td>50</td><td>49</td><td>38 – 62</td><td>30 – 70</td>"), "{}", rows[0]);

        let mut short = briefing(&map);
        short.forecast = forecast(5);
        let html = briefing_html(&short).unwrap();
        assert_eq!(table_rows(&html, "forecast").len(), 5);
    }

    #[test]
    fn fan_chart_has_both_bands_the_mean_and_the_observed_series() {
        let route = route("channel");
        let map = spec(&route, Vec::new());
        let html = briefing_html(&briefing(&map)).unwrap();
        let points = |class: &str| {
            let start = html.find(&format!("class=\"{class}\" points=\"")).unwrap_or_else(|| panic!("{class}"));
            let rest = &html[start + class.len() + 17..];
            rest[..rest.find('"').unwrap()].split(' ').count()
        };
        assert_eq!(points("band-95"), 2 * 28);
        assert_eq!(points("band-80"), 2 * 28);
        assert_eq!(points("forecast-mean"), 28);
        assert_eq!(points("observed"), 16);
        assert!(html.contains("80% interval") && html.contains("95% interval"));
    }

    #[test]
    fn accuracy_is_shown_beside_seasonal_naive() {
        let route = route("channel");
        let map = spec(&route, Vec::new());
        let html = briefing_html(&briefing(&map)).unwrap();
        let rows = table_rows(&html, "accuracy");
        assert!(rows[0].contains("<td>0.71</td><td>1.04</td>"), "{}", rows[0]);
        assert!(rows[1].contains("<td>78%</td>") && rows[2].contains("<td>93%</td>"));
        assert!(html.contains("Over 12 backtest folds, the errors of ridge-upstream-v1 were 32% smaller"));

        let mut worse = briefing(&map);
        worse.accuracy = Some(Accuracy { mase: 1.3, ..accuracy() });
        assert!(briefing_html(&worse).unwrap().contains("25% larger"));
        let mut none = briefing(&map);
        none.accuracy = None;
        let html = briefing_html(&none).unwrap();
        assert!(html.contains("No backtest of this model is available"));
        assert!(!html.contains("<table class=\"accuracy\">"));
    }

    #[test]
    fn user_text_is_escaped() {
        let route = route("channel");
        let mut map = spec(&route, Vec::new());
        map.title = "Dover <b>bold</b> & \"quoted\"".to_owned();
        map.vintage = "<img src=x onerror=alert(1)>".to_owned();
        let mut b = briefing(&map);
        b.station = "Dover <script>alert('x')</script>".to_owned();
        b.provenance = vec!["<a href=\"javascript:alert(1)\">click</a>".to_owned()];
        b.generated_at = "</footer><script>".to_owned();
        b.accuracy = Some(Accuracy { model: "<i>m</i>".to_owned(), ..accuracy() });
        let html = briefing_html(&b).unwrap();
        for raw in ["<b>bold</b>", "<script", "<img", "<a href", "<i>m</i>", "</footer><script>"] {
            assert!(!html.contains(raw), "'{raw}' was not escaped");
        }
        assert!(html.contains("Dover &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;"));
        assert!(html.contains("Dover &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("&lt;a href=&quot;javascript:alert(1)&quot;&gt;click&lt;/a&gt;"));
    }

    #[test]
    fn invalid_series_are_rejected() {
        let route = route("channel");
        let map = spec(&route, Vec::new());
        let check = |change: &dyn Fn(&mut Briefing), expected: &str| {
            let mut b = briefing(&map);
            change(&mut b);
            let error = briefing_html(&b).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        };
        check(&|b| b.forecast.clear(), "has no forecast days");
        check(&|b| b.forecast[3].hi95 = f64::NAN, "the forecast value 'hi95' on 2025-11-20 is not a finite number");
        check(&|b| b.observed[2].1 = f64::INFINITY, "the observed value 'value' on 2025-11-03");
        check(
            &|b| b.observed.swap(4, 5),
            "the observed dates must strictly increase, but 2025-11-05 follows 2025-11-06",
        );
        check(&|b| b.forecast[1].date = date(17), "forecast dates must strictly increase");
        check(&|b| b.accuracy.as_mut().unwrap().coverage80 = 80.0, "'coverage80' is 80");
        check(&|b| b.accuracy.as_mut().unwrap().mase = f64::NAN, "'mase' is NaN");
    }
}
