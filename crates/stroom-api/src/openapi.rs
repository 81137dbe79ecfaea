//! The OpenAPI 3.1 document, generated from the handlers and the DTOs. It
//! is served at `/openapi.json` and committed as `api/openapi.json`; a test
//! fails when the two differ.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto::*;
use crate::handlers;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token made by `stroom keys create`; its role and routes limit what it sees."))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "stroom",
        description = "Forecasts of arrivals along migration routes, from aggregated smartphone-density counts. \
            Every endpoint but the health checks and this document needs a bearer token; keys carry a role \
            (viewer, analyst, ingest, admin) and optionally the routes they may see. Errors are RFC 9457 \
            problem documents. No device count below the store's privacy threshold k is ever returned.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        handlers::healthz,
        handlers::readyz,
        handlers::metrics,
        handlers::openapi,
        handlers::list_routes,
        handlers::route_detail,
        handlers::route_forecast,
        handlers::station_forecast,
        handlers::station_capacity,
        handlers::set_station_capacity,
        handlers::list_alerts,
        handlers::route_series,
        handlers::route_nowcast,
        handlers::cell_series,
        handlers::start_backtest,
        handlers::backtest_status,
        handlers::start_refresh,
        handlers::refresh_status,
        handlers::map_geojson,
        handlers::map_svg,
        handlers::map_png,
        handlers::briefing,
        handlers::create_scenario,
        handlers::list_scenarios,
        handlers::scenario_detail,
        handlers::scenario_page,
        handlers::ingest_density,
        handlers::ingest_arrivals,
    ),
    components(schemas(
        Problem, Health, Ready, RouteSummary, RouteDetail, StationDto, SegmentDto, ForecastRow, ForecastParts, SignalShare, TargetForecast,
        RouteForecast, StationForecast, SeriesLevel, TimeResolution, Format, RouteSeriesPoint, RouteSeries,
        CellSeriesPoint, CellSeries, Capacity, StationCapacity, AlertWindow, AlertStatus, AlertFilter, Alert, AlertList, AlertEvent, MapLayer, NowcastEntry, RouteNowcast, BacktestRequest, JobStatus, MetricsEntry, BacktestJob, RefreshJob, RefreshTrigger, RefreshStatus,
        ScenarioRequest, ScenarioAssumptions, ScenarioTarget, Scenario, ScenarioList,
        EmptyCount, IngestStatus, IngestResult,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "health", description = "Liveness, readiness and the contract."),
        (name = "routes", description = "The corridors: stations, segments, geometry."),
        (name = "forecasts", description = "Forecast arrivals with quantiles and intervals."),
        (name = "alerts", description = "Station capacities and the chance that arrivals exceed them."),
        (name = "series", description = "Device density (analyst)."),
        (name = "backtests", description = "Backtests as jobs (analyst)."),
        (name = "scenarios", description = "Closure scenarios beside their baseline (run: analyst)."),
        (name = "maps", description = "Forecast maps and briefing pages."),
        (name = "ingest", description = "Density and arrivals uploads (ingest)."),
        (name = "admin", description = "Metrics and forecast refreshes (admin)."),
    ),
)]
struct ApiDoc;

/// The OpenAPI document as pretty-printed JSON with a final newline.
pub fn openapi_json() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serialises");
    text.push('\n');
    text
}
