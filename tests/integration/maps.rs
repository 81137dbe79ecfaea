//! `stroom export map` on a store made by the real pipeline: the GeoJSON
//! against RFC 7946 and the reference H3 library's boundaries, the PNG's
//! size and content, and the briefing page in a real headless Chromium
//! (no errors, no network requests, a screenshot saved).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::api::fixture;
use crate::support::{python, repo_root, stroom};

fn export(
    store: &Path,
    routes: &Path,
    route: &str,
    format: &str,
    out: &Path,
    date: Option<&str>,
) -> std::process::Output {
    let mut args = vec![
        "export",
        "map",
        "--store",
        store.to_str().unwrap(),
        "--routes",
        routes.to_str().unwrap(),
        "--route",
        route,
        "--format",
        format,
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(date) = date {
        args.extend(["--date", date]);
    }
    stroom(&args)
}

#[track_caller]
fn exported(store: &Path, routes: &Path, route: &str, format: &str, out: &Path) {
    let result = export(store, routes, route, format, out, None);
    assert!(result.status.success(), "export {format}: {}", String::from_utf8_lossy(&result.stderr));
}

/// Twice the signed area of a ring (positive when counter-clockwise).
fn signed_area(ring: &[Value]) -> f64 {
    ring.windows(2)
        .map(|w| {
            let (a, b) = (&w[0], &w[1]);
            a[0].as_f64().unwrap() * b[1].as_f64().unwrap() - b[0].as_f64().unwrap() * a[1].as_f64().unwrap()
        })
        .sum()
}

#[test]
fn geojson_follows_rfc_7946_and_matches_the_reference_h3_boundaries() {
    let fixture = fixture();
    let (store, routes) = (fixture.join("store"), fixture.join("routes"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("channel.geojson");
    exported(&store, &routes, "channel", "geojson", &out);
    let text = std::fs::read_to_string(&out).unwrap();
    // The geojson crate parses it as a FeatureCollection (RFC 7946 types).
    let parsed: geojson::GeoJson = text.parse().expect("valid GeoJSON");
    let geojson::GeoJson::FeatureCollection(collection) = parsed else { panic!("not a FeatureCollection") };
    assert!(collection.features.len() > 100);
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut cells = Vec::new();
    let (mut lines, mut points, mut suppressed) = (0, 0, 0);
    for feature in doc["features"].as_array().unwrap() {
        let geometry = &feature["geometry"];
        let props = &feature["properties"];
        match geometry["type"].as_str().unwrap() {
            "Polygon" => {
                let ring = geometry["coordinates"][0].as_array().unwrap();
                assert_eq!(ring.first(), ring.last(), "closed ring");
                assert!(signed_area(ring) > 0.0, "RFC 7946: exterior rings are counter-clockwise");
                for p in ring {
                    let (lng, lat) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
                    // Longitude first: the Channel is at about 1-4° E, 50-51° N.
                    assert!((-1.0..6.0).contains(&lng) && (49.0..52.5).contains(&lat), "[{lng}, {lat}]");
                }
                let hex = props["hex_id"].as_str().unwrap().to_owned();
                if props["suppressed"] == true {
                    suppressed += 1;
                    for key in ["mean", "q10", "q90", "observed"] {
                        assert!(props[key].is_null(), "a suppressed cell carries no {key}");
                    }
                }
                cells.push((hex, ring.clone()));
            }
            "LineString" | "MultiLineString" => lines += 1,
            "Point" => points += 1,
            other => panic!("unexpected geometry {other}"),
        }
    }
    assert_eq!((lines, points), (3, 4), "three segments, four stations");
    println!("{} cells, {suppressed} suppressed", cells.len());
    // The reference library's boundaries of a sample of the cells.
    let sample: Vec<&(String, Vec<Value>)> = cells.iter().step_by(cells.len() / 60 + 1).collect();
    let ids: Vec<&str> = sample.iter().map(|(h, _)| h.as_str()).collect();
    let reference = python(
        "import sys, json, h3\nprint(json.dumps({c: [[lng, lat] for lat, lng in h3.cell_to_boundary(c)] for c in sys.argv[1:]}))",
        &ids,
    );
    let reference: Value = serde_json::from_str(&reference).unwrap();
    for (hex, ring) in sample {
        let expected = reference[hex].as_array().unwrap();
        let ours: Vec<(f64, f64)> =
            ring[..ring.len() - 1].iter().map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())).collect();
        assert_eq!(ours.len(), expected.len(), "{hex}: vertex count");
        for e in expected {
            let (lng, lat) = (e[0].as_f64().unwrap(), e[1].as_f64().unwrap());
            assert!(
                ours.iter().any(|(x, y)| (x - lng).abs() < 1e-6 && (y - lat).abs() < 1e-6),
                "{hex}: the reference vertex [{lng}, {lat}] is not in the polygon"
            );
        }
    }
}

#[test]
fn png_map_has_its_size_and_real_content_and_bad_requests_are_refused() {
    let fixture = fixture();
    let (store, routes) = (fixture.join("store"), fixture.join("routes"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("channel.png");
    exported(&store, &routes, "channel", "png", &out);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(frame.width, 1200);
    assert!(frame.height >= 600, "{}", frame.height);
    let channels = frame.color_type.samples();
    let colours: BTreeSet<&[u8]> = pixels[..frame.buffer_size()].chunks(channels).collect();
    assert!(colours.len() > 200, "only {} colours: a blank or flat picture", colours.len());
    let svg = dir.path().join("channel.svg");
    exported(&store, &routes, "eastern-land-border", "svg", &svg);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("Eastern Land Border") && text.contains("<svg"), "{}", &text[..200]);

    // Refused, and nothing written: an unknown route, a day outside the forecast.
    let nothing = dir.path().join("nothing.png");
    let result = export(&store, &routes, "atlantis", "png", &nothing, None);
    assert!(!result.status.success() && String::from_utf8_lossy(&result.stderr).contains("atlantis"));
    let result = export(&store, &routes, "channel", "png", &nothing, Some("1999-01-01"));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success() && stderr.contains("1999-01-01"), "{stderr}");
    assert!(!nothing.exists());
}

#[test]
fn briefing_page_renders_in_headless_chromium_without_errors_or_requests() {
    let fixture = fixture();
    let (store, routes) = (fixture.join("store"), fixture.join("routes"));
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("briefings");
    std::fs::create_dir_all(&shots).unwrap();
    let page = shots.join("channel.html");
    exported(&store, &routes, "channel", "html", &page);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Dover") && html.contains("MASE"), "the page names the station and the accuracy");
    let screenshot = shots.join("channel.png");
    let out = std::process::Command::new("python3")
        .arg(repo_root().join("tests/browser/check_page.py"))
        .arg(&page)
        .args(["--screenshot", screenshot.to_str().unwrap(), "--width", "1200"])
        .output()
        .expect("python3 runs");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    println!("chromium: {report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["requests"], serde_json::json!([]));
    assert_eq!(report["console_errors"], serde_json::json!([]));
    assert_eq!(report["page_errors"], serde_json::json!([]));
    assert!(report["svg_count"].as_u64().unwrap() >= 2, "the map and the fan chart");
    assert!(report["table_rows"].as_u64().unwrap() >= 15, "a header and 14 days");
    assert!(report["screenshot_bytes"].as_u64().unwrap() > 20_000);
    println!("screenshot: {}", screenshot.display());
}
