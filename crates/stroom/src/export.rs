//! `stroom export map`: a route's forecast map or briefing page, rendered by
//! `stroom-pipeline` into a file.

use crate::location::StoreArgs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};
use stroom_api::MapFormat;
use stroom_pipeline::{find_route, load_routes, render};

#[derive(Debug, Subcommand)]
pub(crate) enum ExportCommand {
    /// A route's forecast map (GeoJSON, SVG, PNG) or printable briefing page (HTML).
    Map(MapArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FormatArg {
    Geojson,
    Svg,
    Png,
    Html,
}

#[derive(Debug, Args)]
pub(crate) struct MapArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Route id.
    #[arg(long)]
    route: String,
    /// Forecast day (YYYY-MM-DD); the first day of the latest run when omitted.
    #[arg(long)]
    date: Option<NaiveDate>,
    /// Output format.
    #[arg(long, value_enum)]
    format: FormatArg,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Folder of route files; the shipped routes when omitted.
    #[arg(long)]
    routes: Option<PathBuf>,
}

pub(crate) async fn run(command: &ExportCommand) -> Result<()> {
    match command {
        ExportCommand::Map(args) => {
            let routes = load_routes(args.routes.as_deref())?;
            let route = find_route(&routes, &args.route)?;
            let store = args.store.open().await?;
            let format = match args.format {
                FormatArg::Geojson => MapFormat::GeoJson,
                FormatArg::Svg => MapFormat::Svg,
                FormatArg::Png => MapFormat::Png,
                FormatArg::Html => MapFormat::Html,
            };
            let started = std::time::Instant::now();
            let bytes = render(&store, route, args.date, format).await?;
            let tmp = args.out.with_extension("partial");
            std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
            println!(
                "wrote {} ({} bytes, {:.0} ms)",
                args.out.display(),
                bytes.len(),
                started.elapsed().as_secs_f64() * 1e3
            );
            Ok(())
        }
    }
}
