//! Property-based fuzzing of the ingest's input checks, end to end: a
//! generated provider file (CSV, with real exports' variations and broken
//! values, plain or compressed, or arbitrary bytes under a CSV or Parquet
//! name) is ingested into a fresh store. No input may panic; a refused file
//! is refused as bad input (naming the file, line, column and value) and
//! leaves no table behind; an accepted one writes only counts at or above
//! k. Cases: `PROPTEST_CASES` (256 by default).

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use stroom_core::Resolution;

use crate::{ArrivalsIngest, DensityIngest, EmptyCounts, Store, TableName};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn timestamp() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (1u32..=31, 0u32..24, 0u32..60).prop_map(|(d, h, m)| format!("2024-05-{d:02}T{h:02}:{m:02}:00Z")),
        1 => (1u32..=28, 0u32..24).prop_map(|(d, h)| format!("2024-02-{d:02} {h:02}:00")),
        1 => Just("2024-02-30T00:00:00Z".to_owned()),
        1 => Just("2024-05-01T25:00:00Z".to_owned()),
        1 => Just("+275760-09-13T00:00:00Z".to_owned()),
        1 => Just(String::new()),
        1 => any::<String>(),
    ]
}

fn coordinate(limit: f64) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (-limit..limit).prop_map(|v| format!("{v:.4}")),
        1 => prop_oneof![Just("NaN"), Just("inf"), Just("-inf"), Just("1e309"), Just("-0"), Just("91"), Just("181"),
            Just("51,0"), Just(""), Just(" 51.0 ")].prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => (-80.0f64..80.0, -179.0f64..179.0, 0u8..=15).prop_map(|(lat, lon, r)| {
            stroom_core::Cell::from_lat_lng(lat, lon, Resolution::new(i64::from(r)).unwrap()).unwrap().to_string()
        }),
        1 => (-80.0f64..80.0, -179.0f64..179.0).prop_map(|(lat, lon)| {
            stroom_core::Cell::from_lat_lng(lat, lon, Resolution::new(9).unwrap()).unwrap().to_u64().to_string()
        }),
        1 => prop_oneof![Just("0"), Just("ffffffffffffffff"), Just("8f2830828052d25x"), Just("-1"), Just("")]
            .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn count() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0u32..60).prop_map(|c| c.to_string()),
        1 => prop_oneof![Just("-1"), Just("1.5"), Just("2147483648"), Just("4294967296"), Just("99999999999999999999"),
            Just(""), Just(" 12 "), Just("12.0"), Just("1e3"), Just("0x10")].prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// A density CSV: one of the layouts (or a broken header), rows of good
/// and broken values, sometimes a ragged row, quotes or another separator.
fn density_csv() -> impl Strategy<Value = String> {
    let header = prop_oneof![
        Just(("ts,lat,lon,count", ',', true)),
        Just(("ts,cell,count", ',', false)),
        Just(("ts;lat;lon;count", ';', true)),
        Just(("ts\tcell\tcount", '\t', false)),
        Just(("\u{feff}ts,lat,lon,count", ',', true)),
        Just(("ts,lat,lon,count,extra", ',', true)),
        Just(("count,ts", ',', false)),
    ];
    let row = (timestamp(), coordinate(90.0), coordinate(180.0), cell(), count(), 0u8..20);
    (header, proptest::collection::vec(row, 0..40)).prop_map(|((header, separator, points), rows)| {
        let mut text = format!("{header}\n");
        for (ts, lat, lon, cell, count, quirk) in rows {
            let fields: Vec<String> = if points { vec![ts, lat, lon, count] } else { vec![ts, cell, count] };
            let line = match quirk {
                0 => fields[..fields.len() - 1].join(&separator.to_string()),
                1 => format!("\"{}\"", fields.join("\",\"")),
                2 => fields.join(if separator == ',' { ";" } else { "," }),
                _ => fields.join(&separator.to_string()),
            };
            text += &line;
            text.push('\n');
        }
        text
    })
}

/// A file's bytes and name: CSV plain, gzip or zstd, or arbitrary bytes
/// under any supported name.
fn density_file() -> impl Strategy<Value = (Vec<u8>, &'static str)> {
    prop_oneof![
        5 => density_csv().prop_map(|t| (t.into_bytes(), "fuzz.csv")),
        1 => density_csv().prop_map(|t| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(t.as_bytes()).unwrap();
            (gz.finish().unwrap(), "fuzz.csv.gz")
        }),
        1 => density_csv().prop_map(|t| (zstd::encode_all(t.as_bytes(), 1).unwrap(), "fuzz.csv.zst")),
        1 => (proptest::collection::vec(any::<u8>(), 0..600),
              prop_oneof![Just("fuzz.csv"), Just("fuzz.csv.gz"), Just("fuzz.csv.zst"), Just("fuzz.parquet")]),
        1 => (proptest::collection::vec(any::<u8>(), 0..600)).prop_map(|mut b| {
            b.splice(0..0, *b"PAR1");
            b.extend_from_slice(b"PAR1");
            (b, "fuzz.parquet")
        }),
    ]
}

fn arrivals_csv() -> impl Strategy<Value = (String, bool)> {
    let date = prop_oneof![
        5 => (2020i32..2026, 1u32..=12, 1u32..=31).prop_map(|(y, m, d)| format!("{y}-{m:02}-{d:02}")),
        1 => prop_oneof![Just("2024-02-30"), Just("2024-13-01"), Just("01/05/2024"), Just(""), Just(" 2024-05-01 ")]
            .prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    let station = prop_oneof![
        4 => prop_oneof![Just("dover"), Just("ter-apel"), Just("lampedusa")].prop_map(str::to_owned),
        1 => prop_oneof![Just("Dover"), Just("do ver"), Just(""), Just("dövér")].prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    let with_station = any::<bool>();
    (with_station, proptest::collection::vec((date, station, count()), 0..30)).prop_map(|(with_station, rows)| {
        let mut text = if with_station { "date,station,count\n".to_owned() } else { "date,count\n".to_owned() };
        for (date, station, count) in rows {
            let fields = if with_station { vec![date, station, count] } else { vec![date, count] };
            text += &fields
                .iter()
                .map(|f| if f.contains(',') { format!("\"{f}\"") } else { f.clone() })
                .collect::<Vec<_>>()
                .join(",");
            text.push('\n');
        }
        (text, with_station)
    })
}

fn no_table(store: &Path, name: TableName) -> bool {
    !store.join(name.as_str()).join("_delta_log").exists()
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn density_files_are_ingested_or_refused_never_a_panic((bytes, name) in density_file()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let store_dir = dir.path().join("store");
        let store = Store::open(&store_dir.to_string_lossy()).unwrap();
        let ingest = DensityIngest::new(Resolution::new(7).unwrap(), 15).unwrap();
        match runtime().block_on(ingest.run(&store, &[path], &|_| {})) {
            Ok(report) => {
                prop_assert!(report.rows_written + report.suppressed == report.cell_hours);
                prop_assert!(report.rows_written == 0 || !no_table(&store_dir, TableName::Density));
            }
            Err(error) => {
                prop_assert!(error.is_bad_input(), "not a bad-input error: {error:?}");
                let text = error.to_string();
                prop_assert!(text.contains("fuzz") || text.contains("exceeds"), "{}", text);
                prop_assert!(no_table(&store_dir, TableName::Density), "a refused file left a table: {}", text);
            }
        }
    }

    #[test]
    fn arrivals_files_are_ingested_or_refused_never_a_panic((text, with_station) in arrivals_csv(), zero in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.csv");
        std::fs::write(&path, &text).unwrap();
        let store_dir = dir.path().join("store");
        let store = Store::open(&store_dir.to_string_lossy()).unwrap();
        let ingest = ArrivalsIngest {
            station: (!with_station).then(|| "dover".to_owned()),
            empty: if zero { EmptyCounts::Zero } else { EmptyCounts::Error },
            ..ArrivalsIngest::default()
        };
        match runtime().block_on(ingest.run(&store, &path)) {
            Ok(report) => prop_assert!(report.rows_loaded <= report.rows_read),
            Err(error) => {
                prop_assert!(error.is_bad_input(), "not a bad-input error: {error:?}");
                prop_assert!(error.to_string().contains("fuzz.csv"), "{}", error);
                prop_assert!(no_table(&store_dir, TableName::Arrivals));
            }
        }
    }
}
