//! `stroom routes`: the corridors, their segments and cells.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use stroom_core::{DEFAULT_ROUTE_RESOLUTION, Resolution, Route};

use crate::DEFAULT_BUFFER;

/// The shipped route files, so that the binary works outside the repository.
const EMBEDDED_ROUTES: [(&str, &str); 4] = [
    ("central-mediterranean", include_str!("../../../data/routes/central-mediterranean.geojson")),
    ("channel", include_str!("../../../data/routes/channel.geojson")),
    ("eastern-land-border", include_str!("../../../data/routes/eastern-land-border.geojson")),
    ("western-balkans", include_str!("../../../data/routes/western-balkans.geojson")),
];

#[derive(Debug, Args)]
pub(crate) struct RoutesArgs {
    /// Folder of route files (`<route-id>.geojson`); the shipped routes when omitted.
    #[arg(long)]
    pub(crate) routes: Option<PathBuf>,
    /// H3 resolution of segment cells.
    #[arg(long, default_value_t = DEFAULT_ROUTE_RESOLUTION)]
    pub(crate) resolution: u8,
    /// Rings of neighbouring cells added around each segment's path.
    #[arg(long, default_value_t = DEFAULT_BUFFER)]
    pub(crate) buffer: u32,
    /// Print one route as GeoJSON, with a polygon for each of its cells.
    #[arg(long, value_name = "ROUTE")]
    pub(crate) geojson: Option<String>,
}

/// Loads every route of a folder, or the shipped routes.
pub(crate) fn load_routes(folder: Option<&Path>) -> Result<Vec<Route>> {
    let mut routes = Vec::new();
    match folder {
        None => {
            for (id, text) in EMBEDDED_ROUTES {
                routes.push(Route::from_geojson(id, text)?);
            }
        }
        Some(folder) => {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)
                .with_context(|| format!("reading route folder {}", folder.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "geojson"))
                .collect();
            paths.sort();
            if paths.is_empty() {
                bail!("{}: no .geojson route files", folder.display());
            }
            for path in paths {
                let id = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                routes.push(Route::from_geojson(&id, &text).with_context(|| format!("in {}", path.display()))?);
            }
        }
    }
    Ok(routes)
}

pub(crate) fn run(args: &RoutesArgs) -> Result<()> {
    let routes = load_routes(args.routes.as_deref())?;
    let resolution = Resolution::new(i64::from(args.resolution))?;
    if let Some(id) = &args.geojson {
        let Some(route) = routes.iter().find(|r| &r.id == id) else {
            let known: Vec<&str> = routes.iter().map(|r| r.id.as_str()).collect();
            bail!("no route '{id}' (routes: {})", known.join(", "));
        };
        let text = serde_json::to_string_pretty(&route_geojson(route, resolution, args.buffer)?)?;
        writeln!(crate::output::stdout(), "{text}")?;
        return Ok(());
    }
    let mut out = crate::output::stdout();
    writeln!(out, "resolution {resolution}, buffer {} ring(s)", args.buffer)?;
    for route in &routes {
        let cells = route.cells(resolution, args.buffer)?;
        writeln!(
            out,
            "{} ({}): {} stations, {} segments, {} distinct cells, destination {}",
            route.id,
            route.name,
            route.stations.len(),
            route.segments.len(),
            cells.distinct_cells(),
            route.destination().id
        )?;
        for (segment, segment_cells) in route.segments.iter().zip(&cells.segments) {
            writeln!(
                out,
                "  {:<34} {:<5} {:>6} cells  {} -> {}",
                segment.id,
                segment.mode.as_str(),
                segment_cells.cells.len(),
                segment.from,
                segment.to
            )?;
        }
    }
    Ok(())
}

/// A route as GeoJSON: its stations and segments as drawn, and one polygon
/// per cell with the segment it belongs to and its `hex_id`.
pub(crate) fn route_geojson(route: &Route, resolution: Resolution, buffer: u32) -> Result<Value> {
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
