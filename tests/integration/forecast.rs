//! Forecasting and backtests: metrics against utilsforecast, the fold
//! convention, the real UK series, a simulated route with its upstream
//! signal (and the ablation without it), forecast runs in the store, and
//! bad options.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type, Int32Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use stroom_model::metrics::{Scored, average_folds, sample_metrics, seasonal_naive_scale};

use crate::support::{repo_root, stroom};

fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(str::to_owned)).collect()).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn metrics_match_utilsforecast_on_the_fixture() {
    let dir = repo_root().join("data/fixtures/metrics");
    let train = read_csv(&dir.join("train.csv"));
    let forecasts = read_csv(&dir.join("forecasts.csv"));
    let expected = read_csv(&dir.join("expected.csv"));
    let number = |row: &BTreeMap<String, String>, key: &str| row[key].parse::<f64>().unwrap();
    let mut per_fold = Vec::new();
    for fold in ["0", "1", "2"] {
        let history: Vec<f64> = train.iter().filter(|r| r["fold"] == fold).map(|r| number(r, "y")).collect();
        let (scale_abs, scale_sq) = seasonal_naive_scale(&history, 7).unwrap();
        let rows: Vec<Scored> = forecasts
            .iter()
            .filter(|r| r["fold"] == fold)
            .map(|r| Scored {
                actual: number(r, "actual"),
                mean: number(r, "mean"),
                q10: number(r, "q10"),
                q50: number(r, "q50"),
                q90: number(r, "q90"),
                lo80: number(r, "lo80"),
                hi80: number(r, "hi80"),
                lo95: number(r, "lo95"),
                hi95: number(r, "hi95"),
                scale_abs,
                scale_sq,
            })
            .collect();
        assert_eq!(rows.len(), 7);
        per_fold.push((fold, sample_metrics(&rows)));
    }
    let mean = average_folds(&per_fold.iter().map(|(_, m)| *m).collect::<Vec<_>>());
    let mut checked = 0;
    for row in &expected {
        let metrics =
            if row["fold"] == "mean" { mean } else { per_fold.iter().find(|(f, _)| *f == row["fold"]).unwrap().1 };
        let names = stroom_model::Metrics::COLUMNS;
        let index = names.iter().position(|n| *n == row["metric"]).unwrap_or_else(|| panic!("{}", row["metric"]));
        let ours = metrics.values()[index];
        let theirs = number(row, "value");
        assert!(close(ours, theirs), "fold {} {}: stroom {ours}, utilsforecast {theirs}", row["fold"], row["metric"]);
        checked += 1;
    }
    assert_eq!(checked, 11 * 4);
}

/// Loads the real UK series as station `dover` into a new store.
fn uk_store(dir: &Path) -> String {
    let store = dir.join("store").to_string_lossy().into_owned();
    let file = repo_root().join("data/arrivals/uk_small_boats_daily.csv");
    let out = stroom(&[
        "ingest",
        "arrivals",
        file.to_str().unwrap(),
        "--store",
        &store,
        "--station",
        "dover",
        "--date-column",
        "full_date",
        "--count-column",
        "migrants_arrived",
        "--empty",
        "zero",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    store
}

fn metrics_by_model(out: &Path) -> BTreeMap<(String, String), BTreeMap<String, f64>> {
    read_csv(&out.join("metrics.csv"))
        .into_iter()
        .map(|row| {
            let key = (row["model"].clone(), row["horizon"].clone());
            let values = row
                .iter()
                .filter(|(k, _)| *k != "model" && *k != "horizon")
                .map(|(k, v)| (k.clone(), v.parse::<f64>().unwrap_or(f64::NAN)))
                .collect();
            (key, values)
        })
        .collect()
}

fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap().map(Result::unwrap).collect()
}

#[test]
fn uk_backtest_beats_seasonal_naive_with_calibrated_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let store = uk_store(dir.path());
    let out = dir.path().join("bt");
    let result = stroom(&[
        "backtest",
        "--store",
        &store,
        "--target",
        "station:dover",
        "--horizon",
        "14",
        "--folds",
        "20",
        "--step",
        "7",
        "--models",
        "auto,seasonal_naive,naive,moving_average",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&result.stderr));
    let metrics = metrics_by_model(&out);
    let auto = &metrics[&("auto".to_owned(), "all".to_owned())];
    let seasonal = &metrics[&("seasonal_naive".to_owned(), "all".to_owned())];
    assert_eq!(auto["n"], 280.0);
    assert!(
        auto["mase"] <= 0.75 * seasonal["mase"],
        "auto MASE {} vs seasonal naive {}",
        auto["mase"],
        seasonal["mase"]
    );
    assert!((auto["coverage80"] - 0.80).abs() <= 0.05, "coverage80 {}", auto["coverage80"]);
    assert!((auto["coverage95"] - 0.95).abs() <= 0.05, "coverage95 {}", auto["coverage95"]);
    // Coverage alone passes an interval that is merely wide (a 95% interval
    // holding every day scores 1.0): it must miss now and then, and its
    // interval score (width plus misses) must beat the seasonal naive's.
    assert!(auto["coverage95"] < 0.99, "coverage95 {}: too wide to miss", auto["coverage95"]);
    for level in ["interval_score80", "interval_score95"] {
        assert!(auto[level] < seasonal[level], "{level}: auto {} vs seasonal naive {}", auto[level], seasonal[level]);
    }
    // Per-horizon rows for every model.
    assert!(metrics.contains_key(&("auto".to_owned(), "14".to_owned())));

    // The fold convention: cutoffs last − 14 − (19 − i)·7, last = 2026-08-17.
    let batches = read_parquet(&out.join("forecasts.parquet"));
    let last = NaiveDate::from_ymd_opt(2026, 8, 17).unwrap();
    let mut cutoffs = std::collections::BTreeSet::new();
    let mut rows = 0;
    for batch in &batches {
        let schema = batch.schema();
        let column = |name: &str| batch.column(schema.index_of(name).unwrap()).clone();
        let cutoff = column("cutoff");
        let cutoff = cutoff.as_primitive::<Date32Type>();
        let date = column("date");
        let date = date.as_primitive::<Date32Type>();
        let horizon = column("horizon");
        let horizon = horizon.as_primitive::<Int32Type>();
        let q: Vec<_> = ["lo95", "q10", "q50", "q90", "hi95", "mean"].iter().map(|n| column(n)).collect();
        for i in 0..batch.num_rows() {
            rows += 1;
            cutoffs.insert(stroom_core::days_to_date(cutoff.value(i)));
            assert_eq!(date.value(i) - cutoff.value(i), horizon.value(i));
            let v: Vec<f64> = q.iter().map(|a| a.as_primitive::<Float64Type>().value(i)).collect();
            assert!(v.iter().all(|x| x.is_finite() && *x >= 0.0), "row {i}: {v:?}");
            assert!(v[0] <= v[1] && v[1] <= v[2] && v[2] <= v[3] && v[3] <= v[4], "row {i}: {v:?}");
        }
    }
    assert_eq!(rows, 4 * 20 * 14);
    let expected: std::collections::BTreeSet<NaiveDate> =
        (0..20).map(|i| last - chrono::Duration::days(14 + (19 - i) * 7)).collect();
    assert_eq!(cutoffs, expected);

    // The run is recorded in the store's backtests table, readable without stroom.
    let count = crate::support::python(
        "import sys, os\nfrom deltalake import DeltaTable\nt = DeltaTable(sys.argv[1]).to_pyarrow_table()\nprint(t.num_rows, len(set(t.column('run_id').to_pylist())))\nsys.stdout.flush()\nos._exit(0)",
        &[&format!("{store}/backtests")],
    );
    assert_eq!(count.trim(), "1120 1");
}

#[test]
fn forecasts_are_recorded_with_their_vintage() {
    let dir = tempfile::tempdir().unwrap();
    let store = uk_store(dir.path());
    let result = stroom(&["forecast", "--store", &store, "--target", "station:dover", "--horizon", "7"]);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&result.stderr));
    assert!(stdout.contains("2026-08-18"), "{stdout}");
    let summary = crate::support::python(
        "import sys, os, json\nfrom deltalake import DeltaTable\nd = DeltaTable(sys.argv[1])\nt = d.to_pyarrow_table()\nmeta = [h for h in d.history() if 'stroom' in h]\nm = meta[0]['stroom']\nm = json.loads(m) if isinstance(m, str) else m\nprint(t.num_rows, min(t.column('date').to_pylist()), m['vintage']['arrivals'], m['params']['horizon'])\nsys.stdout.flush()\nos._exit(0)",
        &[&format!("{store}/forecasts")],
    );
    assert_eq!(summary.trim(), "7 2026-08-18 1 7");
    // The store's summary shows the run.
    let tables = stroom(&["tables", "--store", &store]);
    let text = String::from_utf8_lossy(&tables.stdout);
    assert!(tables.status.success(), "{text}\n{}", String::from_utf8_lossy(&tables.stderr));
    assert!(text.contains("forecasts") && text.contains("runs 1"), "{text}");
}

#[test]
fn bad_forecast_options_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = uk_store(dir.path());
    let out = dir.path().join("bt");
    let cases: [(&[&str], &str); 6] = [
        (&["--target", "station:dover", "--models", "prophet"], "unknown model 'prophet'"),
        (&["--target", "dover"], "not a target"),
        (&["--target", "station:dover", "--horizon", "29"], "horizon"),
        (&["--target", "station:dover", "--horizon", "0"], "horizon"),
        (&["--target", "station:dover", "--folds", "2000"], "not enough data"),
        (&["--target", "station:nowhere"], "station 'nowhere' has no arrivals"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["backtest", "--store", &store, "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let result = stroom(&args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{extra:?} was accepted");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
        assert!(!out.join("forecasts.parquet").exists(), "{extra:?} wrote output");
        assert!(!Path::new(&store).join("backtests").exists(), "{extra:?} created the backtests table");
    }
}

#[test]
fn upstream_signal_improves_forecasts_on_simulated_routes() {
    // Two years of two routes (a land route with two feeds of its own, and a
    // sea-then-land route), simulated, ingested and backtested at each
    // destination over the second half of the second year, with and without
    // the upstream density features.
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes");
    std::fs::create_dir_all(&routes).unwrap();
    for route in ["western-balkans", "central-mediterranean"] {
        let file = format!("{route}.geojson");
        std::fs::copy(repo_root().join("data/routes").join(&file), routes.join(&file)).unwrap();
    }
    let sim = dir.path().join("sim");
    let store = dir.path().join("store").to_string_lossy().into_owned();
    let run = |args: &[&str]| {
        let out = stroom(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&[
        "simulate",
        "--out",
        sim.to_str().unwrap(),
        "--days",
        "730",
        "--routes",
        routes.to_str().unwrap(),
        "--no-closure",
        "--seed",
        "7",
    ]);
    run(&["ingest", "density", sim.join("density").to_str().unwrap(), "--store", &store]);
    run(&["ingest", "arrivals", sim.join("arrivals.csv").to_str().unwrap(), "--store", &store]);
    for station in ["ter-apel", "ventimiglia"] {
        let out = dir.path().join(format!("bt-{station}"));
        let target = format!("station:{station}");
        let stdout = run(&[
            "backtest",
            "--store",
            &store,
            "--routes",
            routes.to_str().unwrap(),
            "--target",
            &target,
            "--horizon",
            "14",
            "--folds",
            "12",
            "--step",
            "14",
            "--models",
            "elasticnet,elasticnet_univariate,ets,moving_average,seasonal_naive,naive",
            "--out",
            out.to_str().unwrap(),
            "--no-record",
        ]);
        // series.csv: the station's arrivals as ingested, and two signals
        // (recent and long baseline) for every segment of the route.
        let series = read_csv(&out.join("series.csv"));
        let arrivals: BTreeMap<String, String> = read_csv(&sim.join("arrivals.csv"))
            .into_iter()
            .filter(|r| r["station"] == station)
            .map(|r| (r["date"].clone(), r["count"].clone()))
            .collect();
        assert_eq!(series.len(), arrivals.len());
        for row in &series {
            assert_eq!(row["target"], arrivals[&row["date"]], "{station} on {}", row["date"]);
        }
        let segments = if station == "ter-apel" { 9 } else { 7 };
        for weeks in ["(8 weeks)", "(104 weeks)"] {
            let known = series[0].keys().filter(|k| k.ends_with(weeks)).count();
            assert_eq!(known, segments, "{station}: columns {:?}", series[0].keys());
        }
        let metrics = metrics_by_model(&out);
        let mae_7_14 =
            |model: &str| (7..=14).map(|h| metrics[&(model.to_owned(), h.to_string())]["mae"]).sum::<f64>() / 8.0;
        let main = mae_7_14("elasticnet");
        let ablated = mae_7_14("elasticnet_univariate");
        let best_univariate = ["elasticnet_univariate", "ets", "moving_average", "seasonal_naive", "naive"]
            .iter()
            .map(|m| (mae_7_14(m), *m))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap();
        println!(
            "{station}: MAE at horizons 7-14: elasticnet {main:.2}, elasticnet_univariate {ablated:.2}, best univariate {} {:.2}",
            best_univariate.1, best_univariate.0
        );
        assert!(
            main <= 0.85 * best_univariate.0,
            "{station}: MAE at horizons 7-14: elasticnet {main:.1}, best univariate {} {:.1}\n{stdout}",
            best_univariate.1,
            best_univariate.0
        );
        assert!(main <= 0.85 * ablated, "{station}: elasticnet {main:.1} vs without upstream {ablated:.1}\n{stdout}");
    }
}

/// Sets the modification time of every commit file of a table that is newer
/// than `seen` commits to `at`: the time Delta time travel reads.
fn date_commits(table: &Path, seen: &mut usize, at: &str) {
    let mut commits: Vec<_> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    commits.sort();
    let time = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.timestamp() as u64);
    for commit in &commits[*seen..] {
        std::fs::File::options().write(true).open(commit).unwrap().set_modified(time).unwrap();
    }
    *seen = commits.len();
}

/// Forecasts of one fold (its cutoff) from a backtest's forecasts.parquet:
/// (date, mean, q50) per row.
fn fold_forecasts(out: &Path, cutoff: NaiveDate) -> Vec<(i32, f64, f64)> {
    let mut found = Vec::new();
    for batch in read_parquet(&out.join("forecasts.parquet")) {
        let schema = batch.schema();
        let column = |name: &str| batch.column(schema.index_of(name).unwrap()).clone();
        let (cutoffs, dates, means, medians) = (column("cutoff"), column("date"), column("mean"), column("q50"));
        for i in 0..batch.num_rows() {
            if stroom_core::days_to_date(cutoffs.as_primitive::<Date32Type>().value(i)) == cutoff {
                found.push((
                    dates.as_primitive::<Date32Type>().value(i),
                    means.as_primitive::<Float64Type>().value(i),
                    medians.as_primitive::<Float64Type>().value(i),
                ));
            }
        }
    }
    found.sort_by_key(|r| r.0);
    found
}

#[test]
fn vintage_backtests_fit_each_fold_on_the_data_published_by_its_cutoff() {
    // Arrivals published week by week, each commit dated at the end of its
    // last day; the week to 2024-08-04 is revised (tripled) a week later.
    let dir = tempfile::tempdir().unwrap();
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let value = |day: i64| 40 + 25 * ((day * 3) % 7) + (day * 37 % 11);
    let csv = |name: &str, days: &[(i64, i64)]| {
        let mut text = String::from("date,station,count\n");
        for &(day, count) in days {
            text.push_str(&format!("{},demo,{count}\n", start + chrono::Duration::days(day)));
        }
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ingest = |store: &str, file: &Path| {
        let out = stroom(&["ingest", "arrivals", file.to_str().unwrap(), "--store", store]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let day_of = |date: NaiveDate| (date - start).num_days();
    let first_week_end = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    let revised_week_end = NaiveDate::from_ymd_opt(2024, 8, 4).unwrap();
    let last = NaiveDate::from_ymd_opt(2024, 8, 25).unwrap();

    let store = dir.path().join("store").to_string_lossy().into_owned();
    let table = Path::new(&store).join("arrivals");
    let mut seen = 0;
    let history: Vec<(i64, i64)> = (0..=day_of(first_week_end)).map(|d| (d, value(d))).collect();
    ingest(&store, &csv("history.csv", &history));
    date_commits(&table, &mut seen, &format!("{first_week_end}T23:00:00Z"));
    let mut week_end = first_week_end + chrono::Duration::days(7);
    while week_end <= last {
        let mut rows: Vec<(i64, i64)> = (day_of(week_end) - 6..=day_of(week_end)).map(|d| (d, value(d))).collect();
        if week_end == revised_week_end + chrono::Duration::days(7) {
            rows.extend((day_of(revised_week_end) - 6..=day_of(revised_week_end)).map(|d| (d, 3 * value(d))));
        }
        ingest(&store, &csv(&format!("{week_end}.csv"), &rows));
        date_commits(&table, &mut seen, &format!("{week_end}T23:00:00Z"));
        week_end += chrono::Duration::days(7);
    }

    let backtest = |store: &str, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "backtest",
            "--store",
            store,
            "--target",
            "station:demo",
            "--horizon",
            "7",
            "--folds",
            "3",
            "--step",
            "7",
            "--models",
            "seasonal_naive",
            "--no-record",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let result = stroom(&args);
        assert!(result.status.success(), "{args:?}: {}", String::from_utf8_lossy(&result.stderr));
    };
    let on_vintages = dir.path().join("vintages");
    backtest(&store, &on_vintages, &["--vintage"]);
    let on_latest = dir.path().join("latest");
    backtest(&store, &on_latest, &[]);
    // Cutoffs: 2024-08-18 − 7 − (2 − i)·7, so the first is 2024-08-04, the
    // last day of the week that was revised a week later.
    let cutoff = revised_week_end;
    let vintage = fold_forecasts(&on_vintages, cutoff);
    let latest = fold_forecasts(&on_latest, cutoff);
    assert_eq!(vintage.len(), 7, "{vintage:?}");
    assert_eq!(latest.len(), 7);
    // Seasonal naive repeats the week before the cutoff: as published, not
    // as revised.
    for (i, (date, mean, median)) in vintage.iter().enumerate() {
        let source = day_of(cutoff) - 6 + i as i64;
        assert_eq!(*date, stroom_core::date_to_days(cutoff + chrono::Duration::days(1 + i as i64)));
        assert!((median - value(source) as f64).abs() < 1e-6, "day {i}: q50 {median} vs {}", value(source));
        assert!(mean.is_finite());
    }
    for (i, (_, _, median)) in latest.iter().enumerate() {
        let source = day_of(cutoff) - 6 + i as i64;
        assert!((median - 3.0 * value(source) as f64).abs() < 1e-6, "day {i}: q50 {median}");
    }
}
