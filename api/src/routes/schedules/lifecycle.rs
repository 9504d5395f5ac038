//! Pause and resume. Pausing cancels every unsent message, those of a fire still being sent
//! included (a message already handed to Twilio goes out); resuming plans fires from the resume instant on, so a schedule never fires
//! for the time it was paused. Both are idempotent: pausing a paused schedule (or resuming an
//! active one) changes nothing and answers 200.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use herald_shared::db::schedules as db;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ScheduleOut, plan_now, schedule_out};
use crate::error::{ApiError, Problem};
use crate::extract::{AuthUser, path_id};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// Stops firing until resumed; unsent future messages are canceled.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/pause", tag = "schedules", operation_id = "v1.schedules.pause",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ScheduleOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn pause(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ScheduleOut>, ApiError> {
    transition(&state, auth, &id, false).await
}

/// Fires again from now on; nothing is sent for the paused period.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/resume", tag = "schedules", operation_id = "v1.schedules.resume",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ScheduleOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn resume(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ScheduleOut>, ApiError> {
    transition(&state, auth, &id, true).await
}

async fn transition(
    state: &AppState,
    auth: AuthUser,
    id: &str,
    active: bool,
) -> Result<Json<ScheduleOut>, ApiError> {
    let id = path_id(id, "schedule")?;
    let mut tx = state.db.begin().await?;
    let mut row = db::lock(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("schedule"))?;
    if (row.status == "active") != active {
        let now = herald_shared::db::now(&mut *tx).await?;
        if !active {
            // nothing more goes out once the pause answers, a fire being sent included
            db::cancel_fires_after(&mut tx, id, now).await?;
            db::cancel_unsent_messages(&mut tx, id, DateTime::<Utc>::MIN_UTC).await?;
        }
        row = db::set_active(&mut tx, id, active, now).await?;
        if active {
            plan_now(state, &mut tx, &row, now).await?;
        }
    }
    let out = schedule_out(&mut tx, row).await?;
    tx.commit().await?;
    Ok(Json(out))
}
