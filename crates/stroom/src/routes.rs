//! `stroom routes`: the corridors, their segments and cells.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use stroom_core::{DEFAULT_ROUTE_RESOLUTION, Resolution};
use stroom_pipeline::{load_routes, route_geojson};

use crate::DEFAULT_BUFFER;

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
