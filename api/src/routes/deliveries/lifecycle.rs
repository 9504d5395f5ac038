//! Pause, resume and stop. Pause holds every unsent message (`held`); a message already
//! `sending` is in the provider's hands and goes out. Resume re-plans the held messages: each
//! student's next unsent day at the next occurrence of their send time, later days one day
//! apart. Stop cancels every unsent message for good. Wrong transitions answer 409.

use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use chrono_tz::Tz;
use herald_shared::db::deliveries as db;
use herald_shared::deliveries::{self, HeldMessage, Recipient, Start};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

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

const UNSENT: [&str; 3] = ["planned", "queued", "retrying"];

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
        Action::Pause => {
            db::move_messages(&mut *tx, id, &UNSENT, "held", "delivery paused").await?;
            db::set_status(&mut *tx, id, "paused").await?;
        }
        Action::Resume => {
            let start = Start {
                local: row.start_local,
                zone: row.timezone.as_deref().and_then(|z| z.parse::<Tz>().ok()),
            };
            let held: Vec<HeldMessage> = db::held_messages(&mut *tx, id)
                .await?
                .into_iter()
                .filter_map(|held| {
                    Some(HeldMessage {
                        effect_id: held.effect_id,
                        recipient: Recipient {
                            student_id: held.student_id.unwrap_or_else(Uuid::nil),
                            zone: held
                                .timezone
                                .as_deref()
                                .and_then(|z| z.parse::<Tz>().ok())
                                .unwrap_or(Tz::UTC),
                        },
                        day: u32::try_from(held.day).ok()?,
                        seq: u32::try_from(held.seq).ok()?,
                    })
                })
                .collect();
            let plan = deliveries::replan_held(&start, &held, Utc::now());
            db::replan(&mut tx, &plan).await?;
            db::set_status(&mut *tx, id, "scheduled").await?;
        }
        Action::Stop => {
            let mut states = UNSENT.to_vec();
            states.push("held");
            db::move_messages(&mut *tx, id, &states, "canceled", "delivery stopped").await?;
            db::set_status(&mut *tx, id, "stopped").await?;
        }
    }
    let row = db::get(&mut *tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    let out = delivery_out(&mut tx, row).await?;
    tx.commit().await?;
    Ok(Json(out))
}
