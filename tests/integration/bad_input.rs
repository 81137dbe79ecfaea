//! Every kind of bad input, as a real malformed file: refused with an error
//! that names the file, the row, the column and the value, a non-zero exit
//! from the binary, and an unchanged table version.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use stroom_core::Resolution;
use stroom_store::{ArrivalsIngest, DensityIngest, Store, TableName};

use crate::support::{runtime, stroom};

fn noop(_: u64) {}

/// A store whose density and arrivals tables already hold one good ingest.
fn store_with_data(dir: &Path) -> Store {
    let store = Store::open(&dir.join("store").to_string_lossy()).unwrap();
    let good = dir.join("good.csv");
    std::fs::write(&good, "ts,lat,lon,count\n2024-05-01T10:00:00Z,51.0,1.9,30\n").unwrap();
    let rt = runtime();
    rt.block_on(DensityIngest::new(Resolution::new(7).unwrap(), 15).unwrap().run(&store, &[good], &noop)).unwrap();
    let arrivals = dir.join("good-arrivals.csv");
    std::fs::write(&arrivals, "date,station,count\n2024-05-01,dover,30\n").unwrap();
    rt.block_on(ArrivalsIngest::default().run(&store, &arrivals)).unwrap();
    store
}

fn versions(store: &Store) -> (Option<u64>, Option<u64>) {
    let rt = runtime();
    let density = rt.block_on(store.table(TableName::Density)).unwrap().and_then(|t| t.version());
    let arrivals = rt.block_on(store.table(TableName::Arrivals)).unwrap().and_then(|t| t.version());
    (density, arrivals)
}

/// Ingests `path` as density and checks that the error mentions every one of
/// `expected`, and that nothing was committed.
fn check_density(store: &Store, path: &Path, expected: &[&str]) {
    let before = versions(store);
    let ingest = DensityIngest::new(Resolution::new(7).unwrap(), 15).unwrap();
    let error =
        runtime().block_on(ingest.run(store, &[path.to_owned()], &noop)).expect_err("bad input is refused").to_string();
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(error.contains(name.as_ref()), "error does not name the file: {error}");
    for piece in expected {
        assert!(error.contains(piece), "error lacks '{piece}': {error}");
    }
    assert_eq!(versions(store), before, "a refused ingest changed a table version");
}

fn csv(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD_ROW: &str = "2024-05-02T10:00:00Z,51.0,1.9,30\n";

#[test]
fn malformed_density_csv_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_data(dir.path());
    let d = dir.path();
    let header = "ts,lat,lon,count\n";
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "missing-column.csv",
            format!("ts,lat,count\n2024-05-02T10:00:00Z,51.0,30\n"),
            vec!["missing column 'lon'", "found columns [ts,lat,count]"],
        ),
        (
            "extra-column.csv",
            format!("ts,lat,lon,count,operator\n2024-05-02T10:00:00Z,51.0,1.9,30,x\n"),
            vec!["unexpected column 'operator'"],
        ),
        (
            "wrong-type.csv",
            format!("{header}{GOOD_ROW}2024-05-02T10:00:00Z,north,1.9,30\n"),
            vec!["line 3", "column 'lat'", "value 'north'", "not a number"],
        ),
        (
            "lat-range.csv",
            format!("{header}{GOOD_ROW}{GOOD_ROW}2024-05-02T11:00:00Z,91.5,1.9,30\n"),
            vec!["line 4", "column 'lat'", "value '91.5'"],
        ),
        (
            "lon-range.csv",
            format!("{header}2024-05-02T11:00:00Z,51.0,-180.2,30\n"),
            vec!["line 2", "column 'lon'", "value '-180.2'"],
        ),
        (
            "lon-nan.csv",
            format!("{header}2024-05-02T11:00:00Z,51.0,NaN,30\n"),
            vec!["line 2", "column 'lon'", "value 'NaN'", "finite"],
        ),
        (
            "lat-inf.csv",
            format!("{header}2024-05-02T11:00:00Z,inf,1.9,30\n"),
            vec!["line 2", "column 'lat'", "value 'inf'"],
        ),
        (
            "negative-count.csv",
            format!("{header}2024-05-02T11:00:00Z,51.0,1.9,-4\n"),
            vec!["line 2", "column 'count'", "value '-4'", "negative"],
        ),
        (
            "fractional-count.csv",
            format!("{header}2024-05-02T11:00:00Z,51.0,1.9,2.5\n"),
            vec!["line 2", "column 'count'", "value '2.5'", "whole number"],
        ),
        (
            "text-count.csv",
            format!("{header}2024-05-02T11:00:00Z,51.0,1.9,many\n"),
            vec!["line 2", "column 'count'", "value 'many'"],
        ),
        (
            "empty-count.csv",
            format!("{header}2024-05-02T11:00:00Z,51.0,1.9,\n"),
            vec!["line 2", "column 'count'", "missing value"],
        ),
        (
            "april-31.csv",
            format!("{header}{GOOD_ROW}2024-04-31T10:00:00Z,51.0,1.9,30\n"),
            vec!["line 3", "column 'ts'", "value '2024-04-31T10:00:00Z'"],
        ),
        (
            "feb-29.csv",
            format!("{header}2025-02-29 10:00:00,51.0,1.9,30\n"),
            vec!["line 2", "column 'ts'", "value '2025-02-29 10:00:00'"],
        ),
        ("bad-ts.csv", format!("{header}yesterday,51.0,1.9,30\n"), vec!["line 2", "column 'ts'", "value 'yesterday'"]),
        (
            "ragged.csv",
            format!("{header}{GOOD_ROW}2024-05-02T10:00:00Z,51.0,30\n"),
            vec!["line 3", "3 fields", "header has 4"],
        ),
        (
            "invalid-cell.csv",
            format!(
                "ts,cell,count\n2024-05-02T10:00:00Z,871fb4662ffffff,30\n2024-05-02T10:00:00Z,8f1fb4662fffff7,30\n"
            ),
            vec!["line 3", "column 'cell'", "value '8f1fb4662fffff7'"],
        ),
        (
            "coarse-cell.csv",
            format!("ts,cell,count\n2024-05-02T10:00:00Z,851fb467fffffff,30\n"),
            vec!["line 2", "column 'cell'", "coarser than the storage resolution 7"],
        ),
        ("header-only.csv", header.to_owned(), vec!["no data rows"]),
        ("empty.csv", String::new(), vec!["the file is empty"]),
    ];
    for (name, text, expected) in cases {
        check_density(&store, &csv(d, name, &text), &expected);
    }
    // Not CSV at all: binary bytes with a .csv name.
    let binary = d.join("image.csv");
    let mut bytes = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    bytes.extend((0..2000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&binary, bytes).unwrap();
    check_density(&store, &binary, &["line 1", "malformed CSV"]);
    // A folder with one good and one bad file writes nothing.
    let folder = d.join("mixed");
    std::fs::create_dir(&folder).unwrap();
    csv(&folder, "a-good.csv", &format!("{header}{GOOD_ROW}"));
    csv(&folder, "b-bad.csv", &format!("{header}2024-05-02T10:00:00Z,51.0,1.9,-1\n"));
    check_density(&store, &folder, &["b-bad.csv", "line 2", "negative"]);
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(name, array)| Field::new(*name, array.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn malformed_density_parquet_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_data(dir.path());
    let d = dir.path();
    let ts = |values: Vec<&str>| Arc::new(StringArray::from(values)) as ArrayRef;
    let floats = |values: Vec<f64>| Arc::new(Float64Array::from(values)) as ArrayRef;
    let ints = |values: Vec<i64>| Arc::new(Int64Array::from(values)) as ArrayRef;

    let negative = d.join("negative.parquet");
    write_parquet(
        &negative,
        vec![
            ("ts", ts(vec!["2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z"])),
            ("lat", floats(vec![51.0, 51.0])),
            ("lon", floats(vec![1.9, 1.9])),
            ("count", ints(vec![20, -3])),
        ],
    );
    check_density(&store, &negative, &["row 2", "column 'count'", "value '-3'"]);

    let out_of_range = d.join("lat-range.parquet");
    write_parquet(
        &out_of_range,
        vec![
            ("ts", ts(vec!["2024-05-02T10:00:00Z"])),
            ("lat", floats(vec![-95.0])),
            ("lon", floats(vec![1.9])),
            ("count", ints(vec![20])),
        ],
    );
    check_density(&store, &out_of_range, &["row 1", "column 'lat'", "value '-95'"]);

    let invalid_cell = d.join("cell.parquet");
    write_parquet(
        &invalid_cell,
        vec![("ts", ts(vec!["2024-05-02T10:00:00Z"])), ("cell", ints(vec![12345])), ("count", ints(vec![20]))],
    );
    check_density(&store, &invalid_cell, &["row 1", "column 'cell'", "value '12345'"]);

    let wrong_type = d.join("count-type.parquet");
    write_parquet(
        &wrong_type,
        vec![
            ("ts", ts(vec!["2024-05-02T10:00:00Z"])),
            ("lat", floats(vec![51.0])),
            ("lon", floats(vec![1.9])),
            ("count", ts(vec!["twenty"])),
        ],
    );
    check_density(&store, &wrong_type, &["column 'count'", "type Utf8"]);

    let extra = d.join("extra.parquet");
    write_parquet(
        &extra,
        vec![
            ("ts", ts(vec!["2024-05-02T10:00:00Z"])),
            ("lat", floats(vec![51.0])),
            ("lon", floats(vec![1.9])),
            ("count", ints(vec![20])),
            ("imsi", ints(vec![1])),
        ],
    );
    check_density(&store, &extra, &["unexpected column 'imsi'"]);

    let bad_date = d.join("bad-date.parquet");
    write_parquet(
        &bad_date,
        vec![
            ("ts", ts(vec!["2024-05-02T10:00:00Z", "2024-05-02T10:00:00Z", "2024-04-31T10:00:00Z"])),
            ("lat", floats(vec![51.0, 51.0, 51.0])),
            ("lon", floats(vec![1.9, 1.9, 1.9])),
            ("count", ints(vec![20, 20, 20])),
        ],
    );
    check_density(&store, &bad_date, &["row 3", "column 'ts'", "value '2024-04-31T10:00:00Z'"]);

    // Truncated: a valid file cut in half.
    let truncated = d.join("truncated.parquet");
    std::fs::copy(&negative, &truncated).unwrap();
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    check_density(&store, &truncated, &["not a readable Parquet file"]);
}

#[test]
fn malformed_arrivals_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_data(dir.path());
    let d = dir.path();
    let cases: Vec<(&str, &str, ArrivalsIngest, Vec<&str>)> = vec![
        (
            "april.csv",
            "date,station,count\n2024-04-30,dover,3\n2024-04-31,dover,4\n",
            ArrivalsIngest::default(),
            vec!["line 3", "column 'date'", "value '2024-04-31'"],
        ),
        (
            "feb.csv",
            "date,station,count\n2025-02-29,dover,3\n",
            ArrivalsIngest::default(),
            vec!["line 2", "column 'date'", "value '2025-02-29'"],
        ),
        (
            "negative.csv",
            "date,station,count\n2024-04-30,dover,-3\n",
            ArrivalsIngest::default(),
            vec!["line 2", "column 'count'", "value '-3'", "negative"],
        ),
        (
            "fraction.csv",
            "date,station,count\n2024-04-30,dover,2.5\n",
            ArrivalsIngest::default(),
            vec!["line 2", "column 'count'", "value '2.5'"],
        ),
        (
            "empty-count.csv",
            "date,station,count\n2024-04-30,dover,\n",
            ArrivalsIngest::default(),
            vec!["line 2", "column 'count'", "missing value"],
        ),
        (
            "twice.csv",
            "date,station,count\n2024-04-30,dover,3\n2024-04-30,dover,4\n",
            ArrivalsIngest::default(),
            vec!["line 3", "already has a figure", "line 2"],
        ),
        (
            "station.csv",
            "date,station,count\n2024-04-30,Dover Port,3\n",
            ArrivalsIngest::default(),
            vec!["line 2", "column 'station'", "value 'Dover Port'"],
        ),
        ("no-station.csv", "date,count\n2024-04-30,3\n", ArrivalsIngest::default(), vec!["missing column 'station'"]),
        (
            "extra.csv",
            "date,station,count,note\n2024-04-30,dover,3,x\n",
            ArrivalsIngest::default(),
            vec!["unexpected column 'note'"],
        ),
        ("header.csv", "date,station,count\n", ArrivalsIngest::default(), vec!["no data rows"]),
    ];
    for (name, text, ingest, expected) in cases {
        let path = csv(d, name, text);
        let before = versions(&store);
        let error = runtime().block_on(ingest.run(&store, &path)).expect_err(name).to_string();
        assert!(error.contains(name), "{error}");
        for piece in expected {
            assert!(error.contains(piece), "error lacks '{piece}': {error}");
        }
        assert_eq!(versions(&store), before);
    }
}

#[test]
fn the_binary_exits_non_zero_and_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_data(dir.path());
    let before = versions(&store);
    let location = dir.path().join("store");
    let location = location.to_string_lossy();
    let bad = csv(
        dir.path(),
        "bad.csv",
        "ts,lat,lon,count\n2024-05-02T10:00:00Z,51.0,1.9,30\n2024-05-02T10:00:00Z,95,1.9,30\n",
    );
    let out = stroom(&["ingest", "density", &bad.to_string_lossy(), "--store", &location]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.csv, line 3, column 'lat', value '95'"), "{stderr}");
    let bad = csv(dir.path(), "bad-arrivals.csv", "date,count\n2024-04-31,3\n");
    let out = stroom(&["ingest", "arrivals", &bad.to_string_lossy(), "--store", &location, "--station", "dover"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad-arrivals.csv, line 2, column 'date', value '2024-04-31'"), "{stderr}");
    assert_eq!(versions(&store), before);
}

/// Every file under `dir`, relative to it, sorted (empty when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_sum_beyond_the_stored_count_range_is_refused_and_leaves_the_store_as_it_was() {
    // One count above 2^31 − 1 passes the row checks (it fits a u32) but not
    // the table's integer column. Two files: alone, the count fails before
    // anything is written; behind a full write batch of valid rows on the
    // day before (11,000 cells × 24 hours), it fails after the first batch
    // went to the writers, so that the files written must be removed.
    let dir = tempfile::tempdir().unwrap();
    let overflow = "2024-05-02T10:00:00Z,51.0,1.9,3000000000\n";
    let alone = csv(dir.path(), "alone.csv", &format!("ts,lat,lon,count\n{overflow}"));
    let mut text = String::from("ts,lat,lon,count\n");
    for hour in 0..24 {
        for i in 0..110 {
            for j in 0..100 {
                let (lat, lon) = (50.0 + 0.05 * f64::from(i), 1.0 + 0.05 * f64::from(j));
                text.push_str(&format!("2024-05-01T{hour:02}:00:00Z,{lat:.2},{lon:.2},20\n"));
            }
        }
    }
    text.push_str(overflow);
    let behind = csv(dir.path(), "behind.csv", &text);
    let ingest = DensityIngest::new(Resolution::new(7).unwrap(), 15).unwrap();
    let rt = runtime();

    for (name, file) in [("alone", &alone), ("behind", &behind)] {
        // On a new store, the tables the ingest created are gone again.
        let root = dir.path().join(format!("empty-{name}"));
        let empty = Store::open(&root.to_string_lossy()).unwrap();
        let error =
            rt.block_on(ingest.run(&empty, std::slice::from_ref(file), &noop)).expect_err("refused").to_string();
        assert!(error.contains("exceeds 2147483647") && error.contains("2024-05-02T10:00:00"), "{name}: {error}");
        assert!(rt.block_on(empty.table(TableName::Density)).unwrap().is_none(), "{name}");
        assert!(rt.block_on(empty.table(TableName::DensityDaily)).unwrap().is_none(), "{name}");
        assert!(!root.join("density").exists() && !root.join("density_daily").exists(), "{name}");

        // On a store with data, every table version, the rollup's too, and
        // every file are unchanged.
        let data = dir.path().join(format!("data-{name}"));
        std::fs::create_dir_all(&data).unwrap();
        let store = store_with_data(&data);
        let rollup =
            |store: &Store| rt.block_on(store.table(TableName::DensityDaily)).unwrap().and_then(|t| t.version());
        let (before, rollup_before) = (versions(&store), rollup(&store));
        let files_before = files_under(&data.join("store"));
        assert!(rollup_before.is_some());
        rt.block_on(ingest.run(&store, std::slice::from_ref(file), &noop)).expect_err("refused");
        assert_eq!(versions(&store), before, "{name}");
        assert_eq!(rollup(&store), rollup_before, "{name}");
        assert_eq!(files_under(&data.join("store")), files_before, "{name}");
    }
}
