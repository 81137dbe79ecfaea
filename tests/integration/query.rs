//! The query layer: golden SQL files (`tests/sql/*.slt`), H3 functions
//! against the reference library's fixtures, route series with pruning shown
//! by `EXPLAIN ANALYZE`, and data vintages.

use std::path::Path;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::CsvReadOptions;
use stroom_core::{Resolution, Route};
use stroom_query::{Engine, QuerySession, SeriesGranularity, Vintage};
use stroom_store::{ArrivalsIngest, DensityIngest, Store};

use crate::support::{repo_root, runtime, stroom};

pub(crate) fn render(batches: &[RecordBatch]) -> Vec<String> {
    let mut lines = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| if c.is_null(row) { "NULL".to_owned() } else { array_value_to_string(c, row).unwrap() })
                .collect();
            lines.push(values.join(" "));
        }
    }
    lines
}

/// Runs a golden file: `query` blocks (SQL, `----`, expected rows),
/// `error <text>` blocks (SQL that must fail with `text` in the message) and
/// `vintage N|latest` lines that reopen the session at a table version.
fn run_golden(store: &Store, file: &str) {
    run_golden_on(store, file, &Engine::Local);
}

/// Runs a golden file with its plans on `engine` (this process or a cluster).
pub(crate) fn run_golden_on(store: &Store, file: &str, engine: &Engine) {
    let text = std::fs::read_to_string(repo_root().join("tests/sql").join(file)).unwrap();
    let rt = runtime();
    let mut session = rt.block_on(QuerySession::open_on(store, None, engine)).unwrap();
    let blocks: Vec<&str> = text.split("\n\n").map(str::trim).filter(|b| !b.is_empty()).collect();
    let mut checked = 0;
    for block in blocks {
        let lines: Vec<&str> = block.lines().filter(|l| !l.starts_with('#')).collect();
        let Some(head) = lines.first() else { continue };
        if let Some(version) = head.strip_prefix("vintage ") {
            let vintage = if version == "latest" { None } else { Some(Vintage::Version(version.parse().unwrap())) };
            session = rt.block_on(QuerySession::open_on(store, vintage, engine)).unwrap();
        } else if let Some(expected) = head.strip_prefix("error ") {
            let sql = lines[1..].join("\n");
            let outcome = rt.block_on(async { session.sql(&sql).await?.collect().await.map_err(Into::into) });
            let error: stroom_query::QueryError = outcome.expect_err(&sql);
            assert!(
                error.to_string().contains(expected),
                "{file}: '{sql}' failed with '{error}', expected '{expected}'"
            );
            checked += 1;
        } else if *head == "query" {
            let separator =
                lines.iter().position(|l| *l == "----").unwrap_or_else(|| panic!("{file}: no ---- in {block}"));
            let sql = lines[1..separator].join("\n");
            let expected: Vec<String> = lines[separator + 1..].iter().map(|l| l.to_string()).collect();
            let batches = rt.block_on(async { session.sql(&sql).await.unwrap().collect().await.unwrap() });
            assert_eq!(render(&batches), expected, "{file}: {sql}");
            checked += 1;
        } else {
            panic!("{file}: unknown block {block}");
        }
    }
    assert!(checked > 3, "{file}: only {checked} checks ran");
}

pub(crate) fn small_store(dir: &Path) -> Store {
    let store = Store::open(&dir.join("store").to_string_lossy()).unwrap();
    fill_small_store(&store, dir);
    store
}

/// Fills `store` with the small store's tables (the golden files' data),
/// writing its input files in `dir`.
pub(crate) fn fill_small_store(store: &Store, dir: &Path) {
    let density = dir.join("density.csv");
    std::fs::write(
        &density,
        "ts,lat,lon,count\n2024-05-01T10:00:00Z,51.13,1.31,60\n2024-05-01T10:00:00Z,50.95,1.86,50\n\
         2024-05-01T10:00:00Z,51.03,2.37,40\n2024-05-02T10:00:00Z,51.13,1.31,60\n\
         2024-05-02T10:00:00Z,50.95,1.86,50\n2024-05-02T10:00:00Z,51.03,2.37,40\n",
    )
    .unwrap();
    let rt = runtime();
    rt.block_on(DensityIngest::new(Resolution::new(7).unwrap(), 15).unwrap().run(store, &[density], &|_| {})).unwrap();
    let first = dir.join("a1.csv");
    std::fs::write(&first, "date,station,count\n2024-05-01,dover,12\n2024-05-02,dover,30\n").unwrap();
    rt.block_on(ArrivalsIngest::default().run(store, &first)).unwrap();
    let second = dir.join("a2.csv");
    std::fs::write(&second, "date,station,count\n2024-05-02,dover,40\n2024-05-01,ter-apel,3\n").unwrap();
    rt.block_on(ArrivalsIngest::default().run(store, &second)).unwrap();
}

#[test]
fn golden_h3_functions() {
    let dir = tempfile::tempdir().unwrap();
    run_golden(&small_store(dir.path()), "h3_functions.slt");
}

#[test]
fn golden_store_queries_vintages_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    run_golden(&small_store(dir.path()), "store.slt");
    assert!(!Path::new("/tmp/stroom-should-not-exist.csv").exists());
}

#[test]
fn arrivals_series_and_vintages_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let rt = runtime();
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2024, 5, d).unwrap();
    let latest = rt.block_on(QuerySession::open(&store, None)).unwrap();
    let series = rt.block_on(latest.arrivals_series("dover", day(1), day(3))).unwrap();
    assert_eq!(render(&series), vec!["2024-05-01 12", "2024-05-02 40"]);
    assert_eq!(render(&rt.block_on(latest.arrivals_series("dover", day(2), day(3))).unwrap()), vec!["2024-05-02 40"]);
    assert_eq!(latest.versions().get("arrivals"), Some(&2));

    // As of now: the latest versions. As of a time before any commit: no tables.
    let now = rt.block_on(QuerySession::open(&store, Some(Vintage::AsOf(chrono::Utc::now())))).unwrap();
    assert_eq!(now.versions(), latest.versions());
    let past = chrono::DateTime::parse_from_rfc3339("2001-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let before = rt.block_on(QuerySession::open(&store, Some(Vintage::AsOf(past)))).unwrap();
    assert!(before.versions().is_empty(), "{:?}", before.versions());
    let error = rt.block_on(before.arrivals_series("dover", day(1), day(3))).unwrap_err();
    assert!(error.to_string().contains("no 'arrivals' table"), "{error}");
}

#[test]
fn h3_functions_match_the_reference_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let rt = runtime();
    let session = rt.block_on(QuerySession::open(&store, None)).unwrap();
    let fixtures = repo_root().join("data/fixtures");
    let ctx = session.context();
    rt.block_on(async {
        ctx.register_csv("points", fixtures.join("h3_points.csv").to_str().unwrap(), CsvReadOptions::new())
            .await
            .unwrap();
        ctx.register_csv("cells", fixtures.join("h3_cells.csv").to_str().unwrap(), CsvReadOptions::new())
            .await
            .unwrap();
        ctx.register_csv("distances", fixtures.join("h3_distances.csv").to_str().unwrap(), CsvReadOptions::new())
            .await
            .unwrap();
    });
    for (sql, expected) in [
        ("SELECT count(*) FROM points", "10245"),
        (
            "SELECT count(*) FROM points WHERE h3_cell_to_string(h3_latlng_to_cell(lat, lng, res)) IS DISTINCT FROM cell",
            "0",
        ),
        (
            "SELECT count(*) FROM points WHERE h3_string_to_cell(cell) IS DISTINCT FROM h3_latlng_to_cell(lat, lng, res)",
            "0",
        ),
        (
            "SELECT count(*) FROM cells WHERE h3_cell_to_string(h3_cell_to_parent(h3_string_to_cell(cell), parent_res)) <> parent",
            "0",
        ),
        (
            "SELECT count(*) FROM cells WHERE h3_get_resolution(h3_string_to_cell(cell)) <> res OR NOT h3_is_valid(h3_string_to_cell(cell))",
            "0",
        ),
        (
            "SELECT count(*) FROM cells WHERE child_min IS NOT NULL AND (h3_cell_to_string(h3_cell_range_min(h3_string_to_cell(cell), child_res)) <> child_min OR h3_cell_to_string(h3_cell_range_max(h3_string_to_cell(cell), child_res)) <> child_max)",
            "0",
        ),
        (
            "SELECT count(*) FROM cells WHERE abs(h3_cell_to_lat(h3_string_to_cell(cell)) - center_lat) > 1e-9 AND abs(center_lat) < 80",
            "0",
        ),
        (
            "SELECT count(*) FROM cells WHERE abs(h3_cell_to_lng(h3_string_to_cell(cell)) - center_lng) > 1e-9 AND abs(center_lat) < 80",
            "0",
        ),
        (
            "SELECT count(*) FROM distances WHERE h3_grid_distance(h3_string_to_cell(a), h3_string_to_cell(b)) <> distance",
            "0",
        ),
    ] {
        let batches = rt.block_on(async { session.sql(sql).await.unwrap().collect().await.unwrap() });
        assert_eq!(render(&batches), vec![expected.to_owned()], "{sql}");
    }
}

/// A store holding `days` days of simulated density on every route (the
/// Channel route synthetic), ingested at resolution 7 with k = 15, in a
/// folder that lives as long as the returned guard.
fn simulated_density(days: u32, rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let days = days.to_string();
    let out =
        stroom(&["simulate", "--out", &sim.to_string_lossy(), "--days", &days, "--buffer", "1", "--synthetic-channel"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store = Store::open(&dir.path().join("store").to_string_lossy()).unwrap();
    rt.block_on(DensityIngest::new(Resolution::new(7).unwrap(), 15).unwrap().run(
        &store,
        &[sim.join("density")],
        &|_| {},
    ))
    .unwrap();
    (dir, store)
}

#[test]
fn route_series_prune_row_groups_and_match_a_full_scan() {
    // Three days of simulated density on every route, ingested; the Channel
    // route's segment series must skip row groups of the other corridors.
    let rt = runtime();
    let (_dir, store) = simulated_density(3, &rt);
    let text = std::fs::read_to_string(repo_root().join("data/routes/channel.geojson")).unwrap();
    let route = Route::from_geojson("channel", &text).unwrap();
    let cells = route.cells(Resolution::new(7).unwrap(), 2).unwrap();
    let session = rt.block_on(QuerySession::open(&store, None)).unwrap();
    let (from, to) =
        (chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap(), chrono::NaiveDate::from_ymd_opt(2023, 1, 4).unwrap());

    let series = rt.block_on(session.segment_series(&cells, from, to, SeriesGranularity::Day)).unwrap();
    let rows = render(&series);
    assert_eq!(rows.len(), cells.segments.len() * 3, "{rows:?}");

    // The same sums by a full scan with an explicit cell list.
    for segment in &cells.segments {
        let list: Vec<String> = segment.cells.iter().map(|c| (c.to_u64() as i64).to_string()).collect();
        let sql = format!(
            "SELECT CAST(ts AS DATE) AS day, SUM(CAST(count AS BIGINT)) FROM density WHERE cell IN ({}) GROUP BY 1 ORDER BY 1",
            list.join(",")
        );
        let full = render(&rt.block_on(async { session.sql(&sql).await.unwrap().collect().await.unwrap() }));
        let ours: Vec<String> = rows
            .iter()
            .filter(|r| r.starts_with(&format!("{} ", segment.segment_id)))
            .map(|r| r.splitn(2, ' ').nth(1).unwrap().rsplitn(2, ' ').nth(1).unwrap().to_owned())
            .collect();
        assert_eq!(ours, full, "{}", segment.segment_id);
    }

    // Around each station: every station reports on every day, and the
    // Dover sums equal a scan of the station's cells.
    let stations = rt
        .block_on(session.station_density_series(
            &route,
            Resolution::new(7).unwrap(),
            1,
            from,
            to,
            SeriesGranularity::Day,
        ))
        .unwrap();
    let station_rows = render(&stations);
    assert_eq!(station_rows.len(), route.stations.len() * 3, "{station_rows:?}");
    let dover = route.station("dover").unwrap();
    let centre = stroom_core::Cell::from_lat_lng(dover.lat, dover.lng, Resolution::new(7).unwrap()).unwrap();
    let ring: Vec<String> =
        centre.h3o().grid_disk::<Vec<_>>(1).into_iter().map(|c| (u64::from(c) as i64).to_string()).collect();
    let sql = format!(
        "SELECT CAST(ts AS DATE), SUM(CAST(count AS BIGINT)) FROM density WHERE cell IN ({}) GROUP BY 1 ORDER BY 1",
        ring.join(",")
    );
    let full = render(&rt.block_on(async { session.sql(&sql).await.unwrap().collect().await.unwrap() }));
    let ours: Vec<String> = station_rows
        .iter()
        .filter(|r| r.starts_with("dover "))
        .map(|r| r.splitn(2, ' ').nth(1).unwrap().rsplitn(2, ' ').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(ours, full);

    // EXPLAIN ANALYZE shows row groups of the hourly table skipped by their
    // cell statistics.
    let sql = session.segment_series_sql(&cells, from, to, SeriesGranularity::Hour).unwrap();
    let plan = render(&rt.block_on(async {
        session.context().sql(&format!("EXPLAIN ANALYZE {sql}")).await.unwrap().collect().await.unwrap()
    }))
    .join("\n");
    let pruned = metric(&plan, "row_groups_pruned_statistics");
    assert!(pruned.0 > 0, "no row group was pruned: {pruned:?}\n{plan}");
    assert!(pruned.1 < pruned.0 + pruned.1, "{pruned:?}");
}

#[test]
fn the_daily_rollup_follows_density_by_version_and_catches_up() {
    // Three days of density ingested in two commits; the rollup must hold the
    // hourly table's sums per (cell, day) at each version, be used only at
    // the density version it is complete for, and be rebuilt when missing.
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let out = stroom(&["simulate", "--out", &sim.to_string_lossy(), "--days", "3", "--buffer", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store_dir = dir.path().join("store");
    let store = Store::open(&store_dir.to_string_lossy()).unwrap();
    let rt = runtime();
    let ingest = |files: &[&str]| {
        let paths: Vec<_> = files.iter().map(|f| sim.join("density").join(f)).collect();
        rt.block_on(DensityIngest::new(Resolution::new(7).unwrap(), 15).unwrap().run(&store, &paths, &|_| {})).unwrap()
    };
    let first = ingest(&["density-2023-01-01.parquet", "density-2023-01-02.parquet"]);
    let second = ingest(&["density-2023-01-03.parquet"]);
    assert_eq!(second.version, Some(first.version.unwrap() + 1));

    let hourly = "SELECT cell, CAST(ts AS DATE) AS day, SUM(CAST(count AS BIGINT)) AS devices, COUNT(*) AS cell_hours \
                  FROM density_files GROUP BY 1, 2 ORDER BY 1, 2";
    let daily = "SELECT cell, day, SUM(devices), SUM(cell_hours) FROM density_daily GROUP BY 1, 2 ORDER BY 1, 2";
    let query = |session: &QuerySession, sql: &str| {
        render(&rt.block_on(async { session.sql(sql).await.unwrap().collect().await.unwrap() }))
    };
    let text = std::fs::read_to_string(repo_root().join("data/routes/western-balkans.geojson")).unwrap();
    let route = Route::from_geojson("western-balkans", &text).unwrap();
    let cells = route.cells(Resolution::new(7).unwrap(), 1).unwrap();
    let all: Vec<_> = cells.segments.iter().flat_map(|s| s.cells.iter().copied()).collect();
    let (from, to) =
        (chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap(), chrono::NaiveDate::from_ymd_opt(2023, 1, 4).unwrap());
    let per_cell = |session: &QuerySession| {
        let mut rows = render(&rt.block_on(session.cell_day_series(&all, from, to)).unwrap());
        rows.sort();
        rows
    };

    let latest = rt.block_on(QuerySession::open(&store, None)).unwrap();
    assert!(latest.daily_version().is_some());
    let rolled = query(&latest, daily);
    assert_eq!(rolled, query(&latest, hourly));
    assert!(rolled.len() > 10_000, "{}", rolled.len());
    let series = per_cell(&latest);
    assert!(!series.is_empty());

    // The first vintage reads the rollup as it was for that version.
    let old = rt.block_on(QuerySession::open(&store, Some(Vintage::Version(first.version.unwrap())))).unwrap();
    assert!(old.daily_version().is_some());
    assert!(old.daily_version() < latest.daily_version());
    assert_eq!(query(&old, daily), query(&old, hourly));
    assert!(query(&old, daily).len() < rolled.len());

    // A rollup one commit behind density (its newest commit gone): the latest
    // session does not use it and reads the hourly table, with the same
    // answer; an ingest with nothing new rolls up only the missing files.
    let log = store_dir.join("density_daily").join("_delta_log");
    let newest = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .max()
        .unwrap();
    std::fs::remove_file(&newest).unwrap();
    let behind = rt.block_on(QuerySession::open(&store, None)).unwrap();
    assert_eq!(behind.daily_version(), None);
    assert_eq!(per_cell(&behind), series);
    let caught_up = ingest(&["density-2023-01-03.parquet"]);
    assert_eq!(caught_up.rows_written, 0);
    let current = rt.block_on(QuerySession::open(&store, None)).unwrap();
    assert!(current.daily_version().is_some());
    assert_eq!(query(&current, daily), rolled);
    assert_eq!(per_cell(&current), series);

    // Without a rollup, daily series read the hourly table, with the same
    // answer; an ingest with nothing new rebuilds the rollup.
    std::fs::remove_dir_all(store_dir.join("density_daily")).unwrap();
    let without = rt.block_on(QuerySession::open(&store, None)).unwrap();
    assert_eq!(without.daily_version(), None);
    assert_eq!(per_cell(&without), series);
    let again = ingest(&["density-2023-01-03.parquet"]);
    assert_eq!(again.rows_written, 0);
    let rebuilt = rt.block_on(QuerySession::open(&store, None)).unwrap();
    assert!(rebuilt.daily_version().is_some());
    assert_eq!(query(&rebuilt, daily), rolled);
    assert_eq!(per_cell(&rebuilt), series);
}

#[test]
fn day_filters_give_a_full_scan_s_rows_and_open_only_their_days_files() {
    // Five days of density, one Delta file per day: every comparison of
    // `day` with a date gives the rows a scan that nothing can prune gives
    // (the day as text), and opens only the files of the days it keeps.
    let rt = runtime();
    let (_dir, store) = simulated_density(5, &rt);
    let session = rt.block_on(QuerySession::open(&store, None)).unwrap();
    let answer = |sql: &str| render(&rt.block_on(async { session.sql(sql).await.unwrap().collect().await.unwrap() }));
    let plain = "SELECT count(*), sum(CAST(count AS BIGINT)), min(ts), max(ts) FROM density";
    for (filter, text) in [
        ("day < DATE '2023-01-03'", "CAST(day AS VARCHAR) < '2023-01-03'"),
        ("day <= DATE '2023-01-03'", "CAST(day AS VARCHAR) <= '2023-01-03'"),
        ("day > DATE '2023-01-03'", "CAST(day AS VARCHAR) > '2023-01-03'"),
        ("day >= DATE '2023-01-03'", "CAST(day AS VARCHAR) >= '2023-01-03'"),
        ("day = DATE '2023-01-03'", "CAST(day AS VARCHAR) = '2023-01-03'"),
        ("DATE '2023-01-03' > day", "'2023-01-03' > CAST(day AS VARCHAR)"),
        ("day BETWEEN DATE '2023-01-02' AND DATE '2023-01-03'", "CAST(day AS VARCHAR) IN ('2023-01-02', '2023-01-03')"),
        ("day = DATE '2023-01-03' OR cell < 0", "CAST(day AS VARCHAR) = '2023-01-03' OR cell < 0"),
        ("day < DATE '1999-01-01'", "CAST(day AS VARCHAR) < '1999-01-01'"),
    ] {
        assert_eq!(answer(&format!("{plain} WHERE {filter}")), answer(&format!("{plain} WHERE {text}")), "{filter}");
    }
    let files = |filter: &str| {
        let plan = render(&rt.block_on(async {
            let sql = format!("EXPLAIN ANALYZE SELECT cell, ts, count FROM density WHERE {filter}");
            session.context().sql(&sql).await.unwrap().collect().await.unwrap()
        }))
        .join("\n");
        // No scan at all when no file can match.
        let Some(at) = plan.find("files_opened=") else {
            assert!(plan.contains("EmptyExec"), "{plan}");
            return 0;
        };
        plan[at + 13..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse::<u64>().unwrap()
    };
    // Each file holds one day: the days' files add up to the table's, and a
    // range opens the files of its days only.
    let table = rt.block_on(store.table(stroom_store::TableName::Density)).unwrap().unwrap();
    let every = table.get_file_uris().unwrap().count() as u64;
    let days: Vec<u64> = (1..=5).map(|d| files(&format!("day = DATE '2023-01-0{d}'"))).collect();
    assert!(days.iter().all(|&n| n >= 1 && n < every), "{days:?} of {every}");
    assert_eq!(days.iter().sum::<u64>(), every, "{days:?}");
    assert_eq!(files("day >= DATE '2023-01-04'"), days[3] + days[4]);
    assert_eq!(files("day < DATE '1999-01-01'"), 0);
}

/// (pruned, matched) from a DataFusion pruning metric such as
/// `row_groups_pruned_statistics=12 total → 3 matched`.
fn metric(plan: &str, name: &str) -> (u64, u64) {
    let at = plan.find(name).unwrap_or_else(|| panic!("no {name} in\n{plan}"));
    let text = &plan[at + name.len() + 1..];
    let numbers: Vec<u64> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(2)
        .map(|s| s.parse().unwrap())
        .collect();
    let (total, matched) = (numbers[0], numbers[1]);
    (total - matched, matched)
}

#[test]
fn the_cli_answers_in_every_format_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    small_store(dir.path());
    let store = dir.path().join("store");
    let store = store.to_string_lossy();
    let sql = "SELECT station, count FROM arrivals WHERE date = DATE '2024-05-02' ORDER BY station";
    let run = |extra: &[&str]| {
        let mut args = vec!["query", "--store", &store, sql];
        args.extend_from_slice(extra);
        let out = stroom(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run(&["--format", "csv"]), "station,count\ndover,40\n");
    assert_eq!(run(&["--format", "csv", "--as-of", "1"]), "station,count\ndover,30\n");
    assert_eq!(run(&["--format", "json"]).trim(), r#"[{"station":"dover","count":40}]"#);
    assert!(run(&[]).contains("| dover   | 40    |"));
    let parquet = dir.path().join("out.parquet");
    run(&["--format", "parquet", "--out", &parquet.to_string_lossy()]);
    assert_eq!(&std::fs::read(&parquet).unwrap()[..4], b"PAR1");

    let out = stroom(&["query", "--store", &store, "DELETE FROM arrivals"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"), "{}", String::from_utf8_lossy(&out.stderr));
}
