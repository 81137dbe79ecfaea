//! The GeoJSON export (RFC 7946): one polygon per cell, the route's segments
//! as lines and its stations as points.
//!
//! The text is written by hand, with a fixed member order and every number
//! in the shortest text that reads back exactly, so that output is stable
//! and can be compared byte for byte. Cell polygons come from h3o's
//! boundaries through `geometry::cell_rings`.

use std::fmt::Write;

use crate::geometry::{LngLat, cell_rings};
use crate::{CellValue, Layer, MapSpec};

/// The map as an RFC 7946 GeoJSON FeatureCollection, one feature per line.
///
/// - Every cell is a `Polygon` (a `MultiPolygon` when it crosses the
///   antimeridian) with the properties `kind` = `"cell"`, `hex_id` (the H3
///   index as the lowercase hex string that kepler.gl and the H3 bindings
///   read), `resolution`, `segment`, `forecast_date`, `status` (`"forecast"`,
///   or `"scored"` on the nowcast layer, `"no_value"` or `"suppressed"`),
///   `suppressed`, and `mean`, `q10`, `q90`, `observed`, and on the nowcast
///   layer `z` (then `mean` is the same-weekday baseline and `observed` the
///   day's devices). The numbers are `null` when unknown or not finite, and
///   always `null` for a suppressed cell.
/// - Every segment is a `LineString` through its waypoints (`kind` =
///   `"segment"`, `id`, `name`, `from`, `to`, `mode`).
/// - Every station is a `Point` (`kind` = `"station"`, `id`, `name`, `country`,
///   `role`, and `capacity_alert`: whether a capacity alert is open there).
///
/// Positions are `[longitude, latitude]` in degrees, rings are closed and
/// exterior rings counter-clockwise. The collection carries the map's title,
/// route, forecast date, data vintage, model, uncertainty statement, value
/// label and layer (`forecast` or `nowcast`) as foreign members.
pub fn geojson(spec: &MapSpec) -> String {
    let mut out = String::with_capacity(512 + spec.cells.len() * 420);
    out.push_str("{\"type\":\"FeatureCollection\"");
    member(&mut out, "title", &spec.title);
    out.push_str(",\"route\":{");
    out.push_str("\"id\":");
    string(&mut out, &spec.route.id);
    member(&mut out, "name", &spec.route.name);
    out.push('}');
    member(&mut out, "forecast_date", &spec.forecast_date.to_string());
    member(&mut out, "vintage", &spec.vintage);
    member(&mut out, "model", &spec.model);
    member(&mut out, "uncertainty", &spec.uncertainty);
    member(&mut out, "value_label", &spec.value_label);
    member(&mut out, "layer", if spec.layer == Layer::Nowcast { "nowcast" } else { "forecast" });
    out.push_str(",\"features\":[");
    let mut first = true;
    let mut separator = |out: &mut String| {
        out.push_str(if first { "\n" } else { ",\n" });
        first = false;
    };
    let date = spec.forecast_date.to_string();
    for value in &spec.cells {
        separator(&mut out);
        cell_feature(&mut out, value, &date, spec.layer);
    }
    for segment in &spec.route.segments {
        separator(&mut out);
        out.push_str("{\"type\":\"Feature\",\"geometry\":{\"type\":\"LineString\",\"coordinates\":");
        let line: Vec<LngLat> = segment.waypoints.iter().map(|&(lat, lng)| (lng, lat)).collect();
        positions(&mut out, &line);
        out.push_str("},\"properties\":{\"kind\":\"segment\"");
        member(&mut out, "id", &segment.id);
        member(&mut out, "name", &segment.name);
        member(&mut out, "from", &segment.from);
        member(&mut out, "to", &segment.to);
        member(&mut out, "mode", segment.mode.as_str());
        out.push_str("}}");
    }
    for station in &spec.route.stations {
        separator(&mut out);
        out.push_str("{\"type\":\"Feature\",\"geometry\":{\"type\":\"Point\",\"coordinates\":");
        position(&mut out, (station.lng, station.lat));
        out.push_str("},\"properties\":{\"kind\":\"station\"");
        member(&mut out, "id", &station.id);
        member(&mut out, "name", &station.name);
        member(&mut out, "country", &station.country);
        member(&mut out, "role", station.role.as_str());
        let alert = spec.alert_stations.contains(&station.id);
        out.push_str(if alert { ",\"capacity_alert\":true" } else { ",\"capacity_alert\":false" });
        out.push_str("}}");
    }
    out.push_str("\n]}\n");
    out
}

fn cell_feature(out: &mut String, value: &CellValue, date: &str, layer: Layer) {
    let hex_id = value.cell.to_string();
    out.push_str("{\"type\":\"Feature\",\"id\":");
    string(out, &hex_id);
    out.push_str(",\"geometry\":");
    let rings = cell_rings(value.cell);
    if let [ring] = rings.as_slice() {
        out.push_str("{\"type\":\"Polygon\",\"coordinates\":[");
        positions(out, ring);
        out.push_str("]}");
    } else {
        out.push_str("{\"type\":\"MultiPolygon\",\"coordinates\":[");
        for (i, ring) in rings.iter().enumerate() {
            out.push_str(if i == 0 { "[" } else { ",[" });
            positions(out, ring);
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push_str(",\"properties\":{\"kind\":\"cell\"");
    member(out, "hex_id", &hex_id);
    let _ = write!(out, ",\"resolution\":{}", value.cell.resolution().get());
    member(out, "segment", &value.segment);
    member(out, "forecast_date", date);
    let status = if value.suppressed {
        "suppressed"
    } else if value.shown(layer).is_some() {
        if layer == Layer::Nowcast { "scored" } else { "forecast" }
    } else {
        "no_value"
    };
    member(out, "status", status);
    let _ = write!(out, ",\"suppressed\":{}", value.suppressed);
    // A suppressed cell's numbers are never written, whatever the caller set.
    let shown = |number: Option<f64>| if value.suppressed { None } else { number.filter(|v| v.is_finite()) };
    let numbers = [("mean", value.mean), ("q10", value.q10), ("q90", value.q90), ("observed", value.observed)];
    let z = (layer == Layer::Nowcast).then_some(("z", value.z));
    for (name, number) in numbers.into_iter().chain(z) {
        let _ = write!(out, ",\"{name}\":");
        match shown(number) {
            Some(v) => number_to(out, v),
            None => out.push_str("null"),
        }
    }
    out.push_str("}}");
}

/// Appends `,"name":"value"`.
fn member(out: &mut String, name: &str, value: &str) {
    out.push(',');
    string(out, name);
    out.push(':');
    string(out, value);
}

/// Appends a JSON string.
fn string(out: &mut String, value: &str) {
    out.push_str(&serde_json::Value::from(value).to_string());
}

/// Appends a finite number: Rust prints the shortest decimal that reads back
/// to the same `f64`, which is also valid JSON.
fn number_to(out: &mut String, value: f64) {
    debug_assert!(value.is_finite());
    let _ = write!(out, "{value}");
}

fn position(out: &mut String, (lng, lat): LngLat) {
    out.push('[');
    number_to(out, lng);
    out.push(',');
    number_to(out, lat);
    out.push(']');
}

fn positions(out: &mut String, line: &[LngLat]) {
    out.push('[');
    for (i, &p) in line.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        position(out, p);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use stroom_core::Cell;

    use super::*;
    use crate::geometry::signed_area;
    use crate::testing::{cell_values, route, spec};

    /// serde_json's default float parser may miss the last bit; the writer
    /// prints the shortest text that reads back exactly.
    fn assert_close(actual: Option<f64>, expected: Option<f64>) {
        let (a, e) = (actual.unwrap(), expected.unwrap());
        assert!((a - e).abs() <= e.abs() * 1e-15, "{a} against {e}");
        assert_eq!(e.to_string().parse::<f64>().unwrap(), e);
    }

    fn parse(text: &str) -> Value {
        // The geojson crate checks the structure (types, positions, nesting);
        // the checks below add what it leaves to the writer.
        let parsed: ::geojson::GeoJson = text.parse().expect("valid GeoJSON");
        assert!(matches!(parsed, ::geojson::GeoJson::FeatureCollection(_)));
        serde_json::from_str(text).unwrap()
    }

    fn position(value: &Value) -> LngLat {
        let array = value.as_array().expect("a position is an array");
        assert_eq!(array.len(), 2, "positions are [longitude, latitude]");
        let (lng, lat) = (array[0].as_f64().unwrap(), array[1].as_f64().unwrap());
        assert!(lng.is_finite() && lat.is_finite());
        assert!((-180.0..=180.0).contains(&lng) && (-90.0..=90.0).contains(&lat), "{lng} {lat}");
        (lng, lat)
    }

    /// The exterior rings of a cell feature, checked for RFC 7946 rules.
    fn rings(feature: &Value) -> Vec<Vec<LngLat>> {
        let geometry = &feature["geometry"];
        let polygons: Vec<&Value> = match geometry["type"].as_str() {
            Some("Polygon") => vec![&geometry["coordinates"]],
            Some("MultiPolygon") => geometry["coordinates"].as_array().unwrap().iter().collect(),
            other => panic!("a cell is a polygon, not {other:?}"),
        };
        polygons
            .into_iter()
            .map(|polygon| {
                let polygon = polygon.as_array().unwrap();
                assert_eq!(polygon.len(), 1, "cells have no holes");
                let ring: Vec<LngLat> = polygon[0].as_array().unwrap().iter().map(position).collect();
                assert!(ring.len() >= 4, "a linear ring has at least four positions");
                assert_eq!(ring.first(), ring.last(), "rings are closed");
                assert!(signed_area(&ring) > 0.0, "exterior rings are counter-clockwise");
                ring
            })
            .collect()
    }

    #[test]
    fn geojson_follows_rfc_7946() {
        let route = route("western-balkans");
        let spec = spec(&route, cell_values(&route, 7, 1));
        let json = parse(&geojson(&spec));
        assert_eq!(json["type"], "FeatureCollection");
        assert_eq!(json["forecast_date"], "2025-11-17");
        assert_eq!(json["route"]["id"], "western-balkans");
        assert_eq!(json["model"], "ridge-upstream-v1");
        let features = json["features"].as_array().unwrap();
        assert_eq!(features.len(), spec.cells.len() + route.segments.len() + route.stations.len());
        let kind = |f: &Value| f["properties"]["kind"].as_str().unwrap().to_owned();
        for (feature, value) in features.iter().zip(&spec.cells) {
            assert_eq!(feature["type"], "Feature");
            assert_eq!(kind(feature), "cell");
            let hex_id = feature["properties"]["hex_id"].as_str().unwrap();
            assert_eq!(Cell::parse(hex_id).unwrap(), value.cell, "hex_id reads back to the cell");
            assert_eq!(feature["id"], hex_id);
            assert_eq!(feature["properties"]["segment"], value.segment.as_str());
            assert_eq!(feature["properties"]["resolution"], 7);
            // Longitude first: the cell's centre lies inside the ring's
            // longitude range and latitude range, read in that order.
            let ring = &rings(feature)[0];
            let (lat, lng) = value.cell.center();
            let (lngs, lats): (Vec<f64>, Vec<f64>) = ring.iter().copied().unzip();
            assert!(lngs.iter().any(|&x| x < lng) && lngs.iter().any(|&x| x > lng));
            assert!(lats.iter().any(|&y| y < lat) && lats.iter().any(|&y| y > lat));
            for name in ["mean", "q10", "q90", "observed"] {
                let number = &feature["properties"][name];
                assert!(number.is_null() || number.as_f64().is_some_and(f64::is_finite), "{name}: {number}");
            }
        }
        let segments: Vec<&Value> = features.iter().filter(|f| kind(f) == "segment").collect();
        assert_eq!(segments.len(), route.segments.len());
        for (feature, segment) in segments.iter().zip(&route.segments) {
            assert_eq!(feature["geometry"]["type"], "LineString");
            let line: Vec<LngLat> =
                feature["geometry"]["coordinates"].as_array().unwrap().iter().map(position).collect();
            let expected: Vec<LngLat> = segment.waypoints.iter().map(|&(lat, lng)| (lng, lat)).collect();
            assert_eq!(line, expected);
        }
        let stations: Vec<&Value> = features.iter().filter(|f| kind(f) == "station").collect();
        assert_eq!(stations.len(), route.stations.len());
        for (feature, station) in stations.iter().zip(&route.stations) {
            assert_eq!(feature["geometry"]["type"], "Point");
            assert_eq!(position(&feature["geometry"]["coordinates"]), (station.lng, station.lat));
            assert_eq!(feature["properties"]["name"], station.name.as_str());
        }
    }

    #[test]
    fn suppressed_cells_carry_no_numbers() {
        let route = route("channel");
        let values = cell_values(&route, 8, 1);
        assert!(values.iter().any(|v| v.suppressed && v.mean.is_some()), "the data sets numbers on suppressed cells");
        let spec = spec(&route, values);
        let json = parse(&geojson(&spec));
        let mut suppressed = 0;
        for (feature, value) in json["features"].as_array().unwrap().iter().zip(&spec.cells) {
            let properties = &feature["properties"];
            assert_eq!(properties["suppressed"], value.suppressed);
            if value.suppressed {
                suppressed += 1;
                assert_eq!(properties["status"], "suppressed");
                for name in ["mean", "q10", "q90", "observed"] {
                    assert!(properties[name].is_null(), "{name} of a suppressed cell is {}", properties[name]);
                }
            } else if value.mean.is_some() {
                assert_eq!(properties["status"], "forecast");
                assert_close(properties["mean"].as_f64(), value.mean);
            } else {
                assert_eq!(properties["status"], "no_value");
                assert!(properties["mean"].is_null());
            }
        }
        assert!(suppressed > 5);
    }

    #[test]
    fn non_finite_numbers_and_odd_text_stay_valid_json() {
        let route = route("channel");
        let mut values = cell_values(&route, 7, 0);
        values[0].mean = Some(f64::NAN);
        values[0].q90 = Some(f64::INFINITY);
        values[0].suppressed = false;
        let mut spec = spec(&route, values);
        spec.title = "Quote \" backslash \\ newline \n tab \t and ünïcødé".to_owned();
        let json = parse(&geojson(&spec));
        assert_eq!(json["title"], spec.title.as_str());
        let first = &json["features"][0]["properties"];
        assert!(first["mean"].is_null() && first["q90"].is_null());
        assert_eq!(first["status"], "no_value");
        assert_close(first["q10"].as_f64(), spec.cells[0].q10);
    }

    /// Cell polygons against the boundaries of the reference H3 library
    /// (`data/fixtures/h3_cells.csv`, Python `h3`), within 1e-6 degrees.
    #[test]
    fn cell_polygons_match_reference_h3_boundaries() {
        const FIXTURE: &str = include_str!("../../../data/fixtures/h3_cells.csv");
        let mut lines = FIXTURE.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let cell_column = header.iter().position(|&h| h == "cell").unwrap();
        let boundary_column = header.iter().position(|&h| h == "boundary").unwrap();
        let mut expected: Vec<(Cell, Vec<LngLat>)> = Vec::new();
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            let cell = Cell::parse(fields[cell_column]).unwrap();
            let boundary = fields[boundary_column]
                .split(';')
                .map(|vertex| {
                    let (lat, lng) = vertex.split_once(' ').unwrap();
                    (lng.parse::<f64>().unwrap(), lat.parse::<f64>().unwrap())
                })
                .collect();
            expected.push((cell, boundary));
        }
        assert_eq!(expected.len(), 2000);

        let route = route("channel");
        let values = expected
            .iter()
            .map(|(cell, _)| CellValue {
                cell: *cell,
                segment: "fixture".to_owned(),
                mean: Some(1.0),
                q10: None,
                q90: None,
                observed: None,
                z: None,
                suppressed: false,
            })
            .collect();
        let json = parse(&geojson(&spec(&route, values)));
        let features = json["features"].as_array().unwrap();
        let close = |a: LngLat, b: LngLat| {
            // At a pole every longitude names the same point.
            let at_pole = a.1.abs() > 90.0 - 1e-6 && b.1.abs() > 90.0 - 1e-6 && a.1.signum() == b.1.signum();
            let dlng = (a.0 - b.0 + 540.0).rem_euclid(360.0) - 180.0;
            at_pole || (dlng.abs() < 1e-6 && (a.1 - b.1).abs() < 1e-6)
        };
        let mut cut = 0;
        for ((cell, boundary), feature) in expected.iter().zip(features) {
            assert_eq!(feature["properties"]["hex_id"], cell.to_string().as_str());
            let rings = rings(feature);
            let (min, max) = boundary.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
            if max - min < 180.0 {
                // An ordinary cell: exactly H3's vertices, in H3's
                // (counter-clockwise) order, then the closing vertex.
                assert_eq!(rings.len(), 1, "{cell}");
                let ring = &rings[0];
                assert_eq!(ring.len(), boundary.len() + 1, "{cell}");
                for (ours, theirs) in ring.iter().zip(boundary) {
                    assert!(close(*ours, *theirs), "{cell}: {ours:?} against {theirs:?}");
                }
            } else {
                // Cut at the antimeridian or closed around a pole: every H3
                // vertex is still a vertex of the polygon.
                cut += 1;
                for vertex in boundary {
                    assert!(rings.iter().flatten().any(|p| close(*p, *vertex)), "{cell}: {vertex:?} missing");
                }
            }
        }
        assert!(cut > 0, "the fixtures include cells on the antimeridian or around a pole");
    }
}
