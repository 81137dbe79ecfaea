//! The server: the middleware every request passes through (request ids,
//! tracing, key lookup, audit, metrics, compression, timeouts, body limit),
//! the router, the reloading of the forecast snapshot, and graceful
//! shutdown.
//!
//! Middleware, outermost first: request id, tracing, request-id
//! propagation, `observe` (key lookup, audit, metrics), `catch_panics` (a
//! panic below, e.g. in the query engine on a damaged file, becomes a 500
//! problem instead of a dropped connection), compression, timeout (a 503),
//! body limit (axum's `DefaultBodyLimit`, whose rejection the handler turns
//! into a 413 problem). `observe` turns a bare error from a layer into a
//! problem document, so every error is `application/problem+json`. The
//! `forecasts` table's version is checked every `poll_interval` (two
//! seconds by default) and the snapshot reloaded when it changed.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::audit::AuditEntry;
use crate::backend::Backend;
use crate::state::{ApiConfig, AppState, Caller, state};
use crate::{ApiError, handlers};

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
    let keys = state.keys.current();
    let caller = bearer(request.headers()).and_then(|token| keys.authenticate(token)).map(|key| {
        let refused = Some(key.state(chrono::Utc::now())).filter(|s| *s != crate::auth::KeyState::Active);
        Caller { key: Arc::new(key.clone()), refused }
    });
    if let Some(caller) = &caller {
        request.extensions_mut().insert(caller.clone());
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
        let key = caller.as_ref().map(|c| &c.key);
        audit.record(&AuditEntry {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            key_id: key.map(|k| k.id.as_str()),
            role: key.map(|k| k.role.as_str()),
            key_state: caller.as_ref().and_then(|c| c.refused.as_ref()).map(|s| s.as_str()),
            method: &method,
            path: &path,
            query: query.as_deref(),
            status,
            latency_ms: latency.as_secs_f64() * 1e3,
            request_id: request_id.as_deref(),
            upload: response.extensions().get::<crate::upload::UploadAudit>(),
        });
    }
    response
}

/// Reads the key file again when its bytes change: checked every
/// `key_check_interval` and at once on SIGHUP.
async fn check_keys(state: Arc<AppState>) {
    let mut ticks = tokio::time::interval(state.config.key_check_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    // Each failure is logged once, not every second.
    let mut failing = false;
    loop {
        #[cfg(unix)]
        {
            let hangup = async {
                match hangups.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = ticks.tick() => {}
                _ = hangup => tracing::info!("SIGHUP: checking the key file."),
            }
        }
        #[cfg(not(unix))]
        ticks.tick().await;
        match state.keys.check() {
            Ok(Some(count)) => {
                failing = false;
                tracing::info!(keys = count, "The key file changed; its keys are in force.");
            }
            Ok(None) => failing = false,
            Err(error) if !failing => {
                failing = true;
                tracing::error!(%error, "The key file could not be read again.");
            }
            Err(_) => {}
        }
    }
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

/// The router with every endpoint and the middleware.
fn app(state: Arc<AppState>) -> Router {
    let timeout = state.config.request_timeout;
    let upload_timeout = state.config.upload_timeout;
    let body_limit = state.config.body_limit;
    let uploads = handlers::upload_routes()
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, upload_timeout))
        .layer(RequestDecompressionLayer::new());
    handlers::routes()
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .merge(uploads)
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
    let uploads = config.upload_dir.clone().unwrap_or_else(std::env::temp_dir);
    let stale = crate::upload::remove_stale(&uploads, config.upload_timeout);
    if stale > 0 {
        tracing::info!(folders = stale, under = %uploads.display(), "Removed upload folders left by a stopped server.");
    }
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
    let key_checker = tokio::spawn(check_keys(state.clone()));
    let refresher = state
        .config
        .refresh_every
        .map(|every| tokio::spawn(crate::refresh::refresh_automatically(state.clone(), every)));
    let served = axum::serve(listener, app(state.clone())).with_graceful_shutdown(shutdown).await;
    poller.abort();
    key_checker.abort();
    if let Some(refresher) = refresher {
        refresher.abort();
    }
    if let Some(audit) = &state.audit {
        audit.close();
    }
    served.map_err(|e| ApiError::Internal(format!("serving: {e}")))
}
