//! A course's days: append, list, get, update the text, delete (later days are renumbered).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_shared::db::courses as db;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::content::{self, DayIn, DayOut, MAX_DAYS};
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, path_id};
use crate::pagination::PageRequest;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(append_day, list_days))
        .routes(routes!(get_day, update_day, delete_day))
}

/// New text for a day.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DayUpdate {
    /// 1–4,096 characters, surrounding white space trimmed.
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayPage {
    pub items: Vec<DayOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DayPageQuery {
    /// Page size, 1–200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (a day number).
    pub cursor: Option<String>,
}

/// Appends a day (numbered after the last one) with its questions.
#[utoipa::path(post, path = "/api/v1/courses/{id}/days", tag = "courses", operation_id = "v1.courses.days.append",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = DayIn,
    responses((status = 201, body = DayOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn append_day(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DayIn>,
) -> Result<(StatusCode, Json<DayOut>), ApiError> {
    let course_id = path_id(&id, "course")?;
    let mut errors = FieldErrors::default();
    let (text, questions) = content::check_day(&body, "", &mut errors);
    errors.finish()?;
    let mut tx = state.db.begin().await?;
    db::lock_course(&mut tx, auth.account_id, course_id)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    let existing = db::days(
        &mut *tx,
        course_id,
        0,
        i64::try_from(MAX_DAYS).unwrap_or(366),
    )
    .await?
    .len();
    if existing >= MAX_DAYS {
        return Err(ApiError::Conflict {
            code: "course_full",
            detail: format!("a course may have at most {MAX_DAYS} days"),
        });
    }
    let day = db::append_day(&mut tx, course_id, &text).await?;
    let mut rows = Vec::new();
    for question in &questions {
        rows.push(db::append_question(&mut tx, day.id, question).await?);
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(DayOut::new(day, rows))))
}

/// The course's days in order.
#[utoipa::path(get, path = "/api/v1/courses/{id}/days", tag = "courses", operation_id = "v1.courses.days.list",
    security(("bearer" = [])), params(("id" = Uuid, Path), DayPageQuery),
    responses((status = 200, body = DayPage),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_days(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DayPageQuery>,
) -> Result<Json<DayPage>, ApiError> {
    let course_id = path_id(&id, "course")?;
    let mut errors = FieldErrors::default();
    // the page size rules are the shared ones; the cursor (a day number) is this list's own
    let limit = PageRequest::parse(query.limit.as_deref(), None, &mut errors).limit;
    let after = match query.cursor.as_deref() {
        None => Some(0),
        Some(raw) => errors.check(
            "cursor",
            raw.parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| "is not a cursor from a previous page".to_owned()),
        ),
    };
    errors.finish()?;
    let after = after.unwrap_or(0);
    let mut conn = state.db.acquire().await?;
    db::get_course(&mut *conn, auth.account_id, course_id)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    let mut days = db::days(&mut *conn, course_id, after, limit + 1).await?;
    let next_cursor = if days.len() as i64 > limit {
        days.truncate(usize::try_from(limit).unwrap_or(50));
        days.last().map(|day| day.day_number.to_string())
    } else {
        None
    };
    let day_ids: Vec<Uuid> = days.iter().map(|day| day.id).collect();
    let mut questions = db::questions_of(&mut *conn, &day_ids).await?;
    let items = days
        .into_iter()
        .map(|day| {
            let (mine, rest) = questions.drain(..).partition(|q| q.day_id == day.id);
            questions = rest;
            DayOut::new(day, mine)
        })
        .collect();
    Ok(Json(DayPage { items, next_cursor }))
}

/// One day with its questions.
#[utoipa::path(get, path = "/api/v1/courses/{id}/days/{day}", tag = "courses", operation_id = "v1.courses.days.get",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("day" = i32, Path)),
    responses((status = 200, body = DayOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_day(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, day)): Path<(String, String)>,
) -> Result<Json<DayOut>, ApiError> {
    let (course_id, day_number) = (path_id(&id, "course")?, parse_day(&day)?);
    let mut conn = state.db.acquire().await?;
    db::get_course(&mut *conn, auth.account_id, course_id)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    Ok(Json(load_day(&mut conn, course_id, day_number).await?))
}

/// Replaces a day's text (its questions have their own routes).
#[utoipa::path(put, path = "/api/v1/courses/{id}/days/{day}", tag = "courses", operation_id = "v1.courses.days.update",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("day" = i32, Path)), request_body = DayUpdate,
    responses((status = 200, body = DayOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_day(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, day)): Path<(String, String)>,
    ApiJson(body): ApiJson<DayUpdate>,
) -> Result<Json<DayOut>, ApiError> {
    let (course_id, day_number) = (path_id(&id, "course")?, parse_day(&day)?);
    let mut errors = FieldErrors::default();
    let text = content::check_text(&body.text, "text", &mut errors);
    errors.finish()?;
    let mut tx = state.db.begin().await?;
    db::lock_course(&mut tx, auth.account_id, course_id)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    let day = db::day(&mut *tx, course_id, day_number)
        .await?
        .ok_or(ApiError::NotFound("day"))?;
    db::update_day_text(&mut *tx, day.id, &text).await?;
    let out = load_day(&mut tx, course_id, day_number).await?;
    tx.commit().await?;
    Ok(Json(out))
}

/// Deletes a day; the days after it move up one number.
#[utoipa::path(delete, path = "/api/v1/courses/{id}/days/{day}", tag = "courses", operation_id = "v1.courses.days.delete",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("day" = i32, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn delete_day(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, day)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (course_id, day_number) = (path_id(&id, "course")?, parse_day(&day)?);
    let mut tx = state.db.begin().await?;
    db::lock_course(&mut tx, auth.account_id, course_id)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    db::day(&mut *tx, course_id, day_number)
        .await?
        .ok_or(ApiError::NotFound("day"))?;
    db::delete_day(&mut tx, course_id, day_number).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn load_day(
    conn: &mut PgConnection,
    course_id: Uuid,
    day_number: i32,
) -> Result<DayOut, ApiError> {
    let day = db::day(&mut *conn, course_id, day_number)
        .await?
        .ok_or(ApiError::NotFound("day"))?;
    let questions = db::questions_of(&mut *conn, &[day.id]).await?;
    Ok(DayOut::new(day, questions))
}

/// A day number that is not a positive integer names no day.
pub fn parse_day(raw: &str) -> Result<i32, ApiError> {
    raw.parse::<i32>()
        .ok()
        .filter(|day| *day >= 1)
        .ok_or(ApiError::NotFound("day"))
}
