//! The worker's small HTTP server: `/healthz` (alive: every queue worker running, no loop
//! stale), `/readyz` (PostgreSQL and Redis reachable, no provider refusing Herald's
//! credentials) and `/metrics` (Prometheus).

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
            get(|| async {
                herald_shared::telemetry::render(herald_shared::telemetry::BuildInfo {
                    binary: "herald-worker",
                    version: env!("CARGO_PKG_VERSION"),
                })
            }),
        )
        .with_state(ctx)
}

/// 200 while every queue worker runs and no supervised loop is stale (see `crate::loops`),
/// 503 otherwise; the body shows each loop's last pass either way.
async fn healthz(State(ctx): State<WorkerContext>) -> impl IntoResponse {
    let down = ctx.liveness.down();
    let loops = ctx.loops.report();
    let stale: Vec<&str> = loops
        .iter()
        .filter(|report| report.stale)
        .map(|report| report.name)
        .collect();
    let healthy = down.is_empty() && stale.is_empty();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if healthy { "ok" } else { "degraded" },
            "queues_down": down,
            "loops_stale": stale,
            "loops": loops,
            "dispatcher_listening": ctx.loops.listening(),
        })),
    )
}

/// 200 while PostgreSQL and Redis answer and no provider refuses Herald's credentials
/// (see `crate::outage`), 503 otherwise.
async fn readyz(State(ctx): State<WorkerContext>) -> impl IntoResponse {
    let postgres = herald_shared::db::is_reachable(&ctx.db).await;
    let redis = herald_shared::redis_conn::is_reachable(&ctx.redis).await;
    let failing = ctx.outages.failing();
    let status = if postgres && redis && failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "postgres": postgres, "redis": redis, "providers_failing": failing })),
    )
}
