//! Suppressions: e-mail addresses the account must not send to, and why (`unsubscribed`,
//! `bounced`, `complained`, `manual`). Add (idempotent per address), list by reason, get,
//! remove. Campaign sending checks them through `herald_shared::db::suppressions`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_shared::db::suppressions::{self as db, SuppressionReason, SuppressionRow};
use herald_shared::domain::EmailAddress;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, path_id};
use crate::pagination::PageRequest;
use crate::state::AppState;

/// Longest `source`, once trimmed.
pub const MAX_SOURCE_CHARS: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_suppression, list_suppressions))
        .routes(routes!(get_suppression, delete_suppression))
}

/// An address not to send to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionIn {
    /// Compared in any case; stored trimmed and lower-cased.
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// `unsubscribed`, `bounced`, `complained` or `manual`.
    #[schema(example = "manual")]
    pub reason: String,
    /// Where it came from (`sendgrid`, `support ticket 42`, …): up to 200 characters.
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionOut {
    pub id: Uuid,
    /// Lower-cased.
    pub email: String,
    #[schema(example = "unsubscribed")]
    pub reason: String,
    /// Null when none was given.
    pub source: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<SuppressionRow> for SuppressionOut {
    fn from(row: SuppressionRow) -> Self {
        Self {
            id: row.id,
            email: row.email,
            reason: row.reason.as_str().to_owned(),
            source: row.source,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionPage {
    pub items: Vec<SuppressionOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SuppressionPageQuery {
    /// Page size, 1–200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only suppressions with this reason.
    pub reason: Option<String>,
}

fn parse_reason(raw: &str) -> Result<SuppressionReason, String> {
    raw.parse().map_err(|_| {
        let names = SuppressionReason::ALL.map(SuppressionReason::as_str);
        format!("must be one of {}", names.join(", "))
    })
}

/// Suppresses an address: 201 with the new suppression. When the address (in any case) is
/// already suppressed, nothing changes and the existing suppression is answered with 200 —
/// its reason and source stay as they were (delete it first to record another reason).
#[utoipa::path(post, path = "/api/v1/suppressions", tag = "suppressions",
    operation_id = "v1.suppressions.create", security(("bearer" = [])),
    request_body = SuppressionIn,
    responses((status = 201, description = "suppressed now", body = SuppressionOut),
        (status = 200, description = "already suppressed: the existing suppression, unchanged", body = SuppressionOut),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_suppression(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<SuppressionIn>,
) -> Result<(StatusCode, Json<SuppressionOut>), ApiError> {
    let mut errors = FieldErrors::default();
    let email = errors.check("email", EmailAddress::parse(&body.email));
    let reason = errors.check("reason", parse_reason(&body.reason));
    let source = body.source.as_deref().map(str::trim);
    if source.is_some_and(|source| source.chars().count() > MAX_SOURCE_CHARS) {
        errors.add(
            "source",
            format!("must be at most {MAX_SOURCE_CHARS} characters"),
        );
    }
    errors.finish()?;
    let (Some(email), Some(reason)) = (email, reason) else {
        return Err(ApiError::Validation(Vec::new()));
    };
    let source = source.filter(|source| !source.is_empty());
    let mut conn = state.db.acquire().await?;
    let (row, created) =
        db::suppress(&mut conn, auth.account_id, email.as_str(), reason, source).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(row.into())))
}

/// Lists the account's suppressions, newest first, optionally of one reason.
#[utoipa::path(get, path = "/api/v1/suppressions", tag = "suppressions",
    operation_id = "v1.suppressions.list", security(("bearer" = [])),
    params(SuppressionPageQuery),
    responses((status = 200, body = SuppressionPage),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_suppressions(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<SuppressionPageQuery>,
) -> Result<Json<SuppressionPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    let reason = query
        .reason
        .as_deref()
        .and_then(|raw| errors.check("reason", parse_reason(raw)));
    errors.finish()?;
    let rows = db::list_suppressions(
        &state.db,
        auth.account_id,
        reason,
        page.after,
        page.fetch_limit(),
    )
    .await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.created_at, row.id));
    Ok(Json(SuppressionPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One suppression.
#[utoipa::path(get, path = "/api/v1/suppressions/{id}", tag = "suppressions",
    operation_id = "v1.suppressions.get", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SuppressionOut),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_suppression(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<SuppressionOut>, ApiError> {
    let id = path_id(&id, "suppression")?;
    let row = db::get_suppression(&state.db, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("suppression"))?;
    Ok(Json(row.into()))
}

/// Removes a suppression: the address may be sent to again.
#[utoipa::path(delete, path = "/api/v1/suppressions/{id}", tag = "suppressions",
    operation_id = "v1.suppressions.delete", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn delete_suppression(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "suppression")?;
    if !db::delete_suppression(&state.db, auth.account_id, id).await? {
        return Err(ApiError::NotFound("suppression"));
    }
    Ok(StatusCode::NO_CONTENT)
}
