//! Property-based fuzzing of the parsers that take outside text: dates,
//! timestamps, cell texts and route GeoJSON. No input may panic; valid
//! inputs parse to what chrono and h3o say. Cases: `PROPTEST_CASES` (256
//! by default).

use proptest::prelude::*;

use crate::{Cell, Route, parse_date, parse_timestamp_micros};

const CHANNEL: &str = include_str!("../../../data/routes/channel.geojson");

/// Text that looks like a timestamp and often is one: digits, separators,
/// zones, fractions, spaces, and anything else now and then.
fn timestamp_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}[T ][0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2}(\\.[0-9]{0,12})?)?(Z|[+-][0-9]{2}:[0-9]{2})?",
        "[ \\t]*[0-9T:+\\-Z. ]{0,40}[ \\t]*",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn timestamps_and_dates_never_panic(text in timestamp_like()) {
        let _ = parse_timestamp_micros(&text);
        let _ = parse_date(&text);
    }

    #[test]
    fn valid_timestamps_parse_as_chrono_reads_them(
        year in 1i32..9999, month in 1u32..=12, day in 1u32..=31, hour in 0u32..24, minute in 0u32..60,
        second in 0u32..60, offset in -14i32 * 60..=14 * 60, micros in 0u32..1_000_000,
    ) {
        let Some(date) = chrono::NaiveDate::from_ymd_opt(year, month, day) else {
            // An impossible date (2023-02-30) is an error, never a wrapped one.
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z");
            prop_assert!(parse_timestamp_micros(&text).is_err());
            prop_assert!(parse_date(&text[..10]).is_err());
            return Ok(());
        };
        let naive = date.and_hms_micro_opt(hour, minute, second, micros).unwrap();
        let sign = if offset < 0 { '-' } else { '+' };
        let text = format!(
            "{}.{micros:06}{sign}{:02}:{:02}",
            naive.format("%Y-%m-%dT%H:%M:%S"),
            offset.abs() / 60,
            offset.abs() % 60
        );
        let expected = naive.and_utc().timestamp_micros() - i64::from(offset) * 60_000_000;
        prop_assert_eq!(parse_timestamp_micros(&text).ok(), Some(expected), "{}", text);
        let zoneless = naive.format("%Y-%m-%d %H:%M:%S").to_string();
        prop_assert_eq!(
            parse_timestamp_micros(&zoneless).ok(),
            Some(naive.and_utc().timestamp_micros() - i64::from(micros))
        );
        prop_assert_eq!(parse_date(&naive.format("%Y-%m-%d").to_string()).ok(), Some(date));
    }

    #[test]
    fn cell_texts_never_panic(text in prop_oneof!["[0-9a-fA-F]{0,20}", "[0-9]{0,22}", any::<String>()]) {
        if let Ok(cell) = text.parse::<Cell>() {
            // A cell that parses prints back as a cell that parses to itself.
            prop_assert_eq!(cell.to_string().parse::<Cell>().ok(), Some(cell));
        }
    }

    #[test]
    fn route_files_never_panic_cut_or_mutated(
        cut in 0usize..CHANNEL.len(), edits in proptest::collection::vec((0usize..CHANNEL.len(), any::<u8>()), 0..8),
    ) {
        let mut bytes = CHANNEL.as_bytes().to_vec();
        for (at, byte) in edits {
            if at < bytes.len() {
                bytes[at] = byte;
            }
        }
        let _ = Route::from_geojson("channel", &String::from_utf8_lossy(&bytes));
        let _ = Route::from_geojson("channel", &String::from_utf8_lossy(&CHANNEL.as_bytes()[..cut]));
    }

    #[test]
    fn route_values_of_any_shape_never_panic(json in arbitrary_json(3)) {
        let _ = Route::from_geojson("r", &json.to_string());
        // The same value in place of each member of a real route.
        let mut route: serde_json::Value = serde_json::from_str(CHANNEL).unwrap();
        route["features"][0]["geometry"]["coordinates"] = json.clone();
        let _ = Route::from_geojson("channel", &route.to_string());
        route["features"][1]["properties"] = json;
        let _ = Route::from_geojson("channel", &route.to_string());
    }
}

/// Any JSON value, `depth` levels deep at most.
fn arbitrary_json(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        any::<i64>().prop_map(|i| Value::Number(i.into())),
        "[a-zA-Z0-9 _-]{0,12}".prop_map(Value::String),
        Just(Value::String("FeatureCollection".into())),
        Just(Value::String("LineString".into())),
        Just(Value::String("Point".into())),
    ];
    leaf.prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("coordinates".to_owned()),
                    Just("properties".to_owned()),
                    Just("features".to_owned()),
                    Just("id".to_owned()),
                    Just("name".to_owned()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
