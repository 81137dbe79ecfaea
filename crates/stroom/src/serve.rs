//! `stroom serve`, `stroom keys` and `stroom openapi`: the REST API over a
//! store, answered by `stroom-pipeline`'s `StoreBackend`.

use crate::location::{EngineArgs, StoreArgs};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use stroom_api::{ApiConfig, KeyFile, Role};
use stroom_pipeline::{Capacities, DEFAULT_ALERT_LEVEL, StoreBackend, load_routes};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) addr: SocketAddr,
    /// The key file (`stroom keys create` writes it).
    #[arg(long, default_value = "keys.toml")]
    pub(crate) keys: PathBuf,
    /// The audit log (JSON lines, appended).
    #[arg(long, default_value = "audit.jsonl")]
    pub(crate) audit: PathBuf,
    /// The job journal (JSON lines): backtest and refresh jobs are recorded
    /// there and still answered after a restart (a job the server was
    /// running when it stopped is reported as interrupted).
    #[arg(long, default_value = "jobs.jsonl")]
    pub(crate) jobs: PathBuf,
    /// Folder of route files; the shipped routes when omitted.
    #[arg(long)]
    pub(crate) routes: Option<PathBuf>,
    /// The station capacities (TOML, `[stations.ID]` with `daily` and/or
    /// `weekly`); created by the first `PUT /v1/stations/{station}/capacity`.
    #[arg(long, default_value = "capacities.toml")]
    pub(crate) capacities: PathBuf,
    /// The probability of exceeding a capacity at which an alert opens.
    #[arg(long, default_value_t = DEFAULT_ALERT_LEVEL)]
    pub(crate) alert_level: f64,
    /// A URL that gets a JSON POST when an alert opens or closes (repeatable).
    #[arg(long = "webhook")]
    pub(crate) webhooks: Vec<String>,
    /// Longest time a request may take, in milliseconds, before it is answered with 503.
    #[arg(long, default_value_t = 60_000)]
    pub(crate) request_timeout_ms: u64,
    /// Largest file `POST /v1/ingest/…` takes, in MiB (after any
    /// Content-Encoding is undone); 413 beyond it.
    #[arg(long, default_value_t = 1024)]
    pub(crate) upload_limit_mib: u64,
    /// Longest time an upload and its ingest may take, in seconds.
    #[arg(long, default_value_t = 1800)]
    pub(crate) upload_timeout_s: u64,
    /// How often the key file is checked for changes (revoked, expired or
    /// new keys take effect without a restart), in milliseconds; SIGHUP
    /// checks it at once.
    #[arg(long, default_value_t = 1000)]
    pub(crate) key_check_interval_ms: u64,
    /// Keep the forecasts current: `auto` checks every 10 s whether the
    /// data (density, arrivals) changed since the served run and, if so,
    /// makes a new run as a refresh job; an interval (30s, 5m, 1h) sets how
    /// often; `off` leaves refreshes to an admin.
    #[arg(long, default_value = "off")]
    pub(crate) refresh: String,
    /// A local folder for uploads before they are ingested; the system's
    /// temporary folder when omitted.
    #[arg(long)]
    pub(crate) upload_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key: prints the new token alone on stdout (once) and stores only its hash.
    Create {
        /// viewer, analyst, ingest or admin.
        #[arg(long)]
        role: Role,
        /// Routes the key may see (comma-separated); every route when omitted.
        #[arg(long, value_delimiter = ',')]
        routes: Vec<String>,
        /// When the key stops working: a duration from now (90d, 12h, 30m,
        /// 2w) or a time (RFC 3339, or YYYY-MM-DD for its midnight UTC);
        /// never when omitted.
        #[arg(long)]
        expires: Option<String>,
        /// The key file.
        #[arg(long, default_value = "keys.toml")]
        keys: PathBuf,
    },
    /// Revoke a key: a running server refuses its token within seconds (it
    /// reads the key file again when it changes). The key stays listed, so
    /// that its refusals are logged under its id.
    Revoke {
        /// The key's id (see `stroom keys list`).
        id: String,
        /// The key file.
        #[arg(long, default_value = "keys.toml")]
        keys: PathBuf,
    },
    /// List the keys of a key file (ids, roles, state, expiry, routes; never tokens).
    List {
        /// The key file.
        #[arg(long, default_value = "keys.toml")]
        keys: PathBuf,
    },
}

pub(crate) fn keys(command: &KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Create { role, routes, expires, keys } => {
            let known = load_routes(None)?;
            for id in routes {
                if !known.iter().any(|r| r.id == *id) {
                    bail!("--routes: there is no route '{id}'");
                }
            }
            let scope = (!routes.is_empty()).then(|| routes.iter().cloned().collect::<BTreeSet<_>>());
            let now = chrono::Utc::now();
            let created = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let expires = expires
                .as_deref()
                .map(|text| stroom_api::expiry(text, now).map_err(|e| anyhow::anyhow!("--expires: {e}")))
                .transpose()?
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            let (token, record) = KeyFile::create_key(keys, *role, scope, created, expires)?;
            println!("{token}");
            let until = record.expires.as_deref().map(|t| format!(", expires {t}")).unwrap_or_default();
            eprintln!(
                "created key {} ({}{until}) in {}; the token above is shown only once",
                record.id,
                role.as_str(),
                keys.display()
            );
            Ok(())
        }
        KeysCommand::Revoke { id, keys } => {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let record = KeyFile::revoke(keys, id, now)?;
            eprintln!(
                "key {} ({}) revoked at {} in {}",
                record.id,
                record.role.as_str(),
                record.revoked.as_deref().unwrap_or_default(),
                keys.display()
            );
            Ok(())
        }
        KeysCommand::List { keys } => {
            let file = KeyFile::load(keys)?;
            let now = chrono::Utc::now();
            for key in &file.keys {
                let routes = key
                    .routes
                    .as_ref()
                    .map_or("all routes".to_owned(), |r| r.iter().cloned().collect::<Vec<_>>().join(","));
                let state = match key.state(now) {
                    stroom_api::KeyState::Active => match &key.expires {
                        Some(at) => format!("active until {at}"),
                        None => "active".to_owned(),
                    },
                    stroom_api::KeyState::Revoked(at) => format!("revoked {at}"),
                    stroom_api::KeyState::Expired(at) => format!("expired {at}"),
                };
                println!("{:<18} {:<8} {:<24} {:<36} {}", key.id, key.role.as_str(), key.created, state, routes);
            }
            Ok(())
        }
    }
}

/// Serves until Ctrl-C or SIGTERM.
pub(crate) async fn serve(args: &ServeArgs, announce: impl FnOnce(SocketAddr)) -> Result<()> {
    let shutdown = shutdown_signal();
    let routes = load_routes(args.routes.as_deref())?;
    args.store.open().await?;
    let keys = KeyFile::load(&args.keys)?;
    if keys.keys.is_empty() {
        eprintln!("warning: {} holds no key; create one with `stroom keys create`", args.keys.display());
    }
    let listener =
        tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("listening on {}", args.addr))?;
    let local = listener.local_addr()?;
    if args.request_timeout_ms == 0 {
        bail!("--request-timeout-ms must be at least 1");
    }
    if args.upload_limit_mib == 0 || args.upload_timeout_s == 0 || args.key_check_interval_ms == 0 {
        bail!("--upload-limit-mib, --upload-timeout-s and --key-check-interval-ms must be at least 1");
    }
    if let Some(dir) = &args.upload_dir {
        if !dir.is_dir() {
            bail!("--upload-dir {} is not a folder", dir.display());
        }
    }
    if !(args.alert_level > 0.0 && args.alert_level < 1.0) {
        bail!("--alert-level {} must be between 0 and 1 (exclusive)", args.alert_level);
    }
    for url in &args.webhooks {
        let parsed = url::Url::parse(url).with_context(|| format!("--webhook {url} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("--webhook {url}: only http and https URLs are supported");
        }
    }
    let capacities = Capacities::load(&args.capacities)?;
    let backend = Arc::new(
        StoreBackend::new(args.store.location.clone(), args.store.options(), args.engine.engine(), routes)
            .with_capacities(capacities, args.alert_level),
    );
    let config = ApiConfig {
        keys,
        keys_file: Some(args.keys.clone()),
        key_check_interval: std::time::Duration::from_millis(args.key_check_interval_ms),
        refresh_every: stroom_api::parse_refresh(&args.refresh).map_err(|e| anyhow::anyhow!("--refresh: {e}"))?,
        audit_log: Some(args.audit.clone()),
        jobs_journal: Some(args.jobs.clone()),
        request_timeout: std::time::Duration::from_millis(args.request_timeout_ms),
        webhooks: args.webhooks.clone(),
        upload_limit: args.upload_limit_mib.saturating_mul(1 << 20),
        upload_timeout: std::time::Duration::from_secs(args.upload_timeout_s),
        upload_dir: args.upload_dir.clone(),
        ..ApiConfig::default()
    };
    println!("listening on http://{local}");
    announce(local);
    stroom_api::serve(listener, backend, config, shutdown).await?;
    println!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM (the server's, and the cluster processes').
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    // The handlers are installed now, not when the future is first polled,
    // so that a signal that comes while the server starts stops it cleanly.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let (terminate, interrupt) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
        async move {
            async fn wait(signal: Option<Signal>) {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = wait(terminate) => {},
                () = wait(interrupt) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
