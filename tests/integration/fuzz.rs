//! The API's query parameters and upload bodies, fuzzed against the real
//! server (`stroom serve` on loopback over a copy of the fixture store):
//! generated paths and query strings with hostile values, and generated
//! upload bodies. No request may get a 5xx, and the server must keep
//! answering. The input parsers themselves are fuzzed in `stroom-core` and
//! `stroom-store` (`fuzz.rs`). Cases: `PROPTEST_CASES` (256 by default).

use std::time::Duration;

use proptest::prelude::*;

use crate::api::{Server, create_key, scene};

/// Values a careless or hostile client sends.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop_oneof![Just("2024-05-01"), Just("2023-06-01"), Just("2024-02-30"), Just("0000-01-01"),
            Just("+262143-12-31"), Just("-1"), Just("0"), Just("7"), Just("28"), Just("29"), Just("4294967296"),
            Just("99999999999999999999"), Just("1e9"), Just("NaN"), Just("true"), Just("csv"), Just("json"),
            Just("geojson"), Just("hour"), Just("day"), Just("station"), Just("segment"), Just("nowcast"),
            Just("open"), Just("all"), Just("dover"), Just("871fb4672ffffff"), Just("8f2830828052d25"),
            Just(""), Just("%00"), Just("%ZZ"), Just("..%2F..%2Fetc"), Just("%E2%82%AC")].prop_map(str::to_owned),
        1 => "[a-zA-Z0-9_.~-]{0,30}",
        1 => any::<String>().prop_map(|s| s.bytes().map(|b| format!("%{b:02X}")).collect()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("horizon"),
        Just("run"),
        Just("format"),
        Just("explain"),
        Just("date"),
        Just("layer"),
        Just("from"),
        Just("to"),
        Just("level"),
        Just("resolution"),
        Just("cells"),
        Just("status"),
        Just("station"),
        Just("x"),
    ];
    proptest::collection::vec((name, value()), 0..5)
        .prop_map(|pairs| pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"))
}

fn path() -> impl Strategy<Value = String> {
    let route = prop_oneof![4 => Just("channel".to_owned()), 1 => Just("eastern-land-border".to_owned()), 1 => value()];
    let cell = prop_oneof![Just("871fb4672ffffff".to_owned()), Just("861fb467fffffff".to_owned()), value()];
    prop_oneof![
        route.clone().prop_map(|r| format!("/v1/routes/{r}")),
        route.clone().prop_map(|r| format!("/v1/routes/{r}/forecast")),
        route.clone().prop_map(|r| format!("/v1/routes/{r}/series")),
        route.clone().prop_map(|r| format!("/v1/routes/{r}/nowcast")),
        route.clone().prop_map(|r| format!("/v1/routes/{r}/map.geojson")),
        route.prop_map(|r| format!("/v1/routes/{r}/map.svg")),
        cell.prop_map(|c| format!("/v1/cells/{c}/series")),
        value().prop_map(|s| format!("/v1/stations/{s}/forecast")),
        Just("/v1/alerts".to_owned()),
        value().prop_map(|s| format!("/v1/backtests/{s}")),
        value().prop_map(|s| format!("/v1/scenarios/{s}")),
    ]
}

fn upload() -> impl Strategy<Value = (String, Vec<u8>)> {
    let row = (0u32..24, prop_oneof![Just("50.95"), Just("91"), Just("NaN"), Just("")], value());
    let csv = proptest::collection::vec(row, 0..20).prop_map(|rows| {
        let mut text = "ts,lat,lon,count\n".to_owned();
        for (h, lat, count) in rows {
            text += &format!("2024-06-01T{h:02}:00:00Z,{lat},1.85,{count}\n");
        }
        text.into_bytes()
    });
    let query = prop_oneof![
        Just("name=fuzz.csv".to_owned()),
        Just("name=fuzz.csv&replace=true".to_owned()),
        Just("name=fuzz.csv&add_to_stored=true".to_owned()),
        value().prop_map(|v| format!("name={v}")),
        query(),
    ];
    (query, prop_oneof![3 => csv, 1 => proptest::collection::vec(any::<u8>(), 0..400)])
}

#[test]
fn hostile_queries_and_uploads_get_no_server_error() {
    let scene = scene();
    let analyst = create_key(&scene.keys, "analyst", None);
    let ingest = create_key(&scene.keys, "ingest", None);
    let audit = scene.dir.path().join("audit.jsonl");
    let server = Server::start(&scene.store, &scene.routes, &scene.keys, &audit);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let config = ProptestConfig { failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config.clone());
    runner
        .run(&(path(), query()), |(path, query)| {
            let url = format!("{}{path}?{query}", server.base);
            let Ok(uri) = url.parse::<ureq::http::Uri>() else { return Ok(()) };
            let status = match agent.get(uri).header("Authorization", format!("Bearer {analyst}")).call() {
                Ok(response) => response.status().as_u16(),
                Err(error) => panic!("GET {path}?{query}: no answer: {error}"),
            };
            prop_assert!(status < 500, "GET {path}?{query} answered {status}");
            Ok(())
        })
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: config.cases / 4, ..config });
    runner
        .run(&upload(), |(query, body)| {
            let url = format!("{}/v1/ingest/density?{query}", server.base);
            let Ok(uri) = url.parse::<ureq::http::Uri>() else { return Ok(()) };
            let response = agent
                .post(uri)
                .header("Authorization", format!("Bearer {ingest}"))
                .header("Content-Type", "text/csv")
                .send(&body[..])
                .unwrap_or_else(|e| panic!("POST ?{query}: no answer: {e}"));
            let status = response.status().as_u16();
            prop_assert!([200, 201, 400, 413, 415, 422].contains(&status), "POST ?{query} answered {status}");
            Ok(())
        })
        .unwrap();
    assert_eq!(server.get("/readyz", None).status, 200);
    assert!(server.stop());
}
