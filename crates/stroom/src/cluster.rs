//! `stroom scheduler` and `stroom executor`: the two processes of a Ballista
//! cluster, built on the `ballista-scheduler` and `ballista-executor` crates.
//!
//! Stroom's own entry points exist for one reason: every process of the
//! cluster must mean the same thing by a plan. The scheduler plans (it lists
//! the Parquet files of each listing table and reads their footers) and the
//! executors run the stages, so both register the H3 functions (stateless,
//! found by name) and reach the store through the same object stores as a
//! local session ([`StroomObjectStores`]: local files, and `s3://` buckets
//! from the `AWS_*` variables and `--storage-option`). Shuffle and spill
//! files stay on the executor's local disk.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ballista_core::extension::{
    SessionConfigExt, ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
};
use ballista_core::optimizer::ballista_default_optimizer_rules;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::BallistaCodec;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_executor::health::ExecutorHealth;
use ballista_scheduler::SessionBuilder;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use clap::Args;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::object_store::{ObjectStoreRegistry, ObjectStoreUrl};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use stroom_query::register_h3_functions;
use stroom_store::{StorageOptions, StroomObjectStores, check_storage_options};

use crate::location::parse_option;
use crate::serve::shutdown_signal;

/// `stroom scheduler`: plans queries and hands their stages to executors.
#[derive(Debug, Args)]
pub(crate) struct SchedulerArgs {
    /// Address of the scheduler's gRPC service (clients connect to
    /// df://HOST:PORT, executors to HOST:PORT); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:50050")]
    bind: SocketAddr,
    /// Host name executors call back on, when it differs from the bind
    /// host (required when binding 0.0.0.0 or ::).
    #[arg(long, value_name = "HOST")]
    advertise_host: Option<String>,
    /// Seconds without a heartbeat after which an executor counts as lost
    /// and its tasks run elsewhere; longer than the executors'
    /// --heartbeat-interval.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    executor_timeout: u64,
    /// An object-store option for s3:// stores, KEY=VALUE (repeatable);
    /// overrides the AWS_* variables.
    #[arg(long = "storage-option", value_name = "KEY=VALUE", value_parser = parse_option)]
    storage_options: Vec<(String, String)>,
}

/// `stroom executor`: runs the tasks a scheduler hands it.
#[derive(Debug, Args)]
pub(crate) struct ExecutorArgs {
    /// The scheduler's gRPC address, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    scheduler: String,
    /// Address of the executor's Arrow Flight service, from which other
    /// executors and clients fetch its task outputs.
    #[arg(long, default_value = "127.0.0.1:50051")]
    bind: SocketAddr,
    /// Port of the executor's gRPC service, on which the scheduler launches
    /// tasks (the --bind port + 1 when omitted).
    #[arg(long, value_name = "PORT")]
    grpc_port: Option<u16>,
    /// Host name the scheduler and other executors reach this executor on,
    /// when it differs from the bind host (required when binding 0.0.0.0 or ::).
    #[arg(long, value_name = "HOST")]
    advertise_host: Option<String>,
    /// Tasks this executor runs at once (its task slots).
    #[arg(long, default_value_t = 1)]
    concurrent_tasks: usize,
    /// Folder for shuffle and spill files (a temporary folder, removed on
    /// exit, when omitted).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<std::path::PathBuf>,
    /// Seconds between heartbeats to the scheduler.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    heartbeat_interval: u64,
    /// An object-store option for s3:// stores, KEY=VALUE (repeatable);
    /// overrides the AWS_* variables.
    #[arg(long = "storage-option", value_name = "KEY=VALUE", value_parser = parse_option)]
    storage_options: Vec<(String, String)>,
}

/// Storage options given on the command line, checked: they reach the S3
/// client of every `s3://` bucket a plan reads, so each key must be one that
/// client knows.
fn storage_options(pairs: &[(String, String)]) -> Result<StorageOptions> {
    let options: StorageOptions = pairs.iter().cloned().collect();
    let any_bucket = ObjectStoreUrl::parse("s3://bucket").expect("a constant URL parses");
    check_storage_options(any_bucket.as_ref(), &options).map_err(anyhow::Error::msg)?;
    Ok(options)
}

/// The host others reach a process on: `advertise`, or the bind address
/// when it names one host.
fn reachable_host(bind: &SocketAddr, advertise: Option<&str>) -> Result<String> {
    match advertise {
        Some(host) if !host.trim().is_empty() => Ok(host.trim().to_owned()),
        Some(_) => bail!("--advertise-host is empty"),
        None if bind.ip().is_unspecified() => {
            bail!("binding {} reaches every interface: say which host others call back on with --advertise-host", bind)
        }
        None => Ok(match bind.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        }),
    }
}

/// Runs a scheduler until Ctrl-C or SIGTERM.
pub(crate) async fn scheduler(args: &SchedulerArgs) -> Result<()> {
    let objects: Arc<dyn ObjectStoreRegistry> =
        Arc::new(StroomObjectStores::new(storage_options(&args.storage_options)?));
    let host = reachable_host(&args.bind, args.advertise_host.as_deref())?;
    if args.executor_timeout == 0 {
        bail!("--executor-timeout must be at least 1 second");
    }
    // Bound before the configuration is made, so that a port 0 becomes the
    // real port executors call back on.
    let listener =
        tokio::net::TcpListener::bind(args.bind).await.with_context(|| format!("cannot listen on {}", args.bind))?;
    let local = listener.local_addr()?;
    let mut config = SchedulerConfig::default()
        .with_hostname(host.clone())
        .with_port(local.port())
        .with_override_config_producer(Arc::new(SessionConfig::new_with_ballista))
        .with_override_session_builder(session_builder(objects));
    config.bind_host = local.ip().to_string();
    config.executor_timeout_seconds = args.executor_timeout;
    config.no_executors_grace_period_seconds = args.executor_timeout;
    // Lost executors are looked for a few times per timeout.
    config.expire_dead_executor_interval_seconds = (args.executor_timeout / 3).clamp(1, 15);
    config.validate().map_err(|e| anyhow::anyhow!("scheduler configuration: {e}"))?;
    let config = Arc::new(config);
    let cluster =
        BallistaCluster::new_from_config(&config).await.map_err(|e| anyhow::anyhow!("scheduler state: {e}"))?;
    let scheduler =
        create_scheduler(cluster, config).await.map_err(|e| anyhow::anyhow!("starting the scheduler: {e}"))?;
    // Plans travel as DataFusion's own protobuf nodes (the default codec),
    // which fixes the server's plan types.
    let _: &BallistaCodec = &scheduler.state.codec;
    tracing::info!(address = %local, advertised = %format!("{host}:{}", local.port()), "Scheduler started.");
    println!("scheduler listening on {local}");
    tokio::select! {
        served = start_grpc_service_with_listener(listener, scheduler) => {
            served.map_err(|e| anyhow::anyhow!("the scheduler stopped: {e}"))?;
        }
        () = shutdown_signal() => tracing::info!("Scheduler stopping on a signal."),
    }
    println!("scheduler stopped");
    Ok(())
}

/// The session of every query the scheduler plans: Ballista's own state
/// (its optimizer rules and functions) with the H3 functions, over stroom's
/// object stores (one registry for the scheduler's lifetime, so that S3
/// clients are built once).
fn session_builder(objects: Arc<dyn ObjectStoreRegistry>) -> SessionBuilder {
    Arc::new(move |config: SessionConfig| {
        let runtime = RuntimeEnvBuilder::new().with_object_store_registry(Arc::clone(&objects)).build_arc()?;
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_optimizer_rules(ballista_default_optimizer_rules())
            .with_scalar_functions(ballista_scalar_functions())
            .with_aggregate_functions(ballista_aggregate_functions())
            .with_window_functions(ballista_window_functions())
            .build();
        register_h3_functions(&mut state)?;
        Ok(state)
    })
}

/// Runs an executor until Ctrl-C, SIGTERM or the scheduler stops it.
pub(crate) async fn executor(args: &ExecutorArgs) -> Result<()> {
    let objects: Arc<dyn ObjectStoreRegistry> =
        Arc::new(StroomObjectStores::new(storage_options(&args.storage_options)?));
    let (scheduler_host, scheduler_port) = parse_host_port(&args.scheduler)?;
    let host = reachable_host(&args.bind, args.advertise_host.as_deref())?;
    if args.bind.port() == 0 {
        bail!("--bind needs a port: the executor registers it with the scheduler before it serves");
    }
    let grpc_port = match args.grpc_port {
        Some(port) => port,
        None => args.bind.port().checked_add(1).context("--bind port is the last one; give --grpc-port")?,
    };
    if grpc_port == 0 || grpc_port == args.bind.port() {
        bail!("--grpc-port must be a port other than the --bind port");
    }
    if args.concurrent_tasks == 0 {
        bail!("--concurrent-tasks must be at least 1");
    }
    if args.heartbeat_interval == 0 {
        bail!("--heartbeat-interval must be at least 1 second");
    }
    // A temporary folder lives as long as this function: it is removed when
    // the executor stops.
    let temporary = match &args.work_dir {
        Some(_) => None,
        None => Some(TemporaryDir(std::env::temp_dir().join(format!("stroom-executor-{}", uuid::Uuid::new_v4())))),
    };
    let work_dir = args.work_dir.clone().or_else(|| temporary.as_ref().map(|t| t.0.clone())).expect("one of the two");
    std::fs::create_dir_all(&work_dir).with_context(|| format!("creating {}", work_dir.display()))?;
    let work_dir = work_dir.to_str().context("the work folder's path is not UTF-8")?.to_owned();

    // The executor's functions: DataFusion's and Ballista's, and the H3 ones.
    let mut functions = BallistaFunctionRegistry::default();
    for function in stroom_query::h3_functions() {
        functions.scalar_functions.insert(function.name().to_owned(), Arc::new(function));
    }
    let temp_dir = work_dir.clone();
    let health = ExecutorHealth::new();
    let config = ExecutorProcessConfig {
        bind_host: args.bind.ip().to_string(),
        external_host: Some(host.clone()),
        port: args.bind.port(),
        grpc_port,
        scheduler_host: scheduler_host.clone(),
        scheduler_port,
        vcores: args.concurrent_tasks,
        work_dir: Some(work_dir.clone()),
        executor_heartbeat_interval_seconds: args.heartbeat_interval,
        override_function_registry: Some(Arc::new(functions)),
        override_config_producer: Some(Arc::new(SessionConfig::new_with_ballista)),
        override_runtime_producer: Some(Arc::new(move |_: &SessionConfig| {
            RuntimeEnvBuilder::new()
                .with_temp_file_path(temp_dir.clone())
                .with_object_store_registry(Arc::clone(&objects))
                .build_arc()
        })),
        health: health.clone(),
        ..ExecutorProcessConfig::default()
    };
    let executor_id = config.executor_id.clone();
    let scheduler = args.scheduler.clone();
    let flight = format!("{host}:{}", args.bind.port());
    let announce = tokio::spawn(async move {
        while !health.is_ready() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(%executor_id, %flight, grpc_port, "Executor registered.");
        println!("executor registered with {scheduler} (flight {flight}, gRPC port {grpc_port}, id {executor_id})");
    });
    tracing::info!(scheduler = %args.scheduler, %work_dir, "Executor starting.");
    let outcome = start_executor_process(Arc::new(config)).await;
    announce.abort();
    outcome.map_err(|e| anyhow::anyhow!("executor with scheduler {}: {e}", args.scheduler))?;
    println!("executor stopped");
    Ok(())
}

/// A folder removed when dropped.
struct TemporaryDir(std::path::PathBuf);

impl Drop for TemporaryDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(path = %self.0.display(), %error, "Could not remove the executor's work folder.");
        }
    }
}

/// `HOST:PORT` (a host name, an IPv4 address or a bracketed IPv6 one).
fn parse_host_port(text: &str) -> Result<(String, u16)> {
    let (host, port) = text.rsplit_once(':').with_context(|| format!("expected HOST:PORT, got '{text}'"))?;
    let port: u16 = port.parse().with_context(|| format!("'{port}' is not a port (in '{text}')"))?;
    if host.is_empty() || port == 0 {
        bail!("expected HOST:PORT with a host and a port other than 0, got '{text}'");
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_and_storage_options_are_checked() {
        assert_eq!(parse_host_port("127.0.0.1:50050").unwrap(), ("127.0.0.1".to_owned(), 50050));
        assert_eq!(parse_host_port("[::1]:7").unwrap(), ("[::1]".to_owned(), 7));
        for bad in ["127.0.0.1", ":50050", "host:0", "host:port"] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
        let ok = storage_options(&[("aws_endpoint_url".into(), "http://127.0.0.1:9000".into())]).unwrap();
        assert_eq!(ok.len(), 1);
        let error = storage_options(&[("aws_endpiont_url".into(), "x".into())]).unwrap_err();
        assert!(error.to_string().contains("aws_endpiont_url"), "{error}");
        let any: SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert!(reachable_host(&any, None).is_err());
        assert_eq!(reachable_host(&any, Some("node-1")).unwrap(), "node-1");
    }
}
