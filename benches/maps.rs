//! Map rendering: the PNG (1200 px wide) and SVG of every shipped route at
//! the route resolution (7) with a two-ring buffer, every cell carrying a
//! value (fixed, deterministic values; every ninth cell suppressed). The
//! target is a PNG under 200 ms per route.

use criterion::{Criterion, criterion_group, criterion_main};
use stroom_core::{DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution, Route};
use stroom_maps::{CellValue, Layer, MapSpec};

const ROUTES: [(&str, &str); 4] = [
    ("central-mediterranean", include_str!("../data/routes/central-mediterranean.geojson")),
    ("channel", include_str!("../data/routes/channel.geojson")),
    ("eastern-land-border", include_str!("../data/routes/eastern-land-border.geojson")),
    ("western-balkans", include_str!("../data/routes/western-balkans.geojson")),
];

fn spec(route: &Route) -> MapSpec<'_> {
    let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION)).expect("a resolution");
    let cells = route.cells(resolution, DEFAULT_BUFFER_RINGS).expect("route cells");
    let mut values = Vec::new();
    for segment in &cells.segments {
        for &cell in &segment.cells {
            let i = values.len() as f64;
            let mean = 15.0 + 400.0 * (1.0 + (i * 0.01).sin());
            values.push(CellValue {
                cell,
                segment: segment.segment_id.clone(),
                mean: Some(mean),
                q10: Some(mean * 0.7),
                q90: Some(mean * 1.4),
                observed: None,
                z: None,
                suppressed: values.len() % 9 == 4,
            });
        }
    }
    MapSpec {
        route,
        title: format!("{}: expected device density", route.name),
        forecast_date: chrono::NaiveDate::from_ymd_opt(2024, 12, 1).expect("a date"),
        vintage: "density v3, arrivals v2".into(),
        model: "benchmark values".into(),
        uncertainty: "Benchmark values, not a forecast.".into(),
        value_label: "devices per cell and day".into(),
        cells: values,
        alert_stations: Vec::new(),
        layer: Layer::Forecast,
    }
}

fn maps(c: &mut Criterion) {
    let routes: Vec<Route> = ROUTES.iter().map(|(id, text)| Route::from_geojson(id, text).expect("a route")).collect();
    let mut group = c.benchmark_group("maps");
    group.sample_size(20);
    for route in &routes {
        let spec = spec(route);
        let cells = spec.cells.len();
        group.bench_function(format!("png/{}/{cells}_cells/1200px", route.id), |b| {
            b.iter(|| stroom_maps::png(&spec, 1200).expect("a png"))
        });
        group.bench_function(format!("svg/{}/{cells}_cells", route.id), |b| b.iter(|| stroom_maps::svg(&spec)));
    }
    group.finish();
}

criterion_group!(benches, maps);
criterion_main!(benches);
