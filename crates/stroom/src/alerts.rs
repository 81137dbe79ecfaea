//! `stroom alerts`: the capacity alerts that the store's forecast runs give
//! with a capacity file, as a table or JSON (the API's alerts).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use stroom_api::AlertStatus;
use stroom_pipeline::{AlertRules, Capacities, DEFAULT_ALERT_LEVEL};

use crate::location::StoreArgs;

#[derive(Debug, Args)]
pub(crate) struct AlertsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The station capacities (TOML, `[stations.ID]` with `daily` and/or `weekly`).
    #[arg(long, default_value = "capacities.toml")]
    capacities: PathBuf,
    /// The probability of exceeding a capacity at which an alert opens.
    #[arg(long, default_value_t = DEFAULT_ALERT_LEVEL)]
    level: f64,
    /// Closed alerts too.
    #[arg(long)]
    all: bool,
    /// JSON (the API's alerts) instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: &AlertsArgs) -> Result<()> {
    if !(args.level > 0.0 && args.level < 1.0) {
        bail!("--level {} must be between 0 and 1 (exclusive)", args.level);
    }
    let capacities = Capacities::load(&args.capacities)?;
    if capacities.stations().is_empty() {
        eprintln!("{} sets no capacity: there can be no alert", args.capacities.display());
    }
    let store = args.store.open().await?;
    let rules = AlertRules { capacities, level: args.level };
    let alerts: Vec<_> = stroom_pipeline::alerts(&store, &rules)
        .await?
        .into_iter()
        .filter(|a| args.all || a.status == AlertStatus::Open)
        .collect();
    let mut out = crate::output::stdout();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &alerts)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<16} {:<10} {:<6} {:>9} {:>7} {:>9} {:>9}  {:<6} {}",
        "station", "date", "window", "capacity", "P(>)", "excess", "median", "status", "run"
    )?;
    for a in &alerts {
        let status = match (a.status, &a.closed_because) {
            (AlertStatus::Open, _) => "open".to_owned(),
            (AlertStatus::Closed, Some(why)) => format!("closed ({why})"),
            (AlertStatus::Closed, None) => "closed".to_owned(),
        };
        let tail = a.tail.as_deref().map_or(String::new(), |t| format!(" ({t} tail)"));
        writeln!(
            out,
            "{:<16} {:<10} {:<6} {:>9.0} {:>7.3} {:>9.1} {:>9.1}  {:<6} {}{tail}",
            a.station,
            a.date,
            serde_json::to_value(a.window)?.as_str().unwrap_or_default(),
            a.capacity,
            a.probability,
            a.expected_excess,
            a.median,
            status,
            a.run_id
        )?;
    }
    if alerts.is_empty() {
        writeln!(out, "no {}alert at level {}", if args.all { "" } else { "open " }, args.level)?;
    }
    Ok(())
}
