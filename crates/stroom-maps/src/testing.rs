//! Shared test data: the shipped routes and deterministic cell values.

use stroom_core::{Resolution, Route};

use crate::{CellValue, Layer, MapSpec};

/// A shipped route, by id.
pub(crate) fn route(id: &str) -> Route {
    let text = match id {
        "central-mediterranean" => include_str!("../../../data/routes/central-mediterranean.geojson"),
        "channel" => include_str!("../../../data/routes/channel.geojson"),
        "eastern-land-border" => include_str!("../../../data/routes/eastern-land-border.geojson"),
        "western-balkans" => include_str!("../../../data/routes/western-balkans.geojson"),
        other => panic!("no route '{other}'"),
    };
    Route::from_geojson(id, text).expect("shipped routes are valid")
}

/// Every cell of every segment with made-up but deterministic values: every
/// ninth cell suppressed (with numbers set, which must never show), every
/// thirteenth without a forecast, the rest a smooth wave from 2 to about 400.
pub(crate) fn cell_values(route: &Route, resolution: u8, buffer_rings: u32) -> Vec<CellValue> {
    let cells = route.cells(Resolution::new(i64::from(resolution)).unwrap(), buffer_rings).unwrap();
    let mut values = Vec::new();
    for segment in &cells.segments {
        for &cell in &segment.cells {
            let i = values.len();
            let mean =
                2.0 + 200.0 * (1.0 + (i as f64 * 0.013).sin()) * (1.0 + 0.5 * (i as f64 * 0.11).cos()).abs() / 1.5;
            let suppressed = i % 9 == 4;
            let has_forecast = i % 13 != 7;
            values.push(CellValue {
                cell,
                segment: segment.segment_id.clone(),
                mean: has_forecast.then_some(mean),
                q10: has_forecast.then_some(mean * 0.6),
                q90: has_forecast.then_some(mean * 1.5),
                observed: (i % 3 == 0).then_some(mean.round()),
                z: None,
                suppressed,
            });
        }
    }
    values
}

/// A map of `route` with the given cells.
pub(crate) fn spec(route: &Route, cells: Vec<CellValue>) -> MapSpec<'_> {
    MapSpec {
        route,
        title: format!("{}: forecast density along the route", route.name),
        forecast_date: chrono::NaiveDate::from_ymd_opt(2025, 11, 17).unwrap(),
        vintage: "density v42, arrivals v7 (data to 2025-11-10)".to_owned(),
        model: "ridge-upstream-v1".to_owned(),
        uncertainty: "The 80% interval held the actual value on 78% of backtest days.".to_owned(),
        value_label: "devices per cell and day".to_owned(),
        cells,
        alert_stations: Vec::new(),
        layer: Layer::Forecast,
    }
}
