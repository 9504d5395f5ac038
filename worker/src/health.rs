//! The worker's small HTTP server: `/healthz` (alive, and every queue worker running),
//! `/readyz` (PostgreSQL and Redis reachable) and `/metrics` (Prometheus).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::context::WorkerContext;

/// The health router.
pub fn router(ctx: WorkerContext) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|| async { herald_shared::telemetry::metrics().render() }),
        )
        .with_state(ctx)
}

async fn healthz(State(ctx): State<WorkerContext>) -> impl IntoResponse {
    let down = ctx.liveness.down();
    let status = if down.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({ "status": if down.is_empty() { "ok" } else { "degraded" }, "queues_down": down }),
        ),
    )
}

async fn readyz(State(ctx): State<WorkerContext>) -> impl IntoResponse {
    let postgres = herald_shared::db::is_reachable(&ctx.db).await;
    let redis = herald_shared::redis_conn::is_reachable(&ctx.redis).await;
    let status = if postgres && redis {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "postgres": postgres, "redis": redis })),
    )
}
