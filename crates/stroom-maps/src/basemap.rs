//! The embedded basemap: Natural Earth 1:50m country outlines cropped to
//! Europe, North Africa and the Middle East (`data/basemap/`, public domain).

use std::sync::LazyLock;

use serde_json::Value;

use crate::geometry::LngLat;

/// The basemap file, compiled in.
const COUNTRIES_GEOJSON: &str = include_str!("../../../data/basemap/countries.geojson");

/// Credit line for maps drawn over the basemap.
pub(crate) const ATTRIBUTION: &str = "Basemap: Natural Earth (public domain)";

/// One country: polygons of rings (the first ring of a polygon is its
/// exterior, the others holes).
#[derive(Debug)]
pub(crate) struct Country {
    /// The country's name as Natural Earth spells it.
    pub(crate) name: String,
    pub(crate) polygons: Vec<Vec<Vec<LngLat>>>,
    /// West, south, east, north in degrees.
    pub(crate) bbox: (LngLat, LngLat),
}

/// The countries of the basemap, parsed once on first use.
pub(crate) fn countries() -> &'static [Country] {
    static COUNTRIES: LazyLock<Vec<Country>> = LazyLock::new(|| parse(COUNTRIES_GEOJSON));
    &COUNTRIES
}

/// Parses the basemap. The file is part of the source tree and checked by a
/// test, so a malformed file is a build defect and panics.
fn parse(text: &str) -> Vec<Country> {
    let root: Value = serde_json::from_str(text).expect("the embedded basemap is JSON");
    let features = root["features"].as_array().expect("the embedded basemap has features");
    features
        .iter()
        .map(|feature| {
            let name = feature["properties"]["name"].as_str().unwrap_or_default().to_owned();
            let geometry = &feature["geometry"];
            let coordinates = &geometry["coordinates"];
            let polygons: Vec<Vec<Vec<LngLat>>> = match geometry["type"].as_str() {
                Some("Polygon") => vec![polygon(coordinates)],
                Some("MultiPolygon") => {
                    coordinates.as_array().expect("MultiPolygon coordinates").iter().map(polygon).collect()
                }
                other => panic!("unexpected basemap geometry {other:?}"),
            };
            let mut bbox = ((f64::INFINITY, f64::INFINITY), (f64::NEG_INFINITY, f64::NEG_INFINITY));
            for &(lng, lat) in polygons.iter().flatten().flatten() {
                bbox.0 = (bbox.0.0.min(lng), bbox.0.1.min(lat));
                bbox.1 = (bbox.1.0.max(lng), bbox.1.1.max(lat));
            }
            Country { name, polygons, bbox }
        })
        .collect()
}

fn polygon(value: &Value) -> Vec<Vec<LngLat>> {
    value
        .as_array()
        .expect("polygon rings")
        .iter()
        .map(|ring| {
            ring.as_array()
                .expect("ring positions")
                .iter()
                .map(|position| {
                    let lng = position[0].as_f64().expect("longitude");
                    let lat = position[1].as_f64().expect("latitude");
                    (lng, lat)
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::signed_area;

    #[test]
    fn basemap_parses_and_covers_the_routes_countries() {
        let countries = countries();
        assert!(countries.len() > 60, "{}", countries.len());
        for name in ["Germany", "Greece", "Libya", "Netherlands", "Poland", "Serbia", "Tunisia", "United Kingdom"] {
            assert!(countries.iter().any(|c| c.name == name), "{name} missing");
        }
        for country in countries {
            let ((west, south), (east, north)) = country.bbox;
            assert!(west >= -25.0 && east <= 50.0 && south >= 25.0 && north <= 72.0, "{}", country.name);
            for polygon in &country.polygons {
                for (i, ring) in polygon.iter().enumerate() {
                    assert!(ring.len() >= 4 && ring.first() == ring.last(), "{}", country.name);
                    // RFC 7946: exteriors counter-clockwise, holes clockwise.
                    assert_eq!(signed_area(ring) > 0.0, i == 0, "{} ring {i}", country.name);
                }
            }
        }
    }
}
