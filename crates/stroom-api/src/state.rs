//! The state every handler shares: the configuration, the keys, the
//! forecast snapshot and its response cache, the jobs, each route's cells,
//! and the checks of a caller's role and route scope. The handlers and the
//! middleware read it; it knows neither of them.
//!
//! The snapshot holds every run of the `forecasts` table in memory; the
//! responses built from it are cached until the next reload replaces it.
//! Jobs (backtests, forecast refreshes) run one at a time; at most
//! `max_jobs` (eight by default) wait or run, and more are refused with 429.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use stroom_core::{DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution, Route};

use crate::ApiError;
use crate::audit::AuditLog;
use crate::auth::{KeyFile, KeyRecord, KeyState, Permission};
use crate::backend::{Backend, ForecastSnapshot};
use crate::dto::{BacktestJob, RefreshJob};
use sha2::Digest;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The keys that may call the API.
    pub keys: KeyFile,
    /// The file `keys` came from: read again whenever its bytes change
    /// (checked every `key_check_interval`, and on SIGHUP), so that a
    /// revoked key is refused without a restart. No reloading when `None`.
    pub keys_file: Option<PathBuf>,
    /// How often the key file is checked for changes.
    pub key_check_interval: Duration,
    /// How often to check whether the data changed since the served
    /// forecast run, and refresh it if so; no automatic refresh when `None`.
    pub refresh_every: Option<Duration>,
    /// The job journal (JSON lines): backtest and refresh jobs are recorded
    /// there, so that they are still answered after a restart. Jobs live in
    /// memory only when `None`.
    pub jobs_journal: Option<PathBuf>,
    /// Where the audit log is appended; no audit log when `None`.
    pub audit_log: Option<PathBuf>,
    /// Longest time a request may take before it is answered with a 503 problem.
    pub request_timeout: Duration,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// How often the `forecasts` table's version is checked.
    pub poll_interval: Duration,
    /// Most jobs waiting or running at once; more are refused with 429.
    pub max_jobs: usize,
    /// URLs that get a JSON `POST` when a capacity alert opens or closes.
    pub webhooks: Vec<String>,
    /// Largest uploaded file (`/v1/ingest/…`), in bytes after any
    /// `Content-Encoding` is undone; 413 beyond it.
    pub upload_limit: u64,
    /// Longest time an upload and its ingest may take (instead of
    /// `request_timeout`).
    pub upload_timeout: Duration,
    /// Where uploads are written before they are ingested (a local folder);
    /// the system's temporary folder when `None`.
    pub upload_dir: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            keys: KeyFile::default(),
            keys_file: None,
            key_check_interval: Duration::from_secs(1),
            refresh_every: None,
            jobs_journal: None,
            audit_log: None,
            request_timeout: Duration::from_secs(60),
            body_limit: 64 * 1024,
            poll_interval: Duration::from_secs(2),
            max_jobs: 8,
            webhooks: Vec::new(),
            upload_limit: 1 << 30,
            upload_timeout: Duration::from_secs(30 * 60),
            upload_dir: None,
        }
    }
}

/// A forecast snapshot with the responses already built from it; replaced
/// as a whole when the table changes, which empties the cache.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) data: ForecastSnapshot,
    cache: Mutex<HashMap<String, (HeaderValue, Bytes)>>,
}

/// Most responses kept per snapshot.
const CACHE_ENTRIES: usize = 4096;

impl Snapshot {
    /// A cached response.
    pub(crate) fn cached(&self, key: &str) -> Option<Response> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).map(|(kind, body)| ([(header::CONTENT_TYPE, kind.clone())], body.clone()).into_response())
    }

    /// Forgets every cached response (maps and pages show the alerts, which
    /// a capacity change moves within one snapshot).
    pub(crate) fn forget(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Keeps a response and returns it.
    pub(crate) fn keep(&self, key: String, kind: &'static str, body: Vec<u8>) -> Response {
        let kind = HeaderValue::from_static(kind);
        let body = Bytes::from(body);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, (kind.clone(), body.clone()));
        ([(header::CONTENT_TYPE, kind)], body).into_response()
    }
}

/// A job and the routes whose keys may read it.
#[derive(Debug, Clone)]
pub(crate) struct BacktestEntry {
    pub(crate) job: BacktestJob,
    pub(crate) routes: BTreeSet<String>,
}

/// Jobs started through the API: kept in memory; their results land in
/// the store.
#[derive(Debug)]
pub(crate) struct Jobs {
    pub(crate) backtests: Mutex<HashMap<String, BacktestEntry>>,
    pub(crate) refreshes: Mutex<HashMap<String, RefreshJob>>,
    /// Jobs queued or running.
    pub(crate) active: AtomicUsize,
    /// One job runs at a time; the others wait.
    pub(crate) worker: tokio::sync::Semaphore,
}

impl Default for Jobs {
    fn default() -> Self {
        Self {
            backtests: Mutex::default(),
            refreshes: Mutex::default(),
            active: AtomicUsize::new(0),
            worker: tokio::sync::Semaphore::new(1),
        }
    }
}

/// Everything the handlers share.
pub(crate) struct AppState {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) keys: Keys,
    pub(crate) config: ApiConfig,
    pub(crate) audit: Option<AuditLog>,
    pub(crate) metrics: crate::metrics::Metrics,
    snapshot: RwLock<Arc<Snapshot>>,
    pub(crate) jobs: Jobs,
    /// What the refreshes did.
    pub(crate) refreshes: Mutex<crate::refresh::Refreshes>,
    /// Where every job state is recorded, if anywhere.
    journal: Option<crate::journal::Journal>,
    /// Each route's cells at the route resolution, for scoping cell queries.
    pub(crate) route_cells: HashMap<String, BTreeSet<u64>>,
    pub(crate) openapi: String,
    pub(crate) notifier: crate::webhooks::Notifier,
    /// Uploads are ingested one at a time (each still commits through
    /// Delta's conflict checks, against writers outside this server).
    pub(crate) uploads: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("keys", &self.keys.current().keys.len()).finish_non_exhaustive()
    }
}

/// The keys in force, and the file they are reloaded from.
#[derive(Debug)]
pub(crate) struct Keys {
    file: Option<PathBuf>,
    current: RwLock<Arc<KeyFile>>,
    /// SHA-256 of the file's bytes when last read.
    seen: std::sync::Mutex<Option<[u8; 32]>>,
}

impl Keys {
    fn new(keys: KeyFile, file: Option<PathBuf>) -> Self {
        let seen = file.as_deref().and_then(|f| std::fs::read(f).ok()).map(|b| sha2::Sha256::digest(&b).into());
        Self { file, current: RwLock::new(Arc::new(keys)), seen: std::sync::Mutex::new(seen) }
    }

    pub(crate) fn current(&self) -> Arc<KeyFile> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the key file again if its bytes changed since it was last
    /// read. Returns how many keys are in force when it was reloaded. A
    /// file that is gone or invalid is an error, and the keys in force stay.
    pub(crate) fn check(&self) -> Result<Option<usize>, ApiError> {
        let Some(path) = &self.file else { return Ok(None) };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            // No key file and no key: as at start, nothing to read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.current().keys.is_empty() => return Ok(None),
            Err(e) => {
                return Err(ApiError::Config(format!(
                    "reading {}: {e}; the keys loaded before stay in force",
                    path.display()
                )));
            }
        };
        let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == Some(digest) {
            return Ok(None);
        }
        *seen = Some(digest);
        let keys =
            KeyFile::load(path).map_err(|e| ApiError::Config(format!("{e}; the keys loaded before stay in force")))?;
        let count = keys.keys.len();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        Ok(Some(count))
    }
}

/// The key that a request's token matched, and whether it is refused
/// (revoked or expired).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) key: Arc<KeyRecord>,
    pub(crate) refused: Option<KeyState>,
}

impl AppState {
    /// Records a backtest job's state in the journal.
    pub(crate) fn journal_backtest(&self, entry: &BacktestEntry) {
        if let Some(journal) = &self.journal {
            journal.record(&crate::journal::Entry::Backtest { job: entry.job.clone(), routes: entry.routes.clone() });
        }
    }

    /// Records a refresh job's state in the journal.
    pub(crate) fn journal_refresh(&self, job: &RefreshJob) {
        if let Some(journal) = &self.journal {
            journal.record(&crate::journal::Entry::Refresh { job: job.clone() });
        }
    }

    /// The current forecast snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The caller's key, if it has `permission`.
    pub(crate) fn require(&self, caller: Option<Caller>, permission: Permission) -> Result<Arc<KeyRecord>, ApiError> {
        let Caller { key, refused } = caller.ok_or(ApiError::Unauthorized)?;
        match refused {
            Some(KeyState::Revoked(at)) => {
                return Err(ApiError::KeyRefused(format!("key '{}' was revoked at {at}", key.id)));
            }
            Some(KeyState::Expired(at)) => {
                return Err(ApiError::KeyRefused(format!("key '{}' expired at {at}", key.id)));
            }
            Some(KeyState::Active) | None => {}
        }
        if key.role.allows(permission) {
            Ok(key)
        } else {
            let action = match permission {
                Permission::ReadForecasts => "read forecasts, routes or maps",
                Permission::ReadSeries => "read density series",
                Permission::RunBacktests => "run or read backtests",
                Permission::Administer => "administer the server",
                Permission::Deliver => "upload data",
            };
            Err(ApiError::Forbidden { role: key.role.as_str(), action })
        }
    }

    /// A route the key may see: 404 when there is no such route, 403 when
    /// the key's scope excludes it.
    pub(crate) fn route(&self, id: &str, key: &KeyRecord) -> Result<&Route, ApiError> {
        let route = self
            .backend
            .routes()
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| ApiError::NotFound(format!("there is no route '{id}'")))?;
        if key.sees_route(id) { Ok(route) } else { Err(ApiError::RouteForbidden(id.to_owned())) }
    }

    /// Loads the forecasts again when the table's version changed (or when
    /// `force`). Returns whether the snapshot changed.
    pub(crate) async fn reload(&self, force: bool) -> Result<bool, ApiError> {
        let version = self.backend.forecasts_version().await.map_err(|e| ApiError::Internal(e.to_string()))?;
        let current = self.snapshot();
        if !force && version == current.data.version {
            return Ok(false);
        }
        let data = self.backend.forecasts().await.map_err(|e| ApiError::Internal(e.to_string()))?;
        tracing::info!(version = ?data.version, runs = data.runs.len(), "Loaded the forecast snapshot.");
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Snapshot { data, ..Snapshot::default() });
        self.check_alerts().await;
        Ok(true)
    }

    /// Derives the alerts again and tells the webhooks what opened or
    /// closed (nothing without webhooks). A failure is logged: alerts are
    /// still served from the endpoint, which derives them itself.
    pub(crate) async fn check_alerts(&self) {
        if !self.notifier.is_active() {
            return;
        }
        let snapshot = self.snapshot();
        match self.backend.alerts(&snapshot.data).await {
            Ok((_, alerts)) => self.notifier.observe(&alerts),
            Err(error) => tracing::error!(%error, "Deriving the capacity alerts failed."),
        }
    }
}

/// Builds the state: loads the forecast snapshot and opens the audit log.
pub(crate) async fn state(backend: Arc<dyn Backend>, config: ApiConfig) -> Result<Arc<AppState>, ApiError> {
    let audit = config.audit_log.as_deref().map(AuditLog::open).transpose()?;
    let webhooks = config.webhooks.clone();
    let resolution =
        Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION)).map_err(|e| ApiError::Config(e.to_string()))?;
    let mut route_cells = HashMap::new();
    for route in backend.routes() {
        let cells = route.cells(resolution, DEFAULT_BUFFER_RINGS).map_err(|e| ApiError::Config(e.to_string()))?;
        let set: BTreeSet<u64> = cells.segments.iter().flat_map(|s| s.cells.iter().map(|c| c.to_u64())).collect();
        route_cells.insert(route.id.clone(), set);
    }
    let jobs = Jobs::default();
    let journal = match &config.jobs_journal {
        Some(path) => {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let (journal, entries) = crate::journal::Journal::open(path, &now)?;
            for entry in entries {
                match entry {
                    crate::journal::Entry::Backtest { job, routes } => {
                        jobs.backtests
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(job.id.clone(), BacktestEntry { job, routes });
                    }
                    crate::journal::Entry::Refresh { job } => {
                        jobs.refreshes.lock().unwrap_or_else(|p| p.into_inner()).insert(job.id.clone(), job);
                    }
                }
            }
            Some(journal)
        }
        None => None,
    };
    let state = Arc::new(AppState {
        backend,
        keys: Keys::new(config.keys.clone(), config.keys_file.clone()),
        config,
        audit,
        metrics: crate::metrics::Metrics::default(),
        snapshot: RwLock::new(Arc::new(Snapshot::default())),
        jobs,
        refreshes: Mutex::default(),
        journal,
        route_cells,
        openapi: crate::openapi_json(),
        notifier: crate::webhooks::Notifier::new(webhooks),
        uploads: tokio::sync::Mutex::new(()),
    });
    state.reload(true).await?;
    Ok(state)
}

/// Counts a job as active, unless too many are.
pub(crate) fn admit_job(state: &AppState) -> Result<(), ApiError> {
    let active = state.jobs.active.fetch_add(1, Ordering::SeqCst);
    if active >= state.config.max_jobs {
        state.jobs.active.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::Busy(format!("{active} jobs are queued or running; try again later")));
    }
    Ok(())
}
