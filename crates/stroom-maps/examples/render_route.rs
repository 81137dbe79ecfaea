//! Renders the map and briefing of a shipped route with synthetic cell values
//! and reports how long each output takes to make.
//!
//! ```sh
//! cargo run --release -p stroom-maps --example render_route -- western-balkans 7 2 [OUTPUT_FOLDER]
//! ```
//!
//! Arguments: route id, H3 resolution, buffer rings, and optionally a folder
//! to write `map.geojson`, `map.svg`, `map.png` and `briefing.html` into.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use stroom_core::{Resolution, Route};
use stroom_maps::{Accuracy, Briefing, CellValue, ForecastPoint, Layer, MapSpec};

const ROUTES: [(&str, &str); 4] = [
    ("central-mediterranean", include_str!("../../../data/routes/central-mediterranean.geojson")),
    ("channel", include_str!("../../../data/routes/channel.geojson")),
    ("eastern-land-border", include_str!("../../../data/routes/eastern-land-border.geojson")),
    ("western-balkans", include_str!("../../../data/routes/western-balkans.geojson")),
];

/// Runs `make` `runs` times and returns the result with the fastest and median times.
fn timed<T>(runs: usize, mut make: impl FnMut() -> T) -> (T, Duration, Duration) {
    let mut times = Vec::with_capacity(runs);
    let mut result = None;
    for _ in 0..runs {
        let start = Instant::now();
        result = Some(make());
        times.push(start.elapsed());
    }
    times.sort();
    (result.expect("at least one run"), times[0], times[runs / 2])
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let route_id = args.first().map_or("western-balkans", String::as_str);
    let resolution: i64 = args.get(1).map_or(Ok(7), |a| a.parse())?;
    let buffer_rings: u32 = args.get(2).map_or(Ok(2), |a| a.parse())?;
    let output = args.get(3);

    let text = ROUTES.iter().find(|(id, _)| *id == route_id).map(|(_, text)| *text);
    let text = text.ok_or_else(|| anyhow::anyhow!("unknown route '{route_id}'"))?;
    let route = Route::from_geojson(route_id, text)?;
    let route_cells = route.cells(Resolution::new(resolution)?, buffer_rings)?;

    // Synthetic values: a wave along the route, every ninth cell suppressed,
    // every thirteenth without a forecast.
    let mut cells = Vec::new();
    for segment in &route_cells.segments {
        for &cell in &segment.cells {
            let i = cells.len() as f64;
            let mean = 5.0 + 150.0 * (1.0 + (i * 0.004).sin()) * (1.0 + 0.4 * (i * 0.05).cos());
            let has_forecast = cells.len() % 13 != 7;
            cells.push(CellValue {
                cell,
                segment: segment.segment_id.clone(),
                mean: has_forecast.then_some(mean),
                q10: has_forecast.then_some(mean * 0.6),
                q90: has_forecast.then_some(mean * 1.5),
                observed: None,
                z: None,
                suppressed: cells.len() % 9 == 4,
            });
        }
    }
    let forecast_date = NaiveDate::from_ymd_opt(2025, 11, 17).expect("a valid date");
    let spec = MapSpec {
        route: &route,
        title: format!("{}: forecast devices along the route", route.name),
        forecast_date,
        vintage: "density v42, arrivals v7 (data to 2025-11-16)".to_owned(),
        model: "synthetic example".to_owned(),
        uncertainty: "Illustration only: the values are synthetic.".to_owned(),
        value_label: "devices per cell and day".to_owned(),
        cells,
        alert_stations: Vec::new(),
        layer: Layer::Forecast,
    };
    println!(
        "{route_id}: resolution {resolution}, buffer {buffer_rings}, {} cells ({} distinct)",
        spec.cells.len(),
        route_cells.distinct_cells()
    );

    let runs = 7;
    let (geojson, fastest, median) = timed(runs, || stroom_maps::geojson(&spec));
    println!("geojson       {:>8.1} ms fastest, {:>8.1} ms median, {} bytes", ms(fastest), ms(median), geojson.len());
    let (svg, fastest, median) = timed(runs, || stroom_maps::svg(&spec));
    println!("svg           {:>8.1} ms fastest, {:>8.1} ms median, {} bytes", ms(fastest), ms(median), svg.len());
    for width in [1200, 2400] {
        let (png, fastest, median) = timed(runs, || stroom_maps::png(&spec, width));
        let png = png?;
        println!(
            "png {width:>5} px {:>8.1} ms fastest, {:>8.1} ms median, {} bytes",
            ms(fastest),
            ms(median),
            png.len()
        );
        if let (Some(folder), 1200) = (output, width) {
            std::fs::write(format!("{folder}/map.png"), &png)?;
        }
    }

    let forecast: Vec<ForecastPoint> = (0..28u32)
        .map(|h| {
            let mean = 60.0 + 15.0 * (f64::from(h) * 0.9).sin();
            let spread = 10.0 + f64::from(h);
            ForecastPoint {
                date: forecast_date + chrono::Days::new(u64::from(h)),
                mean,
                q10: (mean - 1.28 * spread).max(0.0),
                q50: mean,
                q90: mean + 1.28 * spread,
                lo80: (mean - 1.28 * spread).max(0.0),
                hi80: mean + 1.28 * spread,
                lo95: (mean - 1.96 * spread).max(0.0),
                hi95: mean + 1.96 * spread,
            }
        })
        .collect();
    let observed = (1..=42u32)
        .map(|d| (forecast_date - chrono::Days::new(u64::from(43 - d)), 55.0 + 12.0 * (f64::from(d) * 0.9).sin()))
        .collect();
    let briefing = Briefing {
        map: &spec,
        station: route.destination().name.clone(),
        observed,
        forecast,
        accuracy: Some(Accuracy {
            model: "synthetic example".to_owned(),
            mase: 0.74,
            seasonal_naive_mase: 1.02,
            coverage80: 0.79,
            coverage95: 0.94,
            folds: 12,
        }),
        nowcast: None,
        alerts: None,
        drivers: None,
        provenance: vec!["Synthetic values made by the stroom-maps example.".to_owned()],
        generated_at: "2025-11-17 06:00 UTC".to_owned(),
    };
    let (html, fastest, median) = timed(runs, || stroom_maps::briefing_html(&briefing));
    let html = html?;
    println!("briefing html {:>8.1} ms fastest, {:>8.1} ms median, {} bytes", ms(fastest), ms(median), html.len());

    if let Some(folder) = output {
        std::fs::write(format!("{folder}/map.geojson"), geojson)?;
        std::fs::write(format!("{folder}/map.svg"), svg)?;
        std::fs::write(format!("{folder}/briefing.html"), html)?;
        println!("Wrote map.geojson, map.svg, map.png and briefing.html to {folder}.");
    }
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
