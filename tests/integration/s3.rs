//! Stores on S3: a real S3-compatible server (moto's, from PyPI) on a
//! loopback port, and the whole pipeline run once on it and once on a local
//! folder, with the same answers; the tables read back from S3 by the Python
//! `deltalake` package; two writers racing on one table; and stores that
//! cannot be reached.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::api::{Server, create_key};
use crate::support::{python, repo_root, stroom_binary};

/// The credentials the server accepts (moto checks none).
const KEY_ID: &str = "stroom-test";
const SECRET: &str = "stroom-test-secret";

/// A free loopback port (free when asked; taken by the caller right after).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// An S3-compatible server on a loopback port, stopped when dropped.
pub(crate) struct S3Server {
    child: Child,
    pub(crate) endpoint: String,
}

impl S3Server {
    /// Starts the server and waits until it answers.
    pub(crate) fn start() -> S3Server {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server starts (tests/requirements.txt installs moto[server])");
        let server = S3Server { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while ureq::get(&format!("{}/", server.endpoint)).call().is_err() {
            assert!(Instant::now() < deadline, "the S3 server did not answer on {}", server.endpoint);
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    /// Creates a bucket (with a signed request, as any S3 client makes it).
    pub(crate) fn bucket(&self, name: &str) -> String {
        let script = "import sys, boto3\n\
            s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[2],\n\
                              aws_secret_access_key=sys.argv[3], region_name='us-east-1')\n\
            s3.create_bucket(Bucket=sys.argv[4])\n";
        python(script, &[&self.endpoint, KEY_ID, SECRET, name]);
        name.to_owned()
    }

    /// The standard AWS variables that reach this server.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `stroom` binary with extra environment variables.
pub(crate) fn stroom_env(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(stroom_binary());
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the stroom binary runs")
}

fn ok(args: &[&str], env: &[(&str, String)]) -> String {
    let out = stroom_env(args, env);
    assert!(
        out.status.success(),
        "stroom {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What one run of the pipeline on a store answers.
#[derive(Debug, PartialEq)]
struct Answers {
    daily_devices: String,
    arrivals: String,
    series: String,
    metrics: String,
    backtest_forecasts: String,
    forecast_rows: String,
    served_forecast: String,
    served_map: String,
}

/// Simulation inputs shared by both runs.
struct Inputs {
    dir: tempfile::TempDir,
    routes: PathBuf,
    sim: PathBuf,
    bad: PathBuf,
}

fn inputs() -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes");
    std::fs::create_dir_all(&routes).unwrap();
    std::fs::copy(repo_root().join("data/routes/channel.geojson"), routes.join("channel.geojson")).unwrap();
    let sim = dir.path().join("sim");
    ok(
        &[
            "simulate",
            "--out",
            sim.to_str().unwrap(),
            "--days",
            "200",
            "--routes",
            routes.to_str().unwrap(),
            "--seed",
            "11",
        ],
        &[],
    );
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "date,station,count\n2024-02-01,dover,5\n2024-04-31,dover,7\n").unwrap();
    Inputs { dir, routes, sim, bad }
}

/// The pipeline on one store: ingest both tables, re-ingest, a refused bad
/// file, query, series, backtest, forecast, and a forecast and a map served.
fn pipeline(store: &str, inputs: &Inputs, env: &[(&str, String)], work: &Path) -> Answers {
    let routes = inputs.routes.to_str().unwrap();
    let density = inputs.sim.join("density");
    let arrivals = inputs.sim.join("arrivals.csv");
    ok(&["ingest", "density", density.to_str().unwrap(), "--store", store], env);
    ok(&["ingest", "arrivals", arrivals.to_str().unwrap(), "--store", store], env);
    let tables = ok(&["tables", "--store", store], env);

    // Ingesting the same files again writes nothing.
    let again = ok(&["ingest", "density", density.to_str().unwrap(), "--store", store], env);
    assert!(again.contains("skipped: already ingested") && again.contains("(unchanged)"), "{again}");
    let again = ok(&["ingest", "arrivals", arrivals.to_str().unwrap(), "--store", store], env);
    assert!(again.contains("nothing written"), "{again}");
    // A refused file leaves every table as it was.
    let refused = stroom_env(&["ingest", "arrivals", inputs.bad.to_str().unwrap(), "--store", store], env);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("line 3") && message.contains("2024-04-31"), "{message}");
    assert_eq!(ok(&["tables", "--store", store], env), tables, "a refused ingest changed the store");

    let query = |sql: &str| ok(&["query", "--store", store, "--format", "csv", sql], env);
    let daily_devices =
        query("SELECT day, sum(count) AS devices, count(*) AS cell_hours FROM density GROUP BY day ORDER BY day");
    let arrivals = query(
        "SELECT station, sum(count) AS arrivals, min(date) AS first, max(date) AS last FROM arrivals GROUP BY station ORDER BY station",
    );
    let series = ok(
        &[
            "series",
            "--store",
            store,
            "--route",
            "channel",
            "--from",
            "2023-01-01",
            "--to",
            "2024-01-01",
            "--routes",
            routes,
            "--csv",
        ],
        env,
    );
    let small = ["--calibration-origins", "8", "--calibration-step", "4", "--routes", routes];
    let bt = work.join("bt");
    ok(
        &[
            &["backtest", "--store", store, "--target", "station:dover", "--folds", "3", "--step", "7"][..],
            &["--models", "auto,elasticnet,seasonal_naive", "--out", bt.to_str().unwrap()][..],
            &small[..],
        ]
        .concat(),
        env,
    );
    let metrics = std::fs::read_to_string(bt.join("metrics.csv")).unwrap();
    ok(&[&["forecast", "--store", store][..], &small[..]].concat(), env);
    let forecast_rows = query(
        "SELECT target, model, date, horizon, mean, q10, q50, q90, lo95, hi95 FROM forecasts ORDER BY target, model, date",
    );
    let backtest_forecasts =
        query("SELECT target, model, cutoff, date, q50, q90 FROM backtests ORDER BY target, model, cutoff, date");

    let keys = work.join("keys.toml");
    let token = create_key(&keys, "viewer", None);
    let server = Server::start_on(store, &inputs.routes, &keys, &work.join("audit.jsonl"), &[], env);
    let served = server.get("/v1/routes/channel/forecast?format=csv", Some(&token));
    assert_eq!(served.status, 200, "{}", served.text());
    // The run id differs between the two stores; the numbers may not.
    let served_forecast = without_column(&served.text(), "run");
    let map = server.get("/v1/routes/channel/map.geojson", Some(&token));
    assert_eq!(map.status, 200, "{}", map.text());
    let mut geojson = map.json();
    strip_run(&mut geojson);
    let served_map = geojson.to_string();
    assert!(server.stop(), "the server stops cleanly");
    Answers { daily_devices, arrivals, series, metrics, backtest_forecasts, forecast_rows, served_forecast, served_map }
}

/// A CSV text without one of its columns.
fn without_column(csv: &str, name: &str) -> String {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let drop = header.iter().position(|h| *h == name || *h == "run_id");
    let keep = |line: &str| -> String {
        line.split(',').enumerate().filter(|(i, _)| Some(*i) != drop).map(|(_, v)| v).collect::<Vec<_>>().join(",")
    };
    std::iter::once(keep(&header.join(","))).chain(lines.map(keep)).collect::<Vec<_>>().join("\n")
}

/// Removes the run ids and creation times from a GeoJSON document.
fn strip_run(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|key, _| !matches!(key.as_str(), "run" | "run_id" | "created" | "created_at" | "generated"));
            map.values_mut().for_each(strip_run);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_run),
        _ => {}
    }
}

#[test]
fn the_pipeline_on_s3_answers_as_on_a_local_folder() {
    let s3 = S3Server::start();
    let env = s3.env();
    let bucket = s3.bucket("stroom-pipeline");
    let inputs = inputs();
    let local_store = inputs.dir.path().join("store");
    let local_work = inputs.dir.path().join("local");
    let s3_work = inputs.dir.path().join("s3");
    std::fs::create_dir_all(&local_work).unwrap();
    std::fs::create_dir_all(&s3_work).unwrap();
    let store = format!("s3://{bucket}/stores/one");
    let local = pipeline(local_store.to_str().unwrap(), &inputs, &[], &local_work);
    let remote = pipeline(&store, &inputs, &env, &s3_work);
    assert!(local.daily_devices.lines().count() > 150, "{}", local.daily_devices);
    assert!(local.series.lines().count() > 150, "{}", &local.series[..local.series.len().min(2000)]);
    assert!(local.metrics.contains("seasonal_naive"));
    assert_eq!(remote, local);

    // Nothing of the store was written to local disk.
    assert!(!Path::new(&format!("s3:/{bucket}")).exists() && !Path::new("s3:").exists());

    // The tables read back from S3 by an independent Delta reader.
    let script = r#"
import sys
from deltalake import DeltaTable
url, endpoint, key, secret = sys.argv[1:5]
options = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
           "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
for name, column in [("density", "count"), ("arrivals", "count"), ("density_daily", "devices")]:
    table = DeltaTable(f"{url}/{name}", storage_options=options).to_pyarrow_table()
    print(name, table.num_rows, sum(v for v in table.column(column).to_pylist()))
# The deltalake package's S3 client threads can abort the interpreter's
# teardown ("terminate called without an active exception") after the
# answer is printed; the answer is what is checked, so exit at once.
import os
sys.stdout.flush()
os._exit(0)
"#;
    let from_s3 = python(script, &[&store, &s3.endpoint, KEY_ID, SECRET]);
    let sums: Vec<(String, u64, u64)> = from_s3
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            (parts[0].to_owned(), parts[1].parse().unwrap(), parts[2].parse().unwrap())
        })
        .collect();
    let local_sum = |sql: &str| -> String {
        let out = ok(&["query", "--store", local_store.to_str().unwrap(), "--format", "csv", sql], &[]);
        out.lines().nth(1).unwrap().to_owned()
    };
    let density = local_sum("SELECT count(*), sum(count) FROM density");
    let arrivals = local_sum("SELECT count(*), sum(count) FROM arrivals");
    assert_eq!(format!("{},{}", sums[0].1, sums[0].2), density, "{from_s3}");
    assert_eq!(format!("{},{}", sums[1].1, sums[1].2), arrivals, "{from_s3}");
    assert_eq!(sums[2].2, sums[0].2, "the rollup on S3 sums to the hourly table: {from_s3}");
}

#[test]
fn two_writers_racing_on_s3_lose_no_commit() {
    let s3 = S3Server::start();
    let env = s3.env();
    let bucket = s3.bucket("stroom-race");
    let store = format!("s3://{bucket}/store");
    let dir = tempfile::tempdir().unwrap();
    // Arrivals of two stations, in four files each: every ingest merges into
    // the whole table, so a lost update would drop the other's rows.
    let mut files = Vec::new();
    for (station, base) in [("north", 100), ("south", 200)] {
        for part in 0..4 {
            let path = dir.path().join(format!("{station}-{part}.csv"));
            let mut text = String::from("date,station,count\n");
            for day in 0..28 {
                let date = chrono::NaiveDate::from_ymd_opt(2024, 1 + part, 1).unwrap() + chrono::Duration::days(day);
                text.push_str(&format!("{date},{station},{}\n", base + i64::from(part) * 10 + day));
            }
            std::fs::write(&path, text).unwrap();
            files.push((station, path));
        }
    }
    let spawn = |paths: Vec<PathBuf>| {
        let env = env.clone();
        let store = store.clone();
        std::thread::spawn(move || {
            for path in paths {
                let out = stroom_env(&["ingest", "arrivals", path.to_str().unwrap(), "--store", &store], &env);
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            }
        })
    };
    let north: Vec<PathBuf> = files.iter().filter(|(s, _)| *s == "north").map(|(_, p)| p.clone()).collect();
    let south: Vec<PathBuf> = files.iter().filter(|(s, _)| *s == "south").map(|(_, p)| p.clone()).collect();
    let (a, b) = (spawn(north), spawn(south));
    a.join().unwrap();
    b.join().unwrap();
    let counts = ok(
        &[
            "query",
            "--store",
            &store,
            "--format",
            "csv",
            "SELECT station, count(*) AS days, sum(count) AS total FROM arrivals GROUP BY station ORDER BY station",
        ],
        &env,
    );
    let expected_total = |base: i64| (0..4).map(|p| (0..28).map(|d| base + p * 10 + d).sum::<i64>()).sum::<i64>();
    assert_eq!(
        counts.trim(),
        format!("station,days,total\nnorth,112,{}\nsouth,112,{}", expected_total(100), expected_total(200))
    );
    // One creation commit and one commit per file, none lost or torn.
    let tables = ok(&["tables", "--store", &store], &env);
    let versions = tables.lines().filter(|l| l.trim_start().starts_with('v')).count();
    assert_eq!(versions, 9, "{tables}");

    // Two density ingests of different files at once: both land, no count twice.
    let sim = dir.path().join("sim");
    ok(&["simulate", "--out", sim.to_str().unwrap(), "--days", "20", "--seed", "4"], &[]);
    let mut density_files: Vec<PathBuf> =
        std::fs::read_dir(sim.join("density")).unwrap().map(|e| e.unwrap().path()).collect();
    density_files.sort();
    let half = density_files.len() / 2;
    let (first, second) = (density_files[..half].to_vec(), density_files[half..].to_vec());
    let local = dir.path().join("local");
    for batch in [&first, &second] {
        let args: Vec<&str> = batch.iter().map(|p| p.to_str().unwrap()).collect();
        ok(&[&["ingest", "density"][..], &args[..], &["--store", local.to_str().unwrap()][..]].concat(), &[]);
    }
    let racers: Vec<_> = [first, second]
        .into_iter()
        .map(|batch| {
            let env = env.clone();
            let store = store.clone();
            std::thread::spawn(move || {
                let mut args = vec!["ingest".to_owned(), "density".to_owned()];
                args.extend(batch.iter().map(|p| p.to_str().unwrap().to_owned()));
                args.extend(["--store".to_owned(), store]);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                stroom_env(&args, &env)
            })
        })
        .collect();
    for racer in racers {
        let out = racer.join().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let sql = "SELECT count(*) AS rows, sum(count) AS devices FROM density";
    let daily = "SELECT sum(devices) AS devices FROM density_daily";
    assert_eq!(
        ok(&["query", "--store", &store, "--format", "csv", sql], &env),
        ok(&["query", "--store", local.to_str().unwrap(), "--format", "csv", sql], &[])
    );
    // The rollup is registered only at the density version it is complete
    // for; where it is, it sums to the hourly table.
    let hourly =
        ok(&["query", "--store", &store, "--format", "csv", "SELECT sum(count) AS devices FROM density"], &env);
    let summed = stroom_env(&["query", "--store", &store, "--format", "csv", daily], &env);
    let summed_text = String::from_utf8_lossy(&summed.stdout);
    if summed.status.success() {
        assert_eq!(summed_text, hourly);
    } else {
        assert!(String::from_utf8_lossy(&summed.stderr).contains("density_daily"));
    }
}

#[test]
fn a_store_that_cannot_be_reached_is_one_clear_error() {
    let s3 = S3Server::start();
    let bucket = s3.bucket("stroom-reach");
    let closed = free_port();
    let mut unreachable = s3.env();
    unreachable.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    unreachable.push(("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{closed}")));
    let cases: [(&str, Vec<(&str, String)>, &[&str]); 3] = [
        ("s3://stroom-reach/store", unreachable, &["cannot", "127.0.0.1"]),
        ("s3://no-such-bucket/store", s3.env(), &["no-such-bucket"]),
        ("s3://stroom-reach/empty", s3.env(), &["no store there"]),
    ];
    let _ = bucket;
    let mut ran = 0;
    for (store, env, expected) in &cases {
        for command in [&["tables", "--store", store][..], &["query", "--store", store, "SELECT 1"][..]] {
            let started = Instant::now();
            let out = stroom_env(command, env);
            let seconds = started.elapsed().as_secs_f64();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{command:?} succeeded");
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert_eq!(stderr.lines().filter(|l| l.starts_with("error:")).count(), 1, "{stderr}");
            assert!(stderr.contains(store), "the error names the store: {stderr}");
            for word in *expected {
                assert!(stderr.to_lowercase().contains(&word.to_lowercase()), "{word} in {stderr}");
            }
            assert!(seconds < 40.0, "{command:?} took {seconds:.0} s to fail");
            ran += 1;
        }
    }
    assert_eq!(ran, 6);
    // A typo in a storage option is refused, not ignored.
    let out =
        stroom_env(&["tables", "--store", "s3://stroom-reach/store", "--storage-option", "aws_endpont=x"], &s3.env());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown S3 storage option 'aws_endpont'"));
}
