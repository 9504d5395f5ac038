//! The operator's view of effects ("jobs"): list with filters, one job, retry a dead,
//! failed or unknown one, cancel one not yet sent. Scoped to the caller's account.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald_shared::db::effects::{self, EffectRow, ListFilter};
use herald_shared::effects::{EffectKind, EffectState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiQuery, AuthUser, IdempotencyKey, path_id};
use crate::idempotency::{self, Claim};
use crate::pagination::PageRequest;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(retry_job))
        .routes(routes!(cancel_job))
}

/// One effect: an e-mail, a message, a sync… and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobOut {
    pub id: Uuid,
    /// Job kind, e.g. `email`.
    pub kind: String,
    pub queue: String,
    /// `planned`, `queued`, `sending`, `sent`, `sandboxed`, `retrying`, `failed`, `dead`,
    /// `unknown` or `canceled`.
    pub state: String,
    pub idempotency_key: String,
    /// When it was first due.
    pub due_at: DateTime<Utc>,
    /// When the next attempt is due (for `planned` and `retrying`).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// The provider's id for it, once sent.
    pub provider_id: Option<String>,
    /// The `x-request-id` of the API request that planned it; the worker's logs of its
    /// attempts carry the same id.
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<EffectRow> for JobOut {
    fn from(row: EffectRow) -> Self {
        let waiting = matches!(row.state, EffectState::Planned | EffectState::Retrying);
        Self {
            id: row.id,
            kind: row.kind.to_string(),
            queue: row.queue,
            state: row.state.to_string(),
            idempotency_key: row.idempotency_key,
            due_at: row.due_at,
            next_attempt_at: waiting.then_some(row.next_attempt_at),
            attempts: row.attempts,
            last_error: row.last_error,
            provider_id: row.provider_id,
            request_id: row.request_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        }
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListJobsQuery {
    /// Only jobs in this state.
    pub state: Option<String>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Lists the account's jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", operation_id = "v1.jobs.list",
    security(("bearer" = [])), params(ListJobsQuery),
    responses((status = 200, body = JobPage),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_jobs(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<ListJobsQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let state_filter = query.state.as_deref().and_then(|raw| {
        errors.check(
            "state",
            raw.parse::<EffectState>().map_err(|_| {
                format!(
                    "must be one of {}",
                    EffectState::ALL.map(EffectState::as_str).join(", ")
                )
            }),
        )
    });
    let kind = query.kind.as_deref().and_then(|raw| {
        errors.check(
            "kind",
            raw.parse::<EffectKind>()
                .map_err(|_| format!("must be one of {}", EffectKind::names())),
        )
    });
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    errors.finish()?;
    let filter = ListFilter {
        state: state_filter,
        kind,
        after: page.after,
        limit: page.fetch_limit(),
    };
    let rows = effects::list(&state.db, auth.account_id, &filter).await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.created_at, row.id));
    Ok(Json(JobPage {
        items: rows.into_iter().map(JobOut::from).collect(),
        next_cursor,
    }))
}

/// One of the account's jobs.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", operation_id = "v1.jobs.get",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = JobOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_job(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<JobOut>, ApiError> {
    let id = path_id(&id, "job")?;
    let row = effects::get(&state.db, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    Ok(Json(row.into()))
}

/// Runs a `dead`, `failed` or `unknown` job again, now, with fresh attempts. (`unknown`: the
/// provider may already have it — re-running may send it twice.)
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", operation_id = "v1.jobs.retry",
    security(("bearer" = [])), params(("id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "repeats get the first answer")),
    responses((status = 200, body = JobOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the job is not dead, failed or unknown", body = Problem, content_type = "application/problem+json")))]
async fn retry_job(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    transition(state, auth, &id, key, Transition::Retry).await
}

/// Cancels a job that has not been handed to a provider (`planned`, `queued`, `retrying`).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", operation_id = "v1.jobs.cancel",
    security(("bearer" = [])), params(("id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "repeats get the first answer")),
    responses((status = 200, body = JobOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the job is already being sent or done", body = Problem, content_type = "application/problem+json")))]
async fn cancel_job(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    transition(state, auth, &id, key, Transition::Cancel).await
}

#[derive(Clone, Copy)]
enum Transition {
    Retry,
    Cancel,
}

async fn transition(
    state: AppState,
    auth: AuthUser,
    id: &str,
    key: Option<String>,
    transition: Transition,
) -> Result<Response, ApiError> {
    let id = path_id(id, "job")?;
    let (from, to, route): (&[EffectState], _, _) = match transition {
        Transition::Retry => (
            &EffectState::RETRYABLE_BY_OPERATOR,
            EffectState::Planned,
            format!("jobs/{id}/retry"),
        ),
        Transition::Cancel => (
            &EffectState::CANCELABLE,
            EffectState::Canceled,
            format!("jobs/{id}/cancel"),
        ),
    };
    let mut tx = state.db.begin().await?;
    if let Claim::Replay(status, saved) =
        idempotency::claim(&mut tx, auth.account_id, &route, key.as_deref(), b"").await?
    {
        return Ok((status, Json(saved)).into_response());
    }
    let Some(row) = effects::transition(&mut *tx, auth.account_id, id, from, to).await? else {
        let current = effects::get(&mut *tx, auth.account_id, id)
            .await?
            .ok_or(ApiError::NotFound("job"))?;
        let allowed = from
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ApiError::Conflict {
            code: "invalid_job_state",
            detail: format!(
                "the job is `{}`; only {allowed} jobs can be changed this way",
                current.state
            ),
        });
    };
    let out = serde_json::to_value(JobOut::from(row)).map_err(anyhow::Error::from)?;
    idempotency::save(
        &mut tx,
        auth.account_id,
        &route,
        key.as_deref(),
        StatusCode::OK,
        &out,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::OK, Json(out)).into_response())
}
