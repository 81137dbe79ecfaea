//! `stroom scenario`: a closure scenario beside its baseline, printed,
//! optionally written as CSV, and recorded in the store's scenarios table.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::Args;
use stroom_model::ModelKind;
use stroom_pipeline::{Closure, ScenarioRun, ScenarioSpec, load_routes};

use crate::forecast::ModelArgs;
use crate::location::{EngineArgs, StoreArgs};

#[derive(Debug, Args)]
pub(crate) struct ScenarioArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// The route with the closure.
    #[arg(long)]
    route: String,
    /// The segment closed: nobody enters it from its start station.
    #[arg(long)]
    close: String,
    /// First day of the closure.
    #[arg(long)]
    from: NaiveDate,
    /// Day the segment reopens (open-ended when omitted).
    #[arg(long)]
    until: Option<NaiveDate>,
    /// The route that some of the people held take instead.
    #[arg(long)]
    divert_to: Option<String>,
    /// Share of the people held who give up each day and take --divert-to.
    #[arg(long, default_value_t = 0.0)]
    share: f64,
    /// Days from the closure to the origin of --divert-to.
    #[arg(long, default_value_t = 2)]
    transfer_days: u32,
    /// Days from the closed segment's start to the route's destination, when
    /// known; estimated from the density leads otherwise.
    #[arg(long)]
    travel_days: Option<u32>,
    /// Days from the origins of --divert-to to its destination, when known;
    /// estimated from the density leads otherwise.
    #[arg(long)]
    divert_travel_days: Option<u32>,
    /// Take the data to end on this day (a past cutoff); the last known day when omitted.
    #[arg(long)]
    as_of: Option<NaiveDate>,
    /// The baseline's model.
    #[arg(long, default_value = "auto")]
    model: String,
    #[command(flatten)]
    options: ModelArgs,
    /// Also write every row (target, variant, cutoff, date, horizon, mean, quantiles) as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Do not record the scenario in the store's scenarios table.
    #[arg(long)]
    no_record: bool,
}

pub(crate) async fn run(args: &ScenarioArgs) -> Result<()> {
    let routes = load_routes(args.options.routes.as_deref())?;
    let spec = ScenarioSpec {
        closure: Closure {
            route: args.route.clone(),
            segment: args.close.clone(),
            from: args.from,
            until: args.until,
            divert_to: args.divert_to.clone(),
            share: args.share,
            transfer_days: args.transfer_days,
            travel_days: args.travel_days,
            divert_travel_days: args.divert_travel_days,
        },
        model: ModelKind::parse(&args.model)?,
        options: args.options.options(),
        as_of: args.as_of,
    };
    spec.check(&routes)?;
    let store = args.store.open().await?;
    let run = stroom_pipeline::scenario(&store, &args.engine.engine(), &routes, &spec).await?;
    print(&run);
    if let Some(path) = &args.csv {
        write_csv(path, &run).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if !args.no_record {
        let version = run.record(&store).await?;
        println!("recorded scenario {} in the scenarios table (version {version})", run.run_id);
    }
    Ok(())
}

pub(crate) fn print(run: &ScenarioRun) {
    let c = &run.closure;
    let a = &run.assumptions;
    println!(
        "# scenario: {}/{} closed from {}{}{}",
        c.route,
        c.segment,
        c.from,
        c.until.map(|u| format!(" until {u}")).unwrap_or_default(),
        c.divert_to
            .as_ref()
            .map(|d| format!(
                ", {:.0}% a day of those held take {d} ({} days to its origin)",
                100.0 * c.share,
                c.transfer_days
            ))
            .unwrap_or_default()
    );
    println!("flow over the segment: {:.1} a day on average, from {}", a.flow_per_day, a.flow_source);
    println!("travel to the destination: {} days ({})", a.close_lag_days, a.close_lag_source);
    if let (Some(days), Some(source)) = (a.divert_lag_days, &a.divert_lag_source) {
        println!("travel on {}: {days} days ({source})", c.divert_to.as_deref().unwrap_or_default());
    }
    for t in &run.targets {
        println!("\n## {} ({}), data up to {}", t.target, t.role, t.cutoff);
        println!(
            "{:<12} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9}",
            "date", "baseline", "lo80", "hi80", "scenario", "lo80", "hi80"
        );
        for (b, s) in t.baseline.iter().zip(&t.scenario) {
            println!(
                "{:<12} {:>9.1} {:>9.1} {:>9.1}   {:>9.1} {:>9.1} {:>9.1}",
                b.date.to_string(),
                b.mean,
                b.lo80,
                b.hi80,
                s.mean,
                s.lo80,
                s.hi80
            );
        }
    }
}

fn write_csv(path: &std::path::Path, run: &ScenarioRun) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "target,role,variant,cutoff,date,horizon,mean,q10,q50,q90,lo80,hi80,lo95,hi95")?;
    for t in &run.targets {
        for (variant, rows) in [("baseline", &t.baseline), ("scenario", &t.scenario)] {
            for r in rows {
                writeln!(
                    out,
                    "{},{},{variant},{},{},{},{},{},{},{},{},{},{},{}",
                    t.target,
                    t.role,
                    r.cutoff,
                    r.date,
                    r.horizon,
                    r.mean,
                    r.q10,
                    r.q50,
                    r.q90,
                    r.lo80,
                    r.hi80,
                    r.lo95,
                    r.hi95
                )?;
            }
        }
    }
    out.flush()
}
