//! The nowcast over HTTP: a surge injected into one segment of a simulated
//! route (an extra delivery of device counts on one day, ingested by the
//! real binary) makes that segment the most unusual one on its day, and its
//! cells the most unusual cells; roles, scopes, parameters and k hold.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;
use stroom_core::{DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution, Route};

use crate::api::{Scene, Server, create_key, scene};
use crate::support::stroom;

/// Ingests `extra` more devices on each of `days` into `segment` of the
/// Channel route (with the real binary), spread over the segment's cells and
/// hours, every row at least `2·k` so that none is suppressed.
pub(crate) fn ingest_surge(
    store: &Path,
    routes: &Path,
    segment: &str,
    days: &[chrono::NaiveDate],
    extra: u64,
    k: u64,
    scratch: &Path,
) {
    let route =
        Route::from_geojson("channel", &std::fs::read_to_string(routes.join("channel.geojson")).unwrap()).unwrap();
    let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION)).unwrap();
    let cells = route.cells(resolution, DEFAULT_BUFFER_RINGS).unwrap();
    let cells = &cells.segments.iter().find(|s| s.segment_id == segment).unwrap().cells;
    let rows = (extra / (2 * k)).clamp(1, 24 * cells.len() as u64);
    let mut csv = String::from("ts,lat,lon,count\n");
    for day in days {
        for i in 0..rows {
            let cell = cells[(i as usize) % cells.len()];
            let (lat, lng) = cell.center();
            let hour = (i as usize / cells.len()) % 24;
            let count = extra / rows + u64::from(i < extra % rows);
            writeln!(csv, "{day}T{hour:02}:00:00Z,{lat},{lng},{count}").unwrap();
        }
    }
    let surge = scratch.join(format!("surge-{segment}.csv"));
    std::fs::write(&surge, csv).unwrap();
    // The surge adds to the devices stored in those cells and hours.
    let out =
        stroom(&["ingest", "density", surge.to_str().unwrap(), "--store", store.to_str().unwrap(), "--add-to-stored"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn segment<'a>(nowcast: &'a Value, name: &str) -> Option<&'a Value> {
    nowcast["segments"].as_array().unwrap().iter().find(|s| s["name"] == name)
}

#[test]
fn an_injected_surge_is_the_most_unusual_segment_on_its_day() {
    let Scene { dir, store, routes, keys } = scene();
    let viewer = create_key(&keys, "viewer", None);
    let analyst = create_key(&keys, "analyst", None);
    let scoped = create_key(&keys, "viewer", Some("eastern-land-border"));

    // Before: the latest day, every segment scored against its own weekday.
    let before = {
        let server = Server::start(&store, &routes, &keys, &dir.path().join("audit.jsonl"));
        let reply = server.get("/v1/routes/channel/nowcast?cells=1000", Some(&analyst));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        // Parameters and scopes.
        server.get("/v1/routes/channel/nowcast", Some(&scoped)).problem(403);
        server.get("/v1/routes/channel/nowcast", None).problem(401);
        let detail = server.get("/v1/routes/channel/nowcast?date=yesterday", Some(&viewer)).problem(400);
        assert!(detail.contains("date='yesterday'"), "{detail}");
        server.get("/v1/routes/channel/nowcast?cells=5000", Some(&analyst)).problem(400);
        server.get("/v1/routes/channel/nowcast?colour=red", Some(&viewer)).problem(400);
        server.get("/v1/routes/channel/nowcast?date=1999-01-01", Some(&viewer)).problem(404);
        // Viewers get the segments, not the cells.
        let as_viewer = server.get("/v1/routes/channel/nowcast", Some(&viewer)).json();
        assert_eq!(as_viewer["segments"], body["segments"]);
        assert_eq!(as_viewer["cells"].as_array().unwrap().len(), 0);
        body
    };
    let day = before["date"].as_str().unwrap().to_owned();
    let k = before["k"].as_f64().unwrap();
    let segments = before["segments"].as_array().unwrap();
    assert!(segments.len() >= 3, "{before}");
    for s in segments.iter().chain(before["cells"].as_array().unwrap()) {
        assert!(s["devices"].as_f64().unwrap() >= k && s["baseline"].as_f64().unwrap() >= k, "{s}");
        assert_eq!(s["weeks"], 8);
    }
    // The surge goes to the segment that was least unusual.
    let quiet = segments.last().unwrap();
    let name = quiet["name"].as_str().unwrap().to_owned();
    let baseline = quiet["baseline"].as_f64().unwrap();

    // Twice the usual devices of that segment on that day.
    let extra = baseline.round() as u64;
    let day_date = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").unwrap();
    ingest_surge(&store, &routes, &name, &[day_date], extra, k as u64, dir.path());

    let server = Server::start(&store, &routes, &keys, &dir.path().join("audit.jsonl"));
    let after = server.get(&format!("/v1/routes/channel/nowcast?date={day}&cells=20"), Some(&analyst)).json();
    let top = &after["segments"][0];
    assert_eq!(top["name"], name.as_str(), "the surged segment is not the most unusual: {after}");
    let z = top["z"].as_f64().unwrap();
    assert!(z > 3.0, "{top}");
    let added = top["devices"].as_f64().unwrap() - quiet["devices"].as_f64().unwrap();
    assert_eq!(added, extra as f64, "the nowcast counts every injected device once");
    // The baseline is the history's, unchanged by the day itself.
    assert_eq!(top["baseline"], quiet["baseline"]);
    // The most unusual cells lie on it.
    let on_it = after["cells"].as_array().unwrap().iter().filter(|c| c["segment"] == name.as_str()).count();
    assert!(on_it >= 10, "{} of the 20 most unusual cells lie on {name}: {after}", on_it);
    // A week before, the segment was not unusual.
    let previous = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").unwrap() - chrono::Duration::days(7);
    let earlier = server.get(&format!("/v1/routes/channel/nowcast?date={previous}"), Some(&viewer)).json();
    let then = segment(&earlier, &name).unwrap_or_else(|| panic!("{name} is not scored: {earlier}"));
    assert!(then["z"].as_f64().unwrap().abs() < z / 2.0, "{then} against {top}");
}
