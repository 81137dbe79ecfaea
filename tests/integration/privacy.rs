//! Differencing attacks on the k-threshold, made the way an attacker would:
//! through SQL on the store (with time travel) and through the API, on a
//! store where about a third of the cell-hours are below k. Nested outputs
//! (a parent cell minus some of its children, a day minus some of its
//! hours, a window minus a window inside it) and two versions around a
//! correction are subtracted; no difference may be between 1 and k − 1, and
//! no suppressed count may appear anywhere. See `docs/threat-model.md`.

use std::collections::BTreeMap;

use serde_json::Value;
use stroom_core::{Cell, Resolution};

use crate::api::{Server, create_key};
use crate::support::{repo_root, stroom};

const K: i64 = 15;

/// (cell, hour in µs) → count.
type Counts = BTreeMap<(u64, i64), i64>;

fn hour(day: u32, h: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(2024, 5, day).unwrap().and_hms_opt(h, 0, 0).unwrap().and_utc().timestamp_micros()
}

fn csv(rows: &Counts) -> String {
    let mut text = String::from("ts,cell,count\n");
    for (&(cell, ts), count) in rows {
        let at = chrono::DateTime::from_timestamp_micros(ts).unwrap().format("%Y-%m-%dT%H:%M:%SZ");
        text += &format!("{at},{cell:x},{count}\n");
    }
    text
}

/// Whether a difference of two outputs could be a count below k.
fn reveals(difference: i64) -> bool {
    (1..K).contains(&difference.abs())
}

fn sql(store: &str, as_of: Option<&str>, query: &str) -> Vec<Vec<i64>> {
    let mut args = vec!["query", "--store", store, "--format", "csv"];
    if let Some(version) = as_of {
        args.extend(["--as-of", version]);
    }
    args.push(query);
    let out = stroom(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap_or_else(|_| panic!("not a number: {v} in {l}"))).collect())
        .collect()
}

/// The stored counts by SQL, at a version or the latest.
fn stored(store: &str, as_of: Option<&str>) -> Counts {
    sql(store, as_of, "SELECT cell, CAST(ts AS BIGINT) AS ts, count FROM density ORDER BY cell, ts")
        .into_iter()
        .map(|r| ((r[0] as u64, r[1]), r[2]))
        .collect()
}

/// A cell's hourly series through the API: hour → devices.
fn api_hours(server: &Server, token: &str, cell: Cell) -> BTreeMap<String, i64> {
    let reply =
        server.get(&format!("/v1/cells/{cell}/series?from=2024-05-01&to=2024-05-03&resolution=hour"), Some(token));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body: Value = reply.json();
    body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["time"].as_str().unwrap().to_owned(), p["devices"].as_i64().unwrap()))
        .collect()
}

/// A cell's daily series through the API: day → devices.
fn api_days(server: &Server, token: &str, cell: Cell) -> BTreeMap<String, i64> {
    let reply = server.get(&format!("/v1/cells/{cell}/series?from=2024-05-01&to=2024-05-03"), Some(token));
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["time"].as_str().unwrap().to_owned(), p["devices"].as_i64().unwrap()))
        .collect()
}

#[test]
fn differencing_attacks_recover_no_count_below_k() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = store_dir.to_str().unwrap().to_owned();
    // A resolution-6 parent near Calais and its seven resolution-7 children,
    // 48 hours of counts from 1 to 40: about a third below k.
    let parent = Cell::from_lat_lng(50.95, 1.85, Resolution::new(6).unwrap()).unwrap();
    let children: Vec<Cell> =
        parent.h3o().children(h3o::Resolution::Seven).map(|c| Cell::from_u64(u64::from(c)).unwrap()).collect();
    assert_eq!(children.len(), 7);
    let mut delivered = Counts::new();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for (day, h) in (1..=2).flat_map(|d| (0..24).map(move |h| (d, h))) {
        for child in &children {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            delivered.insert((child.to_u64(), hour(day, h)), 1 + (state >> 33) as i64 % 40);
        }
    }
    let suppressed: Counts = delivered.iter().filter(|(_, c)| **c < K).map(|(k, c)| (*k, *c)).collect();
    assert!(suppressed.len() > 80 && suppressed.len() < 180, "{} suppressed", suppressed.len());
    let file = dir.path().join("delivery.csv");
    std::fs::write(&file, csv(&delivered)).unwrap();
    let out = stroom(&["ingest", "density", "--store", &store, &file.to_string_lossy()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // What the store holds is exactly the counts at or above k.
    let before = stored(&store, None);
    let expected: Counts = delivered.iter().filter(|(_, c)| **c >= K).map(|(k, c)| (*k, *c)).collect();
    assert_eq!(before, expected);
    let mut differences = Vec::new();

    // SQL: a window minus a window inside it, per cell and for the parent.
    let hours: Vec<i64> = (1..=2).flat_map(|d| (0..24).map(move |h| hour(d, h))).collect();
    let window_sum = |counts: &Counts, cells: &[u64], from: i64, to: i64| -> i64 {
        counts.iter().filter(|((c, t), _)| cells.contains(c) && *t >= from && *t < to).map(|(_, v)| v).sum()
    };
    let all: Vec<u64> = children.iter().map(|c| c.to_u64()).collect();
    for (outer, inner) in [((0, 48), (3, 9)), ((0, 24), (23, 24)), ((10, 30), (11, 29)), ((0, 48), (0, 47))] {
        let query = |(a, b): (usize, usize)| {
            let bound = |i: usize| hours.get(i).copied().unwrap_or(hour(2, 23) + 3_600_000_000);
            sql(
                &store,
                None,
                &format!(
                    "SELECT cell, SUM(CAST(count AS BIGINT)) FROM density WHERE CAST(ts AS BIGINT) >= {} \
                     AND CAST(ts AS BIGINT) < {} GROUP BY cell ORDER BY cell",
                    bound(a),
                    bound(b)
                ),
            )
            .into_iter()
            .map(|r| (r[0] as u64, r[1]))
            .collect::<BTreeMap<_, _>>()
        };
        let (big, small) = (query(outer), query(inner));
        for cell in &all {
            differences.push(big.get(cell).unwrap_or(&0) - small.get(cell).unwrap_or(&0));
        }
        let total = |m: &BTreeMap<u64, i64>| m.values().sum::<i64>();
        differences.push(total(&big) - total(&small));
        assert_eq!(
            total(&big),
            window_sum(&before, &all, hours[outer.0], hours.get(outer.1).copied().unwrap_or(i64::MAX))
        );
    }
    // SQL: the parent (by the H3 function) minus every subset of its children.
    let by_parent = sql(
        &store,
        None,
        "SELECT CAST(ts AS BIGINT) AS ts, SUM(CAST(count AS BIGINT)) FROM density \
         WHERE h3_cell_to_parent(cell, 6) = (SELECT MIN(h3_cell_to_parent(cell, 6)) FROM density) GROUP BY ts ORDER BY ts",
    );
    assert_eq!(by_parent.len(), before.keys().map(|k| k.1).collect::<std::collections::BTreeSet<_>>().len());
    for row in &by_parent {
        for subset in 1u32..(1 << 7) - 1 {
            let part: i64 = all
                .iter()
                .enumerate()
                .filter(|(i, _)| subset & (1 << i) != 0)
                .filter_map(|(_, c)| before.get(&(*c, row[0])))
                .sum();
            differences.push(row[1] - part);
        }
    }

    // The API: an analyst's hourly and daily series of the parent and of
    // each child; the parent minus a child, a day minus its hours.
    let keys = dir.path().join("keys.toml");
    let analyst = create_key(&keys, "analyst", None);
    let audit = dir.path().join("audit.jsonl");
    let routes = repo_root().join("data/routes");
    let server = Server::start(&store_dir, &routes, &keys, &audit);
    let parent_hours = api_hours(&server, &analyst, parent);
    let child_hours: Vec<BTreeMap<String, i64>> = children.iter().map(|c| api_hours(&server, &analyst, *c)).collect();
    for (time, total) in &parent_hours {
        let mut rest = *total;
        for child in &child_hours {
            let own = child.get(time).copied().unwrap_or(0);
            differences.push(total - own);
            rest -= own;
        }
        assert_eq!(rest, 0, "the parent is the sum of its children at {time}");
    }
    for (child, cell) in child_hours.iter().zip(&children) {
        let days = api_days(&server, &analyst, *cell);
        for (day, total) in &days {
            let mut running = *total;
            for (time, value) in child.iter().filter(|(t, _)| t.starts_with(day.as_str())) {
                running -= value;
                differences.push(running);
                assert!(*value >= K, "{cell} at {time}: {value}");
            }
            assert_eq!(running, 0);
        }
    }
    let leaked: Vec<i64> = differences.iter().copied().filter(|d| reveals(*d)).collect();
    assert!(leaked.is_empty(), "differences between 1 and k − 1 in one version: {leaked:?}");
    assert!(differences.len() > 6000, "{} differences taken", differences.len());

    // A correction of hours 5 and 6 of the first day: some counts move by
    // less than k (held), some by more, some fall below k, a new one comes.
    let mut correction = Counts::new();
    for (i, cell) in all.iter().enumerate() {
        for h in [5, 6] {
            let key = (*cell, hour(1, h));
            let new = match (before.get(&key), i % 4) {
                (Some(old), 0) => old + 3,
                (Some(old), 1) => old + 20,
                (Some(old), 2) => (old - 4).max(1),
                (Some(_), _) => 7,
                (None, _) => 30,
            };
            correction.insert(key, new);
        }
    }
    let file = dir.path().join("correction.csv");
    std::fs::write(&file, csv(&correction)).unwrap();
    let out = stroom(&["ingest", "density", "--store", &store, "--replace", &file.to_string_lossy()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("held as they were"), "the correction exercises the held counts: {printed}");
    let after = stored(&store, None);
    assert_ne!(after, before, "the correction changed something");
    // By time travel: the version before, read back, is the first one.
    assert_eq!(stored(&store, Some("1")), before);
    let mut vintage = Vec::new();
    for key in before.keys().chain(after.keys()) {
        vintage.push(after.get(key).unwrap_or(&0) - before.get(key).unwrap_or(&0));
    }
    // Through the API, before and after: every child's hourly points.
    for (child, cell) in child_hours.iter().zip(&children) {
        let now = api_hours(&server, &analyst, *cell);
        for time in child.keys().chain(now.keys()) {
            vintage.push(now.get(time).unwrap_or(&0) - child.get(time).unwrap_or(&0));
        }
    }
    assert!(vintage.iter().any(|d| d.abs() >= K), "the correction applied some changes");
    let leaked: Vec<i64> = vintage.iter().copied().filter(|d| reveals(*d)).collect();
    assert!(leaked.is_empty(), "two versions around a correction differ by a count below k: {leaked:?}");
    // No suppressed count is stored, in any version.
    for (key, count) in &suppressed {
        assert!(before.get(key) != Some(count) && after.get(key).is_none_or(|c| *c >= K), "{key:?} {count}");
    }
    assert!(server.stop());
}
