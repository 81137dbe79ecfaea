//! `stroom demo`: the embedded default run. It simulates two years of
//! density and arrivals on every shipped route (the Channel route driven by
//! the real UK arrivals), loads them and the real UK series into a local
//! store, shows what the store holds, backtests the models at every
//! route's destination, forecasts every route, sets each destination's
//! capacity (the 90th percentile of its last year, kept if already set) and
//! lists the open alerts. Running it again reuses the simulation and finds
//! every file already ingested.

use crate::location::{EngineArgs, StoreArgs};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use stroom_store::{ArrivalsIngest, DEFAULT_K, EmptyCounts, OnStored};

use stroom_api::{Capacity, KeyFile, MapFormat, Role};

use crate::serve::ServeArgs;
use crate::simulate::{BackgroundArg, FormArg, SimulateArgs};
use stroom_pipeline::{AlertRules, BacktestSpec, Capacities, ForecastSpec, Target, UK_ARRIVALS, load_routes};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Working folder: DIR/sim holds the simulated provider files, DIR/store the store.
    #[arg(long, default_value = "stroom-demo")]
    dir: PathBuf,
    /// Address the API is served on at the end.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Stop after the briefings instead of serving the API.
    #[arg(long)]
    no_serve: bool,
    /// Store location instead of DIR/store: a folder or s3://BUCKET/PREFIX.
    #[arg(long = "store", value_name = "LOCATION")]
    store: Option<String>,
    /// An object-store option, KEY=VALUE (repeatable), as for every command.
    #[arg(long = "storage-option", value_name = "KEY=VALUE", value_parser = crate::location::parse_option)]
    storage_options: Vec<(String, String)>,
}

/// The demo's backtests compare every model, the regression without upstream
/// signals included.
const DEMO_MODELS: &str = "auto,ensemble,elasticnet,elasticnet_univariate,ets,moving_average,seasonal_naive,naive";

/// The simulated period.
const SIM_START: chrono::NaiveDate = chrono::NaiveDate::from_ymd_opt(2023, 1, 1).expect("a date");
const SIM_DAYS: u32 = 730;

pub(crate) async fn run(args: &DemoArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let sim = args.dir.join("sim");
    let store_args = StoreArgs {
        location: args.store.clone().unwrap_or_else(|| args.dir.join("store").to_string_lossy().into_owned()),
        storage_options: args.storage_options.clone(),
    };
    let store = store_args.create()?;
    println!("stroom demo: simulation in {}, store at {}", sim.display(), store_args.location);

    println!("\n# Simulate two years on every route (the Channel route follows the real UK arrivals)");
    if sim.join("manifest.json").exists() {
        println!("simulate: reusing {} (delete the folder to simulate again)", sim.display());
    } else {
        crate::simulate::run(&SimulateArgs {
            out: sim.clone(),
            start: SIM_START,
            days: SIM_DAYS,
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
            closure_at: None,
            closure_from: None,
            closure_days: None,
            divert_to: None,
            divert_share: None,
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
    crate::ingest_density(
        &store,
        &[sim.join("density")],
        crate::DensityOptions {
            resolution: stroom_core::DEFAULT_ROUTE_RESOLUTION,
            k: DEFAULT_K,
            on_stored: OnStored::Refuse,
            spill_entries: stroom_store::DEFAULT_SPILL_ENTRIES,
        },
    )
    .await?;

    println!("\n# What the store holds");
    crate::print_tables(&store.summaries().await?)?;

    let mut destinations: Vec<String> = Vec::new();
    let routes = load_routes(None)?;
    for route in &routes {
        let id = route.destination().id.clone();
        if !destinations.contains(&id) {
            destinations.push(id);
        }
    }
    for station in &destinations {
        println!("\n# Backtest at {station}: 20 folds of 14 days, a week apart");
        let out = args.dir.join("backtests").join(station);
        let spec = BacktestSpec {
            models: stroom_model::ModelKind::parse_list(DEMO_MODELS)?,
            ..BacktestSpec::new(Target::Station(station.clone()))
        };
        crate::forecast::run_backtest(&store, &EngineArgs::default(), &routes, &spec, &out, true, None).await?;
    }

    println!("\n# Forecasts for every route, recorded in the forecasts table");
    let spec = ForecastSpec::default();
    crate::forecast::run_forecast(&store, &EngineArgs::default(), &routes, &spec, true, false).await?;

    // The simulator's closure asked ahead: Horgoš closes the day after the data.
    let from = SIM_START + chrono::Duration::days(i64::from(SIM_DAYS));
    println!(
        "\n# A closure scenario: Horgoš to Budapest closed from {from}, 5% a day of those held taking the central \
         Mediterranean route"
    );
    let closure = stroom_pipeline::Closure {
        route: "western-balkans".into(),
        segment: "horgos-budapest".into(),
        from,
        until: None,
        divert_to: Some("central-mediterranean".into()),
        share: 0.05,
        transfer_days: stroom_pipeline::DEFAULT_TRANSFER_DAYS,
        travel_days: None,
        divert_travel_days: None,
    };
    let scenario = stroom_pipeline::scenario(
        &store,
        &EngineArgs::default().engine(),
        &routes,
        &stroom_pipeline::ScenarioSpec::new(closure),
    )
    .await?;
    crate::scenario::print(&scenario);
    let version = scenario.record(&store).await?;
    println!("recorded scenario {} in the scenarios table (version {version})", scenario.run_id);

    // Capacities for the alerts, kept when the file already sets them.
    let capacities_path = args.dir.join("capacities.toml");
    let mut capacities = Capacities::load(&capacities_path)?;
    println!(
        "\n# Capacities in {}: each destination the 90th percentile of its last year's daily arrivals",
        capacities_path.display()
    );
    for station in &destinations {
        if capacities.stations().contains_key(station) {
            continue;
        }
        if let Some(p90) = stroom_pipeline::recent_quantile(&store, station, 0.9).await?.filter(|v| *v > 0.0) {
            capacities.set(station, Capacity { daily: Some(p90), weekly: Some(7.0 * p90) })?;
        }
    }
    let rules = AlertRules { capacities, level: stroom_pipeline::DEFAULT_ALERT_LEVEL };
    let open: Vec<_> = stroom_pipeline::alerts(&store, &rules)
        .await?
        .into_iter()
        .filter(|a| a.status == stroom_api::AlertStatus::Open)
        .collect();
    for (station, capacity) in rules.capacities.stations() {
        let mine = open.iter().filter(|a| a.station == *station).count();
        println!(
            "{station:<22} daily {:>6.0}, weekly {:>7.0}: {mine} open alert{}",
            capacity.daily.unwrap_or(f64::NAN),
            capacity.weekly.unwrap_or(f64::NAN),
            if mine == 1 { "" } else { "s" }
        );
    }

    println!("\n# Briefing pages and maps of every route");
    let briefings = args.dir.join("briefings");
    std::fs::create_dir_all(&briefings).with_context(|| format!("creating {}", briefings.display()))?;
    for route in &routes {
        for (format, extension) in [(MapFormat::Html, "html"), (MapFormat::Png, "png"), (MapFormat::GeoJson, "geojson")]
        {
            let path = briefings.join(format!("{}.{extension}", route.id));
            match stroom_pipeline::render(&store, route, None, format, &rules, Default::default()).await {
                Ok(bytes) => std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?,
                Err(error) => {
                    println!("{}: no {extension} ({error})", route.id);
                    continue;
                }
            }
            if format == MapFormat::Html {
                let absolute = std::fs::canonicalize(&path).unwrap_or(path.clone());
                println!("{:<22} file://{}", route.id, absolute.display());
            }
        }
    }
    let page = briefings.join("scenario.html");
    let html = stroom_pipeline::scenario_page(&store, &routes, &scenario.run_id).await?;
    std::fs::write(&page, html).with_context(|| format!("writing {}", page.display()))?;
    println!("{:<22} file://{}", "closure scenario", std::fs::canonicalize(&page).unwrap_or(page.clone()).display());
    println!("\ndemo finished in {:.1} s", started.elapsed().as_secs_f64());
    if args.no_serve {
        return Ok(());
    }

    println!("\n# The REST API");
    let keys = args.dir.join("keys.toml");
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (token, _) = KeyFile::create_key(&keys, Role::Viewer, None, created, None)?;
    let serve = ServeArgs {
        store: store_args.clone(),
        engine: EngineArgs::default(),
        addr: args.addr,
        keys,
        audit: args.dir.join("audit.jsonl"),
        jobs: args.dir.join("jobs.jsonl"),
        routes: None,
        capacities: args.dir.join("capacities.toml"),
        alert_level: stroom_pipeline::DEFAULT_ALERT_LEVEL,
        webhooks: Vec::new(),
        request_timeout_ms: 60_000,
        upload_limit_mib: 1024,
        upload_timeout_s: 1800,
        key_check_interval_ms: 1000,
        refresh: "off".to_owned(),
        upload_dir: None,
    };
    crate::serve::serve(&serve, |addr| {
        println!("viewer token (shown only here; {} holds only its hash):\n  {token}", serve.keys.display());
        println!("try:");
        let base = format!("http://{addr}");
        println!("  curl {base}/healthz");
        println!("  curl -H 'Authorization: Bearer {token}' {base}/v1/routes");
        for route in &routes {
            println!("  curl -H 'Authorization: Bearer {token}' {base}/v1/routes/{}/forecast", route.id);
        }
        println!("briefing pages over the API (same header):");
        for route in &routes {
            println!("  {base}/v1/routes/{}/briefing.html", route.id);
        }
        println!("the contract: {base}/openapi.json; stop with Ctrl-C");
    })
    .await
}
