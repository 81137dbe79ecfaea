//! `stroom export map`: a route's forecast map or briefing page, rendered by
//! `stroom-pipeline` into a file.

use crate::location::StoreArgs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};
use stroom_api::MapFormat;
use stroom_pipeline::{AlertRules, Capacities, DEFAULT_ALERT_LEVEL, find_route, load_routes, render};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LayerArg {
    Forecast,
    Nowcast,
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
    /// What the cells show: the forecast, or how unusual the day's density is
    /// (nowcast; `--date` is then the day scored, the latest day when omitted).
    #[arg(long, value_enum, default_value_t = LayerArg::Forecast)]
    layer: LayerArg,
    /// Station capacities (TOML, as `stroom serve --capacities`): the map and
    /// page then show the open alerts.
    #[arg(long)]
    capacities: Option<PathBuf>,
    /// The probability of exceeding a capacity at which an alert opens.
    #[arg(long, default_value_t = DEFAULT_ALERT_LEVEL)]
    alert_level: f64,
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
            let capacities = args.capacities.as_deref().map(Capacities::load).transpose()?.unwrap_or_default();
            let rules = AlertRules { capacities, level: args.alert_level };
            let layer = match args.layer {
                LayerArg::Forecast => stroom_maps::Layer::Forecast,
                LayerArg::Nowcast => stroom_maps::Layer::Nowcast,
            };
            let bytes = render(&store, route, args.date, format, &rules, layer).await?;
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
