//! The `stroom` binary: one command line for every stage of the pipeline.

mod alerts;
mod cluster;
mod demo;
mod export;
mod forecast;
mod location;
mod nowcast;
mod output;
mod query;
mod routes;
mod scenario;
mod series;
mod serve;
mod simulate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use location::StoreArgs;
use stroom_core::{DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution};
use stroom_store::{ArrivalsIngest, DEFAULT_K, DensityIngest, EmptyCounts, OnStored, Store, TableSummary};

/// stroom: migration-flow forecasting from aggregated smartphone density on the H3 grid.
#[derive(Debug, Parser)]
#[command(name = "stroom", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the routes with their segments, stations and cell counts.
    Routes(routes::RoutesArgs),
    /// Validate files and load them into the store, as one commit or none.
    Ingest {
        #[command(subcommand)]
        what: IngestCommand,
    },
    /// Show each table of a store: version history, row counts, date range.
    Tables {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove the files that no commit took (left by a writer killed before
    /// its commit); files of every version stay, so time travel still reads
    /// every vintage.
    Vacuum {
        #[command(flatten)]
        store: StoreArgs,
        /// Leave files younger than this (a running ingest's files are not
        /// committed yet): 24h by default; 30m, 2h, 0s.
        #[arg(long, default_value = "24h")]
        older_than: String,
        /// List what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Read-only SQL over a store's tables, with the H3 functions.
    Query(query::QueryArgs),
    /// Density per segment (or around each station) of a route, daily or hourly.
    Series(series::SeriesArgs),
    /// How unusual a day's density is on a route: each segment's and the most
    /// unusual cells' robust z-scores against the same weekday of eight weeks.
    Nowcast(nowcast::NowcastArgs),
    /// Capacity alerts: the chance, from each forecast run, that a station's
    /// arrivals exceed its capacity (from a capacity file) on a forecast day
    /// or in the seven days ending on it.
    Alerts(alerts::AlertsArgs),
    /// Rolling-origin backtest of models on one target: forecasts.parquet,
    /// metrics.csv, series.csv and run.json, and a run in the store's backtests table.
    Backtest(forecast::BacktestArgs),
    /// Forecast the destination of every route (or the given routes or
    /// targets) and record the run in the store's forecasts table.
    Forecast(forecast::ForecastArgs),
    /// What the forecasts become if a route segment closes from a date and a
    /// share of the people held there take another route: the baseline and the
    /// scenario side by side, recorded in the store's scenarios table.
    Scenario(scenario::ScenarioArgs),
    /// Export a route's forecast map or briefing page.
    Export {
        #[command(subcommand)]
        what: export::ExportCommand,
    },
    /// Serve the REST API over a store.
    Serve(serve::ServeArgs),
    /// Create and list the API's keys.
    Keys {
        #[command(subcommand)]
        what: serve::KeysCommand,
    },
    /// Print the API's OpenAPI 3.1 document (committed as api/openapi.json).
    Openapi,
    /// Write synthetic provider files (density, arrivals) with their ground truth.
    Simulate(simulate::SimulateArgs),
    /// Run the embedded demo: simulate two years on every route, load them and
    /// the real UK arrivals into a local store, backtest and forecast, write
    /// the briefing pages, and serve the API.
    Demo(demo::DemoArgs),
    /// Run a Ballista scheduler for `--cluster df://HOST:PORT`, with the H3
    /// functions and stroom's object stores.
    Scheduler(cluster::SchedulerArgs),
    /// Run a Ballista executor that registers with a scheduler and runs its
    /// tasks, with the H3 functions and stroom's object stores.
    Executor(cluster::ExecutorArgs),
}

#[derive(Debug, Subcommand)]
enum IngestCommand {
    /// Hourly device counts: CSV or Parquet files (or folders of them) with
    /// columns ts,lat,lon,count or ts,cell,count. CSV may be gzip or zstd
    /// compressed (.csv.gz, .csv.zst) and separated by commas, semicolons or
    /// tabs (from the header); decimals take a point.
    Density {
        /// Files or folders to ingest.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
        /// H3 resolution at which cells are stored.
        #[arg(long, default_value_t = DEFAULT_ROUTE_RESOLUTION)]
        resolution: u8,
        /// k-anonymity threshold: counts below k per cell and hour are suppressed (at least 15).
        #[arg(long, default_value_t = DEFAULT_K)]
        k: u32,
        /// Add the counts to cell-hours already stored (a supplementary
        /// delivery, such as a second provider's devices) instead of
        /// refusing a delivery that repeats stored cell-hours.
        #[arg(long, conflicts_with = "replace")]
        add_to_stored: bool,
        /// A corrected delivery: replace every stored cell-hour of the
        /// hours the files cover, in the same commit (cells they do not
        /// bring for such an hour are no longer stored; the earlier
        /// version stays readable by time travel).
        #[arg(long)]
        replace: bool,
        /// Distinct (cell, hour) keys held in memory (24 bytes each) before
        /// sorted runs spill to temporary files: the memory bound of an ingest.
        #[arg(long, default_value_t = stroom_store::DEFAULT_SPILL_ENTRIES)]
        spill_entries: usize,
    },
    /// Official daily arrivals per station: a CSV with date,station,count, or
    /// date,count with --station, or other layouts with the column options.
    Arrivals {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Station of every row, for files without a station column.
        #[arg(long)]
        station: Option<String>,
        /// Name of the date column (YYYY-MM-DD).
        #[arg(long)]
        date_column: Option<String>,
        /// Name of the count column.
        #[arg(long)]
        count_column: Option<String>,
        /// Name of the station column.
        #[arg(long)]
        station_column: Option<String>,
        /// What an empty count means: an error, or zero up to the station's
        /// last figure (later empty rows are unknown and not loaded).
        #[arg(long, value_enum, default_value_t = EmptyArg::Error)]
        empty: EmptyArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EmptyArg {
    Error,
    Zero,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("STROOM_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(
                // The Delta kernel logs an error when a table does not exist
                // yet, which stroom expects and handles before creating it.
                "warn,buoyant_kernel=off",
            )
        }))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a Tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader has all it wants (`stroom routes | head -1`).
        Err(error) if output::stdout_closed(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", output::error_text(&error));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Routes(args) => routes::run(&args),
        Command::Backtest(args) => forecast::backtest(&args).await.map(|_| ()),
        Command::Forecast(args) => forecast::forecast(&args).await.map(|_| ()),
        Command::Scenario(args) => scenario::run(&args).await,
        Command::Ingest { what } => match what {
            IngestCommand::Density { paths, store, resolution, k, add_to_stored, replace, spill_entries } => {
                let on_stored = match (add_to_stored, replace) {
                    (true, _) => OnStored::Add,
                    (_, true) => OnStored::Replace,
                    _ => OnStored::Refuse,
                };
                let options = DensityOptions { resolution, k, on_stored, spill_entries };
                ingest_density(&store.create()?, &paths, options).await.map(|_| ())
            }
            IngestCommand::Arrivals { file, store, station, date_column, count_column, station_column, empty } => {
                let ingest = ArrivalsIngest {
                    station,
                    date_column,
                    station_column,
                    count_column,
                    empty: match empty {
                        EmptyArg::Error => EmptyCounts::Error,
                        EmptyArg::Zero => EmptyCounts::Zero,
                    },
                };
                ingest_arrivals(&store.create()?, &file, &ingest).await
            }
        },
        Command::Tables { store } => {
            let store = store.open().await?;
            Ok(print_tables(&store.summaries().await?)?)
        }
        Command::Vacuum { store, older_than, dry_run } => {
            let store = store.open().await?;
            let guard = stroom_core::parse_duration(&older_than).map_err(|e| anyhow::anyhow!("--older-than: {e}"))?;
            let report = store.vacuum(guard, dry_run).await?;
            let verb = if report.removed { "removed" } else { "would remove" };
            for (table, files, bytes) in &report.tables {
                println!("{}: {verb} {files} files ({bytes} bytes) that no commit took", table.as_str());
            }
            if report.too_young > 0 {
                println!(
                    "left {} such files younger than {older_than} (an ingest may still be writing them)",
                    report.too_young
                );
            }
            Ok(())
        }
        Command::Query(args) => query::run(&args).await,
        Command::Series(args) => series::run(&args).await,
        Command::Nowcast(args) => nowcast::run(&args).await,
        Command::Alerts(args) => alerts::run(&args).await,
        Command::Simulate(args) => simulate::run(&args).map(|_| ()),
        Command::Demo(args) => demo::run(&args).await,
        Command::Scheduler(args) => cluster::scheduler(&args).await,
        Command::Executor(args) => cluster::executor(&args).await,
        Command::Export { what } => export::run(&what).await,
        Command::Serve(args) => serve::serve(&args, |_| {}).await,
        Command::Keys { what } => serve::keys(&what),
        Command::Openapi => Ok(output::stdout().write_all(stroom_api::openapi_json().as_bytes())?),
    }
}

/// The command line's density ingest options.
pub(crate) struct DensityOptions {
    pub(crate) resolution: u8,
    pub(crate) k: u32,
    pub(crate) on_stored: OnStored,
    pub(crate) spill_entries: usize,
}

pub(crate) async fn ingest_density(
    store: &Store,
    paths: &[PathBuf],
    options: DensityOptions,
) -> Result<stroom_store::DensityReport> {
    let DensityOptions { resolution, k, on_stored, spill_entries } = options;
    let resolution = Resolution::new(i64::from(resolution))?;
    let ingest = DensityIngest { on_stored, spill_entries, ..DensityIngest::new(resolution, k)? };
    let total: u64 = paths.iter().map(|p| walk_size(p)).sum();
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{spinner} ingest {bytes}/{total_bytes} {wide_bar} {eta}")
            .expect("a valid template"),
    );
    let bar_handle = bar.clone();
    let report = ingest.run(store, paths, &move |bytes| bar_handle.inc(bytes)).await;
    bar.finish_and_clear();
    let report = report?;
    const SHOWN: usize = 5;
    for source in report.sources.iter().take(SHOWN) {
        let state = if source.already_ingested {
            "skipped: already ingested".to_owned()
        } else {
            format!("{} rows", source.rows)
        };
        println!("  {}  {}  ({state})", source.path.display(), &source.sha256[..12]);
    }
    if report.sources.len() > SHOWN {
        let skipped = report.sources.iter().filter(|s| s.already_ingested).count();
        println!(
            "  … and {} more files ({} in all, {skipped} skipped as already ingested)",
            report.sources.len() - SHOWN,
            report.sources.len()
        );
    }
    println!(
        "density: {} rows read, {} cell-hours, {} cells, {} cell-hours suppressed below k={}, {} rows written over {} days",
        report.rows_read, report.cell_hours, report.cells, report.suppressed, k, report.rows_written, report.days
    );
    if on_stored == OnStored::Replace {
        println!("density: {} stored cell-hours of the {} hours delivered replaced", report.replaced, report.hours);
        if report.held > 0 {
            println!(
                "density: {} stored cell-hours held as they were: the correction moved them by less than k={k}, \
                 which the versions before and after would reveal",
                report.held
            );
        }
    }
    println!("density: table version {}", version_change(report.version_before, report.version));
    Ok(report)
}

pub(crate) async fn ingest_arrivals(store: &Store, file: &std::path::Path, ingest: &ArrivalsIngest) -> Result<()> {
    let report = ingest.run(store, file).await?;
    if report.already_ingested {
        println!("arrivals: {} was ingested before (sha256 {}); nothing written", file.display(), &report.sha256[..12]);
    } else {
        println!(
            "arrivals: {} rows read, {} loaded ({} empty read as zero, {} new, {} revised), {} trailing empty rows left out as unknown",
            report.rows_read,
            report.rows_loaded,
            report.zero_filled,
            report.new_rows,
            report.revised_rows,
            report.unknown_trailing
        );
        if let (Some(first), Some(last)) = (report.first_date, report.last_date) {
            println!("arrivals: stations {} from {first} to {last}", report.stations.join(", "));
        }
    }
    println!("arrivals: table version {}", version_change(report.version_before, report.version));
    Ok(())
}

fn version_change(before: Option<u64>, after: Option<u64>) -> String {
    match (before, after) {
        (b, a) if b == a => format!("{} (unchanged)", a.map_or("none".into(), |v| v.to_string())),
        (None, Some(a)) => format!("{a} (new table)"),
        (Some(b), Some(a)) => format!("{b} -> {a}"),
        _ => "none".into(),
    }
}

fn walk_size(path: &std::path::Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| entries.filter_map(Result::ok).map(|e| walk_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

pub(crate) fn print_tables(summaries: &[TableSummary]) -> std::io::Result<()> {
    let mut out = output::stdout();
    if summaries.is_empty() {
        writeln!(out, "The store holds no tables yet.")?;
    }
    for summary in summaries {
        let range = match (&summary.first, &summary.last) {
            (Some(first), Some(last)) => format!(", {first} .. {last}"),
            _ => String::new(),
        };
        let facts: Vec<String> = summary.facts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(
            out,
            "{}: version {}, {} rows{range}{}",
            summary.table.as_str(),
            summary.version,
            summary.rows,
            if facts.is_empty() { String::new() } else { format!(", {}", facts.join(", ")) }
        )?;
        for version in &summary.versions {
            let when = version
                .timestamp_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default();
            let detail = version.stroom.as_ref().map(describe_commit).unwrap_or_default();
            writeln!(out, "  v{:<4} {when}  {:<14} {detail}", version.version, version.operation)?;
        }
    }
    Ok(())
}

fn describe_commit(metadata: &serde_json::Value) -> String {
    let sources: Vec<String> = metadata
        .get("sources")
        .and_then(|s| s.as_array())
        .map(|sources| {
            sources
                .iter()
                .map(|s| {
                    format!(
                        "{} ({})",
                        s.get("file").and_then(|f| f.as_str()).unwrap_or("?"),
                        s.get("sha256").and_then(|h| h.as_str()).map(|h| &h[..12.min(h.len())]).unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let shown = if sources.len() > 3 {
        format!("{} and {} more", sources[..3].join(", "), sources.len() - 3)
    } else {
        sources.join(", ")
    };
    format!("{} {shown}", metadata.get("operation").and_then(|o| o.as_str()).unwrap_or(""))
}

/// Default buffer around route paths, re-exported for the subcommands.
pub(crate) const DEFAULT_BUFFER: u32 = DEFAULT_BUFFER_RINGS;
