//! Capacity alerts over HTTP and on the command line: an admin sets Dover's
//! capacity, the alerts follow from the latest forecast's quantiles (exact
//! at a published quantile), webhooks reach a receiver on loopback (after a
//! refused first delivery), the briefing and the GeoJSON show the alert,
//! the capacity file survives a restart without repeating events, and roles
//! and route scopes hold.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::{Scene, Server, create_key, scene};
use crate::support::stroom;

/// What the webhook receiver got: the `x-stroom-event` header and the body.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on a loopback port that answers the first delivery
/// with 503 (so the server must retry) and every later one with 204.
fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let log = received.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().take(200).enumerate() {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut event) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if let Some(v) = lower.strip_prefix("x-stroom-event:") {
                    event = v.trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = if n == 0 { "503 Service Unavailable" } else { "204 No Content" };
            let _ = stream
                .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
            if n > 0 {
                log.lock().unwrap().push((event, serde_json::from_slice(&body).unwrap()));
            }
        }
    });
    (url, received)
}

/// Waits until the receiver holds `count` events.
fn wait_events(received: &Received, count: usize) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = received.lock().unwrap().clone();
        if events.len() >= count || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_capacity_below_the_forecast_opens_alerts_that_reach_the_api_the_page_and_a_webhook() {
    let Scene { dir, store, routes, keys } = scene();
    let capacities = dir.path().join("capacities.toml");
    let admin = create_key(&keys, "admin", None);
    let viewer = create_key(&keys, "viewer", None);
    let scoped = create_key(&keys, "viewer", Some("eastern-land-border"));
    let audit = dir.path().join("audit.jsonl");
    let (hook, received) = receiver();
    let extra = ["--capacities", capacities.to_str().unwrap(), "--webhook", hook.as_str()];

    let server = Server::start_with(&store, &routes, &keys, &audit, &extra);
    let forecast = server.get("/v1/stations/dover/forecast", Some(&viewer)).json();
    let targets = forecast["targets"].as_array().unwrap();
    let station = targets.iter().find(|t| t["target"] == "station:dover").expect("a forecast of Dover");
    let days = station["forecasts"].as_array().unwrap().clone();
    // The day with the largest median, and a capacity an eighth of the way
    // from its 10% quantile to its median: under the linear interpolation
    // between published quantiles, P(arrivals > capacity) = 0.85 exactly.
    let first = days.iter().max_by(|a, b| a["q50"].as_f64().unwrap().total_cmp(&b["q50"].as_f64().unwrap())).unwrap();
    let value = |name: &str| first[name].as_f64().unwrap();
    let (q10, q50, hi95) = (value("q10"), value("q50"), value("hi95"));
    assert!(q10 < q50, "{first}");
    let capacity = q10 + (q50 - q10) / 8.0;

    // No capacity yet: no alert, and 404 for the capacity.
    let empty = server.get("/v1/alerts", Some(&viewer)).json();
    assert_eq!(empty["alerts"].as_array().unwrap().len(), 0, "{empty}");
    assert_eq!(empty["level"], 0.8);
    server.get("/v1/stations/dover/capacity", Some(&viewer)).problem(404);

    // Only admins set capacities; bodies are checked and named.
    let body = format!(r#"{{"daily": {capacity}, "weekly": 1}}"#);
    server.put("/v1/stations/dover/capacity", Some(&viewer), &body).problem(403);
    server.put("/v1/stations/dover/capacity", None, &body).problem(401);
    server.put("/v1/stations/nowhere/capacity", Some(&admin), &body).problem(404);
    let detail = server.put("/v1/stations/dover/capacity", Some(&admin), r#"{"daily": -5}"#).problem(400);
    assert!(detail.contains("'daily'") && detail.contains("-5"), "{detail}");
    let detail = server.put("/v1/stations/dover/capacity", Some(&admin), r#"{"dialy": 5}"#).problem(400);
    assert!(detail.contains("dialy"), "{detail}");
    server.put("/v1/stations/dover/capacity", Some(&admin), "{}").problem(400);
    assert!(!capacities.exists(), "a refused capacity wrote the file");

    let set = server.put("/v1/stations/dover/capacity", Some(&admin), &body);
    assert_eq!(set.status, 200, "{}", set.text());
    // (serde_json's float parsing may differ from Rust's in the last bit.)
    assert!((set.json()["daily"].as_f64().unwrap() - capacity).abs() < 1e-9 * capacity, "{}", set.text());
    assert_eq!(server.get("/v1/stations/dover/capacity", Some(&viewer)).json()["weekly"], 1.0);
    let file = std::fs::read_to_string(&capacities).unwrap();
    assert!(file.contains("[stations.dover]"), "{file}");

    let list = server.get("/v1/alerts", Some(&viewer)).json();
    let alerts = list["alerts"].as_array().unwrap();
    let daily: Vec<&Value> = alerts.iter().filter(|a| a["window"] == "day").collect();
    let weekly: Vec<&Value> = alerts.iter().filter(|a| a["window"] == "week").collect();
    let day_one = daily.iter().find(|a| a["date"] == first["date"]).expect("the chosen day's alert");
    assert!((day_one["probability"].as_f64().unwrap() - 0.85).abs() < 1e-9, "{day_one}");
    assert_eq!(day_one["status"], "open");
    assert_eq!(day_one["run_id"], forecast["run_id"]);
    assert_eq!(day_one["opened_by"], forecast["run_id"]);
    // E[max(X − c, 0)] is positive and, below the 95% bound, at most its distance plus the tail's mean.
    let excess = day_one["expected_excess"].as_f64().unwrap();
    let q90 = value("q90");
    assert!(excess > 0.0 && excess <= hi95 - capacity + 0.025 * (hi95 - q90) / 4f64.ln() + 1e-9, "{day_one}");
    // Every open alert is at or above the level, for a station of the route.
    for a in alerts {
        assert!(a["probability"].as_f64().unwrap() >= 0.8, "{a}");
        assert_eq!(a["station"], "dover");
    }
    // A weekly capacity of one arrival is likely exceeded in every window
    // (the observed days before the cutoff complete the first six): one
    // alert per forecast day.
    assert_eq!(weekly.len(), days.len(), "{list}");
    // Windows that still hold observed days add them to the forecast ones.
    let median = |a: &Value| a["median"].as_f64().unwrap();
    assert!(median(weekly[0]) >= days[0]["q50"].as_f64().unwrap(), "{:?}", weekly[0]);
    assert_eq!(list["capacities"][0]["station"], "dover");

    // Scopes: a key for another route sees neither the alerts nor the station.
    let other = server.get("/v1/alerts", Some(&scoped)).json();
    assert_eq!(other["alerts"].as_array().unwrap().len(), 0, "{other}");
    assert_eq!(other["capacities"].as_array().unwrap().len(), 0, "{other}");
    server.get("/v1/alerts?station=dover", Some(&scoped)).problem(403);
    server.get("/v1/alerts?station=nowhere", Some(&viewer)).problem(404);
    server.get("/v1/alerts?status=maybe", Some(&viewer)).problem(400);
    server.get("/v1/alerts", None).problem(401);

    // The page and the map show the alert.
    let page = server.get("/v1/routes/channel/briefing.html", Some(&viewer)).text();
    assert!(page.contains("<h2>Capacity alerts</h2>") && page.contains("Dover may exceed its"), "no alert section");
    let map = server.get("/v1/routes/channel/map.geojson", Some(&viewer)).json();
    let dover = map["features"].as_array().unwrap().iter().find(|f| f["properties"]["id"] == "dover").unwrap();
    assert_eq!(dover["properties"]["capacity_alert"], true);
    let svg = server.get("/v1/routes/channel/map.svg", Some(&viewer)).text();
    assert!(svg.contains("class=\"capacity-alert\"") && svg.contains("Capacity alert open"));

    // The webhook got one `alert.opened` per open alert, after a retry.
    let events = wait_events(&received, alerts.len());
    assert_eq!(events.len(), alerts.len(), "{events:?}");
    assert!(events.iter().all(|(name, body)| name == "alert.opened" && body["event"] == "alert.opened"));
    assert!(events.iter().any(|(_, body)| body["alert"]["date"] == first["date"] && body["alert"]["window"] == "day"));

    // The command line derives the same alerts from the store and the file.
    let cli =
        stroom(&["alerts", "--store", store.to_str().unwrap(), "--capacities", capacities.to_str().unwrap(), "--json"]);
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let from_cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(&from_cli, &list["alerts"]);

    // A restart keeps the capacities and repeats no event.
    assert!(server.stop());
    let server = Server::start_with(&store, &routes, &keys, &audit, &extra);
    let again = server.get("/v1/alerts", Some(&viewer)).json();
    assert_eq!(again["alerts"], list["alerts"]);

    // A capacity far above the forecast closes them all.
    let closed = server.put("/v1/stations/dover/capacity", Some(&admin), r#"{"daily": 1e9}"#);
    assert_eq!(closed.status, 200, "{}", closed.text());
    assert_eq!(server.get("/v1/alerts?status=all", Some(&viewer)).json()["alerts"].as_array().unwrap().len(), 0);
    let events = wait_events(&received, 2 * alerts.len());
    assert_eq!(events.len(), 2 * alerts.len(), "{events:?}");
    let closes = &events[alerts.len()..];
    assert!(
        closes.iter().all(|(name, body)| name == "alert.closed" && body["alert"]["status"] == "closed"),
        "{closes:?}"
    );
    let page = server.get("/v1/routes/channel/briefing.html", Some(&viewer)).text();
    assert!(page.contains("No open alert"), "the page still shows an alert");
    assert!(server.stop());
}
