//! `stroom backtest` and `stroom forecast`: the arguments, the use cases of
//! `stroom-pipeline`, and the printed reports.

use crate::location::{EngineArgs, StoreArgs};
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::Args;
use stroom_model::{Backtest, BacktestRow, MetricsRow, ModelKind};
use stroom_pipeline::{BacktestSpec, ForecastSpec, ModelOptions, Target, TargetForecast, load_routes};

/// The model options shared by `backtest` and `forecast`.
#[derive(Debug, Args, Clone)]
pub(crate) struct ModelArgs {
    /// Days ahead (1 to 28).
    #[arg(long, default_value_t = 14)]
    horizon: usize,
    /// Calibration origins before each cutoff (conformal intervals, model choice).
    #[arg(long, default_value_t = 28)]
    calibration_origins: usize,
    /// Days between calibration origins.
    #[arg(long, default_value_t = 6)]
    calibration_step: usize,
    /// Days averaged by the moving-average baseline.
    #[arg(long, default_value_t = 7)]
    window: usize,
    /// Holidays (YYYY-MM-DD, comma-separated) given their own effect in the regression.
    #[arg(long, value_delimiter = ',')]
    holidays: Vec<NaiveDate>,
    /// Folder of route files; the shipped routes when omitted.
    #[arg(long)]
    pub(crate) routes: Option<PathBuf>,
}

impl ModelArgs {
    pub(crate) fn options(&self) -> ModelOptions {
        ModelOptions {
            horizon: self.horizon,
            calibration_origins: self.calibration_origins,
            calibration_step: self.calibration_step,
            window: self.window,
            holidays: self.holidays.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct BacktestArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// station:ID or segment:ROUTE/SEGMENT.
    #[arg(long)]
    target: Target,
    /// Number of folds.
    #[arg(long, default_value_t = 20)]
    folds: usize,
    /// Days between fold cutoffs.
    #[arg(long, default_value_t = 7)]
    step: usize,
    /// Models, comma-separated: auto, ensemble, elasticnet, elasticnet_univariate, ets,
    /// moving_average, seasonal_naive, naive.
    #[arg(long, default_value = "auto,ensemble,elasticnet,ets,moving_average,seasonal_naive,naive")]
    models: String,
    /// Output folder for forecasts.parquet, metrics.csv, series.csv and run.json.
    #[arg(long)]
    out: PathBuf,
    /// Fit each fold on the data vintage that existed at the end of its cutoff day
    /// (Delta time travel), instead of the latest data.
    #[arg(long)]
    vintage: bool,
    /// Do not record the run in the store's backtests table.
    #[arg(long)]
    no_record: bool,
    /// A daily capacity of the target: report how calibrated each model's
    /// probabilities of exceeding it were (exceedance.json).
    #[arg(long)]
    capacity: Option<f64>,
    /// The alert level the calibration reports on.
    #[arg(long, default_value_t = stroom_pipeline::DEFAULT_ALERT_LEVEL)]
    alert_level: f64,
    #[command(flatten)]
    options: ModelArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ForecastArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// Routes whose destination is forecast (repeatable); every route when
    /// neither --route nor --target is given.
    #[arg(long)]
    route: Vec<String>,
    /// Targets: station:ID or segment:ROUTE/SEGMENT (repeatable).
    #[arg(long)]
    target: Vec<Target>,
    /// The model: auto, ensemble, elasticnet, ets, moving_average, seasonal_naive, naive.
    #[arg(long, default_value = "auto")]
    model: String,
    /// Do not record the run in the store's forecasts table.
    #[arg(long)]
    no_record: bool,
    /// Also print each day's mean split into the level, each upstream
    /// signal and the rest (the parts sum to the mean).
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    options: ModelArgs,
}

/// `stroom backtest`: runs, writes the files, prints the report, records.
pub(crate) async fn backtest(args: &BacktestArgs) -> Result<()> {
    let store = args.store.open().await?;
    let routes = load_routes(args.options.routes.as_deref())?;
    let spec = BacktestSpec {
        target: args.target.clone(),
        folds: args.folds,
        step: args.step,
        models: ModelKind::parse_list(&args.models)?,
        on_vintages: args.vintage,
        options: args.options.options(),
    };
    if let Some(c) = args.capacity
        && !(c.is_finite() && c > 0.0)
    {
        anyhow::bail!("--capacity {c} must be a positive number of arrivals");
    }
    if !(args.alert_level > 0.0 && args.alert_level < 1.0) {
        anyhow::bail!("--alert-level {} must be between 0 and 1 (exclusive)", args.alert_level);
    }
    let capacity = args.capacity.map(|c| (c, args.alert_level));
    run_backtest(&store, &args.engine, &routes, &spec, &args.out, !args.no_record, capacity).await
}

/// Runs one backtest and reports it: the demo's and `stroom backtest`'s.
pub(crate) async fn run_backtest(
    store: &stroom_store::Store,
    engine: &EngineArgs,
    routes: &[stroom_core::Route],
    spec: &BacktestSpec,
    out: &std::path::Path,
    record: bool,
    capacity: Option<(f64, f64)>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let run = stroom_pipeline::backtest(store, &engine.engine(), routes, spec, &|_, _| {}).await?;
    run.write_files(out).with_context(|| format!("writing the backtest into {}", out.display()))?;
    print_metrics(&run.target, &run.result, &run.chosen);
    println!(
        "\nbacktest: {} folds × {} days, cutoffs {} .. {}, {:.1} s",
        spec.folds,
        spec.options.horizon,
        run.result.cutoffs.first().map(|c| c.to_string()).unwrap_or_default(),
        run.result.cutoffs.last().map(|c| c.to_string()).unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    println!("wrote {}/forecasts.parquet, metrics.csv, series.csv, run.json", out.display());
    if let Some((capacity, level)) = capacity {
        let calibration = stroom_pipeline::exceedance_calibration(&run.result.rows, capacity, level);
        print_calibration(&calibration);
        let path = out.join("exceedance.json");
        std::fs::write(&path, serde_json::to_string_pretty(&calibration)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if record {
        let version = run.record(store).await?;
        println!("recorded run {} in the backtests table (version {version})", run.run_id);
    }
    Ok(())
}

/// Of the days each model gave a probability at or above the level of
/// exceeding the capacity, the share that did; then every band.
fn print_calibration(calibration: &[stroom_pipeline::ExceedanceCalibration]) {
    let Some(first) = calibration.first() else { return };
    println!(
        "\nexceedance of a daily capacity of {} (alert level {}): share of days that exceeded, by forecast probability",
        first.capacity, first.level
    );
    let share = |b: &stroom_pipeline::ReliabilityBin| {
        if b.days == 0 { "-".to_owned() } else { format!("{:.2} of {}", b.exceeded, b.days) }
    };
    print!("{:<22} {:>14}", "model", format!("p >= {}", first.level));
    for b in &first.bins {
        print!(" {:>14}", format!("{:.1}-{:.1}", b.from, b.to));
    }
    println!();
    for c in calibration {
        print!("{:<22} {:>14}", c.model, share(&c.at_level));
        for b in &c.bins {
            print!(" {:>14}", share(b));
        }
        println!();
    }
}

/// `stroom forecast`: forecasts, prints each target, records.
pub(crate) async fn forecast(args: &ForecastArgs) -> Result<()> {
    let store = args.store.open().await?;
    let routes = load_routes(args.options.routes.as_deref())?;
    let spec = ForecastSpec {
        routes: args.route.clone(),
        targets: args.target.clone(),
        model: ModelKind::parse(&args.model)?,
        options: args.options.options(),
    };
    run_forecast(&store, &args.engine, &routes, &spec, !args.no_record, args.explain).await
}

/// Forecasts and reports: the demo's and `stroom forecast`'s.
pub(crate) async fn run_forecast(
    store: &stroom_store::Store,
    engine: &EngineArgs,
    routes: &[stroom_core::Route],
    spec: &ForecastSpec,
    record: bool,
    explain: bool,
) -> Result<()> {
    let run = stroom_pipeline::forecast(store, &engine.engine(), routes, spec).await?;
    for target in &run.targets {
        print_forecast(target, spec.options.horizon);
        if explain {
            print_parts(target, spec.model);
        }
    }
    if record {
        if let Some(version) = run.record(store).await? {
            println!("\nrecorded run {} in the forecasts table (version {version})", run.run_id);
        }
    }
    Ok(())
}

fn print_forecast(forecast: &TargetForecast, horizon: usize) {
    let input = &forecast.series.input;
    println!(
        "\n# {}: {} from {} (data up to {}), {} days ahead",
        forecast.target,
        forecast.model_description(),
        input.date(forecast.cutoff + 1),
        input.date(forecast.cutoff),
        horizon
    );
    println!("{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}", "date", "mean", "q10", "q50", "q90", "lo95", "hi95");
    let rows: &[BacktestRow] = &forecast.rows;
    for r in rows {
        println!(
            "{:<12} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            r.date.to_string(),
            r.mean,
            r.q10,
            r.q50,
            r.q90,
            r.lo95,
            r.hi95
        );
    }
}

/// Each day's mean as the level, the upstream signals (largest first, those
/// of at least half an arrival) and the rest.
fn print_parts(forecast: &TargetForecast, model: ModelKind) {
    let Some(f) = forecast.result.forecasts.iter().find(|f| f.model == model) else { return };
    let input = &forecast.series.input;
    println!(
        "{:<12} {:>9} {:>9} {:>9}  upstream signals (segment, baseline weeks, lead days: arrivals)",
        "date", "mean", "level", "rest"
    );
    for (step, a) in f.steps.iter().zip(&f.attribution) {
        let mut signals = a.signals.clone();
        signals.sort_by(|x, y| y.part.abs().total_cmp(&x.part.abs()));
        let shown: Vec<String> = signals
            .iter()
            .filter(|s| s.part.abs() >= 0.5)
            .map(|s| format!("{} ({}w, {}d): {:+.1}", s.name, s.baseline_weeks, s.lead, s.part))
            .collect();
        println!(
            "{:<12} {:>9.1} {:>9.1} {:>+9.1}  {}",
            input.date(forecast.cutoff + step.horizon).to_string(),
            step.mean,
            a.level,
            a.rest,
            if shown.is_empty() { "-".to_owned() } else { shown.join("; ") }
        );
    }
}

fn print_metrics(target: &str, result: &Backtest, chosen: &BTreeMap<String, usize>) {
    let overall: Vec<&MetricsRow> = result.metrics.iter().filter(|m| m.horizon.is_none()).collect();
    let reference = overall.iter().find(|m| m.model == ModelKind::SeasonalNaive.name()).map(|m| m.metrics.mase);
    println!(
        "# backtest of {target}: metrics averaged over folds (MAE, MASE, sMAPE 0-200, WAPE of q50; RMSE, RMSSE of the mean)"
    );
    println!(
        "{:<22} {:>9} {:>7} {:>8} {:>7} {:>9} {:>7} {:>6} {:>6} {:>9} {:>9} {:>8} {:>9}",
        "model",
        "MAE",
        "MASE",
        "sMAPE",
        "WAPE",
        "RMSE",
        "RMSSE",
        "cov80",
        "cov95",
        "IS80",
        "IS95",
        "pinball",
        "MASE/sn"
    );
    for m in overall {
        let x = &m.metrics;
        let relative = reference.filter(|r| *r > 0.0).map(|r| format!("{:.3}", x.mase / r)).unwrap_or("-".into());
        println!(
            "{:<22} {:>9.2} {:>7.3} {:>8.2} {:>7.3} {:>9.2} {:>7.3} {:>6.3} {:>6.3} {:>9.1} {:>9.1} {:>8.2} {:>9}",
            m.model,
            x.mae,
            x.mase,
            x.smape,
            x.wape,
            x.rmse,
            x.rmsse,
            x.coverage80,
            x.coverage95,
            x.interval_score80,
            x.interval_score95,
            x.pinball,
            relative
        );
    }
    if !chosen.is_empty() {
        let text: Vec<String> = chosen.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        println!("auto chose: {}", text.join(", "));
    }
    if let Some(last) = result.folds.last() {
        let leads: Vec<String> = last
            .leads
            .iter()
            .map(|s| match s.lead {
                Some(l) => format!("{} ({} w) {} d (r={:.2})", s.name, s.baseline_weeks, l.days, l.correlation),
                None => format!("{} ({} w) -", s.name, s.baseline_weeks),
            })
            .collect();
        if !leads.is_empty() {
            println!("upstream leads at the last cutoff: {}", leads.join(", "));
        }
    }
}
