//! The endpoints. Each checks the caller's permission and route scope,
//! validates its parameters (naming the parameter and the value when one is
//! wrong), asks the [`Backend`](crate::Backend) or the forecast snapshot,
//! and converts the answer to its wire type.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde_json::json;
use stroom_core::{Cell, Route};

use crate::ApiError;
use crate::auth::{KeyRecord, Permission};
use crate::backend::{BackendError, MapFormat};
use crate::dto::*;
use crate::state::{AppState, BacktestEntry, Caller, admit_job};

type Shared = State<Arc<AppState>>;

/// The longest horizon a forecast has.
const MAX_HORIZON: u32 = 28;
/// The longest daily series served at once.
const MAX_SERIES_DAYS: i64 = 366;
/// The longest hourly series served at once.
const MAX_HOURLY_DAYS: i64 = 31;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/routes", get(list_routes))
        .route("/v1/routes/{route}", get(route_detail))
        .route("/v1/routes/{route}/forecast", get(route_forecast))
        .route("/v1/stations/{station}/forecast", get(station_forecast))
        .route("/v1/stations/{station}/capacity", get(station_capacity).put(set_station_capacity))
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/routes/{route}/series", get(route_series))
        .route("/v1/routes/{route}/nowcast", get(route_nowcast))
        .route("/v1/cells/{cell}/series", get(cell_series))
        .route("/v1/backtests", post(start_backtest))
        .route("/v1/backtests/{id}", get(backtest_status))
        .route("/v1/forecasts/refresh", post(start_refresh))
        .route("/v1/forecasts/refresh/{id}", get(refresh_status))
        .route("/v1/routes/{route}/map.geojson", get(map_geojson))
        .route("/v1/routes/{route}/map.svg", get(map_svg))
        .route("/v1/routes/{route}/map.png", get(map_png))
        .route("/v1/routes/{route}/briefing.html", get(briefing))
        .route("/v1/scenarios", post(create_scenario).get(list_scenarios))
        .route("/v1/scenarios/{id}", get(scenario_detail))
        .route("/v1/scenarios/{id}/page.html", get(scenario_page))
}

/// The upload endpoints, which the server gives a longer timeout and
/// request decompression.
pub(crate) fn upload_routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/ingest/density", post(ingest_density)).route("/v1/ingest/arrivals", post(ingest_arrivals))
}

/// The caller's key, when the request's token is a key's.
pub(crate) struct Key(Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for Key {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Key(parts.extensions.get::<Caller>().cloned()))
    }
}

/// A query string, whose errors become 400 problems naming the parameter.
pub(crate) struct Q<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Q(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

/// A path parameter, whose errors become 400 problems.
pub(crate) struct P(String);

impl<S: Send + Sync> FromRequestParts<S> for P {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(P(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(error: BackendError) -> Self {
        match error {
            BackendError::NotFound(text) => ApiError::NotFound(text),
            BackendError::Invalid(text) => ApiError::BadRequest(text),
            BackendError::BadInput(text) => ApiError::Unprocessable(text),
            BackendError::Failed(text) => ApiError::Internal(text),
        }
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("there is no such endpoint; see /openapi.json".into())
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn json_body<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::Internal(format!("serialising a response: {e}")))
}

fn wants_csv(format: Option<Format>, headers: &HeaderMap) -> bool {
    match format {
        Some(format) => format == Format::Csv,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/csv") && !accept.contains("application/json")),
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

fn parse_date(name: &str, text: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ApiError::BadRequest(format!("{name}='{text}' is not a date (YYYY-MM-DD)")))
}

fn date_range(from: &str, to: &str, max_days: i64) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let (from_date, to_date) = (parse_date("from", from)?, parse_date("to", to)?);
    if from_date >= to_date {
        return Err(ApiError::BadRequest(format!("from={from} must be before to={to} (to is exclusive)")));
    }
    if (to_date - from_date).num_days() > max_days {
        return Err(ApiError::BadRequest(format!(
            "from={from} to to={to} spans more than {max_days} days; ask for a shorter range"
        )));
    }
    Ok((from_date, to_date))
}

fn check_horizon(horizon: Option<u32>) -> Result<Option<u32>, ApiError> {
    match horizon {
        Some(h) if !(1..=MAX_HORIZON).contains(&h) => {
            Err(ApiError::BadRequest(format!("horizon={h} must be between 1 and {MAX_HORIZON}")))
        }
        other => Ok(other),
    }
}

/// Whether a forecast target belongs to a route: a station of the route or
/// one of its segments.
fn route_has_target(route: &Route, target: &str) -> bool {
    if let Some(station) = target.strip_prefix("station:") {
        route.stations.iter().any(|s| s.id == station)
    } else if let Some(rest) = target.strip_prefix("segment:") {
        rest.split_once('/').is_some_and(|(r, _)| r == route.id)
    } else {
        false
    }
}

fn truncated(target: &TargetForecast, horizon: Option<u32>, explain: bool) -> TargetForecast {
    let mut target = target.clone();
    if let Some(h) = horizon {
        target.forecasts.retain(|row| row.horizon <= h);
    }
    if !explain {
        for row in &mut target.forecasts {
            row.parts = None;
        }
    }
    target
}

/// Whether the parts are asked for: JSON only.
fn explained(explain: Option<bool>, csv: bool) -> Result<bool, ApiError> {
    match (explain, csv) {
        (Some(true), true) => Err(ApiError::BadRequest("explain=true is served as JSON only, not as CSV".into())),
        (explain, _) => Ok(explain.unwrap_or(false)),
    }
}

fn served_horizon(targets: &[TargetForecast]) -> u32 {
    targets.iter().flat_map(|t| t.forecasts.iter().map(|r| r.horizon)).max().unwrap_or(0)
}

fn forecast_csv(run_id: &str, targets: &[TargetForecast]) -> Vec<u8> {
    let mut out =
        String::from("run_id,target,station,model,chosen,cutoff,date,horizon,mean,q10,q50,q90,lo80,hi80,lo95,hi95\n");
    for t in targets {
        for r in &t.forecasts {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                csv_field(run_id),
                csv_field(&t.target),
                csv_field(&t.station),
                csv_field(&t.model),
                csv_field(t.chosen.as_deref().unwrap_or("")),
                t.cutoff,
                r.date,
                r.horizon,
                r.mean,
                r.q10,
                r.q50,
                r.q90,
                r.lo80,
                r.hi80,
                r.lo95,
                r.hi95
            ));
        }
    }
    out.into_bytes()
}

/// A forecast response's content type and body: CSV rows, or the JSON
/// document `document` makes of the targets.
fn forecast_body<T: serde::Serialize>(
    csv: bool,
    run_id: &str,
    targets: Vec<TargetForecast>,
    document: impl FnOnce(Vec<TargetForecast>) -> T,
) -> Result<(&'static str, Vec<u8>), ApiError> {
    if csv {
        Ok(("text/csv; charset=utf-8", forecast_csv(run_id, &targets)))
    } else {
        Ok(("application/json", json_body(&document(targets))?))
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The server is alive.", body = Health)))]
pub(crate) async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into() })
}

/// Readiness: the forecast snapshot is loaded and requests can be served.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, description = "The server is ready.", body = Ready)))]
pub(crate) async fn readyz(state: Shared) -> axum::Json<Ready> {
    let snapshot = state.snapshot();
    axum::Json(Ready {
        status: "ready".into(),
        forecasts_version: snapshot.data.version,
        forecast_runs: snapshot.data.runs.len(),
        refresh: state.refresh_status(),
    })
}

/// Request counts and latencies, forecast runs and jobs (admin).
#[utoipa::path(get, path = "/metrics", tag = "admin",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4.", content_type = "text/plain", body = String),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key is not an admin key.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn metrics(state: Shared, Key(caller): Key) -> Result<Response, ApiError> {
    state.require(caller, Permission::Administer)?;
    let snapshot = state.snapshot();
    let mut gauges = vec![
        ("stroom_forecast_runs", "Forecast runs served from memory.", snapshot.data.runs.len() as f64),
        (
            "stroom_forecasts_table_version",
            "Version of the forecasts table served (-1 before it exists).",
            snapshot.data.version.map_or(-1.0, |v| v as f64),
        ),
        ("stroom_jobs_active", "Jobs queued or running.", state.jobs.active.load(Ordering::SeqCst) as f64),
    ];
    gauges.extend(state.refresh_gauges());
    let text = state.metrics.render(&gauges);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

/// This document: the OpenAPI 3.1 contract of the API.
#[utoipa::path(get, path = "/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi(state: Shared) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi.clone()).into_response()
}

/// The routes the key may see.
#[utoipa::path(get, path = "/v1/routes", tag = "routes",
    responses(
        (status = 200, description = "The routes.", body = [RouteSummary]),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's role may not read routes.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_routes(state: Shared, Key(caller): Key) -> Result<axum::Json<Vec<RouteSummary>>, ApiError> {
    let key = state.require(caller, Permission::ReadForecasts)?;
    Ok(axum::Json(
        state
            .backend
            .routes()
            .iter()
            .filter(|r| key.sees_route(&r.id))
            .map(|r| RouteSummary {
                id: r.id.clone(),
                name: r.name.clone(),
                destination: r.destination().id.clone(),
                stations: r.stations.len(),
                segments: r.segments.len(),
            })
            .collect(),
    ))
}

/// A route: stations, segments and geometry.
#[utoipa::path(get, path = "/v1/routes/{route}", tag = "routes",
    params(("route" = String, Path, description = "The route id.", example = "channel")),
    responses(
        (status = 200, description = "The route.", body = RouteDetail),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not see the route.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such route.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn route_detail(
    state: Shared,
    Key(caller): Key,
    P(id): P,
) -> Result<axum::Json<RouteDetail>, ApiError> {
    let key = state.require(caller, Permission::ReadForecasts)?;
    let route = state.route(&id, &key)?;
    let mut features = Vec::new();
    for segment in &route.segments {
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": segment.waypoints.iter().map(|(lat, lng)| [*lng, *lat]).collect::<Vec<_>>()},
            "properties": {"kind": "segment", "id": segment.id, "name": segment.name, "from": segment.from, "to": segment.to, "mode": segment.mode.as_str()},
        }));
    }
    for station in &route.stations {
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [station.lng, station.lat]},
            "properties": {"kind": "station", "id": station.id, "name": station.name, "country": station.country, "role": station.role.as_str()},
        }));
    }
    Ok(axum::Json(RouteDetail {
        id: route.id.clone(),
        name: route.name.clone(),
        description: route.description.clone(),
        destination: route.destination().id.clone(),
        stations: route
            .stations
            .iter()
            .map(|s| StationDto {
                id: s.id.clone(),
                name: s.name.clone(),
                country: s.country.clone(),
                role: s.role.as_str().to_owned(),
                lat: s.lat,
                lng: s.lng,
            })
            .collect(),
        segments: route
            .segments
            .iter()
            .map(|s| SegmentDto {
                id: s.id.clone(),
                name: s.name.clone(),
                from: s.from.clone(),
                to: s.to.clone(),
                mode: s.mode.as_str().to_owned(),
            })
            .collect(),
        geometry: json!({"type": "FeatureCollection", "features": features}),
    }))
}

/// A route's forecasts from its latest run (or the given run): per target
/// and day, the mean, quantiles and intervals, with run id, model, data
/// vintage and generation time.
#[utoipa::path(get, path = "/v1/routes/{route}/forecast", tag = "forecasts",
    params(("route" = String, Path, description = "The route id.", example = "channel"), RouteForecastQuery),
    responses(
        (status = 200, description = "The forecasts.", content(
            (RouteForecast = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not see the route.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such route, run, or forecast of the route.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn route_forecast(
    state: Shared,
    Key(caller): Key,
    P(id): P,
    Q(query): Q<RouteForecastQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = state.require(caller, Permission::ReadForecasts)?;
    let route = state.route(&id, &key)?;
    let horizon = check_horizon(query.horizon)?;
    let csv = wants_csv(query.format, &headers);
    let explain = explained(query.explain, csv)?;
    let snapshot = state.snapshot();
    let cache_key = format!("route|{id}|{horizon:?}|{:?}|{csv}|{explain}", query.run);
    if let Some(hit) = snapshot.cached(&cache_key) {
        return Ok(hit);
    }
    let run = match &query.run {
        Some(run_id) => snapshot
            .data
            .runs
            .iter()
            .find(|r| r.run_id == *run_id)
            .ok_or_else(|| ApiError::NotFound(format!("there is no forecast run '{run_id}'")))?,
        None => snapshot
            .data
            .runs
            .iter()
            .find(|r| r.targets.iter().any(|t| route_has_target(route, &t.target)))
            .ok_or_else(|| ApiError::NotFound(format!("no forecast of route '{id}' has been made yet")))?,
    };
    let targets: Vec<TargetForecast> = run
        .targets
        .iter()
        .filter(|t| route_has_target(route, &t.target))
        .map(|t| truncated(t, horizon, explain))
        .collect();
    if targets.is_empty() {
        return Err(ApiError::NotFound(format!("run '{}' has no forecast of route '{id}'", run.run_id)));
    }
    let (kind, body) = forecast_body(csv, &run.run_id, targets, |targets| RouteForecast {
        route: id.clone(),
        run_id: run.run_id.clone(),
        generated_at: run.generated_at.clone(),
        vintage: run.vintage.clone(),
        horizon: served_horizon(&targets),
        targets,
    })?;
    Ok(snapshot.keep(cache_key, kind, body))
}

/// A station's forecasts from the latest run that forecast it.
#[utoipa::path(get, path = "/v1/stations/{station}/forecast", tag = "forecasts",
    params(("station" = String, Path, description = "The station id.", example = "dover"), StationForecastQuery),
    responses(
        (status = 200, description = "The forecasts.", content(
            (StationForecast = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not see any route through the station.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such station, or no forecast of it.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn station_forecast(
    state: Shared,
    Key(caller): Key,
    P(station): P,
    Q(query): Q<StationForecastQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = state.require(caller, Permission::ReadForecasts)?;
    let routes: Vec<&Route> =
        state.backend.routes().iter().filter(|r| r.stations.iter().any(|s| s.id == station)).collect();
    if routes.is_empty() {
        return Err(ApiError::NotFound(format!("there is no station '{station}'")));
    }
    let visible: Vec<&Route> = routes.iter().copied().filter(|r| key.sees_route(&r.id)).collect();
    if visible.is_empty() {
        return Err(ApiError::Forbidden { role: key.role.as_str(), action: "see the routes through this station" });
    }
    let horizon = check_horizon(query.horizon)?;
    let csv = wants_csv(query.format, &headers);
    let snapshot = state.snapshot();
    let scope: Vec<&str> = visible.iter().map(|r| r.id.as_str()).collect();
    let explain = explained(query.explain, csv)?;
    let cache_key = format!("station|{station}|{horizon:?}|{csv}|{explain}|{}", scope.join(","));
    if let Some(hit) = snapshot.cached(&cache_key) {
        return Ok(hit);
    }
    // The station's own target, and segment targets of visible routes that end at it.
    let wanted = |target: &str| {
        target == format!("station:{station}")
            || target.strip_prefix("segment:").and_then(|rest| rest.split_once('/')).is_some_and(|(r, s)| {
                visible.iter().any(|route| route.id == r && route.segment(s).is_some_and(|seg| seg.to == station))
            })
    };
    let run = snapshot
        .data
        .runs
        .iter()
        .find(|r| r.targets.iter().any(|t| wanted(&t.target)))
        .ok_or_else(|| ApiError::NotFound(format!("no forecast of station '{station}' has been made yet")))?;
    let targets: Vec<TargetForecast> =
        run.targets.iter().filter(|t| wanted(&t.target)).map(|t| truncated(t, horizon, explain)).collect();
    let (kind, body) = forecast_body(csv, &run.run_id, targets, |targets| StationForecast {
        station: station.clone(),
        run_id: run.run_id.clone(),
        generated_at: run.generated_at.clone(),
        vintage: run.vintage.clone(),
        horizon: served_horizon(&targets),
        targets,
    })?;
    Ok(snapshot.keep(cache_key, kind, body))
}

/// The routes through `station` that the key sees: 404 when no route has
/// the station, 403 when the key sees none of them.
fn visible_station(state: &AppState, key: &KeyRecord, station: &str) -> Result<(), ApiError> {
    let mut through = state.backend.routes().iter().filter(|r| r.stations.iter().any(|s| s.id == station)).peekable();
    if through.peek().is_none() {
        return Err(ApiError::NotFound(format!("there is no station '{station}'")));
    }
    if through.any(|r| key.sees_route(&r.id)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden { role: key.role.as_str(), action: "see the routes through this station" })
    }
}

/// A station's capacity.
#[utoipa::path(get, path = "/v1/stations/{station}/capacity", tag = "alerts",
    params(("station" = String, Path, description = "The station id.", example = "dover")),
    responses(
        (status = 200, description = "The capacity.", body = StationCapacity),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not see any route through the station.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such station, or no capacity set for it.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn station_capacity(
    state: Shared,
    Key(caller): Key,
    P(station): P,
) -> Result<axum::Json<StationCapacity>, ApiError> {
    let key = state.require(caller, Permission::ReadForecasts)?;
    visible_station(&state, &key, &station)?;
    let capacity = state.backend.capacities().into_iter().find(|c| c.station == station);
    capacity.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("no capacity is set for station '{station}'")))
}

/// Sets a station's capacity (admin): per day, per seven days, or both.
/// Alerts are recomputed from every forecast run with the new capacity.
#[utoipa::path(put, path = "/v1/stations/{station}/capacity", tag = "alerts",
    params(("station" = String, Path, description = "The station id.", example = "dover")),
    request_body = Capacity,
    responses(
        (status = 200, description = "The capacity now in force.", body = StationCapacity),
        (status = 400, description = "The capacity is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key is not an admin key.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such station.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_station_capacity(
    state: Shared,
    Key(caller): Key,
    P(station): P,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<StationCapacity>, ApiError> {
    state.require(caller, Permission::Administer)?;
    let capacity: Capacity = read_json(&state, body, "a capacity")?;
    let set = state.backend.set_capacity(&station, capacity).await?;
    state.snapshot().forget();
    state.check_alerts().await;
    Ok(axum::Json(set))
}

/// Capacity alerts of the stations on the caller's routes: for each day of
/// the latest forecast (and each seven-day window ending on it), the chance
/// that arrivals exceed the station's capacity. An alert opens when a run
/// puts it at or above the server's level and closes when a later run puts
/// it below, or when the day is observed.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts",
    params(AlertsQuery),
    responses(
        (status = 200, description = "The alerts.", body = AlertList),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not see any route through the station.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such station.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_alerts(
    state: Shared,
    Key(caller): Key,
    Q(query): Q<AlertsQuery>,
) -> Result<axum::Json<AlertList>, ApiError> {
    let key = state.require(caller, Permission::ReadForecasts)?;
    if let Some(station) = &query.station {
        visible_station(&state, &key, station)?;
    }
    let sees = |station: &str| {
        query.station.as_deref().is_none_or(|s| s == station)
            && state
                .backend
                .routes()
                .iter()
                .any(|r| key.sees_route(&r.id) && r.stations.iter().any(|s| s.id == station))
    };
    let snapshot = state.snapshot();
    let (level, alerts) = state.backend.alerts(&snapshot.data).await?;
    let wanted = query.status.unwrap_or(AlertFilter::Open);
    let alerts = alerts
        .into_iter()
        .filter(|a| sees(&a.station))
        .filter(|a| match wanted {
            AlertFilter::Open => a.status == AlertStatus::Open,
            AlertFilter::Closed => a.status == AlertStatus::Closed,
            AlertFilter::All => true,
        })
        .collect();
    let capacities = state.backend.capacities().into_iter().filter(|c| sees(&c.station)).collect();
    Ok(axum::Json(AlertList { level, capacities, alerts }))
}

/// Drops any count below k. The backend never returns one (counts below k
/// are suppressed at ingest and sums of stored counts are at least k); this
/// is the last guard before the wire.
fn above_k<T>(points: &mut Vec<T>, k: u32, devices: impl Fn(&T) -> i64) {
    let before = points.len();
    points.retain(|p| devices(p) >= i64::from(k));
    if points.len() != before {
        tracing::error!(dropped = before - points.len(), k, "Dropped counts below k before answering.");
    }
}

/// A route's daily device density per segment or around each station
/// (analyst).
#[utoipa::path(get, path = "/v1/routes/{route}/series", tag = "series",
    params(("route" = String, Path, description = "The route id.", example = "channel"), RouteSeriesQuery),
    responses(
        (status = 200, description = "The series.", content(
            (RouteSeries = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not read series or see the route.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such route, or no density data.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn route_series(
    state: Shared,
    Key(caller): Key,
    P(id): P,
    Q(query): Q<RouteSeriesQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = state.require(caller, Permission::ReadSeries)?;
    let route = state.route(&id, &key)?;
    let (from, to) = date_range(&query.from, &query.to, MAX_SERIES_DAYS)?;
    let level = query.level.unwrap_or(SeriesLevel::Segment);
    let mut series = state.backend.route_series(route, level, from, to).await?;
    let k = series.k;
    above_k(&mut series.points, k, |p| p.devices);
    if wants_csv(query.format, &headers) {
        let mut out = String::from("route,name,time,devices,cell_hours\n");
        for p in &series.points {
            out.push_str(&format!("{},{},{},{},{}\n", id, csv_field(&p.name), p.time, p.devices, p.cell_hours));
        }
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response());
    }
    Ok(axum::Json(series).into_response())
}

/// How unusual the latest day's density (or a given day's) is on a route:
/// per segment, and per cell for keys that may read density series.
#[utoipa::path(get, path = "/v1/routes/{route}/nowcast", tag = "forecasts",
    params(("route" = String, Path, description = "The route id.", example = "channel"), NowcastQuery),
    responses(
        (status = 200, description = "Each segment's and the most unusual cells' robust z-scores against the same weekday of the previous weeks.", body = RouteNowcast),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not see the route.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such route, or no density on that day.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn route_nowcast(
    state: Shared,
    Key(caller): Key,
    P(id): P,
    Q(query): Q<NowcastQuery>,
) -> Result<Response, ApiError> {
    let key = state.require(caller, Permission::ReadForecasts)?;
    let route = state.route(&id, &key)?;
    let date = query.date.as_deref().map(|d| parse_date("date", d)).transpose()?;
    let cells = match query.cells {
        Some(n) if n > 1000 => return Err(ApiError::BadRequest(format!("cells={n} is more than 1000"))),
        // Cells are density at the finest grain: for keys that may read series.
        _ if !key.role.allows(Permission::ReadSeries) => 0,
        n => n.unwrap_or(50) as usize,
    };
    let mut nowcast = state.backend.nowcast(route, date, cells).await?;
    let k = nowcast.k;
    for entries in [&mut nowcast.segments, &mut nowcast.cells] {
        // The baseline is a median of counts: below k, it is dropped too.
        above_k(entries, k, |e| e.devices.min(e.baseline.floor() as i64));
    }
    Ok(axum::Json(nowcast).into_response())
}

/// Whether a route-scoped key may read a cell: the cell overlaps one of its
/// routes' cells.
fn cell_in_scope(state: &AppState, key: &KeyRecord, cell: Cell) -> bool {
    let Some(routes) = &key.routes else { return true };
    let Ok(route_resolution) = stroom_core::Resolution::new(i64::from(stroom_core::DEFAULT_ROUTE_RESOLUTION)) else {
        return false;
    };
    routes.iter().filter_map(|r| state.route_cells.get(r)).any(|cells| {
        if cell.resolution().get() >= route_resolution.get() {
            cell.parent(route_resolution).is_ok_and(|p| cells.contains(&p.to_u64()))
        } else {
            cells.iter().any(|c| Cell::from_u64(*c).and_then(|c| c.parent(cell.resolution())).is_ok_and(|p| p == cell))
        }
    })
}

/// A cell's density: the sum over its descendants at the storage resolution,
/// daily or hourly (analyst).
#[utoipa::path(get, path = "/v1/cells/{cell}/series", tag = "series",
    params(("cell" = String, Path, description = "An H3 cell as its hexadecimal string.", example = "87194814affffff"), CellSeriesQuery),
    responses(
        (status = 200, description = "The series.", content(
            (CellSeries = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not read series or see the cell.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No density data.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn cell_series(
    state: Shared,
    Key(caller): Key,
    P(text): P,
    Q(query): Q<CellSeriesQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = state.require(caller, Permission::ReadSeries)?;
    let cell = Cell::parse(&text).map_err(|e| ApiError::BadRequest(format!("cell='{text}': {e}")))?;
    if !cell_in_scope(&state, &key, cell) {
        return Err(ApiError::Forbidden { role: key.role.as_str(), action: "see cells outside its routes" });
    }
    let resolution = query.resolution.unwrap_or(TimeResolution::Day);
    let max_days = if resolution == TimeResolution::Hour { MAX_HOURLY_DAYS } else { MAX_SERIES_DAYS };
    let (from, to) = date_range(&query.from, &query.to, max_days)?;
    let mut series = state.backend.cell_series(cell, resolution, from, to).await?;
    let k = series.k;
    above_k(&mut series.points, k, |p| p.devices);
    if wants_csv(query.format, &headers) {
        let mut out = String::from("cell,time,devices,cell_hours\n");
        for p in &series.points {
            out.push_str(&format!("{},{},{},{}\n", series.cell, p.time, p.devices, p.cell_hours));
        }
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response());
    }
    Ok(axum::Json(series).into_response())
}

/// The routes a target belongs to.
fn target_routes(state: &AppState, target: &str) -> Result<BTreeSet<String>, ApiError> {
    let routes = state.backend.routes();
    let found: BTreeSet<String> = if let Some(station) = target.strip_prefix("station:") {
        routes.iter().filter(|r| r.stations.iter().any(|s| s.id == station)).map(|r| r.id.clone()).collect()
    } else if let Some((route, _)) = target.strip_prefix("segment:").and_then(|rest| rest.split_once('/')) {
        routes.iter().filter(|r| r.id == route).map(|r| r.id.clone()).collect()
    } else {
        return Err(ApiError::BadRequest(format!(
            "target='{target}' is not a target: use station:ID or segment:ROUTE/SEGMENT"
        )));
    };
    if found.is_empty() {
        return Err(ApiError::NotFound(format!("target='{target}' is on no route")));
    }
    Ok(found)
}

/// A JSON request body as `T`: 413 beyond the body limit, 400 naming what
/// the body should have been.
fn read_json<T: DeserializeOwned>(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
    what: &str,
) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(state.config.body_limit)
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("the body is not {what}: {e}")))
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Starts a backtest as a job (analyst). Its result also lands in the
/// `backtests` table.
#[utoipa::path(post, path = "/v1/backtests", tag = "backtests",
    request_body = BacktestRequest,
    responses(
        (status = 202, description = "The job is queued; poll its Location.", body = BacktestJob),
        (status = 400, description = "The request is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not run backtests or see the target's routes.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The target is on no route.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many jobs are queued.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn start_backtest(
    state: Shared,
    Key(caller): Key,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = state.require(caller, Permission::RunBacktests)?;
    let request: BacktestRequest = read_json(&state, body, "a backtest request")?;
    for (name, value, max) in
        [("horizon", request.horizon, MAX_HORIZON), ("folds", request.folds, 60), ("step", request.step, 90)]
    {
        if let Some(v) = value
            && !(1..=max).contains(&v)
        {
            return Err(ApiError::BadRequest(format!("{name}={v} must be between 1 and {max}")));
        }
    }
    let routes = target_routes(&state, &request.target)?;
    if let Some(hidden) = routes.iter().find(|r| !key.sees_route(r)) {
        return Err(ApiError::RouteForbidden(hidden.clone()));
    }
    state.backend.validate_backtest(&request)?;
    admit_job(&state)?;
    let id = uuid::Uuid::new_v4().to_string();
    let job = BacktestJob {
        id: id.clone(),
        status: JobStatus::Queued,
        request: request.clone(),
        submitted_at: now(),
        finished_at: None,
        error: None,
        run_id: None,
        metrics: Vec::new(),
    };
    let entry = BacktestEntry { job: job.clone(), routes };
    state.journal_backtest(&entry);
    state.jobs.backtests.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), entry);
    let worker = state.0.clone();
    tokio::spawn(async move {
        let permit = worker.jobs.worker.acquire().await;
        let update = |f: &dyn Fn(&mut BacktestJob)| {
            if let Some(entry) = worker.jobs.backtests.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id) {
                f(&mut entry.job);
                worker.journal_backtest(entry);
            }
        };
        update(&|job| job.status = JobStatus::Running);
        let outcome = worker.backend.backtest(request).await;
        match outcome {
            Ok((run_id, metrics)) => update(&|job| {
                job.status = JobStatus::Succeeded;
                job.run_id = Some(run_id.clone());
                job.metrics = metrics.clone();
                job.finished_at = Some(now());
            }),
            Err(error) => {
                tracing::warn!(job = %id, %error, "A backtest job failed.");
                let shown = match &error {
                    BackendError::Failed(_) => "the backtest failed; the failure is in the server's log".to_owned(),
                    other => other.to_string(),
                };
                update(&|job| {
                    job.status = JobStatus::Failed;
                    job.error = Some(shown.clone());
                    job.finished_at = Some(now());
                });
            }
        }
        drop(permit);
        worker.jobs.active.fetch_sub(1, Ordering::SeqCst);
    });
    let location = format!("/v1/backtests/{}", job.id);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], axum::Json(job)).into_response())
}

/// A backtest job: its status and, when done, its metrics (analyst).
#[utoipa::path(get, path = "/v1/backtests/{id}", tag = "backtests",
    params(("id" = String, Path, description = "The job id.")),
    responses(
        (status = 200, description = "The job.", body = BacktestJob),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not read backtests or see the target's routes.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn backtest_status(
    state: Shared,
    Key(caller): Key,
    P(id): P,
) -> Result<axum::Json<BacktestJob>, ApiError> {
    let key = state.require(caller, Permission::RunBacktests)?;
    let entry = state
        .jobs
        .backtests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("there is no backtest job '{id}'")))?;
    if let Some(hidden) = entry.routes.iter().find(|r| !key.sees_route(r)) {
        return Err(ApiError::RouteForbidden(hidden.clone()));
    }
    Ok(axum::Json(entry.job))
}

/// Recomputes every route's forecasts from the latest data, as a job
/// (admin). The new run is served as soon as it is recorded.
#[utoipa::path(post, path = "/v1/forecasts/refresh", tag = "admin",
    responses(
        (status = 202, description = "The job is queued; poll its Location.", body = RefreshJob),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key is not an admin key.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many jobs are queued.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn start_refresh(state: Shared, Key(caller): Key) -> Result<Response, ApiError> {
    state.require(caller, Permission::Administer)?;
    let (job, _) = crate::refresh::spawn_refresh(&state.0, RefreshTrigger::Request)?;
    let location = format!("/v1/forecasts/refresh/{}", job.id);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], axum::Json(job)).into_response())
}

/// A forecast refresh job (admin).
#[utoipa::path(get, path = "/v1/forecasts/refresh/{id}", tag = "admin",
    params(("id" = String, Path, description = "The job id.")),
    responses(
        (status = 200, description = "The job.", body = RefreshJob),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key is not an admin key.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn refresh_status(
    state: Shared,
    Key(caller): Key,
    P(id): P,
) -> Result<axum::Json<RefreshJob>, ApiError> {
    state.require(caller, Permission::Administer)?;
    let job = state.jobs.refreshes.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned();
    job.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("there is no refresh job '{id}'")))
}

async fn render(
    state: Shared,
    caller: Option<Caller>,
    id: String,
    date: Option<String>,
    format: MapFormat,
    layer: MapLayer,
) -> Result<Response, ApiError> {
    let key = state.require(caller, Permission::ReadForecasts)?;
    let route = state.route(&id, &key)?;
    let date = date.as_deref().map(|d| parse_date("date", d)).transpose()?;
    let snapshot = state.snapshot();
    // A nowcast follows the density, which changes without a new forecast.
    let cache_key = format!("map|{id}|{date:?}|{format:?}|{layer:?}");
    if layer == MapLayer::Forecast
        && let Some(hit) = snapshot.cached(&cache_key)
    {
        return Ok(hit);
    }
    let bytes = state.backend.render(route, date, format, layer).await?;
    if layer == MapLayer::Nowcast {
        return Ok(([(header::CONTENT_TYPE, format.content_type())], bytes).into_response());
    }
    Ok(snapshot.keep(cache_key, format.content_type(), bytes))
}

/// A route's forecast map as RFC 7946 GeoJSON: one polygon per H3 cell
/// (`hex_id`), the route line and the stations.
#[utoipa::path(get, path = "/v1/routes/{route}/map.geojson", tag = "maps",
    params(("route" = String, Path, description = "The route id.", example = "channel"), MapQuery),
    responses(
        (status = 200, description = "The map.", content_type = "application/geo+json", body = Object),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not see the route.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such route, no forecast for the day, or (nowcast layer) no density on it.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn map_geojson(
    state: Shared,
    Key(caller): Key,
    P(id): P,
    Q(query): Q<MapQuery>,
) -> Result<Response, ApiError> {
    render(state, caller, id, query.date, MapFormat::GeoJson, query.layer.unwrap_or_default()).await
}

/// A route's forecast map as SVG.
#[utoipa::path(get, path = "/v1/routes/{route}/map.svg", tag = "maps",
    params(("route" = String, Path, description = "The route id.", example = "channel"), MapQuery),
    responses(
        (status = 200, description = "The map.", content_type = "image/svg+xml", body = String),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not see the route.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such route, no forecast for the day, or (nowcast layer) no density on it.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn map_svg(
    state: Shared,
    Key(caller): Key,
    P(id): P,
    Q(query): Q<MapQuery>,
) -> Result<Response, ApiError> {
    render(state, caller, id, query.date, MapFormat::Svg, query.layer.unwrap_or_default()).await
}

/// A route's forecast map as PNG.
#[utoipa::path(get, path = "/v1/routes/{route}/map.png", tag = "maps",
    params(("route" = String, Path, description = "The route id.", example = "channel"), MapQuery),
    responses(
        (status = 200, description = "The map.", content_type = "image/png", body = Vec<u8>),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not see the route.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such route, no forecast for the day, or (nowcast layer) no density on it.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn map_png(
    state: Shared,
    Key(caller): Key,
    P(id): P,
    Q(query): Q<MapQuery>,
) -> Result<Response, ApiError> {
    render(state, caller, id, query.date, MapFormat::Png, query.layer.unwrap_or_default()).await
}

/// A route's printable, self-contained briefing page.
#[utoipa::path(get, path = "/v1/routes/{route}/briefing.html", tag = "maps",
    params(("route" = String, Path, description = "The route id.", example = "channel")),
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String),
        (status = 400, description = "A parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not see the route.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such route, or no forecast of it.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn briefing(state: Shared, Key(caller): Key, P(id): P) -> Result<Response, ApiError> {
    render(state, caller, id, None, MapFormat::Html, MapLayer::Forecast).await
}

/// Whether the key sees every route a scenario touches.
fn sees_scenario(key: &KeyRecord, closure: &ScenarioRequest) -> Result<(), ApiError> {
    for route in std::iter::once(&closure.route).chain(&closure.divert_to) {
        if !key.sees_route(route) {
            return Err(ApiError::RouteForbidden(route.clone()));
        }
    }
    Ok(())
}

/// What an upload delivers, with its options.
enum Delivery<'q> {
    Density(&'q DensityUpload),
    Arrivals(&'q ArrivalsUpload),
}

/// An upload from the permission check to the answer: the body to a local
/// file, then one ingest at a time.
async fn deliver(
    state: &AppState,
    caller: Option<Caller>,
    delivery: Delivery<'_>,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (table, name) = match &delivery {
        Delivery::Density(query) => ("density", query.name.as_deref()),
        Delivery::Arrivals(query) => ("arrivals", query.name.as_deref()),
    };
    if let Err(error) = state.require(caller, Permission::Deliver) {
        crate::upload::discard(body).await;
        return upload_refused(table, None, error);
    }
    let upload = match crate::upload::receive(state, headers, body, name).await {
        Ok(upload) => upload,
        Err(error) => return upload_refused(table, None, error),
    };
    let outcome = {
        let _turn = state.uploads.lock().await;
        match delivery {
            Delivery::Density(query) => state.backend.ingest_density(&upload.path, query).await,
            Delivery::Arrivals(query) => state.backend.ingest_arrivals(&upload.path, query).await,
        }
    };
    match outcome {
        Ok(result) => upload_response(table, &upload, result),
        Err(error) => upload_refused(table, Some(&upload), error.into()),
    }
}

/// The response to an upload, with what the audit log records of it.
fn upload_response(table: &'static str, upload: &crate::upload::Upload, result: IngestResult) -> Response {
    let status = if result.status == IngestStatus::AlreadyIngested { StatusCode::OK } else { StatusCode::CREATED };
    let audit = crate::upload::UploadAudit::of(table, upload, &result);
    let mut response = (status, axum::Json(result)).into_response();
    response.extensions_mut().insert(audit);
    response
}

/// An upload's error, with what the audit log records of it.
fn upload_refused(table: &'static str, upload: Option<&crate::upload::Upload>, error: ApiError) -> Response {
    let mut response = error.into_response();
    response.extensions_mut().insert(crate::upload::UploadAudit::refused(table, upload));
    response
}

/// Uploads hourly device counts (ingest role): a CSV file (`ts,lat,lon,count`
/// or `ts,cell,count`; gzip or zstd compressed, by `Content-Encoding` or by
/// content) or a Parquet file, validated and committed exactly as `stroom
/// ingest density` does: counts below the store's k are suppressed, one
/// commit or none. The body is streamed to local disk, never held in
/// memory. Uploads are ingested one at a time.
#[utoipa::path(post, path = "/v1/ingest/density", tag = "ingest",
    params(DensityUpload),
    request_body(description = "The density file: CSV, gzip or zstd CSV, or Parquet. Also taken as \
        application/vnd.apache.parquet, application/gzip, application/zstd or with no Content-Type; \
        Content-Encoding gzip or zstd is undone first.", content(
        (String = "text/csv"),
        (String = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "The same bytes were ingested before; nothing was written.", body = IngestResult),
        (status = 201, description = "Validated and committed as one table version (or nothing to write: every count below k).", body = IngestResult),
        (status = 400, description = "A query parameter is invalid, or the body could not be decompressed.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not upload data.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the server's upload limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body's media type or encoding is not one stroom reads.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The file is refused: the detail names the line or row, the column and the value. Nothing was written.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn ingest_density(
    state: Shared,
    Key(caller): Key,
    Q(query): Q<DensityUpload>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    deliver(&state, caller, Delivery::Density(&query), &headers, body).await
}

/// Uploads official daily arrivals (ingest role): a CSV file (`date,station,count`,
/// or `date,count` with `station`, or other layouts with the column
/// parameters; gzip or zstd compressed, by `Content-Encoding` or by content),
/// merged exactly as `stroom ingest arrivals` does: revised figures replace
/// the earlier ones (which time travel keeps), one commit or none.
#[utoipa::path(post, path = "/v1/ingest/arrivals", tag = "ingest",
    params(ArrivalsUpload),
    request_body(description = "The arrivals file: CSV, or gzip or zstd CSV. Also taken as \
        application/gzip, application/zstd or with no Content-Type; Content-Encoding gzip or zstd is \
        undone first.", content(
        (String = "text/csv"),
        (String = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "The same bytes were ingested before; nothing was written.", body = IngestResult),
        (status = 201, description = "Validated and committed as one table version (or nothing to write: every count below k).", body = IngestResult),
        (status = 400, description = "A query parameter is invalid, or the body could not be decompressed.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not upload data.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the server's upload limit.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body's media type or encoding is not one stroom reads.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The file is refused: the detail names the line or row, the column and the value. Nothing was written.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn ingest_arrivals(
    state: Shared,
    Key(caller): Key,
    Q(query): Q<ArrivalsUpload>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    deliver(&state, caller, Delivery::Arrivals(&query), &headers, body).await
}

/// Runs a closure scenario from the latest data (analyst): the baseline
/// forecast of the closed route's destination and of the receiving route's,
/// and what they become if the segment closes and a share of those held
/// each day take the other route. The scenario is recorded apart from the
/// baseline forecasts (the `scenarios` table) and waits for the job worker.
#[utoipa::path(post, path = "/v1/scenarios", tag = "scenarios",
    request_body = ScenarioRequest,
    responses(
        (status = 201, description = "The scenario, recorded; its Location serves it again.", body = Scenario),
        (status = 400, description = "The body is not a scenario that can be run.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not run scenarios or see one of the routes.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such route or segment, or the store lacks the data.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many jobs are queued.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_scenario(
    state: Shared,
    Key(caller): Key,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = state.require(caller, Permission::RunBacktests)?;
    let request: ScenarioRequest = read_json(&state, body, "a scenario request")?;
    for route in std::iter::once(&request.route).chain(&request.divert_to) {
        if !state.backend.routes().iter().any(|r| r.id == *route) {
            return Err(ApiError::NotFound(format!("there is no route '{route}'")));
        }
    }
    sees_scenario(&key, &request)?;
    state.backend.validate_scenario(&request)?;
    admit_job(&state)?;
    let outcome = {
        let _permit = state.jobs.worker.acquire().await;
        state.backend.run_scenario(request).await
    };
    state.jobs.active.fetch_sub(1, Ordering::SeqCst);
    let scenario = outcome?;
    let location = format!("/v1/scenarios/{}", scenario.run_id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(scenario)).into_response())
}

/// The recorded scenarios of the caller's routes, newest first.
#[utoipa::path(get, path = "/v1/scenarios", tag = "scenarios",
    responses(
        (status = 200, description = "The scenarios.", body = ScenarioList),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not read forecasts.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_scenarios(state: Shared, Key(caller): Key) -> Result<axum::Json<ScenarioList>, ApiError> {
    let key = state.require(caller, Permission::ReadForecasts)?;
    let scenarios =
        state.backend.scenarios().await?.into_iter().filter(|s| sees_scenario(&key, &s.closure).is_ok()).collect();
    Ok(axum::Json(ScenarioList { scenarios }))
}

async fn visible_scenario(state: &AppState, key: &KeyRecord, id: &str) -> Result<Scenario, ApiError> {
    let scenario = state
        .backend
        .scenarios()
        .await?
        .into_iter()
        .find(|s| s.run_id == id)
        .ok_or_else(|| ApiError::NotFound(format!("there is no scenario '{id}'")))?;
    sees_scenario(key, &scenario.closure)?;
    Ok(scenario)
}

/// A recorded scenario: the closure, what it assumed, and each station's
/// baseline and scenario day by day.
#[utoipa::path(get, path = "/v1/scenarios/{id}", tag = "scenarios",
    params(("id" = String, Path, description = "The scenario's run id.")),
    responses(
        (status = 200, description = "The scenario.", body = Scenario),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not see one of its routes.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such scenario.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn scenario_detail(
    state: Shared,
    Key(caller): Key,
    P(id): P,
) -> Result<axum::Json<Scenario>, ApiError> {
    let key = state.require(caller, Permission::ReadForecasts)?;
    Ok(axum::Json(visible_scenario(&state, &key, &id).await?))
}

/// A recorded scenario's printable page: each station's baseline and
/// scenario in one chart and one table, with the assumptions.
#[utoipa::path(get, path = "/v1/scenarios/{id}/page.html", tag = "scenarios",
    params(("id" = String, Path, description = "The scenario's run id.")),
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String),
        (status = 401, description = "No valid token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key may not see one of its routes.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such scenario.", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn scenario_page(state: Shared, Key(caller): Key, P(id): P) -> Result<Response, ApiError> {
    let key = state.require(caller, Permission::ReadForecasts)?;
    visible_scenario(&state, &key, &id).await?;
    let bytes = state.backend.scenario_page(&id).await?;
    Ok(([(header::CONTENT_TYPE, MapFormat::Html.content_type())], bytes).into_response())
}
