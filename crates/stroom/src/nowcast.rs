//! `stroom nowcast`: how unusual a day's density is on a route, per segment
//! and for the most unusual cells, as a table or JSON (the API's answer).

use std::io::Write;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Args;
use stroom_pipeline::{find_route, load_routes};

use crate::location::{EngineArgs, StoreArgs};

#[derive(Debug, Args)]
pub(crate) struct NowcastArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// Route id.
    #[arg(long)]
    route: String,
    /// The day to score; the latest day the store holds when omitted.
    #[arg(long)]
    date: Option<NaiveDate>,
    /// How many of the most unusual cells to show.
    #[arg(long, default_value_t = 10)]
    cells: usize,
    /// Folder of route files; the shipped routes when omitted.
    #[arg(long)]
    routes: Option<std::path::PathBuf>,
    /// JSON (the API's RouteNowcast) instead of tables.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: &NowcastArgs) -> Result<()> {
    let routes = load_routes(args.routes.as_deref())?;
    let route = find_route(&routes, &args.route)?;
    let store = args.store.open().await?;
    let nowcast = stroom_pipeline::nowcast(&store, &args.engine.engine(), route, args.date, args.cells).await?;
    let mut out = crate::output::stdout();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &nowcast)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} on {} ({}), against the same weekday of the {} weeks before; k = {}",
        nowcast.route, nowcast.date, nowcast.weekday, nowcast.baseline_weeks, nowcast.k
    )?;
    for (title, entries) in [("segment", &nowcast.segments), ("cell", &nowcast.cells)] {
        if entries.is_empty() {
            continue;
        }
        writeln!(out, "\n{:<20} {:>10} {:>10} {:>8} {:>7}", title, "devices", "usual", "spread", "z")?;
        for e in entries {
            writeln!(out, "{:<20} {:>10} {:>10.0} {:>8.1} {:>+7.1}", e.name, e.devices, e.baseline, e.spread, e.z)?;
        }
    }
    Ok(())
}
