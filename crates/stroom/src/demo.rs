//! `stroom demo`: the embedded default run. It simulates two years of
//! density and arrivals on every shipped route (the Channel route driven by
//! the real UK arrivals), loads them and the real UK series into a local
//! store, shows what the store holds, backtests the models at every
//! route's destination and forecasts every route. Running it again reuses
//! the simulation and finds every file already ingested.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use stroom_store::{ArrivalsIngest, DEFAULT_K, EmptyCounts, Store};

use crate::forecast::{BacktestArgs, ForecastArgs, Target};
use crate::simulate::{BackgroundArg, FormArg, SimulateArgs, UK_ARRIVALS};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Working folder: DIR/sim holds the simulated provider files, DIR/store the store.
    #[arg(long, default_value = "stroom-demo")]
    dir: PathBuf,
}

pub(crate) async fn run(args: &DemoArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let sim = args.dir.join("sim");
    let store_path = args.dir.join("store");
    let store = Store::open(&store_path.to_string_lossy())?;
    println!("stroom demo: simulation in {}, store at {}", sim.display(), store_path.display());

    println!("\n# Simulate two years on every route (the Channel route follows the real UK arrivals)");
    if sim.join("manifest.json").exists() {
        println!("simulate: reusing {} (delete the folder to simulate again)", sim.display());
    } else {
        crate::simulate::run(&SimulateArgs {
            out: sim.clone(),
            start: chrono::NaiveDate::from_ymd_opt(2023, 1, 1).expect("a date"),
            days: 730,
            resolution: 7,
            seed: 42,
            routes: None,
            background: BackgroundArg::Corridor,
            scale: 1.0,
            buffer: 2,
            k: DEFAULT_K,
            form: FormArg::Cell,
            synthetic_channel: false,
            no_closure: false,
        })?;
    }

    println!("\n# Real arrivals: UK small-boat crossings (Home Office via The National, CC BY 4.0) as station 'dover'");
    let uk = args.dir.join("uk_small_boats_daily.csv");
    std::fs::write(&uk, UK_ARRIVALS).with_context(|| format!("writing {}", uk.display()))?;
    let real = ArrivalsIngest {
        station: Some("dover".into()),
        date_column: Some("full_date".into()),
        count_column: Some("migrants_arrived".into()),
        station_column: None,
        empty: EmptyCounts::Zero,
    };
    crate::ingest_arrivals(&store, &uk, &real).await?;

    println!("\n# Simulated official arrivals at every station");
    crate::ingest_arrivals(&store, &sim.join("arrivals.csv"), &ArrivalsIngest::default()).await?;

    println!("\n# Simulated hourly device counts per H3 cell");
    crate::ingest_density(&store, &[sim.join("density")], stroom_core::DEFAULT_ROUTE_RESOLUTION, DEFAULT_K).await?;

    println!("\n# What the store holds");
    crate::print_tables(&store.summaries().await?);

    let store_url = store_path.to_string_lossy().into_owned();
    let mut destinations: Vec<String> = Vec::new();
    for route in crate::routes::load_routes(None)? {
        let id = route.destination().id.clone();
        if !destinations.contains(&id) {
            destinations.push(id);
        }
    }
    for station in &destinations {
        println!("\n# Backtest at {station}: 20 folds of 14 days, a week apart");
        let out = args.dir.join("backtests").join(station);
        crate::forecast::backtest(&BacktestArgs::defaults(&store_url, Target::Station(station.clone()), out)).await?;
    }

    println!("\n# Forecasts for every route, recorded in the forecasts table");
    crate::forecast::forecast(&ForecastArgs::defaults(&store_url)).await?;
    println!("\ndemo finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
