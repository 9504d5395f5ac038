//! Courses: create with nested days and questions, list, get, update, delete. Days and
//! questions have their own routes in `days` and `questions`.

pub mod content;
pub mod days;
pub mod questions;

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_shared::db::courses::{self as db, CourseRow, CourseSummary};
use herald_shared::db::deliveries::{self, ActiveFor};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::content::{DayIn, DayOut, MAX_DAYS};
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, path_id};
use crate::pagination::{PageQuery, PageRequest};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_course, list_courses))
        .routes(routes!(get_course, update_course, delete_course))
        .merge(days::router())
        .merge(questions::router())
}

/// A new course with its days.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CourseIn {
    /// 1–200 characters, surrounding white space trimmed.
    pub name: String,
    /// 1–200 characters, surrounding white space trimmed.
    pub author: String,
    /// At most 5,000 characters, surrounding white space trimmed.
    #[serde(default)]
    pub description: String,
    /// Day 1, day 2, … in order; at most 366.
    #[serde(default)]
    #[schema(max_items = 366)]
    pub days: Vec<DayIn>,
}

/// A course's own fields (days have their own routes).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CourseUpdate {
    /// 1–200 characters, surrounding white space trimmed.
    pub name: String,
    /// 1–200 characters, surrounding white space trimmed.
    pub author: String,
    /// At most 5,000 characters, surrounding white space trimmed.
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CourseOut {
    pub id: Uuid,
    pub name: String,
    pub author: String,
    pub description: String,
    pub days: Vec<DayOut>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CourseSummaryOut {
    pub id: Uuid,
    pub name: String,
    pub author: String,
    pub description: String,
    pub day_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<CourseSummary> for CourseSummaryOut {
    fn from(row: CourseSummary) -> Self {
        Self {
            id: row.id,
            name: row.name,
            author: row.author,
            description: row.description,
            day_count: row.day_count,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CoursePage {
    pub items: Vec<CourseSummaryOut>,
    pub next_cursor: Option<String>,
}

fn check_fields(
    name: &str,
    author: &str,
    description: &str,
    errors: &mut FieldErrors,
) -> (String, String, String) {
    let mut bounded = |field: &str, value: &str, min: usize, max: usize| {
        let value = value.trim();
        let length = value.chars().count();
        if length < min {
            errors.add(field, "must not be empty");
        } else if length > max {
            errors.add(field, format!("must be at most {max} characters"));
        }
        value.to_owned()
    };
    (
        bounded("name", name, 1, 200),
        bounded("author", author, 1, 200),
        bounded("description", description, 0, 5_000),
    )
}

/// Creates a course with its days and questions, all or nothing.
#[utoipa::path(post, path = "/api/v1/courses", tag = "courses", operation_id = "v1.courses.create",
    security(("bearer" = [])), request_body = CourseIn,
    responses((status = 201, body = CourseOut),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_course(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CourseIn>,
) -> Result<(StatusCode, Json<CourseOut>), ApiError> {
    let mut errors = FieldErrors::default();
    let (name, author, description) =
        check_fields(&body.name, &body.author, &body.description, &mut errors);
    if body.days.len() > MAX_DAYS {
        errors.add("days", format!("must have at most {MAX_DAYS} days"));
    }
    let days: Vec<_> = body
        .days
        .iter()
        .enumerate()
        .map(|(index, day)| content::check_day(day, &format!("days[{index}]"), &mut errors))
        .collect();
    errors.finish()?;
    let mut tx = state.db.begin().await?;
    let course = db::insert_course(&mut tx, auth.account_id, &name, &author, &description).await?;
    for (text, questions) in &days {
        let day = db::append_day(&mut tx, course.id, text).await?;
        for question in questions {
            db::append_question(&mut tx, day.id, question).await?;
        }
    }
    let out = course_out(&mut tx, course).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Lists the account's courses, newest first.
#[utoipa::path(get, path = "/api/v1/courses", tag = "courses", operation_id = "v1.courses.list",
    security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = CoursePage),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_courses(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<CoursePage>, ApiError> {
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    errors.finish()?;
    let rows = db::list_courses(&state.db, auth.account_id, page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.created_at, row.id));
    Ok(Json(CoursePage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One course with every day and question.
#[utoipa::path(get, path = "/api/v1/courses/{id}", tag = "courses", operation_id = "v1.courses.get",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = CourseOut),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_course(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<CourseOut>, ApiError> {
    let id = path_id(&id, "course")?;
    let mut conn = state.db.acquire().await?;
    let course = db::get_course(&mut *conn, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    Ok(Json(course_out(&mut conn, course).await?))
}

/// Replaces a course's name, author and description.
#[utoipa::path(put, path = "/api/v1/courses/{id}", tag = "courses", operation_id = "v1.courses.update",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = CourseUpdate,
    responses((status = 200, body = CourseOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_course(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CourseUpdate>,
) -> Result<Json<CourseOut>, ApiError> {
    let id = path_id(&id, "course")?;
    let mut errors = FieldErrors::default();
    let (name, author, description) =
        check_fields(&body.name, &body.author, &body.description, &mut errors);
    errors.finish()?;
    let mut tx = state.db.begin().await?;
    db::lock_course(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    let course = db::update_course(&mut *tx, id, &name, &author, &description).await?;
    let out = course_out(&mut tx, course).await?;
    tx.commit().await?;
    Ok(Json(out))
}

/// Deletes a course with its days and questions; refused while an active delivery uses it
/// (finished deliveries keep their message history).
#[utoipa::path(delete, path = "/api/v1/courses/{id}", tag = "courses", operation_id = "v1.courses.delete",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "an active delivery uses it", body = Problem, content_type = "application/problem+json")))]
async fn delete_course(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "course")?;
    let mut tx = state.db.begin().await?;
    db::lock_course(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("course"))?;
    if deliveries::active_for(&mut *tx, ActiveFor::Course, id).await? {
        return Err(ApiError::Conflict {
            code: "course_in_use",
            detail: "an active delivery uses this course; stop it (or let it complete) first"
                .to_owned(),
        });
    }
    db::delete_course(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A course with all its days and questions.
pub async fn course_out(conn: &mut PgConnection, course: CourseRow) -> Result<CourseOut, ApiError> {
    let days = db::days(
        &mut *conn,
        course.id,
        0,
        i64::try_from(MAX_DAYS).unwrap_or(366),
    )
    .await?;
    let day_ids: Vec<Uuid> = days.iter().map(|day| day.id).collect();
    let mut questions: HashMap<Uuid, Vec<_>> = HashMap::new();
    for question in db::questions_of(&mut *conn, &day_ids).await? {
        questions.entry(question.day_id).or_default().push(question);
    }
    Ok(CourseOut {
        id: course.id,
        name: course.name,
        author: course.author,
        description: course.description,
        days: days
            .into_iter()
            .map(|day| {
                let day_questions = questions.remove(&day.id).unwrap_or_default();
                DayOut::new(day, day_questions)
            })
            .collect(),
        created_at: course.created_at,
        updated_at: course.updated_at,
    })
}
