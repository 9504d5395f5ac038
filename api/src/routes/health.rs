//! `/healthz` (the process answers), `/readyz` (PostgreSQL and Redis reachable) and
//! `/metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// Liveness.
#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Readiness of each dependency.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub postgres: bool,
    pub redis: bool,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// PostgreSQL and Redis are reachable.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let postgres = herald_shared::db::is_reachable(&state.db).await;
    let redis = herald_shared::redis_conn::is_reachable(&state.redis).await;
    let status = if postgres && redis {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { postgres, redis }))
}

/// Prometheus metrics.
///
/// The API's own, the process's (CPU, memory, open files) and `herald_build_info`. Not here
/// (404) when `api.metrics_listen` serves them on an address of their own.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, content_type = "text/plain", body = String),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn metrics(State(state): State<AppState>) -> Result<String, ApiError> {
    if state.config.api.metrics_listen().is_some() {
        return Err(ApiError::NotFound("route"));
    }
    Ok(render_metrics())
}

/// The metrics page, wherever it is served.
pub fn render_metrics() -> String {
    herald_shared::telemetry::render(herald_shared::telemetry::BuildInfo {
        binary: "herald-api",
        version: env!("CARGO_PKG_VERSION"),
    })
}
