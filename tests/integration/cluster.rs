//! Queries on a real Ballista cluster: one `stroom scheduler` and two
//! `stroom executor` processes (one task slot each) on loopback ports, all
//! killed when a test ends, however it ends. Over stores made by the real
//! pipeline, on a local folder and on an S3-compatible server: every golden
//! SQL file, the route series and the per-cell daily loading of a backtest
//! give exactly the local answers; an executor killed during a query either
//! leaves the right answer or a clear error, never a wrong one; and an
//! executor that cannot reach the store fails the query clearly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use stroom_core::{Cell, DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution, Route};
use stroom_query::{Engine, QuerySession, SeriesGranularity};
use stroom_store::{StorageOptions, Store};

use crate::query::{fill_small_store, render, run_golden_on};
use crate::s3::{S3Server, free_port};
use crate::support::{Process, repo_root, runtime, stroom_binary};

/// Seconds between an executor's heartbeats, and without one after which
/// the scheduler counts it as lost (Ballista's defaults are 60 and 180).
const HEARTBEAT_SECONDS: &str = "1";
const EXECUTOR_TIMEOUT_SECONDS: &str = "5";

/// How long a process may take to say it is ready.
const START_LIMIT: Duration = Duration::from_secs(60);

/// A running cluster.
struct Cluster {
    /// `df://127.0.0.1:PORT`, for [`Engine::Cluster`].
    url: String,
    executors: Vec<ExecutorProcess>,
    // Dropped after the executors, so that none outlives the scheduler by
    // much; every process is killed when dropped.
    scheduler: Process,
    _work: tempfile::TempDir,
}

struct ExecutorProcess {
    process: Process,
    work_dir: PathBuf,
}

impl Cluster {
    /// A scheduler and one executor per entry of `executors` (its extra
    /// arguments), every process with the environment `env`; returns once
    /// every executor is registered.
    fn start(env: &[(&str, String)], executors: &[&[&str]]) -> Cluster {
        let work = tempfile::tempdir().unwrap();
        let mut command = Command::new(stroom_binary());
        command.args(["scheduler", "--bind", "127.0.0.1:0", "--executor-timeout", EXECUTOR_TIMEOUT_SECONDS]);
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let (scheduler, line) = Process::start("stroom scheduler", command, "scheduler listening on ", START_LIMIT);
        let address = line.trim_start_matches("scheduler listening on ").trim().to_owned();
        assert!(address.starts_with("127.0.0.1:"), "{line}");
        let mut cluster = Cluster { url: format!("df://{address}"), executors: Vec::new(), scheduler, _work: work };
        let mut taken = Vec::new();
        for (index, extra) in executors.iter().enumerate() {
            let work_dir = cluster._work.path().join(format!("executor-{index}"));
            // Ports are free when picked; another process may take one
            // before the executor binds it, so a failed start is retried.
            let mut problems = Vec::new();
            let process = loop {
                let flight = distinct_free_port(&mut taken);
                let grpc = distinct_free_port(&mut taken);
                let mut command = Command::new(stroom_binary());
                command.args(["executor", "--scheduler", &address]);
                command.args(["--bind", &format!("127.0.0.1:{flight}"), "--grpc-port", &grpc.to_string()]);
                command.args(["--concurrent-tasks", "1", "--heartbeat-interval", HEARTBEAT_SECONDS]);
                command.args(["--work-dir", work_dir.to_str().unwrap()]);
                command.args(*extra);
                command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
                match Process::try_start(
                    &format!("stroom executor {index}"),
                    command,
                    "executor registered with ",
                    START_LIMIT,
                ) {
                    Ok((process, line)) => {
                        assert!(line.contains(&address), "{line}");
                        break process;
                    }
                    Err(problem) if problems.len() < 2 => problems.push(problem),
                    Err(problem) => panic!("{problem} (after {problems:?})"),
                }
            };
            cluster.executors.push(ExecutorProcess { process, work_dir });
        }
        cluster
    }

    fn engine(&self) -> Engine {
        Engine::Cluster(self.url.clone())
    }

    /// Stops every process with SIGTERM: each must exit cleanly and say so.
    fn stop(mut self) {
        for (index, executor) in self.executors.iter_mut().enumerate() {
            let status = executor.process.terminate(Duration::from_secs(30));
            assert!(status.is_some_and(|s| s.success()), "executor {index} did not stop cleanly: {status:?}");
            executor.process.wait_for_line("executor stopped", Duration::from_secs(5));
        }
        let status = self.scheduler.terminate(Duration::from_secs(30));
        assert!(status.is_some_and(|s| s.success()), "the scheduler did not stop cleanly: {status:?}");
        self.scheduler.wait_for_line("scheduler stopped", Duration::from_secs(5));
    }
}

/// A free loopback port that is none of `taken` (and is then taken).
fn distinct_free_port(taken: &mut Vec<u16>) -> u16 {
    loop {
        let port = free_port();
        if !taken.contains(&port) {
            taken.push(port);
            return port;
        }
    }
}

/// The golden SQL files, every one of them.
fn golden_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("tests/sql"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".slt"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    files
}

/// Runs every golden file locally and on the cluster; the seconds each took.
fn golden_on_both(store: &Store, cluster: &Cluster) -> Vec<(String, f64, f64)> {
    let mut timings = Vec::new();
    for file in golden_files() {
        let started = Instant::now();
        run_golden_on(store, &file, &Engine::Local);
        let local = started.elapsed().as_secs_f64();
        let started = Instant::now();
        run_golden_on(store, &file, &cluster.engine());
        timings.push((file, local, started.elapsed().as_secs_f64()));
    }
    for (file, local, remote) in &timings {
        println!("golden {file}: local {local:.2} s, cluster {remote:.2} s");
    }
    timings
}

/// Rows of a query, in the session's order.
fn rows(session: &QuerySession, sql: &str) -> Vec<String> {
    runtime().block_on(async { render(&session.sql(sql).await.unwrap().collect().await.unwrap()) })
}

#[test]
fn golden_sql_on_the_cluster_gives_the_local_answers_and_the_processes_stop_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store").to_string_lossy()).unwrap();
    fill_small_store(&store, dir.path());
    let cluster = Cluster::start(&[], &[&[], &[]]);
    golden_on_both(&store, &cluster);

    // The H3 functions over columns are evaluated by the executors (over
    // literals the client folds them before the plan leaves).
    let rt = runtime();
    let local = rt.block_on(QuerySession::open(&store, None)).unwrap();
    let remote = rt.block_on(QuerySession::open_on(&store, None, &cluster.engine())).unwrap();
    let sql = "SELECT h3_cell_to_string(h3_cell_to_parent(cell, 5)) AS parent, h3_get_resolution(cell) AS res, \
               sum(count) AS devices FROM density GROUP BY 1, 2 ORDER BY 1, 2";
    let expected = rows(&local, sql);
    assert!(!expected.is_empty());
    assert_eq!(rows(&remote, sql), expected);
    assert!(
        cluster.executors.iter().any(|e| stages_with_output(&e.work_dir) > 0),
        "no executor wrote task output: the queries did not run on the cluster"
    );

    cluster.stop();
}

/// The channel route's cells, as the models read them.
fn channel_cells() -> (Route, stroom_core::RouteCells) {
    let text = std::fs::read_to_string(repo_root().join("data/routes/channel.geojson")).unwrap();
    let route = Route::from_geojson("channel", &text).unwrap();
    let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION)).unwrap();
    let cells = route.cells(resolution, DEFAULT_BUFFER_RINGS).unwrap();
    (route, cells)
}

#[test]
fn route_series_and_the_backtest_loading_on_the_cluster_give_the_local_answers() {
    let fixture = crate::api::fixture();
    let store = Store::open(&fixture.join("store").to_string_lossy()).unwrap();
    let cluster = Cluster::start(&[], &[&[], &[]]);
    let rt = runtime();
    let local = rt.block_on(QuerySession::open(&store, None)).unwrap();
    let remote = rt.block_on(QuerySession::open_on(&store, None, &cluster.engine())).unwrap();
    assert_eq!(remote.versions(), local.versions());
    assert!(local.daily_version().is_some(), "the fixture has its daily rollup");
    let (route, cells) = channel_cells();
    let (from, to) = (NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(), NaiveDate::from_ymd_opt(2100, 1, 1).unwrap());
    let timed = |what: &str, run: &dyn Fn(&QuerySession) -> Vec<String>| {
        let started = Instant::now();
        let expected = run(&local);
        let local_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let got = run(&remote);
        let cluster_seconds = started.elapsed().as_secs_f64();
        println!("{what}: {} rows, local {local_seconds:.2} s, cluster {cluster_seconds:.2} s", expected.len());
        assert!(expected.len() > 100, "{what}: only {} rows", expected.len());
        assert_eq!(got.len(), expected.len(), "{what}");
        assert!(got == expected, "{what}: the cluster's rows differ from the local ones");
    };

    // Daily segment series (from the rollup) and hourly ones (from the
    // hourly table), and the density around each station.
    for granularity in [SeriesGranularity::Day, SeriesGranularity::Hour] {
        timed(&format!("segment_series {granularity:?}"), &|session| {
            render(&rt.block_on(session.segment_series(&cells, from, to, granularity)).unwrap())
        });
    }
    timed("station_density_series", &|session| {
        let resolution = Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION)).unwrap();
        render(
            &rt.block_on(session.station_density_series(&route, resolution, 1, from, to, SeriesGranularity::Day))
                .unwrap(),
        )
    });
    // What a backtest of Dover loads: every cell of the route's segments
    // leading to it, per day (in no order: compared sorted).
    let all: Vec<Cell> = cells.segments.iter().flat_map(|s| s.cells.iter().copied()).collect();
    timed("cell_day_series", &|session| {
        let mut rows = render(&rt.block_on(session.cell_day_series(&all, from, to)).unwrap());
        rows.sort();
        rows
    });
    cluster.stop();
}

/// A query that runs for a while on two one-slot executors: a join of the
/// hourly table with itself on the cell (each cell-hour with every hour of
/// the same cell and day), over many tasks and two shuffles.
const LONG_QUERY: &str = "SELECT a.day, count(*) AS pairs, sum(CAST(a.count AS BIGINT) * CAST(b.count AS BIGINT)) AS product \
     FROM density a JOIN density b ON a.cell = b.cell AND a.day = b.day GROUP BY a.day ORDER BY a.day";

#[test]
fn an_executor_killed_during_a_query_leaves_the_right_answer_or_a_clear_error() {
    let fixture = crate::api::fixture();
    let store = Store::open(&fixture.join("store").to_string_lossy()).unwrap();
    let rt = runtime();
    let local = rt.block_on(QuerySession::open(&store, None)).unwrap();
    let started = Instant::now();
    let expected = rows(&local, LONG_QUERY);
    println!("long query: {} rows, local {:.2} s", expected.len(), started.elapsed().as_secs_f64());
    assert!(expected.len() > 100, "{expected:?}");

    let mut cluster = Cluster::start(&[], &[&[], &[]]);
    let engine = cluster.engine();
    let query_store = store.clone();
    let (sender, outcome) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let rt = runtime();
        let result = rt.block_on(async {
            let session = QuerySession::open_on(&query_store, None, &engine).await?;
            let batches = session.sql(LONG_QUERY).await?.collect().await?;
            Ok::<_, stroom_query::QueryError>(render(&batches))
        });
        let _ = sender.send(result);
    });

    // Once one executor has written the output of two stages and the other
    // of one, SIGKILL the first: the query is past its scans, the outputs the
    // next stages read from it are gone with it, and its running task never
    // reports.
    let deadline = Instant::now() + Duration::from_secs(120);
    while stages_with_output(&cluster.executors[1].work_dir) < 2
        || stages_with_output(&cluster.executors[0].work_dir) < 1
    {
        assert!(Instant::now() < deadline, "the executors did not both run tasks of the query");
        if let Ok(result) = outcome.try_recv() {
            panic!("the query ended before the kill; make it longer: {:?}", result.map(|r| r.len()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let victim = &mut cluster.executors[1].process;
    let pid = victim.id();
    victim.kill();
    let killed_at = started.elapsed().as_secs_f64();
    println!("executor {pid} killed {killed_at:.2} s into the query, with the output of two stages");
    assert!(outcome.try_recv().is_err(), "the query had ended before the kill");

    match outcome.recv_timeout(Duration::from_secs(300)).expect("the query ends within 5 minutes") {
        Ok(got) => {
            println!("the query completed on the other executor after {:.2} s", started.elapsed().as_secs_f64());
            assert_eq!(got.len(), expected.len(), "a partial answer after the kill");
            assert!(got == expected, "a wrong answer after the kill");
        }
        Err(error) => {
            let message = error.to_string();
            println!("the query failed after {:.2} s: {message}", started.elapsed().as_secs_f64());
            let lower = message.to_lowercase();
            assert!(
                ["executor", "fetch", "lost", "connect"].iter().any(|w| lower.contains(w)),
                "not a clear error: {message}"
            );
        }
    }
    // The cluster still answers with the executor it has left.
    let session = rt.block_on(QuerySession::open_on(&store, None, &cluster.engine())).unwrap();
    let sql = "SELECT day, sum(count) FROM density GROUP BY day ORDER BY day";
    assert_eq!(rows(&session, sql), rows(&local, sql));
}

/// The stages of which an executor has written task output: Ballista writes
/// `<work dir>/<job id>/<stage id>/<partition>/data-….arrow` (and DataFusion
/// its spill folders, `datafusion-…`, beside them).
fn stages_with_output(work_dir: &Path) -> usize {
    let folders = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default()
    };
    let has_data = |stage: &Path| {
        folders(stage).iter().any(|partition| {
            std::fs::read_dir(partition).is_ok_and(|files| {
                files.filter_map(Result::ok).any(|f| f.path().extension().is_some_and(|e| e == "arrow"))
            })
        })
    };
    folders(work_dir)
        .iter()
        .filter(|job| !job.file_name().is_some_and(|n| n.to_string_lossy().starts_with("datafusion-")))
        .map(|job| folders(job).iter().filter(|stage| has_data(stage)).count())
        .sum()
}

/// Storage options that reach `server` (the standard variables, as options).
fn s3_options(server: &S3Server) -> StorageOptions {
    server.env().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()
}

/// The small store of the golden files, on a bucket of `server`.
fn small_store_on_s3(server: &S3Server, bucket: &str, dir: &Path) -> Store {
    let url = format!("s3://{}/golden", server.bucket(bucket));
    let store = Store::create(&url, s3_options(server)).unwrap();
    fill_small_store(&store, dir);
    store
}

#[test]
fn golden_sql_on_the_cluster_over_s3_gives_the_local_answers() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let store = small_store_on_s3(&s3, "stroom-cluster", dir.path());
    let cluster = Cluster::start(&s3.env(), &[&[], &[]]);
    golden_on_both(&store, &cluster);
    cluster.stop();
}

#[test]
fn an_executor_that_cannot_reach_the_store_fails_the_query_clearly() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let store = small_store_on_s3(&s3, "stroom-unreachable", dir.path());
    // The scheduler reaches the store (it lists and reads footers while
    // planning); the only executor is pointed at a closed port.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let option = format!("aws_endpoint_url={closed}");
    let cluster = Cluster::start(&s3.env(), &[&["--storage-option", option.as_str()]]);
    let rt = runtime();
    let session = rt.block_on(QuerySession::open_on(&store, None, &cluster.engine())).unwrap();
    let started = Instant::now();
    let outcome =
        rt.block_on(async { session.sql("SELECT sum(count) FROM density").await?.collect().await.map_err(Into::into) });
    let seconds = started.elapsed().as_secs_f64();
    let error: stroom_query::QueryError = outcome.expect_err("a query whose executor cannot reach the store");
    let message = error.to_string();
    println!("failed after {seconds:.2} s: {message}");
    assert!(message.contains("127.0.0.1"), "the error does not name the endpoint: {message}");
    assert!(message.contains("golden/density") || message.contains("stroom-unreachable"), "{message}");
    assert!(seconds < 120.0, "the query took {seconds:.0} s to fail");

    // An executor with a storage option its S3 client does not know is
    // refused at start, naming the option.
    let out = Command::new(stroom_binary())
        .args(["executor", "--scheduler", cluster.url.trim_start_matches("df://"), "--bind", "127.0.0.1:1"])
        .args(["--storage-option", "aws_endpont=x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("aws_endpont"), "{}", String::from_utf8_lossy(&out.stderr));
    cluster.stop();
}
