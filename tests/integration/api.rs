//! The REST API over HTTP: the real `stroom serve` on a loopback port, over a
//! store made by the real pipeline (simulate, ingest, forecast, backtest).
//! Every endpoint, role, scope and error path is exercised; the audit log,
//! metrics, the committed OpenAPI document, the privacy threshold on every
//! response and graceful shutdown are checked.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{repo_root, stroom, stroom_binary};

/// The routes of the fixture: two, so that route scopes can be checked.
pub(crate) const ROUTES: [&str; 2] = ["channel", "eastern-land-border"];

fn run(args: &[&str]) -> String {
    let out = stroom(args);
    assert!(out.status.success(), "stroom {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A store with eight months of two simulated routes, their forecasts and a
/// backtest of one destination, built once per build of the binary and
/// shared by the tests that only read it (they copy it before writing).
pub(crate) fn fixture() -> PathBuf {
    let binary = std::fs::metadata(stroom_binary()).unwrap();
    let stamp = binary.modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("api-fixture-{stamp}-{}", binary.len()));
    let done = dir.join("done");
    let lock = PathBuf::from(format!("{}.lock", dir.display()));
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if done.exists() {
            return dir;
        }
        if std::fs::create_dir(&lock).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "waited too long for {}", lock.display());
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let routes = dir.join("routes");
    std::fs::create_dir_all(&routes).unwrap();
    for id in ROUTES {
        std::fs::copy(repo_root().join(format!("data/routes/{id}.geojson")), routes.join(format!("{id}.geojson")))
            .unwrap();
    }
    let (sim, store) = (dir.join("sim"), dir.join("store"));
    let (routes, store_s) = (routes.to_str().unwrap(), store.to_str().unwrap());
    run(&["simulate", "--out", sim.to_str().unwrap(), "--days", "240", "--routes", routes, "--seed", "3"]);
    run(&["ingest", "density", sim.join("density").to_str().unwrap(), "--store", store_s]);
    run(&["ingest", "arrivals", sim.join("arrivals.csv").to_str().unwrap(), "--store", store_s]);
    let small = ["--calibration-origins", "8", "--calibration-step", "4", "--routes", routes];
    run(&[&["forecast", "--store", store_s][..], &small[..]].concat());
    let bt = dir.join("bt");
    run(&[
        &["backtest", "--store", store_s, "--target", "station:dover", "--folds", "3", "--step", "7"][..],
        &["--models", "auto,seasonal_naive,naive", "--out", bt.to_str().unwrap()][..],
        &small[..],
    ]
    .concat());
    std::fs::remove_dir_all(&sim).unwrap();
    std::fs::write(&done, "").unwrap();
    let _ = std::fs::remove_dir(&lock);
    dir
}

/// A private copy of the fixture's store: its temporary folder (removed
/// when dropped), the store, the fixture's routes, and a key file's path in
/// the folder.
pub(crate) struct Scene {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) store: PathBuf,
    pub(crate) routes: PathBuf,
    pub(crate) keys: PathBuf,
}

/// A [`Scene`] over a fresh copy of the fixture's store.
pub(crate) fn scene() -> Scene {
    let fixture = fixture();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    copy_tree(&fixture.join("store"), &store);
    let keys = dir.path().join("keys.toml");
    Scene { dir, store, routes: fixture.join("routes"), keys }
}

/// Copies a folder tree.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Checks an RFC 9457 problem with `status`; returns its detail.
    #[track_caller]
    pub(crate) fn problem(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.content_type, "application/problem+json", "{}", self.text());
        let body = self.json();
        assert_eq!(body["status"], status);
        assert_eq!(body["type"], "about:blank");
        assert!(body["title"].is_string());
        body["detail"].as_str().unwrap().to_owned()
    }
}

/// A running `stroom serve` on a free loopback port.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    agent: ureq::Agent,
}

impl Server {
    pub(crate) fn start(store: &Path, routes: &Path, keys: &Path, audit: &Path) -> Server {
        Self::start_with(store, routes, keys, audit, &[])
    }

    pub(crate) fn start_with(store: &Path, routes: &Path, keys: &Path, audit: &Path, extra: &[&str]) -> Server {
        Self::start_on(store.to_str().unwrap(), routes, keys, audit, extra, &[])
    }

    /// A server over a store at any location, with extra environment
    /// variables (an object store's endpoint and credentials).
    pub(crate) fn start_on(
        store: &str,
        routes: &Path,
        keys: &Path,
        audit: &Path,
        extra: &[&str],
        env: &[(&str, String)],
    ) -> Server {
        // Capacities beside the keys, never in the working directory.
        let capacities = keys.with_file_name("capacities.toml").to_str().unwrap().to_owned();
        let jobs = audit.with_file_name("jobs.jsonl").to_str().unwrap().to_owned();
        let mut child = Command::new(stroom_binary())
            .args(["serve", "--store", store, "--addr", "127.0.0.1:0"])
            .args(["--routes", routes.to_str().unwrap(), "--keys", keys.to_str().unwrap()])
            .args(["--audit", audit.to_str().unwrap()])
            .args(if extra.contains(&"--capacities") {
                Vec::new()
            } else {
                vec!["--capacities".to_owned(), capacities]
            })
            .args(if extra.contains(&"--jobs") { Vec::new() } else { vec!["--jobs".to_owned(), jobs] })
            .args(extra)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("stroom serve starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let base = loop {
            match receiver.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.trim().to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("stroom serve did not start");
                }
            }
        };
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Server { child, base, agent }
    }

    fn reply(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = response.expect("the server answers");
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = response.body_mut().with_config().limit(64 << 20).read_to_vec().expect("a body");
        Reply { status: response.status().as_u16(), content_type, headers, body }
    }

    /// GET with an optional token and extra headers.
    pub(crate) fn get_with(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Self::reply(request.call())
    }

    pub(crate) fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.get_with(path, token, &[])
    }

    pub(crate) fn put(&self, path: &str, token: Option<&str>, body: &str) -> Reply {
        let mut request = self.agent.put(format!("{}{path}", self.base)).header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Self::reply(request.send(body))
    }

    pub(crate) fn post(&self, path: &str, token: Option<&str>, body: &str) -> Reply {
        let mut request = self.agent.post(format!("{}{path}", self.base)).header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Self::reply(request.send(body))
    }

    /// Polls a job until it is done; panics after `limit`.
    pub(crate) fn wait_job(&self, path: &str, token: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let reply = self.get(path, Some(token));
            assert_eq!(reply.status, 200, "{}", reply.text());
            let job = reply.json();
            if job["status"] == "succeeded" || job["status"] == "failed" {
                return job;
            }
            assert!(Instant::now() < deadline, "job {path} still {} after {limit:?}", job["status"]);
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Kills the server with SIGKILL, as a crash would, and waits for it.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends the server a signal (`HUP`, `TERM`, …).
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Stops the server with SIGTERM (graceful shutdown) and returns whether
    /// it exited cleanly, and its remaining output.
    pub(crate) fn stop(mut self) -> bool {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "the server did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a key and returns its token (the only line on stdout).
pub(crate) fn create_key(keys: &Path, role: &str, routes: Option<&str>) -> String {
    let mut args = vec!["keys", "create", "--role", role, "--keys", keys.to_str().unwrap()];
    if let Some(routes) = routes {
        args.extend(["--routes", routes]);
    }
    let stdout = run(&args);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the token is alone on stdout: {stdout:?}");
    assert!(lines[0].starts_with("stroom_") && lines[0].len() == 7 + 64, "{stdout}");
    lines[0].to_owned()
}

/// Every number a response carries that counts devices, with where it is.
fn device_counts(path: &str, body: &Value, out: &mut Vec<(String, f64)>) {
    if let Some(points) = body.get("points").and_then(Value::as_array) {
        for p in points {
            out.push((format!("{path} {}", p["time"]), p["devices"].as_f64().unwrap()));
        }
    }
    if let Some(features) = body.get("features").and_then(Value::as_array) {
        for f in features {
            let props = &f["properties"];
            for key in ["mean", "q10", "q90", "observed"] {
                if let Some(v) = props.get(key).and_then(Value::as_f64) {
                    out.push((format!("{path} {} {key}", props["hex_id"]), v));
                }
            }
        }
    }
}

#[test]
fn api_over_http() {
    let Scene { dir, store, routes, keys } = scene();
    let audit = dir.path().join("audit.jsonl");
    let viewer = create_key(&keys, "viewer", None);
    let scoped = create_key(&keys, "viewer", Some("channel"));
    let analyst = create_key(&keys, "analyst", None);
    let scoped_analyst = create_key(&keys, "analyst", Some("channel"));
    let ingest = create_key(&keys, "ingest", None);
    let admin = create_key(&keys, "admin", None);
    let key_text = std::fs::read_to_string(&keys).unwrap();
    for token in [&viewer, &scoped, &analyst, &ingest, &admin] {
        assert!(!key_text.contains(token.as_str()), "the key file holds a token");
    }
    let server = Server::start(&store, &routes, &keys, &audit);

    // Health and the contract need no token.
    let health = server.get("/healthz", None);
    assert_eq!((health.status, health.json()["status"].clone()), (200, "ok".into()));
    let ready = server.get("/readyz", None).json();
    assert_eq!(ready["status"], "ready");
    assert!(ready["forecast_runs"].as_u64().unwrap() >= 1, "{ready}");
    let served = server.get("/openapi.json", None);
    assert_eq!(served.status, 200);
    let committed = std::fs::read_to_string(repo_root().join("api/openapi.json")).unwrap();
    assert!(
        served.text() == committed,
        "api/openapi.json differs from /openapi.json: run `stroom openapi > api/openapi.json`"
    );
    assert_eq!(served.json()["openapi"], "3.1.0");

    // Authentication.
    let detail = server.get("/v1/routes", None).problem(401);
    assert!(detail.contains("bearer token"), "{detail}");
    assert_eq!(server.get("/v1/routes", None).header("www-authenticate"), Some("Bearer"));
    server.get("/v1/routes", Some("stroom_0123")).problem(401);
    server.get_with("/v1/routes", None, &[("Authorization", &format!("Basic {viewer}"))]).problem(401);

    // Roles.
    server.get("/v1/routes", Some(&ingest)).problem(403);
    server.get("/metrics", Some(&viewer)).problem(403);
    server.get("/v1/routes/channel/series?from=2023-06-01&to=2023-06-08", Some(&viewer)).problem(403);
    server.post("/v1/backtests", Some(&viewer), r#"{"target":"station:dover"}"#).problem(403);
    server.post("/v1/forecasts/refresh", Some(&analyst), "").problem(403);

    // Routes and scopes.
    let all = server.get("/v1/routes", Some(&viewer)).json();
    let ids: Vec<&str> = all.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ROUTES);
    let mine = server.get("/v1/routes", Some(&scoped)).json();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["id"], "channel");
    assert_eq!(mine[0]["destination"], "dover");
    let detail = server.get("/v1/routes/channel", Some(&scoped)).json();
    assert_eq!(detail["stations"].as_array().unwrap().len(), 4);
    assert_eq!(detail["geometry"]["type"], "FeatureCollection");
    let first_line = &detail["geometry"]["features"][0]["geometry"]["coordinates"][0];
    assert!(first_line[0].as_f64().unwrap() < 10.0 && first_line[1].as_f64().unwrap() > 45.0, "lng, lat: {first_line}");
    for path in [
        "/v1/routes/eastern-land-border",
        "/v1/routes/eastern-land-border/forecast",
        "/v1/routes/eastern-land-border/map.geojson",
        "/v1/routes/eastern-land-border/briefing.html",
        "/v1/stations/ter-apel/forecast",
    ] {
        server.get(path, Some(&scoped)).problem(403);
    }
    server
        .get("/v1/routes/eastern-land-border/series?from=2023-06-01&to=2023-06-08", Some(&scoped_analyst))
        .problem(403);
    server.get("/v1/routes/atlantis", Some(&viewer)).problem(404);
    server.get("/v1/nothing", Some(&viewer)).problem(404);
    server.post("/v1/routes", Some(&viewer), "{}").problem(405);

    // Forecasts.
    let forecast = server.get("/v1/routes/channel/forecast", Some(&scoped));
    assert_eq!(forecast.content_type, "application/json");
    let forecast = forecast.json();
    let run_id = forecast["run_id"].as_str().unwrap().to_owned();
    assert_eq!(forecast["horizon"], 14);
    assert!(forecast["vintage"]["density"].is_u64() && forecast["vintage"]["arrivals"].is_u64(), "{forecast}");
    assert!(forecast["generated_at"].as_str().unwrap().ends_with('Z'));
    let target = &forecast["targets"][0];
    assert_eq!(
        (target["target"].as_str(), target["station"].as_str(), target["model"].as_str()),
        (Some("station:dover"), Some("dover"), Some("auto"))
    );
    let rows = target["forecasts"].as_array().unwrap();
    assert_eq!(rows.len(), 14);
    for (h, row) in rows.iter().enumerate() {
        assert_eq!(row["horizon"], h + 1);
        let v = |k: &str| row[k].as_f64().unwrap();
        assert!(
            0.0 <= v("lo95")
                && v("lo95") <= v("q10")
                && v("q10") <= v("q50")
                && v("q50") <= v("q90")
                && v("q90") <= v("hi95"),
            "{row}"
        );
        assert_eq!((v("lo80"), v("hi80")), (v("q10"), v("q90")));
    }
    let short = server.get("/v1/routes/channel/forecast?horizon=3", Some(&scoped)).json();
    assert_eq!(short["targets"][0]["forecasts"].as_array().unwrap().len(), 3);
    assert_eq!(short["horizon"], 3);
    let by_run = server.get(&format!("/v1/routes/channel/forecast?run={run_id}"), Some(&viewer)).json();
    assert_eq!(by_run["targets"], forecast["targets"]);
    for accept in [None, Some("text/csv")] {
        let csv = match accept {
            None => server.get("/v1/routes/channel/forecast?format=csv", Some(&viewer)),
            Some(a) => server.get_with("/v1/routes/channel/forecast", Some(&viewer), &[("Accept", a)]),
        };
        assert!(csv.content_type.starts_with("text/csv"), "{}", csv.content_type);
        let text = csv.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "run_id,target,station,model,chosen,cutoff,date,horizon,mean,q10,q50,q90,lo80,hi80,lo95,hi95"
        );
        assert_eq!(lines.len(), 15);
        assert!(lines[1].starts_with(&format!("{run_id},station:dover,dover,auto,")), "{}", lines[1]);
    }
    let detail = server.get("/v1/routes/channel/forecast?horizon=0", Some(&viewer)).problem(400);
    assert!(detail.contains("horizon=0"), "{detail}");
    server.get("/v1/routes/channel/forecast?horizon=29", Some(&viewer)).problem(400);
    server.get("/v1/routes/channel/forecast?horizon=x", Some(&viewer)).problem(400);
    server.get("/v1/routes/channel/forecast?colour=red", Some(&viewer)).problem(400);
    server.get("/v1/routes/channel/forecast?run=no-such-run", Some(&viewer)).problem(404);
    let station = server.get("/v1/stations/dover/forecast?horizon=7", Some(&scoped)).json();
    assert_eq!(station["station"], "dover");
    assert_eq!(station["run_id"], run_id.as_str());
    assert_eq!(station["targets"][0]["forecasts"].as_array().unwrap().len(), 7);
    server.get("/v1/stations/nowhere/forecast", Some(&viewer)).problem(404);
    let ter_apel = server.get("/v1/stations/ter-apel/forecast", Some(&viewer)).json();
    assert_eq!(ter_apel["targets"][0]["target"], "station:ter-apel");

    // Series (analyst).
    let series = server.get("/v1/routes/channel/series?from=2023-06-01&to=2023-06-15", Some(&analyst));
    assert_eq!(series.status, 200, "{}", series.text());
    let series = series.json();
    let k = series["k"].as_u64().unwrap();
    assert_eq!(k, 15);
    let points = series["points"].as_array().unwrap();
    let names: std::collections::BTreeSet<&str> = points.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["brussels-dunkirk", "calais-dover", "dunkirk-calais"]);
    assert_eq!(points.len(), 3 * 14);
    let stations = server
        .get("/v1/routes/channel/series?from=2023-06-01&to=2023-06-15&level=station", Some(&scoped_analyst))
        .json();
    assert!(!stations["points"].as_array().unwrap().is_empty());
    let csv = server.get("/v1/routes/channel/series?from=2023-06-01&to=2023-06-03&format=csv", Some(&analyst)).text();
    assert!(csv.starts_with("route,name,time,devices,cell_hours\nchannel,"), "{csv}");
    for (query, needle) in [
        ("from=2023-06-10&to=2023-06-01", "before"),
        ("from=2023-02-30&to=2023-06-01", "2023-02-30"),
        ("from=2022-01-01&to=2023-06-01", "366"),
        ("from=2023-06-01", "to"),
    ] {
        let detail = server.get(&format!("/v1/routes/channel/series?{query}"), Some(&analyst)).problem(400);
        assert!(detail.contains(needle), "{query}: {detail}");
    }
    // A cell on the Channel route, at the route resolution and one coarser.
    let cell = points_cell(&server, &analyst);
    let cell_series =
        server.get(&format!("/v1/cells/{cell}/series?from=2023-06-01&to=2023-06-15"), Some(&scoped_analyst));
    assert_eq!(cell_series.status, 200, "{}", cell_series.text());
    let hourly = server
        .get(&format!("/v1/cells/{cell}/series?from=2023-06-01&to=2023-06-02&resolution=hour"), Some(&analyst))
        .json();
    let daily = server.get(&format!("/v1/cells/{cell}/series?from=2023-06-01&to=2023-06-02"), Some(&analyst)).json();
    let hourly_sum: i64 = hourly["points"].as_array().unwrap().iter().map(|p| p["devices"].as_i64().unwrap()).sum();
    if let Some(day) = daily["points"].as_array().unwrap().first() {
        assert_eq!(day["devices"].as_i64().unwrap(), hourly_sum, "the day is the sum of its hours");
    }
    let detail = server.get("/v1/cells/not-a-cell/series?from=2023-06-01&to=2023-06-02", Some(&analyst)).problem(400);
    assert!(detail.contains("not-a-cell"), "{detail}");
    // A cell in Poland is outside the Channel analyst's routes.
    let poland = stroom_core::Cell::from_lat_lng(52.23, 21.01, stroom_core::Resolution::new(7).unwrap()).unwrap();
    server.get(&format!("/v1/cells/{poland}/series?from=2023-06-01&to=2023-06-02"), Some(&scoped_analyst)).problem(403);
    assert_eq!(
        server.get(&format!("/v1/cells/{poland}/series?from=2023-06-01&to=2023-06-02"), Some(&analyst)).status,
        200
    );
    let fine = stroom_core::Cell::from_lat_lng(51.0, 2.0, stroom_core::Resolution::new(12).unwrap()).unwrap();
    let detail =
        server.get(&format!("/v1/cells/{fine}/series?from=2023-06-01&to=2023-06-02"), Some(&analyst)).problem(400);
    assert!(detail.contains("finer"), "{detail}");

    // Maps and briefings.
    let geojson = server.get("/v1/routes/channel/map.geojson", Some(&scoped));
    assert_eq!((geojson.status, geojson.content_type.as_str()), (200, "application/geo+json"), "{}", geojson.text());
    assert_eq!(geojson.json()["type"], "FeatureCollection");
    let svg = server.get("/v1/routes/channel/map.svg", Some(&viewer));
    assert_eq!(svg.content_type, "image/svg+xml");
    assert!(svg.text().starts_with("<svg") || svg.text().starts_with("<?xml"), "{}", &svg.text()[..80]);
    let png = server.get("/v1/routes/channel/map.png", Some(&viewer));
    assert_eq!(png.content_type, "image/png");
    assert_eq!(&png.body[..8], b"\x89PNG\r\n\x1a\n");
    let html = server.get("/v1/routes/channel/briefing.html", Some(&viewer));
    assert!(html.content_type.starts_with("text/html"));
    assert!(html.text().contains("Dover"));
    server.get("/v1/routes/channel/map.png?date=1999-01-01", Some(&viewer)).problem(404);
    server.get("/v1/routes/channel/map.png?date=yesterday", Some(&viewer)).problem(400);

    // Backtests as jobs (analyst), recorded in the backtests table.
    server.post("/v1/backtests", Some(&analyst), "{not json").problem(400);
    let detail = server.post("/v1/backtests", Some(&analyst), r#"{"target":"station:dover","colour":1}"#).problem(400);
    assert!(detail.contains("colour"), "{detail}");
    let detail =
        server.post("/v1/backtests", Some(&analyst), r#"{"target":"station:dover","horizon":40}"#).problem(400);
    assert!(detail.contains("horizon=40"), "{detail}");
    server.post("/v1/backtests", Some(&analyst), r#"{"target":"dover"}"#).problem(400);
    server.post("/v1/backtests", Some(&analyst), r#"{"target":"station:nowhere"}"#).problem(404);
    let detail = server
        .post("/v1/backtests", Some(&analyst), r#"{"target":"station:dover","models":["crystal_ball"]}"#)
        .problem(400);
    assert!(detail.contains("crystal_ball"), "{detail}");
    server.post("/v1/backtests", Some(&scoped_analyst), r#"{"target":"station:ter-apel"}"#).problem(403);
    let huge = format!(r#"{{"target":"station:dover","models":["{}"]}}"#, "x".repeat(100_000));
    server.post("/v1/backtests", Some(&analyst), &huge).problem(413);
    let request = r#"{"target":"station:dover","horizon":7,"folds":2,"step":7,"models":["seasonal_naive","naive"]}"#;
    let started = server.post("/v1/backtests", Some(&scoped_analyst), request);
    assert_eq!(started.status, 202, "{}", started.text());
    let location = started.header("location").unwrap().to_owned();
    let job_id = started.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/backtests/{job_id}"));
    let job = server.wait_job(&location, &scoped_analyst, Duration::from_secs(300));
    assert_eq!(job["status"], "succeeded", "{job}");
    let models: Vec<&str> = job["metrics"].as_array().unwrap().iter().map(|m| m["model"].as_str().unwrap()).collect();
    assert_eq!(models, ["seasonal_naive", "naive"]);
    assert!(job["metrics"][0]["mase"].as_f64().unwrap() > 0.0);
    let backtest_run = job["run_id"].as_str().unwrap().to_owned();
    server.get("/v1/backtests/no-such-job", Some(&analyst)).problem(404);

    // A refresh (admin) makes a new run, which the API then serves.
    let refresh = server.post("/v1/forecasts/refresh", Some(&admin), "");
    assert_eq!(refresh.status, 202, "{}", refresh.text());
    let location = refresh.header("location").unwrap().to_owned();
    let job = server.wait_job(&location, &admin, Duration::from_secs(300));
    assert_eq!(job["status"], "succeeded", "{job}");
    let new_run = job["run_id"].as_str().unwrap().to_owned();
    assert_ne!(new_run, run_id);
    let latest = server.get("/v1/routes/channel/forecast", Some(&viewer)).json();
    assert_eq!(latest["run_id"], new_run.as_str());
    let old = server.get(&format!("/v1/routes/channel/forecast?run={run_id}"), Some(&viewer)).json();
    assert_eq!(old["run_id"], run_id.as_str());

    // Metrics (admin).
    let metrics = server.get("/metrics", Some(&admin));
    assert!(metrics.content_type.starts_with("text/plain"));
    let text = metrics.text();
    assert!(
        text.contains(
            "stroom_http_requests_total{method=\"GET\",route=\"/v1/routes/{route}/forecast\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(text.contains("stroom_http_request_duration_seconds_bucket{route=\"/v1/routes\",le=\"+Inf\"}"));

    // Privacy: crawl every GET endpoint; no device count below k.
    let mut counts = Vec::new();
    let mut crawled = 0;
    for route in ROUTES {
        for path in [
            format!("/v1/routes/{route}/series?from=2023-01-01&to=2023-08-28"),
            format!("/v1/routes/{route}/series?from=2023-01-01&to=2023-08-28&level=station"),
            format!("/v1/routes/{route}/map.geojson"),
        ] {
            let reply = server.get(&path, Some(&admin));
            assert_eq!(reply.status, 200, "{path}: {}", reply.text());
            device_counts(&path, &reply.json(), &mut counts);
            crawled += 1;
        }
    }
    let cells = server.get("/v1/routes/channel/map.geojson", Some(&admin)).json();
    for feature in
        cells["features"].as_array().unwrap().iter().filter(|f| f["properties"]["hex_id"].is_string()).take(40)
    {
        let hex = feature["properties"]["hex_id"].as_str().unwrap();
        let path = format!("/v1/cells/{hex}/series?from=2023-06-01&to=2023-06-08&resolution=hour");
        device_counts(&path, &server.get(&path, Some(&admin)).json(), &mut counts);
        crawled += 1;
    }
    assert!(counts.len() > 1000, "the crawl saw {} counts", counts.len());
    let below: Vec<_> = counts.iter().filter(|(_, v)| *v < k as f64).take(5).collect();
    assert!(below.is_empty(), "counts below k={k}: {below:?}");
    println!("privacy crawl: {crawled} responses, {} device counts, all >= {k}", counts.len());

    // The audit log: every request, without tokens.
    assert!(server.stop(), "graceful shutdown exits 0");
    let log = std::fs::read_to_string(&audit).unwrap();
    let entries: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(entries.len() > 100, "{} audit entries", entries.len());
    for token in [&viewer, &scoped, &analyst, &ingest, &admin] {
        assert!(!log.contains(token.as_str()));
    }
    let denied = entries
        .iter()
        .find(|e| e["path"] == "/v1/routes/eastern-land-border/forecast" && e["status"] == 403)
        .expect("the denied request is audited");
    assert_eq!(denied["role"], "viewer");
    assert!(denied["key_id"].as_str().unwrap().starts_with("key-"));
    assert!(denied["latency_ms"].as_f64().unwrap() >= 0.0 && denied["time"].as_str().unwrap().ends_with('Z'));
    assert!(entries.iter().any(|e| e["path"] == "/v1/routes" && e["status"] == 401 && e["key_id"].is_null()));
    assert!(entries.iter().any(|e| e["method"] == "POST" && e["path"] == "/v1/backtests" && e["status"] == 202));
    assert!(entries.iter().all(|e| e["request_id"].is_string()));

    // The backtest landed in the store.
    let tables = run(&["tables", "--store", store.to_str().unwrap()]);
    assert!(tables.contains("backtests"), "{tables}");
    let found = crate::support::python(
        "import sys, deltalake, os\nt = deltalake.DeltaTable(sys.argv[1])\nids = set(t.to_pyarrow_table(columns=['run_id']).column('run_id').to_pylist())\nprint(sys.argv[2] in ids)\nsys.stdout.flush()\nos._exit(0)",
        &[store.join("backtests").to_str().unwrap(), &backtest_run],
    );
    assert_eq!(found.trim(), "True");
}

/// A cell of the Channel route that has data on 2023-06-01.
fn points_cell(server: &Server, token: &str) -> String {
    let map = server.get("/v1/routes/channel/map.geojson", Some(token)).json();
    map["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["properties"]["hex_id"].as_str())
        .next()
        .expect("the map has cells")
        .to_owned()
}

#[test]
fn server_errors_say_nothing_of_internals() {
    // A store whose density files (hourly and daily) are damaged: the query
    // fails inside the server, and the client learns only that it failed.
    let fixture = fixture();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    copy_tree(&fixture.join("store"), &store);
    let mut damaged = [0, 0];
    for (table, damaged) in ["density", "density_daily"].into_iter().zip(&mut damaged) {
        let mut folders = vec![store.join(table)];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.file_name().unwrap().to_string_lossy().starts_with('_') {
                    continue;
                }
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|e| e == "parquet") {
                    std::fs::write(&path, b"PAR1 this is not a parquet file PAR1").unwrap();
                    *damaged += 1;
                }
            }
        }
    }
    assert!(damaged.iter().all(|&n| n > 0), "damaged files (density, density_daily): {damaged:?}");
    let keys = dir.path().join("keys.toml");
    let analyst = create_key(&keys, "analyst", None);
    let server = Server::start(&store, &fixture.join("routes"), &keys, &dir.path().join("audit.jsonl"));
    let reply = server.get("/v1/routes/channel/series?from=2023-06-01&to=2023-06-08", Some(&analyst));
    let detail = reply.problem(500);
    let text = reply.text();
    for leak in ["density", "parquet", "/", "Error", "error:"] {
        assert!(!detail.contains(leak), "the 500 leaks '{leak}': {text}");
    }
    drop(server);

    // A request that outlives the server's time limit gets a 503 problem.
    let server = Server::start_with(
        &fixture.join("store"),
        &fixture.join("routes"),
        &keys,
        &dir.path().join("audit2.jsonl"),
        &["--request-timeout-ms", "1"],
    );
    let reply = server.get("/v1/routes/channel/series?from=2023-01-01&to=2023-08-28", Some(&analyst));
    let detail = reply.problem(503);
    assert!(detail.contains("longer than"), "{detail}");
}

#[test]
fn keys_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let out = stroom(&["keys", "create", "--role", "boss", "--keys", keys.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("boss"));
    let out = stroom(&["keys", "create", "--role", "viewer", "--routes", "atlantis", "--keys", keys.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("atlantis"));
    assert!(!keys.exists(), "nothing is written for a refused key");
    std::fs::write(&keys, "[[keys]]\nid = 'a'\nrole = 'admin'\nsha256 = 'zz'\ncreated = 'x'\n").unwrap();
    // A store to serve, so that the key file is what the server refuses.
    let (arrivals, store) = (dir.path().join("arrivals.csv"), dir.path().join("store"));
    std::fs::write(&arrivals, "date,station,count\n2024-05-01,dover,12\n").unwrap();
    run(&["ingest", "arrivals", arrivals.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    let out = stroom(&[
        "serve",
        "--store",
        store.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--addr",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("keys.toml") && stderr.contains("64 hex digits"), "{stderr}");
}

/// Polls `path` with `token` until it answers `status`; returns how long
/// that took. Panics after `limit`.
fn wait_for_status(server: &Server, path: &str, token: &str, status: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let reply = server.get(path, Some(token));
        if reply.status == status {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{path} still answers {} after {limit:?}: {}", reply.status, reply.text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn keys_are_revoked_expire_and_are_reloaded_by_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (arrivals, store) = (d.join("arrivals.csv"), d.join("store"));
    std::fs::write(&arrivals, "date,station,count\n2024-05-01,dover,12\n").unwrap();
    run(&["ingest", "arrivals", arrivals.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    let routes = repo_root().join("data/routes");
    let (keys, audit) = (d.join("keys.toml"), d.join("audit.jsonl"));
    let keys_arg = keys.to_str().unwrap();
    let admin = create_key(&keys, "admin", None);
    let viewer = create_key(&keys, "viewer", None);
    // A key that expires in a few seconds (an expiry in the past is refused).
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(8)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let out = stroom(&["keys", "create", "--role", "viewer", "--expires", &soon, "--keys", keys_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expiring = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("expires {soon}")));
    let out = stroom(&["keys", "create", "--role", "viewer", "--expires", "2000-01-01", "--keys", keys_arg]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not in the future"));
    let id_of = |token_index: usize| {
        let listed = run(&["keys", "list", "--keys", keys_arg]);
        listed.lines().nth(token_index).unwrap().split_whitespace().next().unwrap().to_owned()
    };
    let (viewer_id, expiring_id) = (id_of(1), id_of(2));

    let server = Server::start(&store, &routes, &keys, &audit);
    for token in [&admin, &viewer, &expiring] {
        assert_eq!(server.get("/v1/routes", Some(token)).status, 200);
    }
    // Revoked while the server runs: refused within seconds, naming the key.
    let revoked = stroom(&["keys", "revoke", &viewer_id, "--keys", keys_arg]);
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    let took = wait_for_status(&server, "/v1/routes", &viewer, 401, Duration::from_secs(10));
    let detail = server.get("/v1/routes", Some(&viewer)).problem(401);
    assert!(detail.contains(&format!("key '{viewer_id}' was revoked at")), "{detail}");
    assert!(run(&["keys", "list", "--keys", keys_arg]).contains("revoked 20"));
    // Expired: refused once its time has passed, with no change to the file.
    wait_for_status(&server, "/v1/routes", &expiring, 401, Duration::from_secs(20));
    let detail = server.get("/v1/routes", Some(&expiring)).problem(401);
    assert_eq!(detail, format!("key '{expiring_id}' expired at {soon}"));
    // A key file made unreadable keeps the keys in force; a new key lands.
    let good = std::fs::read_to_string(&keys).unwrap();
    std::fs::write(&keys, "[[keys]\nthis is not toml").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(server.get("/v1/routes", Some(&admin)).status, 200);
    std::fs::write(&keys, good).unwrap();
    let newer = create_key(&keys, "analyst", None);
    wait_for_status(&server, "/v1/routes", &newer, 200, Duration::from_secs(10));
    assert!(server.stop());

    // With the periodic check an hour apart, SIGHUP reads the file at once.
    let server = Server::start_with(&store, &routes, &keys, &audit, &["--key-check-interval-ms", "3600000"]);
    assert_eq!(server.get("/v1/routes", Some(&newer)).status, 200);
    let newer_id = id_of(3);
    assert!(stroom(&["keys", "revoke", &newer_id, "--keys", keys_arg]).status.success());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.get("/v1/routes", Some(&newer)).status, 200, "not read again without a signal");
    server.signal("HUP");
    let after_hangup = wait_for_status(&server, "/v1/routes", &newer, 401, Duration::from_secs(10));
    assert_eq!(server.get("/v1/routes", Some(&admin)).status, 200);
    assert!(server.stop());

    // Every refusal is in the audit log under the key's id and state.
    let lines: Vec<Value> =
        std::fs::read_to_string(&audit).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let refused = |id: &str, state: &str| {
        lines.iter().filter(|l| l["key_id"] == id && l["status"] == 401 && l["key_state"] == state).count()
    };
    assert!(refused(&viewer_id, "revoked") >= 2 && refused(&expiring_id, "expired") >= 2, "{lines:#?}");
    assert!(refused(&newer_id, "revoked") >= 1);
    assert!(lines.iter().filter(|l| l["status"] == 200).all(|l| l.get("key_state").is_none()));
    eprintln!("revocation took effect after {took:?} (polling) and {after_hangup:?} (SIGHUP)");
}

#[test]
fn jobs_outlive_a_killed_server_and_come_back_interrupted() {
    let scene = scene();
    let (admin, analyst) = (create_key(&scene.keys, "admin", None), create_key(&scene.keys, "analyst", None));
    let audit = scene.dir.path().join("audit.jsonl");
    let server = Server::start(&scene.store, &scene.routes, &scene.keys, &audit);
    let request = r#"{"target":"station:dover","horizon":7,"folds":2,"step":7,"models":["seasonal_naive","naive"]}"#;
    let started = server.post("/v1/backtests", Some(&analyst), request);
    assert_eq!(started.status, 202, "{}", started.text());
    let finished_at = started.header("location").unwrap().to_owned();
    let finished = server.wait_job(&finished_at, &analyst, Duration::from_secs(300));
    assert_eq!(finished["status"], "succeeded", "{finished}");
    // A refresh, and a backtest queued behind it; the server is killed
    // while the refresh runs.
    let refresh = server.post("/v1/forecasts/refresh", Some(&admin), "");
    assert_eq!(refresh.status, 202, "{}", refresh.text());
    let refresh_at = refresh.header("location").unwrap().to_owned();
    let queued = server.post("/v1/backtests", Some(&analyst), request);
    let queued_at = queued.header("location").unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = server.get(&refresh_at, Some(&admin)).json();
        if job["status"] == "running" {
            break;
        }
        assert_eq!(job["status"], "queued", "the refresh ended before it could be interrupted: {job}");
        assert!(Instant::now() < deadline, "the refresh did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.get(&queued_at, Some(&analyst)).json()["status"], "queued");
    server.kill();

    let server = Server::start(&scene.store, &scene.routes, &scene.keys, &audit);
    let again = server.get(&finished_at, Some(&analyst)).json();
    assert_eq!(
        (&again["status"], &again["metrics"], &again["run_id"]),
        (&finished["status"], &finished["metrics"], &finished["run_id"])
    );
    let refresh = server.get(&refresh_at, Some(&admin)).json();
    assert_eq!(refresh["status"], "interrupted", "{refresh}");
    assert!(refresh["error"].as_str().unwrap().contains("while the job was running"), "{refresh}");
    assert!(refresh["finished_at"].is_string());
    let job = server.get(&queued_at, Some(&analyst)).json();
    assert_eq!(job["status"], "interrupted", "{job}");
    assert!(job["error"].as_str().unwrap().contains("while the job was queued"), "{job}");
    // The store is as the refresh found it, and both jobs can be submitted again.
    assert_eq!(server.get("/readyz", None).status, 200);
    let refresh = server.post("/v1/forecasts/refresh", Some(&admin), "");
    let job = server.wait_job(refresh.header("location").unwrap(), &admin, Duration::from_secs(300));
    assert_eq!(job["status"], "succeeded", "{job}");
    let resubmitted = server.post("/v1/backtests", Some(&analyst), &job_request(&server, &queued_at, &analyst));
    let job = server.wait_job(resubmitted.header("location").unwrap(), &analyst, Duration::from_secs(300));
    assert_eq!((&job["status"], &job["metrics"]), (&"succeeded".into(), &finished["metrics"]));
    assert!(server.stop());
    // A third start reads the same jobs.
    let server = Server::start(&scene.store, &scene.routes, &scene.keys, &audit);
    assert_eq!(server.get(&queued_at, Some(&analyst)).json()["status"], "interrupted");
    assert!(server.stop());

    // Every audit line, up to the kill and after it, is complete JSON.
    let text = std::fs::read_to_string(&audit).unwrap();
    for (number, line) in text.lines().enumerate() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("audit line {}: {e}: {line}", number + 1));
    }
    assert!(text.ends_with('\n'));
    let out = stroom(&["tables", "--store", scene.store.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The request of a recorded backtest job, as a body to submit again.
fn job_request(server: &Server, location: &str, token: &str) -> String {
    server.get(location, Some(token)).json()["request"].to_string()
}

/// `/readyz`'s refresh section, polled until `done` holds; panics after `limit`.
fn wait_for_refresh(server: &Server, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let refresh = server.get("/readyz", None).json()["refresh"].clone();
        if done(&refresh) {
            return refresh;
        }
        assert!(started.elapsed() < limit, "no refresh as expected after {limit:?}: {refresh:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn forecasts_are_refreshed_when_the_data_changes() {
    let scene = scene();
    let (admin, ingest, viewer) = (
        create_key(&scene.keys, "admin", None),
        create_key(&scene.keys, "ingest", None),
        create_key(&scene.keys, "viewer", None),
    );
    let audit = scene.dir.path().join("audit.jsonl");
    let store = scene.store.to_str().unwrap();
    let server = Server::start_with(&scene.store, &scene.routes, &scene.keys, &audit, &["--refresh", "1s"]);
    // Whatever the fixture's run was made from, the served run becomes current.
    let refresh = wait_for_refresh(&server, Duration::from_secs(300), |r| r["current"] == true);
    assert_eq!((refresh["mode"].as_str(), refresh["check_interval_s"].as_f64()), (Some("auto"), Some(1.0)));
    assert_eq!(refresh["served_vintage"], refresh["data_versions"]);
    let first = server.get("/v1/routes/channel/forecast", Some(&viewer)).json()["run_id"].as_str().unwrap().to_owned();
    let last_job = refresh["last_refresh"]["id"].clone();

    // Nothing changes: no refresh is started.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(server.get("/readyz", None).json()["refresh"]["last_refresh"]["id"], last_job);

    // A revised arrivals figure, uploaded: a new run follows on its own.
    let latest = run(&[
        "query",
        "--store",
        store,
        "--format",
        "csv",
        "SELECT CAST(MAX(date) AS VARCHAR) AS d, \
        MAX(count) AS c FROM arrivals WHERE station = 'dover' AND date = (SELECT MAX(date) FROM arrivals WHERE station = 'dover')",
    ]);
    let row: Vec<&str> = latest.lines().nth(1).unwrap().split(',').collect();
    let body = format!("date,station,count\n{},dover,{}\n", row[0], row[1].parse::<i64>().unwrap() + 7);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut uploaded = agent
        .post(format!("{}/v1/ingest/arrivals?name=revision.csv", server.base))
        .header("Authorization", format!("Bearer {ingest}"))
        .header("Content-Type", "text/csv")
        .send(body.as_bytes())
        .unwrap();
    let status = uploaded.status().as_u16();
    assert_eq!(status, 201, "{}", uploaded.body_mut().read_to_string().unwrap());
    let refresh = wait_for_refresh(&server, Duration::from_secs(300), |r| {
        r["current"] == true && r["last_refresh"]["id"] != last_job && r["last_refresh"]["status"] == "succeeded"
    });
    assert_eq!(refresh["last_refresh"]["trigger"], "auto");
    assert_eq!(refresh["served_vintage"], refresh["data_versions"]);
    let second = server.get("/v1/routes/channel/forecast", Some(&viewer)).json();
    assert_eq!(second["run_id"], refresh["last_refresh"]["run_id"]);
    assert_ne!(second["run_id"], first.as_str());
    // The earlier run is still served on request.
    let old = server.get(&format!("/v1/routes/channel/forecast?run={first}"), Some(&viewer)).json();
    assert_eq!(old["run_id"], first.as_str());
    let metrics = server.get("/metrics", Some(&admin)).text();
    assert!(metrics.contains("stroom_forecasts_current 1"), "{metrics}");
    assert!(metrics.contains("stroom_refresh_failures 0"), "{metrics}");
    let success = metrics.lines().find(|l| l.starts_with("stroom_refresh_last_success_timestamp_seconds ")).unwrap();
    assert!(success.split(' ').nth(1).unwrap().parse::<f64>().unwrap() > 1.7e9, "{success}");
    assert!(server.stop());
    // Without --refresh the mode says so and nothing is checked.
    let server = Server::start(&scene.store, &scene.routes, &scene.keys, &audit);
    let refresh = server.get("/readyz", None).json()["refresh"].clone();
    assert_eq!((refresh["mode"].as_str(), refresh["current"].is_null()), (Some("off"), true));
    assert!(server.stop());
}
