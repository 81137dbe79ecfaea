//! The server: shared state, the middleware every request passes through
//! (request ids, tracing, key lookup, audit, metrics, compression,
//! timeouts, body limit), the forecast snapshot and its reloading, and
//! graceful shutdown.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use stroom_core::{DEFAULT_BUFFER_RINGS, DEFAULT_ROUTE_RESOLUTION, Resolution, Route};
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::audit::{AuditEntry, AuditLog};
use crate::auth::{KeyFile, KeyRecord, Permission};
use crate::backend::{Backend, ForecastSnapshot};
use crate::dto::{BacktestJob, RefreshJob};
use crate::{ApiError, handlers};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The keys that may call the API.
    pub keys: KeyFile,
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
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            keys: KeyFile::default(),
            audit_log: None,
            request_timeout: Duration::from_secs(60),
            body_limit: 64 * 1024,
            poll_interval: Duration::from_secs(2),
            max_jobs: 8,
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
    pub(crate) keys: KeyFile,
    pub(crate) config: ApiConfig,
    audit: Option<AuditLog>,
    pub(crate) metrics: crate::metrics::Metrics,
    snapshot: RwLock<Arc<Snapshot>>,
    pub(crate) jobs: Jobs,
    /// Each route's cells at the route resolution, for scoping cell queries.
    pub(crate) route_cells: HashMap<String, BTreeSet<u64>>,
    pub(crate) openapi: String,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("keys", &self.keys.keys.len()).finish_non_exhaustive()
    }
}

/// The key that authenticated a request, as an index into the key file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller(pub(crate) usize);

impl AppState {
    /// The current forecast snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The caller's key, if it has `permission`.
    pub(crate) fn require(&self, caller: Option<Caller>, permission: Permission) -> Result<&KeyRecord, ApiError> {
        let key = caller.and_then(|c| self.keys.keys.get(c.0)).ok_or(ApiError::Unauthorized)?;
        if key.role.allows(permission) {
            Ok(key)
        } else {
            let action = match permission {
                Permission::ReadForecasts => "read forecasts, routes or maps",
                Permission::ReadSeries => "read density series",
                Permission::RunBacktests => "run or read backtests",
                Permission::Administer => "administer the server",
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
        Ok(true)
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Looks up the key, runs the request, then counts it and writes it to the
/// audit log.
async fn observe(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let caller = bearer(request.headers()).and_then(|token| state.keys.authenticate_index(token));
    if let Some(index) = caller {
        request.extensions_mut().insert(Caller(index));
    }
    let mut response = next.run(request).await;
    let status = response.status();
    if (status.is_client_error() || status.is_server_error()) && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        // A bare error from a layer (the timeout, the body limit) becomes a
        // problem document like every other error.
        response = bare_problem(status, &state.config);
    }
    let latency = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.record(&method, &route, status, latency);
    if let Some(audit) = &state.audit {
        let key = caller.and_then(|i| state.keys.keys.get(i));
        audit.record(&AuditEntry {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            key_id: key.map(|k| k.id.as_str()),
            role: key.map(|k| k.role.as_str()),
            method: &method,
            path: &path,
            query: query.as_deref(),
            status,
            latency_ms: latency.as_secs_f64() * 1e3,
            request_id: request_id.as_deref(),
        });
    }
    response
}

/// The problem document for an error a middleware layer answered with no body.
fn bare_problem(status: StatusCode, config: &ApiConfig) -> Response {
    let detail = match status {
        StatusCode::SERVICE_UNAVAILABLE => {
            format!("the request took longer than the server allows ({} s)", config.request_timeout.as_secs_f64())
        }
        other if other.is_server_error() => "The server failed to answer this request.".to_owned(),
        other => other.canonical_reason().unwrap_or("the request was refused").to_owned(),
    };
    crate::error::problem_response(&crate::dto::Problem {
        problem_type: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
    })
}

/// Turns a panic anywhere below (a handler, the query engine) into a 500
/// problem instead of a dropped connection; the panic message is logged.
async fn catch_panics(request: Request, next: Next) -> Response {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            ApiError::Internal(format!("a request handler panicked: {message}")).into_response()
        }
    }
}

/// Builds the state: loads the forecast snapshot and opens the audit log.
async fn state(backend: Arc<dyn Backend>, config: ApiConfig) -> Result<Arc<AppState>, ApiError> {
    let audit = config.audit_log.as_deref().map(AuditLog::open).transpose()?;
    let resolution =
        Resolution::new(i64::from(DEFAULT_ROUTE_RESOLUTION)).map_err(|e| ApiError::Config(e.to_string()))?;
    let mut route_cells = HashMap::new();
    for route in backend.routes() {
        let cells = route.cells(resolution, DEFAULT_BUFFER_RINGS).map_err(|e| ApiError::Config(e.to_string()))?;
        let set: BTreeSet<u64> = cells.segments.iter().flat_map(|s| s.cells.iter().map(|c| c.to_u64())).collect();
        route_cells.insert(route.id.clone(), set);
    }
    let state = Arc::new(AppState {
        backend,
        keys: config.keys.clone(),
        config,
        audit,
        metrics: crate::metrics::Metrics::default(),
        snapshot: RwLock::new(Arc::new(Snapshot::default())),
        jobs: Jobs::default(),
        route_cells,
        openapi: crate::openapi_json(),
    });
    state.reload(true).await?;
    Ok(state)
}

/// The router with every endpoint and the middleware.
fn app(state: Arc<AppState>) -> Router {
    let timeout = state.config.request_timeout;
    let body_limit = state.config.body_limit;
    handlers::routes()
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http())
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
                .layer(axum::middleware::from_fn(catch_panics))
                .layer(CompressionLayer::new())
                .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes
/// the requests in flight, flushes the audit log and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    backend: Arc<dyn Backend>,
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    let poll_interval = config.poll_interval;
    let state = state(backend, config).await?;
    let poller = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(poll_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(error) = state.reload(false).await {
                    tracing::warn!(%error, "Checking the forecasts table failed.");
                }
            }
        })
    };
    let served = axum::serve(listener, app(state.clone())).with_graceful_shutdown(shutdown).await;
    poller.abort();
    if let Some(audit) = &state.audit {
        audit.close();
    }
    served.map_err(|e| ApiError::Internal(format!("serving: {e}")))
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
