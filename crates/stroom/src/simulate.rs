//! `stroom simulate`: synthetic provider files with ground truth.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use stroom_pipeline::{load_routes, simulate};
use stroom_sim::{Background, ProviderForm, SimParams, SimReport};

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Output folder: density/*.parquet, arrivals.csv, truth.parquet, manifest.json.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// First simulated day.
    #[arg(long, default_value = "2023-01-01")]
    pub(crate) start: NaiveDate,
    /// Number of days.
    #[arg(long, default_value_t = 730)]
    pub(crate) days: u32,
    /// H3 resolution of the provider's cells.
    #[arg(long, default_value_t = 7)]
    pub(crate) resolution: u8,
    /// Random seed; the same parameters and seed give byte-identical output.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Folder of route files; the shipped routes when omitted.
    #[arg(long)]
    pub(crate) routes: Option<PathBuf>,
    /// Which cells the provider reports.
    #[arg(long, value_enum, default_value_t = BackgroundArg::Corridor)]
    pub(crate) background: BackgroundArg,
    /// Multiplies background device counts (more cells clear k: more rows).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) scale: f64,
    /// Rings of cells around each segment's path.
    #[arg(long, default_value_t = 2)]
    pub(crate) buffer: u32,
    /// The provider's k-threshold.
    #[arg(long, default_value_t = 15)]
    pub(crate) k: u32,
    /// How the provider identifies places: H3 cells, or lat/lon of area centres.
    #[arg(long, value_enum, default_value_t = FormArg::Cell)]
    pub(crate) form: FormArg,
    /// Drive the Channel route with synthetic departures instead of the real UK arrivals.
    #[arg(long)]
    pub(crate) synthetic_channel: bool,
    /// No border closure.
    #[arg(long)]
    pub(crate) no_closure: bool,
    /// The closure's route and border station as ROUTE/STATION (default
    /// western-balkans/horgos).
    #[arg(long, conflicts_with = "no_closure")]
    pub(crate) closure_at: Option<String>,
    /// First day of the closure (default: the 301st simulated day).
    #[arg(long, conflicts_with = "no_closure")]
    pub(crate) closure_from: Option<NaiveDate>,
    /// Days the closure lasts (default 45).
    #[arg(long, conflicts_with = "no_closure")]
    pub(crate) closure_days: Option<u32>,
    /// The route that those who give up take (default central-mediterranean).
    #[arg(long, conflicts_with = "no_closure")]
    pub(crate) divert_to: Option<String>,
    /// Share of those waiting at the closure who give up each day (default 0.05).
    #[arg(long, conflicts_with = "no_closure")]
    pub(crate) divert_share: Option<f64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FormArg {
    Cell,
    Latlon,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum BackgroundArg {
    Corridor,
    Bbox,
}

pub(crate) fn run(args: &SimulateArgs) -> Result<SimReport> {
    let routes = load_routes(args.routes.as_deref())?;
    let mut params = SimParams {
        start: args.start,
        days: args.days,
        resolution: args.resolution,
        buffer_rings: args.buffer,
        seed: args.seed,
        background: match args.background {
            BackgroundArg::Corridor => Background::Corridor,
            BackgroundArg::Bbox => Background::Bbox,
        },
        scale: args.scale,
        k: args.k,
        provider_form: match args.form {
            FormArg::Cell => ProviderForm::Cell,
            FormArg::Latlon => ProviderForm::LatLon,
        },
        ..SimParams::default()
    };
    if args.no_closure {
        params.flow.closure = None;
    }
    if let Some(closure) = params.flow.closure.as_mut() {
        if let Some(at) = &args.closure_at {
            let (route, station) =
                at.split_once('/').with_context(|| format!("--closure-at '{at}' is not ROUTE/STATION"))?;
            closure.route = route.to_owned();
            closure.station = station.to_owned();
        }
        if let Some(from) = args.closure_from {
            let day = (from - args.start).num_days();
            if !(0..i64::from(args.days)).contains(&day) {
                anyhow::bail!(
                    "--closure-from {from} is not a simulated day ({} and the {} days after)",
                    args.start,
                    args.days - 1
                );
            }
            closure.start_day = day as u32;
        }
        if let Some(days) = args.closure_days {
            closure.days = days;
        }
        if let Some(route) = &args.divert_to {
            closure.divert_to = route.clone();
        }
        if let Some(share) = args.divert_share {
            if !(0.0..=1.0).contains(&share) {
                anyhow::bail!("--divert-share {share} is not a share (0 to 1)");
            }
            closure.divert_share_per_day = share;
        }
        let closure = closure.clone();
        let asked = args.closure_at.is_some()
            || args.closure_from.is_some()
            || args.closure_days.is_some()
            || args.divert_to.is_some()
            || args.divert_share.is_some();
        // The default closure applies only where its routes are simulated.
        if !asked {
            return simulate_with(args, &routes, params);
        }
        let route = routes
            .iter()
            .find(|r| r.id == closure.route)
            .with_context(|| format!("the closure's route '{}' is not a route", closure.route))?;
        match route.stations.iter().find(|s| s.id == closure.station) {
            None => anyhow::bail!("route '{}' has no station '{}'", closure.route, closure.station),
            Some(s) if s.role != stroom_core::StationRole::Border => {
                anyhow::bail!("station '{}' is not a border: the simulator closes borders", closure.station)
            }
            Some(_) => {}
        }
        if !routes.iter().any(|r| r.id == closure.divert_to) {
            anyhow::bail!("the closure diverts to '{}', which is not a route", closure.divert_to);
        }
    }
    simulate_with(args, &routes, params)
}

fn simulate_with(args: &SimulateArgs, routes: &[stroom_core::Route], params: SimParams) -> Result<SimReport> {
    let bar = ProgressBar::new(u64::from(args.days)).with_style(
        ProgressStyle::with_template("{spinner} simulate {pos}/{len} days {wide_bar} {eta}").expect("a valid template"),
    );
    let started = std::time::Instant::now();
    let bar_handle = bar.clone();
    let report = simulate(&params, &routes, args.synthetic_channel, &args.out, &move |done| {
        bar_handle.set_position(done as u64)
    })
    .with_context(|| format!("simulating into {}", args.out.display()))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "simulate: {} days, {} grid cells, {} density rows ({:.0} rows/s), {} cell-hours below k={} withheld, {} arrival rows, {} truth rows -> {}",
        args.days,
        report.grid_cells,
        report.density_rows,
        report.density_rows as f64 / seconds.max(1e-9),
        report.suppressed_cell_hours,
        args.k,
        report.arrivals_rows,
        report.truth_rows,
        args.out.display()
    );
    for (route, totals) in &report.totals {
        println!(
            "  {route:<22} departed {:>7}  arrived {:>7}  diverted out {:>5} in {:>5}  still en route {:>5}{}",
            totals.departures,
            totals.arrived,
            totals.diverted_out,
            totals.diverted_in,
            totals.in_transit_end + totals.waiting_end,
            if totals.real_arrivals { "  (real arrivals)" } else { "" }
        );
    }
    Ok(report)
}
