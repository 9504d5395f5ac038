//! Sending a campaign: `POST /api/v1/campaigns/{id}/launch` writes each prospect's first
//! e-mail as an outbound message at its planned instant (the plan `GET …/schedule` showed, from
//! the launch's next whole minute), and the campaign runs; each later step is planned by the
//! worker once the one before it was sent. `POST …/pause` holds every e-mail not yet handed
//! to its sender, `POST …/resume` plans them again from now inside the windows (first e-mails
//! by the launch rules again, follow-ups at their time or the next window), and `POST …/stop`
//! (with generation) cancels them.
//!
//! What the launch and resume plan is `herald_shared::campaign_launch`'s.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_shared::campaign_launch::{self, LaunchError, Launched};
use herald_shared::db::campaign_sends;
use herald_shared::effects::EffectKind;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::generation::{lock, with_progress, wrong_state};
use super::schedule::next_minute;
use super::{CampaignOut, find};
use crate::error::{ApiError, Problem};
use crate::extract::{AuthUser, path_id};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(launch))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// What a launch or resume planned.
#[derive(Debug, Serialize, ToSchema)]
pub struct LaunchOut {
    /// E-mails planned.
    pub planned: usize,
    /// Prospects skipped: their first e-mail is not written, or the caps would carry it beyond
    /// a year.
    pub skipped: usize,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
    pub campaign: CampaignOut,
}

impl LaunchOut {
    fn new(launched: &Launched, campaign: CampaignOut) -> Self {
        Self {
            planned: launched.planned,
            skipped: usize::try_from(launched.skipped).unwrap_or(usize::MAX),
            first_at: launched.first_at,
            last_at: launched.last_at,
            campaign,
        }
    }
}

fn queue(state: &AppState) -> &str {
    &state.jobs.get(EffectKind::CampaignEmail).queue
}

/// Launches a ready campaign: each prospect's first e-mail is planned by the launch plan (see
/// `GET …/schedule`), and the campaign is `running`. 409 `campaign_state` unless ready, 409
/// `nothing_to_send` when no prospect has a written first e-mail (nothing is changed).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/launch", tag = "campaigns",
    operation_id = "v1.campaigns.launch", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 202, body = LaunchOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not ready, or nothing to send", body = Problem, content_type = "application/problem+json")))]
async fn launch(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<LaunchOut>), ApiError> {
    let id = path_id(&id, "campaign")?;
    let mut tx = state.db.begin().await?;
    let current = lock(&mut tx, auth.account_id, id).await?;
    if current != "ready" {
        return Err(wrong_state(
            &current,
            "only a ready campaign (every e-mail written) can be launched",
        ));
    }
    let campaign = find(&mut tx, auth.account_id, id).await?;
    let launched = campaign_launch::launch(
        &mut tx,
        auth.account_id,
        &campaign,
        queue(&state),
        next_minute(),
    )
    .await
    .map_err(launch_error)?
    .ok_or_else(|| ApiError::Conflict {
        code: "nothing_to_send",
        detail: "no prospect has a written first e-mail".to_owned(),
    })?;
    let campaign = with_progress(&mut tx, auth.account_id, id).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(LaunchOut::new(&launched, campaign)),
    ))
}

fn launch_error(err: LaunchError) -> ApiError {
    match err {
        LaunchError::Database(err) => err.into(),
        LaunchError::Planning(err) => ApiError::Internal(err.into()),
    }
}

/// Pauses a running campaign: every e-mail not yet handed to its sender is held (one being
/// handed over reads the pause first). 409 `campaign_state` unless running.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/pause", tag = "campaigns",
    operation_id = "v1.campaigns.pause", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = CampaignOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not running", body = Problem, content_type = "application/problem+json")))]
async fn pause(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<CampaignOut>, ApiError> {
    let id = path_id(&id, "campaign")?;
    let mut tx = state.db.begin().await?;
    let current = lock(&mut tx, auth.account_id, id).await?;
    if current != "running" {
        return Err(wrong_state(
            &current,
            "only a running campaign can be paused",
        ));
    }
    campaign_sends::pause(&mut tx, id).await?;
    let campaign = with_progress(&mut tx, auth.account_id, id).await?;
    tx.commit().await?;
    Ok(Json(campaign))
}

/// Resumes a paused campaign: held first e-mails are planned again from now by the launch
/// rules (windows, caps, senders' bookings), held follow-ups at their planned time or, when
/// that has passed, at the next opening of the prospect's window. 409 `campaign_state` unless
/// paused.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/resume", tag = "campaigns",
    operation_id = "v1.campaigns.resume", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 202, body = LaunchOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not paused", body = Problem, content_type = "application/problem+json")))]
async fn resume(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<LaunchOut>), ApiError> {
    let id = path_id(&id, "campaign")?;
    let mut tx = state.db.begin().await?;
    let current = lock(&mut tx, auth.account_id, id).await?;
    if current != "paused" {
        return Err(wrong_state(
            &current,
            "only a paused campaign can be resumed",
        ));
    }
    let campaign = find(&mut tx, auth.account_id, id).await?;
    let resumed = campaign_launch::resume(&mut tx, &campaign, next_minute())
        .await
        .map_err(launch_error)?;
    let campaign = with_progress(&mut tx, auth.account_id, id).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(LaunchOut::new(&resumed, campaign)),
    ))
}
