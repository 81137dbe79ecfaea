//! Closure scenarios over HTTP and on the command line: an analyst closes a
//! segment of the eastern land border route and diverts a share of those
//! held to the Channel; the closed route's destination loses arrivals from
//! the travel time on, the Channel's gains only what gave up, the published
//! forecasts are untouched, the scenario is listed, served again, drawn on
//! its page and read back from its Delta table by Python's `deltalake`;
//! roles, route scopes and bad requests are refused with what is wrong.

use std::process::Command;

use chrono::{Duration, NaiveDate};
use serde_json::Value;

use crate::api::{Scene, Server, create_key, scene};
use crate::support::{repo_root, stroom};

fn date(v: &Value) -> NaiveDate {
    NaiveDate::parse_from_str(v.as_str().unwrap(), "%Y-%m-%d").unwrap()
}

fn target<'a>(scenario: &'a Value, id: &str) -> &'a Value {
    scenario["targets"].as_array().unwrap().iter().find(|t| t["target"] == id).unwrap_or_else(|| panic!("{id}"))
}

/// Per day: (date, baseline mean, scenario mean), checking on the way that
/// every quantile of the scenario is finite and ordered.
fn days(t: &Value) -> Vec<(NaiveDate, f64, f64)> {
    let (b, s) = (t["baseline"].as_array().unwrap(), t["scenario"].as_array().unwrap());
    assert_eq!(b.len(), s.len());
    b.iter()
        .zip(s)
        .map(|(b, s)| {
            assert_eq!(b["date"], s["date"]);
            let q: Vec<f64> = ["lo95", "lo80", "q50", "hi80", "hi95"].iter().map(|k| s[k].as_f64().unwrap()).collect();
            assert!(q.windows(2).all(|w| w[0] <= w[1] + 1e-9) && q[0] >= 0.0, "{s}");
            (date(&b["date"]), b["mean"].as_f64().unwrap(), s["mean"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn a_closure_moves_arrivals_from_the_closed_route_to_the_receiving_one_and_leaves_the_forecasts_alone() {
    let Scene { dir, store, routes, keys } = scene();
    let analyst = create_key(&keys, "analyst", None);
    let viewer = create_key(&keys, "viewer", None);
    let channel_only = create_key(&keys, "analyst", Some("channel"));
    let audit = dir.path().join("audit.jsonl");
    let server = Server::start(&store, &routes, &keys, &audit);

    let published = server.get("/v1/routes/eastern-land-border/forecast", Some(&viewer)).json();
    let cutoff = date(&published["targets"][0]["cutoff"]);
    let from = cutoff + Duration::days(1);
    let body = format!(
        r#"{{"route": "eastern-land-border", "close": "berlin-bad-bentheim", "from": "{from}", "divert_to": "channel", "share": 0.3}}"#
    );

    // Roles, scopes and bad requests.
    assert_eq!(server.post("/v1/scenarios", Some(&viewer), &body).status, 403);
    let hidden = server.post("/v1/scenarios", Some(&channel_only), &body);
    assert_eq!(hidden.status, 403, "{}", hidden.text());
    assert!(hidden.text().contains("eastern-land-border"), "{}", hidden.text());
    for (bad, status, names) in [
        (body.replace("0.3", "2"), 400, "share 2"),
        (body.replace("berlin-bad-bentheim", "berlin-paris"), 400, "berlin-paris"),
        (body.replace(r#""divert_to": "channel""#, r#""divert_to": "atlantis""#), 404, "atlantis"),
        (body.replace(&from.to_string(), "2023-02-30"), 400, "2023-02-30"),
        (body.replace("}", r#", "shares": 1}"#), 400, "shares"),
    ] {
        let reply = server.post("/v1/scenarios", Some(&analyst), &bad);
        assert_eq!(reply.status, status, "{bad}: {}", reply.text());
        assert!(reply.text().contains(names), "{bad}: {}", reply.text());
    }

    let created = server.post("/v1/scenarios", Some(&analyst), &body);
    assert_eq!(created.status, 201, "{}", created.text());
    let scenario = created.json();
    let id = scenario["run_id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("location"), Some(format!("/v1/scenarios/{id}").as_str()));
    assert_eq!(scenario["closure"]["transfer_days"], 2, "the default is filled in");
    let a = &scenario["assumptions"];
    assert_eq!(a["flow_source"], "station:berlin", "{a}");
    let close_lag = a["close_lag_days"].as_i64().unwrap();
    let divert_lag = a["divert_lag_days"].as_i64().unwrap();

    // The closed route's destination: unchanged until those who would have
    // crossed on the first day arrive, then never above the baseline and
    // below it on every day after.
    let ter_apel = days(target(&scenario, "station:ter-apel"));
    assert_eq!(target(&scenario, "station:ter-apel")["role"], "closed route");
    let mut lower = 0;
    for &(day, base, scen) in &ter_apel {
        if day < from + Duration::days(close_lag) {
            assert_eq!(base, scen, "{day}: before the closure reaches Ter Apel");
        } else {
            assert!(scen <= base + 1e-9, "{day}: {scen} > {base}");
            lower += usize::from(scen < base);
        }
    }
    assert!(lower > 0, "the closure ({close_lag} days away) reaches Ter Apel within the horizon: {ter_apel:?}");

    // The receiving route: unchanged until the first of those who gave up
    // can arrive (a day early at most), never below the baseline, and it
    // gains no more than the closed route lost in people held.
    let dover = days(target(&scenario, "station:dover"));
    let first = from + Duration::days(2 + divert_lag - 1);
    let mut gained = 0.0;
    for &(day, base, scen) in &dover {
        assert!(scen >= base - 1e-9, "{day}: {scen} < {base}");
        if day < first {
            assert_eq!(base, scen, "{day}: before anyone diverted can reach Dover");
        }
        gained += scen - base;
    }
    let held = a["flow_per_day"].as_f64().unwrap() * ter_apel.len() as f64;
    assert!(gained > 0.0 && gained <= held, "Dover gains {gained}, at most the {held} held");

    // Apart from the published forecasts, listed, served again, and drawn.
    let after = server.get("/v1/routes/eastern-land-border/forecast", Some(&viewer)).json();
    assert_eq!(after, published, "a scenario never changes the published forecasts");
    let listed = server.get("/v1/scenarios", Some(&viewer)).json();
    assert_eq!(listed["scenarios"].as_array().unwrap().len(), 1);
    let again = server.get(&format!("/v1/scenarios/{id}"), Some(&viewer)).json();
    assert_eq!(again["targets"], scenario["targets"]);
    assert_eq!(server.get("/v1/scenarios", Some(&channel_only)).json()["scenarios"], serde_json::json!([]));
    assert_eq!(server.get(&format!("/v1/scenarios/{id}"), Some(&channel_only)).status, 403);
    assert_eq!(server.get("/v1/scenarios/no-such-run", Some(&viewer)).status, 404);
    let page = server.get(&format!("/v1/scenarios/{id}/page.html"), Some(&viewer));
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("class=\"scenario-mean\"") && html.contains("class=\"forecast-mean\""));
    assert!(html.contains("Berlin to Bad Bentheim") && html.contains("30%"), "the page states the closure");
    assert!(!html.contains("http://") && !html.contains("https://"), "no external reference");
    assert!(server.stop());

    // The page in a real headless browser: no request, no error, both charts.
    let file = dir.path().join("scenario.html");
    std::fs::write(&file, &html).unwrap();
    let shot = dir.path().join("scenario.png");
    let out = Command::new("python3")
        .arg(repo_root().join("tests/browser/check_page.py"))
        .arg(&file)
        .args(["--screenshot", shot.to_str().unwrap(), "--width", "1200"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["requests"], serde_json::json!([]));
    assert_eq!(report["svg_count"], 2, "one chart per station: {report}");
    assert_eq!(report["table_rows"].as_u64().unwrap() as usize, 2 * (1 + ter_apel.len()), "{report}");

    // The table holds baseline and scenario rows, readable by deltalake.
    // os._exit: deltalake's runtime threads can abort a normal interpreter exit.
    let script = "import os, sys, deltalake\nt = deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table()\n\
                  print(t.num_rows, sorted(set(t.column('variant').to_pylist())), \
                  sorted(set(t.column('target').to_pylist())))\nsys.stdout.flush()\nos._exit(0)";
    let out = Command::new("python3").args(["-c", script, store.join("scenarios").to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = 2 * (ter_apel.len() + dover.len());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{rows} ['baseline', 'scenario'] ['station:dover', 'station:ter-apel']")
    );

    // The command line gives the same account and names a bad segment.
    let csv = dir.path().join("scenario.csv");
    let args = [
        "scenario",
        "--store",
        store.to_str().unwrap(),
        "--routes",
        routes.to_str().unwrap(),
        "--route",
        "eastern-land-border",
        "--close",
        "berlin-bad-bentheim",
        "--from",
        &from.to_string(),
        "--divert-to",
        "channel",
        "--share",
        "0.3",
        "--csv",
        csv.to_str().unwrap(),
        "--no-record",
    ];
    let out = stroom(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 1 + rows);
    let bad: Vec<&str> = args.iter().map(|a| if *a == "berlin-bad-bentheim" { "berlin-paris" } else { a }).collect();
    let out = stroom(&bad);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no segment 'berlin-paris'") && stderr.contains("berlin-bad-bentheim"), "{stderr}");
}
