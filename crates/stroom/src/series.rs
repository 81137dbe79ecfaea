//! `stroom series`: the density per segment (or around each station) of a
//! route, daily or hourly, as the models read it.

use crate::location::{EngineArgs, StoreArgs};
use std::io::Write;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::{Args, ValueEnum};
use datafusion::arrow::util::pretty::pretty_format_batches;
use stroom_core::Resolution;
use stroom_query::{QuerySession, SeriesGranularity};

use stroom_pipeline::load_routes;

#[derive(Debug, Args)]
pub(crate) struct SeriesArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// Route id.
    #[arg(long)]
    route: String,
    /// First day (inclusive).
    #[arg(long)]
    from: NaiveDate,
    /// Last day (exclusive).
    #[arg(long)]
    to: NaiveDate,
    /// Per segment, or around each station.
    #[arg(long, value_enum, default_value_t = Level::Segment)]
    level: Level,
    /// Hourly instead of daily.
    #[arg(long)]
    hourly: bool,
    /// Rings of cells around segment paths (segment level) or around stations (station level).
    #[arg(long, default_value_t = 2)]
    buffer: u32,
    /// Folder of route files; the shipped routes when omitted.
    #[arg(long)]
    routes: Option<std::path::PathBuf>,
    /// CSV instead of a table.
    #[arg(long)]
    csv: bool,
    /// Print the plan with its metrics (EXPLAIN ANALYZE) instead of the series.
    #[arg(long)]
    explain: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Level {
    Segment,
    Station,
}

pub(crate) async fn run(args: &SeriesArgs) -> Result<()> {
    let routes = load_routes(args.routes.as_deref())?;
    let Some(route) = routes.iter().find(|r| r.id == args.route) else { bail!("no route '{}'", args.route) };
    if args.from >= args.to {
        bail!("--from {} must be before --to {}", args.from, args.to);
    }
    let store = args.store.open().await?;
    let session = QuerySession::open_on(&store, None, &args.engine.engine()).await?;
    let resolution = Resolution::new(i64::from(stroom_core::DEFAULT_ROUTE_RESOLUTION))?;
    let granularity = if args.hourly { SeriesGranularity::Hour } else { SeriesGranularity::Day };
    let batches = match args.level {
        Level::Segment if args.explain => {
            let cells = route.cells(resolution, args.buffer)?;
            let sql = session.segment_series_sql(&cells, args.from, args.to, granularity)?;
            session.context().sql(&format!("EXPLAIN ANALYZE {sql}")).await?.collect().await?
        }
        Level::Segment => {
            let cells = route.cells(resolution, args.buffer)?;
            session.segment_series(&cells, args.from, args.to, granularity).await?
        }
        Level::Station => {
            session.station_density_series(route, resolution, args.buffer, args.from, args.to, granularity).await?
        }
    };
    let mut bytes = Vec::new();
    if args.csv {
        // Written to memory first: Arrow's CSV writer turns a failed write
        // into text, which would hide a closed standard output.
        let mut writer = datafusion::arrow::csv::Writer::new(&mut bytes);
        for batch in &batches {
            writer.write(batch).context("writing CSV")?;
        }
    } else {
        bytes = format!("{}\n", pretty_format_batches(&batches)?).into_bytes();
    }
    crate::output::stdout().write_all(&bytes)?;
    Ok(())
}
