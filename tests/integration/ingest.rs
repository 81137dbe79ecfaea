//! Density and arrivals ingest into real Delta tables, read back by stroom
//! and by an independent reader (the Python `deltalake` package).

use std::path::Path;

use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use datafusion::parquet::record::RowAccessor;
use stroom_core::{Cell, Resolution};
use stroom_store::{ArrivalsIngest, DensityIngest, EmptyCounts, OnStored, Store, TableName};

use crate::support::{python, repo_root, runtime, stroom};

fn noop(_: u64) {}

fn ingest(resolution: u8) -> DensityIngest {
    DensityIngest::new(Resolution::new(resolution.into()).unwrap(), 15).unwrap()
}

/// Writes a CSV in the lat/lon layout and returns its path.
fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn density_sums_duplicates_suppresses_below_k_and_skips_reingest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store").to_string_lossy()).unwrap();
    // Two rows in the same res-7 cell and hour (summed to 30), one below k (10),
    // one in the next hour (20), one on the next day (40).
    let csv = write(
        dir.path(),
        "a.csv",
        "ts,lat,lon,count\n\
         2024-05-01T10:05:00Z,51.0000,1.9000,12\n\
         2024-05-01T10:55:00Z,51.0000,1.9000,18\n\
         2024-05-01T10:00:00Z,48.8566,2.3522,10\n\
         2024-05-01 11:00:00,51.0000,1.9000,20\n\
         2024-05-02T00:00:00+00:00,51.0000,1.9000,40\n",
    );
    let rt = runtime();
    let report = rt.block_on(ingest(7).run(&store, &[csv.clone()], &noop)).unwrap();
    assert_eq!(report.rows_read, 5);
    assert_eq!(report.cell_hours, 4);
    assert_eq!(report.suppressed, 1);
    assert_eq!(report.rows_written, 3);
    assert_eq!(report.cells, 1);
    assert_eq!(report.days, 2);
    assert_eq!(report.version_before, None);
    let version = report.version.unwrap();

    // Same file again: recognised by its hash, nothing written.
    let again = rt.block_on(ingest(7).run(&store, &[csv], &noop)).unwrap();
    assert!(again.sources[0].already_ingested);
    assert_eq!(again.rows_written, 0);
    assert_eq!(again.version, Some(version));

    let summaries = rt.block_on(store.summaries()).unwrap();
    let density = summaries.iter().find(|s| s.table == TableName::Density).unwrap();
    assert_eq!(density.rows, 3);
    assert_eq!(density.facts.iter().find(|(k, _)| k == "devices counted").unwrap().1, "90");

    // A later ingest at another resolution is refused.
    let other = write(dir.path(), "b.csv", "ts,lat,lon,count\n2024-05-03T00:00:00Z,51.0,1.9,40\n");
    let error = rt.block_on(ingest(8).run(&store, &[other], &noop)).unwrap_err().to_string();
    assert!(error.contains("resolution 7"), "{error}");
}

#[test]
fn density_files_are_sorted_zstd_parquet_with_statistics_and_read_back_by_python() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = Store::open(&store_dir.to_string_lossy()).unwrap();
    // Cell layout, hex and integer cells at resolution 9 (aggregated to their
    // resolution-7 parents), in reverse order, over two days.
    let base = Cell::from_lat_lng(52.37, 4.89, Resolution::new(9).unwrap()).unwrap();
    let cells: Vec<Cell> =
        base.h3o().grid_disk::<Vec<_>>(6).into_iter().map(|c| Cell::from_u64(u64::from(c)).unwrap()).collect();
    let mut text = String::from("ts,cell,count\n");
    let mut total = 0u64;
    for day in [2, 1] {
        for hour in (0..24).rev() {
            for (i, cell) in cells.iter().enumerate() {
                let count = 15 + (i as u64 * 7 + hour) % 30;
                total += count;
                let shown = if i % 2 == 0 { cell.to_string() } else { cell.to_u64().to_string() };
                text.push_str(&format!("2024-06-0{day}T{hour:02}:00:00Z,{shown},{count}\n"));
            }
        }
    }
    let csv = write(dir.path(), "cells.csv", &text);
    let report = runtime().block_on(ingest(7).run(&store, &[csv], &noop)).unwrap();
    assert_eq!(report.suppressed, 0);
    assert_eq!(report.days, 2);

    // Every data file: zstd, sorted by (cell, ts), with statistics.
    let mut files = Vec::new();
    for entry in std::fs::read_dir(store_dir.join("density")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && path.file_name().unwrap().to_string_lossy().starts_with("day=") {
            for file in std::fs::read_dir(&path).unwrap() {
                files.push(file.unwrap().path());
            }
        }
    }
    assert_eq!(files.len(), 2);
    for file in &files {
        let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
        let metadata = reader.metadata();
        let mut previous = (i64::MIN, i64::MIN);
        for row_group in metadata.row_groups() {
            let cell_column = row_group.column(0);
            // Parquet records the codec, not its level.
            assert!(cell_column.compression().to_string().starts_with("ZSTD"), "{}", cell_column.compression());
            assert!(cell_column.statistics().is_some());
            assert!(row_group.sorting_columns().is_some());
        }
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            let cell = row.get_long(0).unwrap();
            let ts = row.get_timestamp_micros(1).unwrap();
            assert!((cell, ts) > previous, "rows are sorted by cell then time");
            previous = (cell, ts);
        }
    }

    // The independent reader sees the same rows and totals.
    let script = r#"
import os, sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table()
print(t.num_rows, sum(t.column("count").to_pylist()), len(set(t.column("cell").to_pylist())), len(set(t.column("day").to_pylist())), flush=True)
os._exit(0)  # deltalake's runtime threads can abort a normal interpreter exit
"#;
    let out = python(script, &[&store_dir.join("density").to_string_lossy()]);
    let parents: std::collections::BTreeSet<_> =
        cells.iter().map(|c| c.parent(Resolution::new(7).unwrap()).unwrap()).collect();
    assert_eq!(out.trim(), format!("{} {total} {} 2", report.rows_written, parents.len()));
}

#[test]
fn uk_small_boats_load_as_dover_with_their_quirks() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = Store::open(&store_dir.to_string_lossy()).unwrap();
    let file = repo_root().join("data/arrivals/uk_small_boats_daily.csv");
    let ingest = ArrivalsIngest {
        station: Some("dover".into()),
        date_column: Some("full_date".into()),
        count_column: Some("migrants_arrived".into()),
        station_column: None,
        empty: EmptyCounts::Zero,
    };
    let rt = runtime();
    let report = rt.block_on(ingest.run(&store, &file)).unwrap();
    // The file has 3,154 days; the last published figure is 2026-08-17, and
    // the three empty days after it are unknown, not zero.
    assert_eq!(report.rows_read, 3_154);
    assert_eq!(report.unknown_trailing, 3);
    assert_eq!(report.rows_loaded, 3_151);
    assert_eq!(report.last_date.unwrap().to_string(), "2026-08-17");
    assert_eq!(report.first_date.unwrap().to_string(), "2018-01-01");
    assert_eq!(report.zero_filled, 3_151 - 1_065);

    let script = r#"
import os, sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table()
counts = t.column("count").to_pylist()
print(t.num_rows, sum(counts), sum(1 for c in counts if c > 0), set(t.column("station").to_pylist()).pop(), flush=True)
os._exit(0)  # deltalake's runtime threads can abort a normal interpreter exit
"#;
    let out = python(script, &[&store_dir.join("arrivals").to_string_lossy()]);
    assert_eq!(out.trim(), "3151 208507 1065 dover");

    // Ingesting the same file again is recognised and changes nothing.
    let again = rt.block_on(ingest.run(&store, &file)).unwrap();
    assert!(again.already_ingested);
    assert_eq!(again.version, report.version);
}

#[test]
fn arrivals_layouts_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store").to_string_lossy()).unwrap();
    let rt = runtime();
    let plain = write(dir.path(), "plain.csv", "date,count\n2024-01-01,5\n2024-01-02,0\n");
    let with_station = ArrivalsIngest { station: Some("ter-apel".into()), ..Default::default() };
    let first = rt.block_on(with_station.run(&store, &plain)).unwrap();
    assert_eq!((first.rows_loaded, first.new_rows), (2, 2));

    // A three-column file revises one figure and adds a station.
    let long = write(dir.path(), "long.csv", "date,station,count\n2024-01-02,ter-apel,7\n2024-01-01,dover,3\n");
    let second = rt.block_on(ArrivalsIngest::default().run(&store, &long)).unwrap();
    assert_eq!((second.new_rows, second.revised_rows), (1, 1));
    assert_eq!(second.version, Some(first.version.unwrap() + 1));

    let summaries = rt.block_on(store.summaries()).unwrap();
    let arrivals = summaries.iter().find(|s| s.table == TableName::Arrivals).unwrap();
    assert_eq!(arrivals.rows, 3);
    assert_eq!(arrivals.facts.iter().find(|(k, _)| k == "people counted").unwrap().1, "15");
    // Time travel: the first version still holds the unrevised figure.
    let old = rt.block_on(store.table_at(TableName::Arrivals, first.version)).unwrap().unwrap();
    assert_eq!(old.version(), first.version);
    let figure = |as_of: Option<u64>| {
        let store_arg = dir.path().join("store").to_string_lossy().into_owned();
        let version = as_of.map(|v| v.to_string());
        let mut args = vec!["query", "--store", store_arg.as_str(), "--format", "csv"];
        if let Some(version) = &version {
            args.extend(["--as-of", version.as_str()]);
        }
        args.push("SELECT count FROM arrivals WHERE station = 'ter-apel' AND date = DATE '2024-01-02'");
        let out = stroom(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(figure(first.version), "count\n0\n", "the figure as first delivered");
    assert_eq!(figure(None), "count\n7\n", "the revised figure");
}

#[test]
fn the_cli_ingests_and_lists_tables() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_string_lossy();
    let csv = write(
        dir.path(),
        "d.csv",
        "ts,lat,lon,count\n2024-05-01T10:00:00Z,51.0,1.9,30\n2024-05-01T11:00:00Z,51.0,1.9,3\n",
    );
    let out = stroom(&["ingest", "density", &csv.to_string_lossy(), "--store", &store]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 rows read"), "{text}");
    assert!(text.contains("1 cell-hours suppressed below k=15"), "{text}");
    assert!(text.contains("1 (new table)"), "{text}");

    let out = stroom(&["tables", "--store", &store]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("density: version 1, 1 rows, 2024-05-01T10:00:00"), "{text}");
    assert!(text.contains("ingest-density d.csv"), "{text}");

    let out = stroom(&["ingest", "density", &csv.to_string_lossy(), "--store", &store, "--k", "5"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("below the minimum threshold 15"));
}

#[test]
fn spilling_to_disk_gives_the_same_table_as_memory() {
    // Three files whose (cell, hour) keys overlap, ingested once with ample
    // memory and once with a budget of 8 keys, which forces sorted runs to
    // temporary files and a merge.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for file in 0..3 {
        let mut text = String::from("ts,lat,lon,count\n");
        for hour in 0..30 {
            for (lat, lon) in [(51.0, 1.9), (50.95, 1.86), (51.03, 2.37), (52.37, 4.89)] {
                let count = 5 + (hour * 7 + file * 3) % 20;
                text.push_str(&format!("2024-05-0{}T{:02}:00:00Z,{lat},{lon},{count}\n", 1 + hour / 24, hour % 24));
            }
        }
        paths.push(write(dir.path(), &format!("part-{file}.csv"), &text));
    }
    let rt = runtime();
    let mut results = Vec::new();
    for (name, spill_entries) in [("memory", usize::MAX), ("spilled", 8)] {
        let store_dir = dir.path().join(name);
        let store = Store::open(&store_dir.to_string_lossy()).unwrap();
        let ingest = DensityIngest { spill_entries, ..ingest(7) };
        let report = rt.block_on(ingest.run(&store, &paths, &noop)).unwrap();
        let script = r#"
import os, sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table().sort_by([("cell", "ascending"), ("ts", "ascending")])
print(t.num_rows, sum(t.column("count").to_pylist()), hash(tuple(t.column("count").to_pylist())), flush=True)
os._exit(0)
"#;
        let table = python(script, &[&store_dir.join("density").to_string_lossy()]);
        results.push((report.rows_read, report.cell_hours, report.suppressed, report.rows_written, table));
    }
    assert_eq!(results[0].0, 360);
    assert_eq!(results[0].1, 120, "3 files × 30 hours × 4 cells, summed over the files");
    assert_eq!(results[0], results[1]);
}

#[test]
fn a_delivery_that_repeats_stored_cell_hours_is_refused_not_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store").to_string_lossy()).unwrap();
    let rt = runtime();
    let devices = |store: &Store| {
        let summaries = rt.block_on(store.summaries()).unwrap();
        let density = summaries.into_iter().find(|s| s.table == TableName::Density).unwrap();
        let devices = density.facts.iter().find(|(k, _)| k == "devices counted").unwrap().1.clone();
        (density.version, devices)
    };
    let header = "ts,lat,lon,count\n";
    let first = write(dir.path(), "hour-10.csv", &format!("{header}2024-05-01T10:00:00Z,51.0,1.9,20\n"));
    rt.block_on(ingest(7).run(&store, &[first], &noop)).unwrap();
    assert_eq!(devices(&store), (1, "20".to_owned()));

    // A corrected count for the same cell and hour, under another name, and
    // a file with one new hour and that repeated one: both refused whole.
    let corrected = write(dir.path(), "hour-10-fixed.csv", &format!("{header}2024-05-01T10:20:00Z,51.0,1.9,23\n"));
    let mixed = write(
        dir.path(),
        "hours-10-11.csv",
        &format!("{header}2024-05-01T11:00:00Z,51.0,1.9,30\n2024-05-01T10:00:00Z,51.0,1.9,16\n"),
    );
    for file in [corrected, mixed] {
        let error = rt.block_on(ingest(7).run(&store, &[file], &noop)).unwrap_err();
        assert!(error.is_bad_input());
        let text = error.to_string();
        assert!(text.contains("1 (cell, hour) counts") && text.contains("2024-05-01T10:00:00+00:00"), "{text}");
        assert!(text.contains("count them twice") && text.contains("nothing was written"), "{text}");
        assert_eq!(devices(&store), (1, "20".to_owned()));
    }
    // A repeated cell-hour whose new count is below k is refused too: it
    // would not be counted twice, but it is a re-delivery all the same.
    let low = write(dir.path(), "low.csv", &format!("{header}2024-05-01T10:00:00Z,51.0,1.9,3\n"));
    assert!(rt.block_on(ingest(7).run(&store, &[low], &noop)).unwrap_err().is_bad_input());
    // New hours of the same day, another cell at the same hour, and the next
    // day all land.
    let next = write(
        dir.path(),
        "next.csv",
        &format!(
            "{header}2024-05-01T11:00:00Z,51.0,1.9,30\n2024-05-01T10:00:00Z,48.8566,2.3522,25\n\
             2024-05-02T10:00:00Z,51.0,1.9,40\n"
        ),
    );
    let report = rt.block_on(ingest(7).run(&store, &[next], &noop)).unwrap();
    assert_eq!((report.rows_written, report.version), (3, Some(2)));
    assert_eq!(devices(&store), (2, "115".to_owned()));
    // A supplementary delivery (a second provider's devices) adds to the
    // stored cell-hours when asked to.
    let second = write(
        dir.path(),
        "provider-b.csv",
        &format!(
            "{header}2024-05-01T10:00:00Z,51.0,1.9,17
"
        ),
    );
    let add = DensityIngest { on_stored: OnStored::Add, ..ingest(7) };
    assert_eq!(rt.block_on(add.run(&store, &[second], &noop)).unwrap().rows_written, 1);
    assert_eq!(devices(&store), (3, "132".to_owned()));
    let total = "SELECT SUM(count) AS devices FROM density WHERE ts = TIMESTAMP '2024-05-01T10:00:00Z' AND cell = ";
    let cell = Cell::from_lat_lng(51.0, 1.9, Resolution::new(7).unwrap()).unwrap().to_u64();
    let out = stroom(&[
        "query",
        "--store",
        &dir.path().join("store").to_string_lossy(),
        "--format",
        "csv",
        &format!("{total}{cell}"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "devices\n37\n", "20 and 17 in one cell-hour");
}

/// The (cell, hour) counts a store should hold: deliveries applied to a map
/// the way `--replace` and a plain ingest are documented to work.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Expected(std::collections::BTreeMap<(u64, i64), u64>);

impl Expected {
    /// Applies a delivery of `(cell, hour in µs, count)` rows: summed per
    /// key, below 15 left out; with `replace`, the stored rows of every hour
    /// the delivery covers go first, but for a stored count that the
    /// delivery would move by 1 to 14, which stays. Returns how many stayed.
    fn apply(&mut self, rows: &[(u64, i64, u64)], replace: bool) -> usize {
        let mut summed = std::collections::BTreeMap::new();
        for &(cell, ts, count) in rows {
            *summed.entry((cell, ts)).or_insert(0u64) += count;
        }
        summed.retain(|_, count| *count >= 15);
        let mut held = 0;
        if replace {
            let hours: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.1).collect();
            let stored = std::mem::take(&mut self.0);
            for (key, count) in stored {
                let moved = summed.get(&key).map(|new| new.abs_diff(count));
                if !hours.contains(&key.1) {
                    self.0.insert(key, count);
                } else if moved.is_some_and(|m| (1..15).contains(&m)) {
                    self.0.insert(key, count);
                    summed.remove(&key);
                    held += 1;
                }
            }
        }
        self.0.extend(summed);
        held
    }

    /// `cell,day,devices,cell_hours` lines, as the rollup should hold them.
    fn daily(&self) -> String {
        let mut days: std::collections::BTreeMap<(u64, String), (u64, u64)> = Default::default();
        for (&(cell, ts), &count) in &self.0 {
            let day = chrono::DateTime::from_timestamp_micros(ts).unwrap().format("%Y-%m-%d").to_string();
            let entry = days.entry((cell, day)).or_default();
            entry.0 += count;
            entry.1 += 1;
        }
        days.iter().map(|((cell, day), (devices, hours))| format!("{cell},{day},{devices},{hours}\n")).collect()
    }

    fn hourly(&self) -> String {
        self.0.iter().map(|((cell, ts), count)| format!("{cell},{ts},{count}\n")).collect()
    }
}

#[test]
fn corrected_deliveries_replace_the_hours_they_cover_and_the_rollup_follows() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store_arg = store_dir.to_string_lossy().into_owned();
    let store = Store::open(&store_arg).unwrap();
    let rt = runtime();
    let res7 = Resolution::new(7).unwrap();
    let cells: Vec<u64> = [(51.0, 1.9), (48.8566, 2.3522), (50.95, 2.4), (51.2, 2.9), (50.72, 1.61)]
        .iter()
        .map(|&(lat, lon)| Cell::from_lat_lng(lat, lon, res7).unwrap().to_u64())
        .collect();
    assert_eq!(cells.iter().collect::<std::collections::BTreeSet<_>>().len(), 5, "five distinct cells");
    let hour = |day: u32, h: u32| {
        chrono::NaiveDate::from_ymd_opt(2024, 5, day)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros()
    };
    let csv = |rows: &[(u64, i64, u64)]| {
        let mut text = String::from("ts,cell,count\n");
        for &(cell, ts, count) in rows {
            // Minutes into the hour, as providers deliver them.
            let at = chrono::DateTime::from_timestamp_micros(ts + 17 * 60 * 1_000_000).unwrap();
            text += &format!("{},{:x},{count}\n", at.format("%Y-%m-%dT%H:%M:%SZ"), cell);
        }
        text
    };
    let stored = || {
        let query = |sql: &str| {
            let out = stroom(&["query", "--store", &store_arg, "--format", "csv", sql]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).lines().skip(1).map(|l| format!("{l}\n")).collect::<String>()
        };
        (
            query("SELECT cell, CAST(ts AS BIGINT) AS ts, count FROM density ORDER BY cell, ts"),
            query(
                "SELECT cell, CAST(day AS VARCHAR) AS day, SUM(devices) AS devices, SUM(cell_hours) AS cell_hours \
                 FROM density_daily GROUP BY cell, day ORDER BY cell, day",
            ),
        )
    };
    let check = |expected: &Expected, what: &str| {
        let (hourly, daily) = stored();
        assert_eq!(hourly, expected.hourly(), "hourly counts after {what}");
        assert_eq!(daily, expected.daily(), "the rollup after {what}");
    };
    let replace = DensityIngest { on_stored: OnStored::Replace, ..ingest(7) };
    let mut expected = Expected::default();

    // Day 1, hours 8–12, four cells; day 2, hour 10; then a second delivery
    // of day 1, hours 13–14: day 1 has two files.
    let mut first = Vec::new();
    for h in 8..=12 {
        for (i, &cell) in cells[..4].iter().enumerate() {
            first.push((cell, hour(1, h), 20 + 10 * i as u64 + u64::from(h)));
        }
    }
    first.push((cells[0], hour(2, 10), 40));
    let later: Vec<_> =
        [13, 14].iter().flat_map(|&h| [(cells[0], hour(1, h), 50), (cells[1], hour(1, h), 51)]).collect();
    for (name, rows) in [("day-1.csv", &first), ("day-1-late.csv", &later)] {
        rt.block_on(ingest(7).run(&store, &[write(dir.path(), name, &csv(rows))], &noop)).unwrap();
        expected.apply(rows, false);
    }
    check(&expected, "two plain deliveries");
    let original = stored();

    // A correction of hours 10 and 11: one count changes by more than k and
    // one by less (held), one cell is gone, one falls below k, one hour of a
    // cell is gone, a new cell appears.
    let correction = vec![
        (cells[0], hour(1, 10), 50),
        (cells[0], hour(1, 11), 24),
        (cells[2], hour(1, 10), 5),
        (cells[2], hour(1, 11), 6),
        (cells[3], hour(1, 10), 33),
        (cells[4], hour(1, 10), 18),
    ];
    let fixed = write(dir.path(), "hours-10-11-fixed.csv", &csv(&correction));
    // Plain, it is refused; both options at once are refused by the command.
    assert!(rt.block_on(ingest(7).run(&store, std::slice::from_ref(&fixed), &noop)).unwrap_err().is_bad_input());
    let both =
        stroom(&["ingest", "density", "--store", &store_arg, "--replace", "--add-to-stored", &fixed.to_string_lossy()]);
    assert!(!both.status.success());
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
    let report = rt.block_on(replace.run(&store, std::slice::from_ref(&fixed), &noop)).unwrap();
    assert_eq!(
        (report.hours, report.replaced, report.held, report.rows_written, report.suppressed, report.version),
        (2, 7, 1, 3, 2, Some(3)),
        "7 of the 8 stored cell-hours (4 cells × 2 hours) replaced by 3; 31 → 24 held"
    );
    assert_eq!(expected.apply(&correction, true), 1);
    check(&expected, "a correction of two hours");
    // The earlier vintage is still readable.
    let before = stroom(&[
        "query",
        "--store",
        &store_arg,
        "--format",
        "csv",
        "--as-of",
        "2",
        "SELECT cell, CAST(ts AS BIGINT) AS ts, count FROM density ORDER BY cell, ts",
    ]);
    let before: String = String::from_utf8_lossy(&before.stdout).lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert_eq!(before, original.0, "version 2 as it was");

    // A partial correction through the command: hour 13 only, which the
    // second file holds; hour 14 of that file stays.
    let thirteen = vec![(cells[0], hour(1, 13), 70)];
    let file = write(dir.path(), "hour-13-fixed.csv", &csv(&thirteen));
    let out = stroom(&["ingest", "density", "--store", &store_arg, "--replace", &file.to_string_lossy()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("density: 2 stored cell-hours of the 1 hours delivered replaced"), "{printed}");
    assert!(!printed.contains("held"), "{printed}");
    assert_eq!(expected.apply(&thirteen, true), 0);
    check(&expected, "a correction of one hour of the second file");

    // The same correction again: the same bytes are skipped; the same rows
    // in other bytes replace the hours again, to the same figures.
    let again = rt.block_on(replace.run(&store, std::slice::from_ref(&fixed), &noop)).unwrap();
    assert!(again.sources[0].already_ingested);
    assert_eq!(again.version, Some(4));
    let mut reordered = correction.clone();
    reordered.reverse();
    let refixed = write(dir.path(), "hours-10-11-fixed-again.csv", &csv(&reordered));
    let report = rt.block_on(replace.run(&store, &[refixed], &noop)).unwrap();
    assert_eq!((report.replaced, report.held, report.rows_written, report.version), (3, 1, 3, Some(5)));
    check(&expected, "the same correction repeated");

    // Every count of hour 14 below k: the hour is emptied, in a commit.
    let low = vec![(cells[0], hour(1, 14), 3), (cells[1], hour(1, 14), 4)];
    let report = rt.block_on(replace.run(&store, &[write(dir.path(), "hour-14-low.csv", &csv(&low))], &noop)).unwrap();
    assert_eq!((report.replaced, report.rows_written, report.suppressed, report.version), (2, 0, 2, Some(6)));
    expected.apply(&low, true);
    check(&expected, "a correction below k");
    // Below k on an hour that holds nothing: nothing to commit.
    let empty = vec![(cells[0], hour(1, 20), 3)];
    let report =
        rt.block_on(replace.run(&store, &[write(dir.path(), "hour-20-low.csv", &csv(&empty))], &noop)).unwrap();
    assert_eq!((report.replaced, report.rows_written, report.version), (0, 0, Some(6)));
    // A new day with --replace is a plain delivery.
    let new_day = vec![(cells[1], hour(3, 0), 70), (cells[1], hour(3, 1), 71)];
    let report = rt.block_on(replace.run(&store, &[write(dir.path(), "day-3.csv", &csv(&new_day))], &noop)).unwrap();
    assert_eq!((report.replaced, report.rows_written, report.version), (0, 2, Some(7)));
    expected.apply(&new_day, true);
    check(&expected, "a new day delivered with --replace");

    // An independent reader sees the same table.
    let script = r#"
import os, sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table()
print(t.num_rows, sum(t.column("count").to_pylist()), flush=True)
os._exit(0)
"#;
    let out = python(script, &[&store_dir.join("density").to_string_lossy()]);
    assert_eq!(out.trim(), format!("{} {}", expected.0.len(), expected.0.values().sum::<u64>()));
}
