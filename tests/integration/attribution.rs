//! Driver attribution and the nowcast map layer over HTTP. Every forecast
//! day's parts (level, upstream segments, rest) sum to its mean; a surge of
//! device density injected into one upstream segment of a simulated route
//! (an extra delivery ingested by the real binary) makes that segment the
//! largest part of the regression's next forecast; the briefing names the
//! drivers; and the nowcast layer's cells carry the nowcast endpoint's
//! z-scores.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::api::{Scene, Server, create_key, scene};
use crate::nowcast::ingest_surge;
use crate::support::stroom;

/// Dover's upstream parts: per forecast day (horizon order), each
/// segment's part and shortest lead. Checks on the way that every day's
/// parts, of every target, sum to its mean.
fn check_parts(forecast: &Value) -> Vec<BTreeMap<String, (f64, u64)>> {
    let mut days = Vec::new();
    for target in forecast["targets"].as_array().unwrap() {
        for row in target["forecasts"].as_array().unwrap() {
            let parts = &row["parts"];
            let signals = parts["signals"].as_array().unwrap();
            let sum = parts["level"].as_f64().unwrap()
                + signals.iter().map(|s| s["part"].as_f64().unwrap()).sum::<f64>()
                + parts["rest"].as_f64().unwrap();
            let mean = row["mean"].as_f64().unwrap();
            assert!((sum - mean).abs() <= 1e-9 * mean.abs().max(1.0), "{} {}: {sum} ≠ {mean}", target["target"], row);
            if target["target"] == "station:dover" {
                let mut day: BTreeMap<String, (f64, u64)> = BTreeMap::new();
                for s in signals {
                    let entry = day.entry(s["segment"].as_str().unwrap().to_owned()).or_insert((0.0, u64::MAX));
                    entry.0 += s["part"].as_f64().unwrap();
                    entry.1 = entry.1.min(s["lead_days"].as_u64().unwrap());
                }
                days.push(day);
            }
        }
    }
    days
}

/// The segment with the largest |part| on a day.
fn largest(day: &BTreeMap<String, (f64, u64)>) -> Option<&str> {
    day.iter().max_by(|a, b| a.1.0.abs().total_cmp(&b.1.0.abs())).map(|(name, _)| name.as_str())
}

/// Forecasts the Channel's destination with the regression and records it.
fn forecast(store: &Path, routes: &Path) {
    let out = stroom(&[
        "forecast",
        "--store",
        store.to_str().unwrap(),
        "--route",
        "channel",
        "--model",
        "elasticnet",
        "--calibration-origins",
        "8",
        "--calibration-step",
        "4",
        "--routes",
        routes.to_str().unwrap(),
        "--explain",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("upstream signals (segment"), "{printed}");
}

#[test]
fn forecast_parts_sum_to_the_mean_and_an_injected_surge_is_the_largest_part() {
    let Scene { dir, store, routes, keys } = scene();
    let viewer = create_key(&keys, "viewer", None);
    let analyst = create_key(&keys, "analyst", None);
    let audit = dir.path().join("audit.jsonl");

    // The recorded auto forecast: parts on request only, JSON only.
    let server = Server::start(&store, &routes, &keys, &audit);
    let plain = server.get("/v1/routes/channel/forecast", Some(&viewer)).json();
    assert!(plain["targets"][0]["forecasts"][0].get("parts").is_none(), "{plain}");
    check_parts(&server.get("/v1/routes/channel/forecast?explain=true", Some(&viewer)).json());
    check_parts(&server.get("/v1/stations/dover/forecast?explain=true", Some(&viewer)).json());
    let detail = server.get("/v1/routes/channel/forecast?explain=true&format=csv", Some(&viewer)).problem(400);
    assert!(detail.contains("explain"), "{detail}");
    server.get("/v1/routes/channel/forecast?explain=maybe", Some(&viewer)).problem(400);

    // The nowcast layer: the endpoint's z-scores on the map's cells.
    let nowcast = server.get("/v1/routes/channel/nowcast?cells=1000", Some(&analyst)).json();
    let map = server.get("/v1/routes/channel/map.geojson?layer=nowcast", Some(&viewer)).json();
    assert_eq!(map["layer"], "nowcast");
    assert_eq!(map["forecast_date"], nowcast["date"]);
    let z: BTreeMap<&str, f64> = nowcast["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["z"].as_f64().unwrap()))
        .collect();
    // A cell on two segments is drawn once per segment.
    let mut matched = std::collections::BTreeSet::new();
    for f in map["features"].as_array().unwrap().iter().filter(|f| f["properties"]["kind"] == "cell") {
        let p = &f["properties"];
        match z.get(p["hex_id"].as_str().unwrap()) {
            Some(&expected) => {
                assert_eq!(p["z"].as_f64(), Some(expected), "{p}");
                assert_eq!(p["status"], "scored");
                matched.insert(p["hex_id"].as_str().unwrap().to_owned());
            }
            None => assert!(p["z"].is_null() && p["status"] == "no_value", "{p}"),
        }
    }
    assert!(
        !matched.is_empty() && matched.len() == z.len(),
        "{} of {} scored cells on the map",
        matched.len(),
        z.len()
    );
    let png = server.get("/v1/routes/channel/map.png?layer=nowcast", Some(&viewer));
    assert_eq!(png.content_type, "image/png");
    assert!(png.body.starts_with(b"\x89PNG"));
    server.get("/v1/routes/channel/map.svg?layer=heat", Some(&viewer)).problem(400);
    assert!(server.stop());

    // The regression's forecast: which segments it reads, and how much.
    forecast(&store, &routes);
    let server = Server::start(&store, &routes, &keys, &audit);
    let before = check_parts(&server.get("/v1/stations/dover/forecast?explain=true", Some(&viewer)).json());
    assert!(!before.is_empty(), "the regression used no upstream signal");
    let page = server.get("/v1/routes/channel/briefing.html", Some(&viewer)).text();
    assert!(page.contains("<h2>What drives the forecast</h2>") && page.contains("class=\"driver\""));
    // The surge goes to a segment that is not the largest part on the first
    // day, the one whose lead carries furthest into the forecast, on the days
    // up to the cutoff that its lead carries (`lead` days): they lie after
    // every pair its lead's cross-correlation reads, so the lead estimated at
    // the cutoff stays.
    let first_top = largest(&before[0]).map(str::to_owned);
    let mut used: BTreeMap<String, u64> = BTreeMap::new();
    for day in &before {
        for (name, &(_, lead)) in day {
            let shortest = used.entry(name.clone()).or_insert(lead);
            *shortest = (*shortest).min(lead);
        }
    }
    let (name, lead) = used
        .iter()
        .filter(|(name, _)| Some(name.as_str()) != first_top.as_deref() || used.len() == 1)
        .max_by_key(|(_, lead)| **lead)
        .map(|(name, lead)| (name.clone(), *lead))
        .unwrap();
    let segment = name.split_once('/').unwrap().1.to_owned();
    let forecast_json = server.get("/v1/stations/dover/forecast", Some(&viewer)).json();
    let cutoff = forecast_json["targets"][0]["cutoff"].as_str().unwrap().to_owned();
    let end = chrono::NaiveDate::parse_from_str(&cutoff, "%Y-%m-%d").unwrap();
    let from = end - chrono::Duration::days(28);
    let series = server
        .get(&format!("/v1/routes/channel/series?from={from}&to={}", end + chrono::Duration::days(1)), Some(&analyst))
        .json();
    let usual: Vec<f64> = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == segment.as_str())
        .map(|p| p["devices"].as_f64().unwrap())
        .collect();
    assert!(!usual.is_empty(), "{segment} has no density: {series}");
    let usual = usual.iter().sum::<f64>() / usual.len() as f64;
    let k = series["k"].as_f64().unwrap();
    assert!(server.stop());

    // Three times the usual devices on those days.
    let days: Vec<chrono::NaiveDate> = (0..lead as i64).map(|d| end - chrono::Duration::days(d)).collect();
    ingest_surge(&store, &routes, &segment, &days, (3.0 * usual).round() as u64, k as u64, dir.path());

    forecast(&store, &routes);
    let server = Server::start(&store, &routes, &keys, &audit);
    let after = check_parts(&server.get("/v1/stations/dover/forecast?explain=true", Some(&viewer)).json());
    // On every day that its lead feeds and whose regression reads it (a
    // horizon's ElasticNet may have set its weight to zero), the surged
    // segment is the largest part, and at least as large as before.
    let fed: Vec<usize> = (0..lead as usize).filter(|&h| after[h].contains_key(&name)).collect();
    assert!(!fed.is_empty(), "no forecast day reads {name}: after {after:?}");
    let mut grew = false;
    for &h in &fed {
        assert_eq!(
            largest(&after[h]),
            Some(name.as_str()),
            "day {}: the surged segment is not the largest part: before {:?}, after {:?}",
            h + 1,
            before[h],
            after[h]
        );
        let was = before[h].get(&name).map_or(0.0, |p| p.0.abs());
        assert!(after[h][&name].0.abs() >= was, "day {}: before {:?}, after {:?}", h + 1, before[h], after[h]);
        grew |= after[h][&name].0.abs() > was;
    }
    assert!(grew, "the surge lifted no day's part of {name}");
    assert!(server.stop());
}
