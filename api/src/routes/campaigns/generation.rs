//! Writing a campaign's e-mails: `POST /api/v1/campaigns/{id}/generate` moves a draft to
//! `generating` and plans one LLM job per active prospect's first step (each later step is
//! planned once the prospect's previous one is written, since its prompt may quote it); the
//! campaign is `ready` once no message is pending. Messages are listed, edited and
//! regenerated one by one before launch; `POST …/stop` ends the campaign from any state but
//! a draft or an ended one, blocking what was still to be written.
//!
//! A message's states: `pending` (its job, or the prospect's earlier step, is to come),
//! `done`, `failed` (with the reason: a refusal, a truncated or invalid answer, attempts
//! exhausted) and `blocked` (an earlier step failed, the cost limit was reached, or the
//! campaign was stopped).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_shared::db::campaign_messages::{self as db, MessageFilter, MessageRow, Refusal};
use herald_shared::db::{campaign_sends, campaigns};
use herald_shared::effects::EffectKind;
use herald_shared::money::usd;
use herald_shared::providers::llm;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{CampaignOut, find};
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, path_id};
use crate::pagination::PageRequest;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(generate))
        .routes(routes!(stop))
        .routes(routes!(list_messages))
        .routes(routes!(edit_message))
        .routes(routes!(regenerate_message))
}

const STATES: [&str; 4] = ["pending", "done", "failed", "blocked"];

/// One step's messages by state.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepProgressOut {
    pub position: i32,
    /// To be written (`running` of them being written now).
    pub pending: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub blocked: i64,
}

/// One step's e-mails by what became of them (once launched).
#[derive(Debug, Serialize, ToSchema)]
pub struct StepSendingOut {
    pub position: i32,
    /// Waiting for their time, or being handed to the sender.
    pub planned: i64,
    /// Held by a pause.
    pub held: i64,
    pub sent: i64,
    /// Refused, given up, or possibly sent (`unknown`: never sent again by itself).
    pub failed: i64,
    /// Not sent: the prospect replied, unsubscribed or bounced, or the campaign was stopped.
    pub canceled: i64,
}

/// The account's campaign with each step's progress, or 404.
pub(crate) async fn with_progress(
    conn: &mut sqlx::PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<CampaignOut, ApiError> {
    let campaign = find(conn, account_id, id).await?;
    let progress = db::progress(&mut *conn, id).await?;
    let sending = campaign_sends::sending(&mut *conn, id).await?;
    let mut out = CampaignOut::from(campaign);
    out.sending = Some(
        sending
            .into_iter()
            .map(|step| StepSendingOut {
                position: step.position,
                planned: step.planned,
                held: step.held,
                sent: step.sent,
                failed: step.failed,
                canceled: step.canceled,
            })
            .collect(),
    );
    out.progress = Some(
        progress
            .into_iter()
            .map(|step| StepProgressOut {
                position: step.position,
                pending: step.pending,
                running: step.running,
                done: step.done,
                failed: step.failed,
                blocked: step.blocked,
            })
            .collect(),
    );
    Ok(out)
}

/// A state change the campaign's state does not allow.
pub(super) fn wrong_state(state: &str, wanted: &str) -> ApiError {
    ApiError::Conflict {
        code: "campaign_state",
        detail: format!("the campaign is {state}; {wanted}"),
    }
}

/// Locks the account's campaign and answers its state; 404 when it has none.
pub(super) async fn lock(
    tx: &mut sqlx::PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<String, ApiError> {
    campaigns::lock(tx, account_id, id)
        .await?
        .ok_or(ApiError::NotFound("campaign"))
}

fn queue(state: &AppState) -> &str {
    &state.jobs.get(EffectKind::Generation).queue
}

/// Starts writing a draft campaign's e-mails: one job per active prospect's first step now,
/// each later step once the one before it is written. 409 `campaign_state` unless a draft,
/// 409 `no_prospects` when it has no active prospect.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/generate", tag = "campaigns",
    operation_id = "v1.campaigns.generate", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 202, body = CampaignOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not a draft, or no active prospect", body = Problem, content_type = "application/problem+json")))]
async fn generate(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CampaignOut>), ApiError> {
    let id = path_id(&id, "campaign")?;
    let mut tx = state.db.begin().await?;
    let current = lock(&mut tx, auth.account_id, id).await?;
    if current != "draft" {
        return Err(wrong_state(&current, "only a draft can be generated"));
    }
    let planned = db::create_and_plan(&mut tx, auth.account_id, id, queue(&state)).await?;
    if planned == 0 {
        return Err(ApiError::Conflict {
            code: "no_prospects",
            detail: "the campaign has no active prospect to write to".to_owned(),
        });
    }
    campaigns::set_state(&mut tx, id, "generating").await?;
    let campaign = with_progress(&mut tx, auth.account_id, id).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(campaign)))
}

/// Stops the campaign for good: nothing more is written (pending messages are `blocked`,
/// their jobs canceled) or sent (e-mails not yet handed to their sender are canceled). 409 `campaign_state` for a draft (delete it instead) or a
/// campaign that has ended.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/stop", tag = "campaigns",
    operation_id = "v1.campaigns.stop", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = CampaignOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "a draft, or ended", body = Problem, content_type = "application/problem+json")))]
async fn stop(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<CampaignOut>, ApiError> {
    let id = path_id(&id, "campaign")?;
    let mut tx = state.db.begin().await?;
    let current = lock(&mut tx, auth.account_id, id).await?;
    if matches!(current.as_str(), "draft" | "completed" | "stopped") {
        return Err(wrong_state(
            &current,
            "only a campaign under way can be stopped (a draft is deleted instead)",
        ));
    }
    campaigns::set_state(&mut tx, id, "stopped").await?;
    db::block_pending(&mut tx, id, "not written: the campaign was stopped").await?;
    campaign_sends::cancel(&mut tx, id).await?;
    let campaign = with_progress(&mut tx, auth.account_id, id).await?;
    tx.commit().await?;
    Ok(Json(campaign))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessagePageQuery {
    /// Only this step's messages (1-based).
    pub step: Option<String>,
    /// Only messages in this state: `pending`, `done`, `failed` or `blocked`.
    pub state: Option<String>,
    /// Only this prospect's messages.
    pub person_id: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    pub id: Uuid,
    pub person_id: Uuid,
    pub email: String,
    /// The step (1-based).
    pub step: i32,
    /// `pending`, `done`, `failed` or `blocked`.
    pub state: String,
    pub subject: Option<String>,
    pub body: Option<String>,
    /// Why it failed or is blocked.
    pub error: Option<String>,
    /// The job of its latest run (`GET /api/v1/jobs/{id}`).
    pub job_id: Option<Uuid>,
    /// Runs planned (1 + regenerations).
    pub runs: i32,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub written_at: Option<DateTime<Utc>>,
    /// When the user last edited it (unset once a run writes it again).
    pub edited_at: Option<DateTime<Utc>>,
}

impl From<MessageRow> for MessageOut {
    fn from(row: MessageRow) -> Self {
        Self {
            id: row.id,
            person_id: row.person_id,
            email: row.email,
            step: row.position,
            state: row.state,
            subject: row.subject,
            body: row.body,
            error: row.error,
            job_id: row.effect_id,
            runs: row.runs,
            input_tokens: row.input_tokens,
            output_tokens: row.output_tokens,
            cost_usd: usd(row.cost_microusd),
            written_at: row.written_at,
            edited_at: row.edited_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The campaign's messages, in the order they were created (prospect by prospect, step by
/// step), optionally of one step, state or prospect.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/messages", tag = "campaigns",
    operation_id = "v1.campaigns.messages.list", security(("bearer" = [])),
    params(("id" = Uuid, Path), MessagePageQuery),
    responses((status = 200, body = MessagePage),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_messages(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<MessagePageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let id = path_id(&id, "campaign")?;
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    let position = query.step.as_deref().and_then(|raw| {
        errors.check(
            "step",
            raw.trim()
                .parse::<i32>()
                .ok()
                .filter(|step| (1..=100).contains(step))
                .ok_or_else(|| "must be a step number, 1 or more".to_owned()),
        )
    });
    let wanted = query.state.as_deref().map(str::trim);
    if let Some(wanted) = wanted
        && !STATES.contains(&wanted)
    {
        errors.add("state", format!("must be one of {}", STATES.join(", ")));
    }
    let person_id = query.person_id.as_deref().and_then(|raw| {
        errors.check(
            "person_id",
            raw.trim()
                .parse::<Uuid>()
                .map_err(|_| "must be a UUID".to_owned()),
        )
    });
    errors.finish()?;
    let mut conn = state.db.acquire().await?;
    find(&mut conn, auth.account_id, id).await?;
    let filter = MessageFilter {
        position,
        state: wanted,
        person_id,
        after: page.after,
    };
    let rows = db::list(&mut *conn, id, &filter, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.created_at, row.id));
    Ok(Json(MessagePage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    /// One line, 1–150 characters.
    pub subject: String,
    /// 1–10,000 characters.
    pub body: String,
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotFound => ApiError::NotFound("message"),
        Refusal::CampaignState => ApiError::Conflict {
            code: "campaign_state",
            detail: "messages change only while the campaign is generating or ready".to_owned(),
        },
        Refusal::Pending => ApiError::Conflict {
            code: "message_pending",
            detail: "the message is being written; wait for it to be done or failed".to_owned(),
        },
        Refusal::EarlierStepMissing => ApiError::Conflict {
            code: "earlier_step_missing",
            detail: "an earlier step of this prospect is not written yet".to_owned(),
        },
    }
}

/// Locks a campaign whose messages may change (`generating` or `ready`).
async fn lock_for_messages(
    tx: &mut sqlx::PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<(), ApiError> {
    let current = lock(tx, account_id, id).await?;
    if current == "generating" || current == "ready" {
        Ok(())
    } else {
        Err(refused(Refusal::CampaignState))
    }
}

/// Replaces a message's subject and body before launch (it becomes `done`; a failed step's
/// later steps are then written). 409 `message_pending` while it is being written.
#[utoipa::path(put, path = "/api/v1/campaigns/{id}/messages/{message_id}", tag = "campaigns",
    operation_id = "v1.campaigns.messages.update", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)), request_body = MessageIn,
    responses((status = 200, body = MessageOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the campaign is not generating or ready, or the message is pending", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn edit_message(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<MessageIn>,
) -> Result<Json<MessageOut>, ApiError> {
    let id = path_id(&id, "campaign")?;
    let message_id = path_id(&message_id, "message")?;
    let subject = body.subject.trim();
    let text = body.body.trim();
    if let Err(problem) = llm::check_email(subject, text) {
        let (field, detail) = problem.split_once(' ').unwrap_or(("body", &problem));
        return Err(ApiError::field(field.to_owned(), detail.to_owned()));
    }
    let mut tx = state.db.begin().await?;
    lock_for_messages(&mut tx, auth.account_id, id).await?;
    db::edit(&mut tx, id, message_id, subject, text, queue(&state))
        .await?
        .map_err(refused)?;
    let message = db::get(&mut *tx, id, message_id)
        .await?
        .ok_or(ApiError::NotFound("message"))?;
    tx.commit().await?;
    Ok(Json(message.into()))
}

/// Writes one message again with a new job (the campaign goes back to `generating` until it
/// is done). 409 `message_pending` while it is being written, `earlier_step_missing` while an
/// earlier step of the prospect is not written.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/messages/{message_id}/regenerate",
    tag = "campaigns", operation_id = "v1.campaigns.messages.regenerate",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 202, body = MessageOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the campaign is not generating or ready, or the message cannot be regenerated now", body = Problem, content_type = "application/problem+json")))]
async fn regenerate_message(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<MessageOut>), ApiError> {
    let id = path_id(&id, "campaign")?;
    let message_id = path_id(&message_id, "message")?;
    let mut tx = state.db.begin().await?;
    lock_for_messages(&mut tx, auth.account_id, id).await?;
    db::regenerate(&mut tx, id, message_id, queue(&state))
        .await?
        .map_err(refused)?;
    let message = db::get(&mut *tx, id, message_id)
        .await?
        .ok_or(ApiError::NotFound("message"))?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(message.into())))
}
