//! A delivery's messages (filter by state and student) and the students' answers.

use axum::Json;
use axum::extract::{Path, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use herald_shared::db::deliveries as db;
use herald_shared::db::delivery_reports::{self as reports, AnswerRow, MessageRow};
use herald_shared::effects::EffectState;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiQuery, AuthUser, path_id};
use crate::pagination::PageQuery;
use crate::pagination::PageRequest;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_messages))
        .routes(routes!(list_answers))
}

/// One message to one student.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    pub id: Uuid,
    /// Absent once the student was removed.
    pub student_id: Option<Uuid>,
    pub day: i32,
    /// 0: the day's text; 1…n: its questions.
    pub seq: i32,
    pub body: String,
    /// The effect's state (`planned`, `held`, `sent`, `failed`, …).
    pub state: String,
    /// When it is (or was) due.
    pub send_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// The provider's message id (a Twilio SID).
    pub provider_id: Option<String>,
    /// The provider's latest status callback (`sent`, `delivered`, `undelivered`, `failed`).
    pub provider_status: Option<String>,
    pub error_code: Option<i32>,
}

impl From<MessageRow> for MessageOut {
    fn from(row: MessageRow) -> Self {
        Self {
            id: row.id,
            student_id: row.student_id,
            day: row.day,
            seq: row.seq,
            body: row.body,
            state: row.state,
            send_at: row.next_attempt_at,
            finished_at: row.finished_at,
            attempts: row.attempts,
            last_error: row.last_error,
            provider_id: row.provider_id,
            provider_status: row.provider_status,
            error_code: row.error_code,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// Only messages in this state.
    pub state: Option<String>,
    /// Only this student's messages.
    pub student_id: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The delivery's messages by day, then sequence, then student.
#[utoipa::path(get, path = "/api/v1/deliveries/{id}/messages", tag = "deliveries", operation_id = "v1.deliveries.messages",
    security(("bearer" = [])), params(("id" = Uuid, Path), MessageQuery),
    responses((status = 200, body = MessagePage),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_messages(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<MessageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let id = path_id(&id, "delivery")?;
    let mut errors = FieldErrors::default();
    let state_filter = query.state.as_deref().and_then(|raw| {
        errors.check(
            "state",
            raw.parse::<EffectState>()
                .map(EffectState::as_str)
                .map_err(|_| {
                    format!(
                        "must be one of {}",
                        EffectState::ALL.map(EffectState::as_str).join(", ")
                    )
                }),
        )
    });
    let student = query.student_id.as_deref().and_then(|raw| {
        errors.check(
            "student_id",
            raw.parse::<Uuid>()
                .map_err(|_| "must be a student id".to_owned()),
        )
    });
    // the page size rules are the shared ones; the cursor is this list's own
    let limit = PageRequest::parse(query.limit.as_deref(), None, &mut errors).limit;
    let after = query
        .cursor
        .as_deref()
        .and_then(|raw| errors.check("cursor", decode_cursor(raw)));
    errors.finish()?;
    db::get(&state.db, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    let mut rows =
        reports::messages(&state.db, id, state_filter, student, after, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(usize::try_from(limit).unwrap_or(50));
        rows.last()
            .map(|row| encode_cursor(row.day, row.seq, row.student_id.unwrap_or_else(Uuid::nil)))
    } else {
        None
    };
    Ok(Json(MessagePage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

fn encode_cursor(day: i32, seq: i32, student: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{day}|{seq}|{student}"))
}

fn decode_cursor(raw: &str) -> Result<(i32, i32, Uuid), String> {
    let invalid = || "is not a cursor from a previous page".to_owned();
    let text = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let mut parts = text.split('|');
    let day = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(invalid)?;
    let seq = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(invalid)?;
    let student = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(invalid)?;
    Ok((day, seq, student))
}

/// A student's reply to a question.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerOut {
    pub id: Uuid,
    pub student_id: Option<Uuid>,
    pub day: i32,
    pub question_id: Option<Uuid>,
    pub body: String,
    /// Graded for `choice` questions; absent for `open` ones.
    pub correct: Option<bool>,
    pub received_at: DateTime<Utc>,
}

impl From<AnswerRow> for AnswerOut {
    fn from(row: AnswerRow) -> Self {
        Self {
            id: row.id,
            student_id: row.student_id,
            day: row.day,
            question_id: row.question_id,
            body: row.body,
            correct: row.correct,
            received_at: row.received_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerPage {
    pub items: Vec<AnswerOut>,
    pub next_cursor: Option<String>,
}

/// The answers students sent to the delivery's questions, oldest first.
#[utoipa::path(get, path = "/api/v1/deliveries/{id}/answers", tag = "deliveries", operation_id = "v1.deliveries.answers",
    security(("bearer" = [])), params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = AnswerPage), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn list_answers(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<AnswerPage>, ApiError> {
    let id = path_id(&id, "delivery")?;
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    errors.finish()?;
    db::get(&state.db, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    let rows = reports::answers(&state.db, id, page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.received_at, row.id));
    Ok(Json(AnswerPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
