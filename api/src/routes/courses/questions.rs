//! A day's questions: add and list under the day, update and delete by id (later questions
//! move up one position).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_shared::db::courses as db;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::content::{self, MAX_QUESTIONS_PER_DAY, QuestionIn, QuestionOut};
use super::days::parse_day;
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, AuthUser, path_id};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_question, list_questions))
        .routes(routes!(update_question, delete_question))
}

/// A day's questions, in order (at most 20, so never paged).
#[derive(Debug, Serialize, ToSchema)]
pub struct QuestionList {
    pub items: Vec<QuestionOut>,
}

/// Adds a question after the day's last one.
#[utoipa::path(post, path = "/api/v1/courses/{id}/days/{day}/questions", tag = "courses",
    operation_id = "v1.courses.questions.add", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("day" = i32, Path)), request_body = QuestionIn,
    responses((status = 201, body = QuestionOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the day already has 20 questions", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn add_question(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, day)): Path<(String, String)>,
    ApiJson(body): ApiJson<QuestionIn>,
) -> Result<(StatusCode, Json<QuestionOut>), ApiError> {
    let (course_id, day_number) = (path_id(&id, "course")?, parse_day(&day)?);
    let mut errors = FieldErrors::default();
    let question = content::check_question(&body, "", &mut errors);
    errors.finish()?;
    let Some(question) = question else {
        return Err(ApiError::Validation(Vec::new()));
    };
    let mut tx = state.db.begin().await?;
    db::lock_course(&mut tx, auth.account_id, course_id)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    let day = db::day(&mut *tx, course_id, day_number)
        .await?
        .ok_or(ApiError::NotFound("day"))?;
    if db::questions_of(&mut *tx, &[day.id]).await?.len() >= MAX_QUESTIONS_PER_DAY {
        return Err(ApiError::Conflict {
            code: "day_full",
            detail: format!("a day may have at most {MAX_QUESTIONS_PER_DAY} questions"),
        });
    }
    let row = db::append_question(&mut tx, day.id, &question).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// The day's questions in order.
#[utoipa::path(get, path = "/api/v1/courses/{id}/days/{day}/questions", tag = "courses",
    operation_id = "v1.courses.questions.list", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("day" = i32, Path)),
    responses((status = 200, body = QuestionList), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn list_questions(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, day)): Path<(String, String)>,
) -> Result<Json<QuestionList>, ApiError> {
    let (course_id, day_number) = (path_id(&id, "course")?, parse_day(&day)?);
    let mut conn = state.db.acquire().await?;
    db::get_course(&mut *conn, auth.account_id, course_id)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    let day = db::day(&mut *conn, course_id, day_number)
        .await?
        .ok_or(ApiError::NotFound("day"))?;
    let rows = db::questions_of(&mut *conn, &[day.id]).await?;
    Ok(Json(QuestionList {
        items: rows.into_iter().map(Into::into).collect(),
    }))
}

/// Replaces a question.
#[utoipa::path(put, path = "/api/v1/questions/{id}", tag = "courses", operation_id = "v1.questions.update",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = QuestionIn,
    responses((status = 200, body = QuestionOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_question(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<QuestionIn>,
) -> Result<Json<QuestionOut>, ApiError> {
    let id = path_id(&id, "question")?;
    let mut errors = FieldErrors::default();
    let question = content::check_question(&body, "", &mut errors);
    errors.finish()?;
    let Some(question) = question else {
        return Err(ApiError::Validation(Vec::new()));
    };
    let mut tx = state.db.begin().await?;
    db::lock_question(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("question"))?;
    let row = db::update_question(&mut *tx, id, &question).await?;
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// Deletes a question.
#[utoipa::path(delete, path = "/api/v1/questions/{id}", tag = "courses", operation_id = "v1.questions.delete",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn delete_question(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "question")?;
    let mut tx = state.db.begin().await?;
    let (question, _) = db::lock_question(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("question"))?;
    db::delete_question(&mut tx, &question).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
