//! Pause, resume and stop (`herald_shared::deliveries::lifecycle` does them). Wrong
//! transitions answer 409.

use axum::Json;
use axum::extract::{Path, State};
use herald_shared::db::deliveries as db;
use herald_shared::deliveries::lifecycle;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{DeliveryOut, delivery_out};
use crate::error::{ApiError, Problem};
use crate::extract::{AuthUser, path_id};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(stop))
}

/// Holds every unsent message until resumed.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/pause", tag = "deliveries", operation_id = "v1.deliveries.pause",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DeliveryOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not scheduled", body = Problem, content_type = "application/problem+json")))]
async fn pause(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<DeliveryOut>, ApiError> {
    transition(&state, auth, &id, Action::Pause).await
}

/// Continues a paused delivery with each student's next unsent day.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/resume", tag = "deliveries", operation_id = "v1.deliveries.resume",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DeliveryOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not paused", body = Problem, content_type = "application/problem+json")))]
async fn resume(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<DeliveryOut>, ApiError> {
    transition(&state, auth, &id, Action::Resume).await
}

/// Cancels every unsent message for good.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/stop", tag = "deliveries", operation_id = "v1.deliveries.stop",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DeliveryOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "already stopped or completed", body = Problem, content_type = "application/problem+json")))]
async fn stop(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<DeliveryOut>, ApiError> {
    transition(&state, auth, &id, Action::Stop).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Pause,
    Resume,
    Stop,
}

async fn transition(
    state: &AppState,
    auth: AuthUser,
    id: &str,
    action: Action,
) -> Result<Json<DeliveryOut>, ApiError> {
    let id = path_id(id, "delivery")?;
    let mut tx = state.db.begin().await?;
    let row = db::lock(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    let unsent = db::progress(&mut tx, id).await?.unsent();
    let current = if row.status == "scheduled" && unsent == 0 {
        "completed"
    } else {
        row.status.as_str()
    };
    let allowed = match action {
        Action::Pause => current == "scheduled",
        Action::Resume => current == "paused",
        Action::Stop => current == "scheduled" || current == "paused",
    };
    if !allowed {
        let verb = match action {
            Action::Pause => "paused",
            Action::Resume => "resumed",
            Action::Stop => "stopped",
        };
        return Err(ApiError::Conflict {
            code: "invalid_delivery_state",
            detail: format!("the delivery is {current}; it cannot be {verb}"),
        });
    }
    match action {
        Action::Pause => lifecycle::pause(&mut tx, id).await?,
        Action::Resume => lifecycle::resume(&mut tx, &row).await?,
        Action::Stop => lifecycle::stop(&mut tx, id).await?,
    }
    let row = db::get(&mut *tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    let out = delivery_out(&mut tx, row).await?;
    tx.commit().await?;
    Ok(Json(out))
}
