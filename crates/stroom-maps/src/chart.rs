//! The charts of the briefing page, as inline SVG: the fan chart (the recent
//! observed series, then the forecast mean with its 80% and 95% prediction
//! intervals) and the bar chart of what the forecast is made of.

use std::fmt::Write;

use chrono::{Datelike, NaiveDate};

use crate::ForecastPoint;
use crate::map::FONT_FAMILY;
use crate::text::{escape, format_value};

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 44.0;

const OBSERVED: &str = "#1a1a1a";
const MEAN: &str = "#08519c";
const BAND_80: &str = "#6baed6";
const BAND_95: &str = "#c6dbef";
const GRID: &str = "#e2e2e2";
const AXIS: &str = "#555555";

/// A "nice" step (1, 2, 2.5 or 5 times a power of ten) near `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powi(raw.log10().floor() as i32);
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 2.5 {
        2.5
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Colour of a scenario drawn over the forecast.
const SCENARIO: &str = "#d95f02";

/// The fan chart for `station`, with a scenario's mean and 80% interval
/// drawn over the forecast when `scenario` is given. Callers have checked
/// that the series are finite and their dates increase; `forecast` is not
/// empty.
pub(crate) fn fan_chart(
    station: &str,
    observed: &[(NaiveDate, f64)],
    forecast: &[ForecastPoint],
    scenario: Option<&[ForecastPoint]>,
) -> String {
    let first_date = observed.first().map_or(forecast[0].date, |o| o.0.min(forecast[0].date));
    let last_date =
        observed.last().map_or(forecast[forecast.len() - 1].date, |o| o.0.max(forecast[forecast.len() - 1].date));
    let days = ((last_date - first_date).num_days() as f64).max(1.0);

    let values = observed.iter().map(|o| o.1).chain(
        forecast
            .iter()
            .chain(scenario.unwrap_or_default())
            .flat_map(|f| [f.mean, f.q50, f.lo95, f.hi95, f.lo80, f.hi80]),
    );
    let (low, high) = values.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let step = nice_step((high - low) / 5.0);
    let y_min = (low / step).floor() * step;
    let y_max = ((high / step).ceil() * step).max(y_min + step);

    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |date: NaiveDate| LEFT + (date - first_date).num_days() as f64 / days * plot_w;
    let y = |value: f64| TOP + (y_max - value) / (y_max - y_min) * plot_h;

    let mut svg = String::with_capacity(16 * 1024);
    let title = format!("Observed and forecast values at {station}");
    let _ = writeln!(
        svg,
        r#"<svg class="fan-chart" width="100%" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT_FAMILY}" font-size="12" role="img" aria-labelledby="stroom-chart-title"><title id="stroom-chart-title">{}</title>"#,
        escape(&title)
    );
    let _ = writeln!(svg, r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##);

    // Horizontal grid and value axis.
    let mut tick = y_min;
    while tick <= y_max + step * 1e-9 {
        let ty = y(tick);
        let _ = writeln!(
            svg,
            r#"<line x1="{LEFT}" y1="{ty:.2}" x2="{:.2}" y2="{ty:.2}" stroke="{GRID}" stroke-width="1"/><text x="{:.2}" y="{:.2}" text-anchor="end" fill="{AXIS}">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 8.0,
            ty + 4.0,
            format_value(tick)
        );
        tick += step;
    }

    // Date axis: ticks every 1, 2, 7, 14 or 28 days, at most ten.
    let tick_days = [1, 2, 7, 14, 28, 56, 91, 182, 364].into_iter().find(|&d| days / d as f64 <= 10.0).unwrap_or(364);
    // Weekly and coarser ticks fall on Mondays.
    let mut date = first_date;
    if tick_days % 7 == 0 {
        date = date + chrono::Days::new(u64::from((7 - date.weekday().num_days_from_monday()) % 7));
    }
    while date <= last_date {
        let tx = x(date);
        let _ = writeln!(
            svg,
            r#"<line x1="{tx:.2}" y1="{:.2}" x2="{tx:.2}" y2="{:.2}" stroke="{AXIS}" stroke-width="1"/><text x="{tx:.2}" y="{:.2}" text-anchor="middle" fill="{AXIS}">{}</text>"#,
            TOP + plot_h,
            TOP + plot_h + 5.0,
            TOP + plot_h + 19.0,
            date.format("%d %b")
        );
        date = date + chrono::Days::new(tick_days);
    }
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{:.2}" x2="{:.2}" y2="{:.2}" stroke="{AXIS}" stroke-width="1"/>"#,
        TOP + plot_h,
        WIDTH - RIGHT,
        TOP + plot_h
    );

    // The bands: upper edge forwards, lower edge backwards.
    let band_of = |forecast: &[ForecastPoint], lower: fn(&ForecastPoint) -> f64, upper: fn(&ForecastPoint) -> f64| {
        let mut points = String::new();
        for p in forecast {
            let _ = write!(points, "{:.2},{:.2} ", x(p.date), y(upper(p)));
        }
        for p in forecast.iter().rev() {
            let _ = write!(points, "{:.2},{:.2} ", x(p.date), y(lower(p)));
        }
        points.trim_end().to_owned()
    };
    let band = |lower, upper| band_of(forecast, lower, upper);
    let _ = writeln!(svg, r#"<polygon class="band-95" points="{}" fill="{BAND_95}"/>"#, band(|p| p.lo95, |p| p.hi95));
    let _ = writeln!(svg, r#"<polygon class="band-80" points="{}" fill="{BAND_80}"/>"#, band(|p| p.lo80, |p| p.hi80));
    let line = |points: &mut dyn Iterator<Item = (NaiveDate, f64)>| {
        points.map(|(d, v)| format!("{:.2},{:.2}", x(d), y(v))).collect::<Vec<_>>().join(" ")
    };
    let _ = writeln!(
        svg,
        r#"<polyline class="forecast-mean" points="{}" fill="none" stroke="{MEAN}" stroke-width="2.2" stroke-dasharray="6 3"/>"#,
        line(&mut forecast.iter().map(|p| (p.date, p.mean)))
    );
    if let Some(scenario) = scenario {
        let _ = writeln!(
            svg,
            r#"<polygon class="scenario-80" points="{}" fill="{SCENARIO}" fill-opacity="0.18" stroke="{SCENARIO}" stroke-width="1"/>"#,
            band_of(scenario, |p| p.lo80, |p| p.hi80)
        );
        let _ = writeln!(
            svg,
            r#"<polyline class="scenario-mean" points="{}" fill="none" stroke="{SCENARIO}" stroke-width="2.4"/>"#,
            line(&mut scenario.iter().map(|p| (p.date, p.mean)))
        );
    }
    if let Some(&(last_observed, _)) = observed.last() {
        let ox = x(last_observed);
        let _ = writeln!(
            svg,
            r#"<line x1="{ox:.2}" y1="{TOP}" x2="{ox:.2}" y2="{:.2}" stroke="{AXIS}" stroke-width="1" stroke-dasharray="3 3"/><text x="{:.2}" y="{:.2}" fill="{AXIS}">forecast →</text>"#,
            TOP + plot_h,
            ox + 4.0,
            TOP + 12.0
        );
        let _ = writeln!(
            svg,
            r#"<polyline class="observed" points="{}" fill="none" stroke="{OBSERVED}" stroke-width="1.6"/>"#,
            line(&mut observed.iter().copied())
        );
        if observed.len() <= 90 {
            for &(d, v) in observed {
                let _ = write!(svg, r#"<circle cx="{:.2}" cy="{:.2}" r="2" fill="{OBSERVED}"/>"#, x(d), y(v));
            }
            svg.push('\n');
        }
    }

    // Legend above the plot.
    let mut lx = LEFT;
    let ly = 14.0;
    let mut items: Vec<(&str, String)> = vec![
        ("Observed", format!(r#"<line x1="0" y1="0" x2="22" y2="0" stroke="{OBSERVED}" stroke-width="1.6"/>"#)),
        (
            "Forecast (mean)",
            format!(
                r#"<line x1="0" y1="0" x2="22" y2="0" stroke="{MEAN}" stroke-width="2.2" stroke-dasharray="6 3"/>"#
            ),
        ),
        ("80% interval", format!(r#"<rect x="0" y="-6" width="22" height="12" fill="{BAND_80}"/>"#)),
        ("95% interval", format!(r#"<rect x="0" y="-6" width="22" height="12" fill="{BAND_95}"/>"#)),
    ];
    if scenario.is_some() {
        items.push((
            "Scenario (mean, 80%)",
            format!(
                r#"<rect x="0" y="-6" width="22" height="12" fill="{SCENARIO}" fill-opacity="0.18"/><line x1="0" y1="0" x2="22" y2="0" stroke="{SCENARIO}" stroke-width="2.4"/>"#
            ),
        ));
    }
    for (label, swatch) in items {
        let _ = writeln!(
            svg,
            r#"<g transform="translate({lx:.2} {ly})">{swatch}<text x="28" y="4" fill="{OBSERVED}">{label}</text></g>"#
        );
        lx += 28.0 + label.chars().count() as f64 * 7.2 + 22.0;
    }
    svg.push_str("</svg>\n");
    svg
}

/// Bar colours of the drivers chart: adds, removes.
const ADDS: &str = "#3b528b";
const REMOVES: &str = "#c0392b";

/// A horizontal bar chart of `bars` (label, value): bars grow right from a
/// zero line for positive values and left for negative ones, each labelled
/// with its value. Callers have checked that the values are finite.
pub(crate) fn bar_chart(title: &str, bars: &[(String, f64)]) -> String {
    const LABELS: f64 = 300.0;
    const ROW: f64 = 26.0;
    let height = TOP + ROW * bars.len() as f64 + 16.0;
    let span = bars.iter().map(|(_, v)| v.abs()).fold(0.0, f64::max).max(1e-9);
    let has_negative = bars.iter().any(|(_, v)| *v < 0.0);
    let plot = WIDTH - LABELS - RIGHT - 70.0;
    // Room on both sides when a bar is negative.
    let (zero, unit) = if has_negative { (LABELS + plot / 2.0, plot / 2.0 / span) } else { (LABELS, plot / span) };
    let mut svg = String::with_capacity(1024 + 256 * bars.len());
    let _ = write!(
        svg,
        r#"<svg class="drivers-chart" width="100%" viewBox="0 0 {WIDTH} {height}" font-family="{FONT_FAMILY}" font-size="12" role="img" aria-labelledby="stroom-drivers-title"><title id="stroom-drivers-title">{}</title>"#,
        escape(title)
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let width = value.abs() * unit;
        let x = if *value < 0.0 { zero - width } else { zero };
        let fill = if *value < 0.0 { REMOVES } else { ADDS };
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{OBSERVED}">{}</text><rect class="driver" x="{x:.1}" y="{:.1}" width="{width:.1}" height="{:.1}" fill="{fill}"/>"#,
            LABELS - 8.0,
            y + ROW * 0.62,
            escape(label),
            y + 4.0,
            ROW - 8.0
        );
        let (tx, anchor) = if *value < 0.0 { (x - 4.0, "end") } else { (x + width + 4.0, "start") };
        let _ = write!(
            svg,
            r#"<text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" fill="{AXIS}">{}{}</text>"#,
            y + ROW * 0.62,
            if *value > 0.0 { "+" } else { "" },
            format_value(*value)
        );
    }
    let _ = write!(
        svg,
        r#"<path d="M{zero:.1} {:.1}V{:.1}" stroke="{AXIS}" stroke-width="1"/><text x="{LEFT}" y="22" fill="{AXIS}">{}</text></svg>"#,
        TOP - 4.0,
        height - 12.0,
        escape(title)
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        let check = |raw: f64, expected: f64| assert_eq!(nice_step(raw), expected, "{raw}");
        check(0.0, 1.0);
        check(0.7, 1.0);
        check(1.3, 2.0);
        check(2.2, 2.5);
        check(34.0, 50.0);
        check(61.0, 100.0);
    }
}
