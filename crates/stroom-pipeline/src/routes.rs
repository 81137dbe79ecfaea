//! The routes: the shipped ones or a folder of route files, and a route
//! drawn as GeoJSON.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stroom_core::{Resolution, Route};

use crate::error::{PipelineError, Result};

/// The shipped route files, so that stroom works outside the repository.
const EMBEDDED_ROUTES: [(&str, &str); 4] = [
    ("central-mediterranean", include_str!("../../../data/routes/central-mediterranean.geojson")),
    ("channel", include_str!("../../../data/routes/channel.geojson")),
    ("eastern-land-border", include_str!("../../../data/routes/eastern-land-border.geojson")),
    ("western-balkans", include_str!("../../../data/routes/western-balkans.geojson")),
];

/// Loads every route of a folder (`<route-id>.geojson`, in name order), or
/// the shipped routes when `folder` is `None`.
pub fn load_routes(folder: Option<&Path>) -> Result<Vec<Route>> {
    let mut routes = Vec::new();
    match folder {
        None => {
            for (id, text) in EMBEDDED_ROUTES {
                routes.push(Route::from_geojson(id, text)?);
            }
        }
        Some(folder) => {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)
                .map_err(PipelineError::io(folder))?
                .filter_map(std::result::Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "geojson"))
                .collect();
            paths.sort();
            if paths.is_empty() {
                return Err(PipelineError::Route(format!("{}: no .geojson route files", folder.display())));
            }
            for path in paths {
                let id = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let text = std::fs::read_to_string(&path).map_err(PipelineError::io(&path))?;
                let route = Route::from_geojson(&id, &text)
                    .map_err(|e| PipelineError::Route(format!("{}: {e}", path.display())))?;
                routes.push(route);
            }
        }
    }
    Ok(routes)
}

/// The route with id `id`; the error lists the known ids.
pub fn find_route<'a>(routes: &'a [Route], id: &str) -> Result<&'a Route> {
    routes.iter().find(|r| r.id == id).ok_or_else(|| {
        let known: Vec<&str> = routes.iter().map(|r| r.id.as_str()).collect();
        PipelineError::Route(format!("no route '{id}' (routes: {})", known.join(", ")))
    })
}

/// A route as GeoJSON: its stations and segments as drawn, and one polygon
/// per cell with the segment it belongs to and its `hex_id`.
pub fn route_geojson(route: &Route, resolution: Resolution, buffer: u32) -> Result<Value> {
    let cells = route.cells(resolution, buffer)?;
    let mut features = Vec::new();
    for station in &route.stations {
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [station.lng, station.lat]},
            "properties": {"kind": "station", "id": station.id, "name": station.name, "country": station.country, "role": station.role.as_str()},
        }));
    }
    for segment in &route.segments {
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": segment.waypoints.iter().map(|(lat, lng)| [*lng, *lat]).collect::<Vec<_>>()},
            "properties": {"kind": "segment", "id": segment.id, "name": segment.name, "from": segment.from, "to": segment.to, "mode": segment.mode.as_str()},
        }));
    }
    for segment in &cells.segments {
        for cell in &segment.cells {
            let mut ring: Vec<[f64; 2]> = cell.h3o().boundary().iter().map(|p| [p.lng(), p.lat()]).collect();
            ring.push(ring[0]);
            features.push(json!({
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"kind": "cell", "hex_id": cell.to_string(), "segment": segment.segment_id, "resolution": resolution.get()},
            }));
        }
    }
    Ok(json!({
        "type": "FeatureCollection",
        "name": route.name,
        "description": route.description,
        "features": features,
    }))
}
