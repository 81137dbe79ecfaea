//! The page of a closure scenario: what is assumed, then for each station
//! it touches the baseline forecast and the scenario in one chart and one
//! table, side by side.

use std::fmt::Write;

use chrono::NaiveDate;

use crate::briefing::{STYLE, check_points};
use crate::chart::fan_chart;
use crate::text::{escape, format_value};
use crate::{ForecastPoint, MapError};

/// One station of a scenario page.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioTarget {
    /// The station's name.
    pub station: String,
    /// What the closure does to it, e.g. "closed route".
    pub role: String,
    /// The recent observed series, dates strictly increasing.
    pub observed: Vec<(NaiveDate, f64)>,
    /// The baseline forecast and the scenario, on the same days.
    pub baseline: Vec<ForecastPoint>,
    pub scenario: Vec<ForecastPoint>,
}

/// Everything on a scenario page.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioPage {
    /// e.g. "Western Balkans: Horgoš to Budapest closed from 2024-06-01".
    pub title: String,
    /// The closure, its parameters and what the scenario assumes, one
    /// statement each.
    pub assumptions: Vec<String>,
    pub targets: Vec<ScenarioTarget>,
    /// Run ids, vintage and model, one statement each.
    pub provenance: Vec<String>,
    /// When the page was made, as the caller wants it shown.
    pub generated_at: String,
}

/// The scenario page as one self-contained HTML file.
pub fn scenario_html(page: &ScenarioPage) -> Result<String, MapError> {
    for t in &page.targets {
        if t.baseline.is_empty() {
            return Err(MapError::EmptyForecast { station: t.station.clone() });
        }
        check_points("baseline", &t.baseline)?;
        check_points("scenario", &t.scenario)?;
        if t.scenario.len() != t.baseline.len() || t.scenario.iter().zip(&t.baseline).any(|(s, b)| s.date != b.date) {
            return Err(MapError::UnorderedDates {
                series: "scenario",
                previous: t.baseline[0].date,
                date: t.scenario.first().map_or(t.baseline[0].date, |s| s.date),
            });
        }
    }
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"stroom\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&page.title)
    );
    let _ = writeln!(html, "<header>\n<h1>{}</h1>", escape(&page.title));
    html.push_str("<p class=\"subtitle\">Closure scenario beside the baseline forecast made from the same data</p>\n");
    html.push_str("<ul class=\"assumptions\">\n");
    for a in &page.assumptions {
        let _ = writeln!(html, "<li>{}</li>", escape(a));
    }
    html.push_str("</ul>\n</header>\n");
    for t in &page.targets {
        let _ = writeln!(
            html,
            "<section class=\"scenario-target\">\n<h2>{} ({})</h2>",
            escape(&t.station),
            escape(&t.role)
        );
        let base: f64 = t.baseline.iter().map(|p| p.mean).sum();
        let scen: f64 = t.scenario.iter().map(|p| p.mean).sum();
        let _ = writeln!(
            html,
            "<p>Over the {} days: {} in the baseline, {} in the scenario ({}{}).</p>",
            t.baseline.len(),
            format_value(base),
            format_value(scen),
            if scen >= base { "+" } else { "−" },
            format_value((scen - base).abs())
        );
        html.push_str(&fan_chart(&t.station, &t.observed, &t.baseline, Some(&t.scenario)));
        html.push_str(
            "<table class=\"scenario\">\n<thead><tr><th class=\"text\">Date</th><th>Baseline</th>\
             <th>80% interval</th><th>Scenario</th><th>80% interval</th><th>Change</th></tr></thead>\n<tbody>\n",
        );
        for (b, s) in t.baseline.iter().zip(&t.scenario) {
            let change = s.mean - b.mean;
            let _ = writeln!(
                html,
                "<tr><td class=\"text\">{}</td><td>{}</td><td>{} – {}</td><td>{}</td><td>{} – {}</td><td>{}{}</td></tr>",
                b.date.format("%a %Y-%m-%d"),
                format_value(b.mean),
                format_value(b.lo80),
                format_value(b.hi80),
                format_value(s.mean),
                format_value(s.lo80),
                format_value(s.hi80),
                if change >= 0.0 { "+" } else { "−" },
                format_value(change.abs())
            );
        }
        html.push_str("</tbody>\n</table>\n</section>\n");
    }
    html.push_str("<section class=\"provenance\">\n<h2>Data and provenance</h2>\n<ul>\n");
    for p in &page.provenance {
        let _ = writeln!(html, "<li>{}</li>", escape(p));
    }
    html.push_str("</ul>\n</section>\n");
    let _ = writeln!(html, "<footer>Generated {} by stroom.</footer>\n</body>\n</html>", escape(&page.generated_at));
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(day: u32, mean: f64) -> ForecastPoint {
        ForecastPoint {
            date: NaiveDate::from_ymd_opt(2024, 6, day).unwrap(),
            mean,
            q10: mean * 0.8,
            q50: mean,
            q90: mean * 1.2,
            lo80: mean * 0.8,
            hi80: mean * 1.2,
            lo95: mean * 0.6,
            hi95: mean * 1.4,
        }
    }

    fn page() -> ScenarioPage {
        ScenarioPage {
            title: "Channel: <closure>".into(),
            assumptions: vec!["5% a day give up".into()],
            targets: vec![ScenarioTarget {
                station: "Dover".into(),
                role: "receiving route".into(),
                observed: vec![(NaiveDate::from_ymd_opt(2024, 5, 31).unwrap(), 90.0)],
                baseline: (1..=14).map(|d| point(d, 90.0)).collect(),
                scenario: (1..=14).map(|d| point(d, 90.0 + f64::from(d))).collect(),
            }],
            provenance: vec!["run x".into()],
            generated_at: "now".into(),
        }
    }

    #[test]
    fn a_page_draws_both_forecasts_and_escapes_text() {
        let html = scenario_html(&page()).unwrap();
        assert!(html.contains("class=\"scenario-mean\"") && html.contains("class=\"forecast-mean\""));
        assert!(html.contains("Channel: &lt;closure&gt;"));
        // 14 days, the scenario 1+2+…+14 = 105 above the baseline.
        assert!(html.contains("(+105)"), "{html}");
        assert_eq!(html.matches("<tr><td class=\"text\">").count(), 14);
    }

    #[test]
    fn a_scenario_on_other_days_is_refused() {
        let mut p = page();
        p.targets[0].scenario.pop();
        assert!(scenario_html(&p).is_err());
        let mut p = page();
        p.targets[0].baseline[3].hi80 = f64::NAN;
        assert!(matches!(scenario_html(&p), Err(MapError::NonFiniteValue { series: "baseline", .. })));
    }
}
