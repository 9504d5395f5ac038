//! A group's students: add one or many (all or nothing), list (optionally only the subscribed
//! or unsubscribed), and get, replace or remove one by id.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_shared::db::groups::{self as db, NewStudent};
use herald_shared::db::on_unique_violation;
use herald_shared::db::student_messages;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::changes;
use super::fields::{self, StudentIn, StudentOut, StudentUpdate};
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, parse_json, path_id};
use crate::pagination::PageRequest;
use crate::state::AppState;

/// Most students one request may add (a CSV import takes more).
pub const MAX_BATCH: usize = 1_000;

const UNIQUE_PHONE: &str = "students_group_phone";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_students, list_students))
        .routes(routes!(get_student, update_student, delete_student))
}

/// One student, or `{"students": [...]}` to add many at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StudentsIn {
    One(StudentIn),
    Many(StudentBatchIn),
}

/// Many students, added all or nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StudentBatchIn {
    /// 1–1,000 students with distinct phones.
    pub students: Vec<StudentIn>,
}

/// The student added, or `{"items": [...]}` when many were sent.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum StudentsAdded {
    One(StudentOut),
    Many(StudentList),
}

/// Students in the order they were given.
#[derive(Debug, Serialize, ToSchema)]
pub struct StudentList {
    pub items: Vec<StudentOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StudentPage {
    pub items: Vec<StudentOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StudentPageQuery {
    /// Page size, 1–200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `true`: only subscribed students; `false`: only unsubscribed ones.
    pub subscribed: Option<String>,
}

/// Adds one student (answering the student) or, with `{"students": [...]}`, up to 1,000
/// (answering `{"items": [...]}` in the order given). Many are added all or nothing: any
/// invalid student, a phone repeated in the request or already in the group fails the
/// request with a field error like `students[3].phone`. A single student whose phone is
/// already in the group answers 409 `student_exists`. `subscribed` defaults to `true`.
#[utoipa::path(post, path = "/api/v1/groups/{id}/students", tag = "groups",
    operation_id = "v1.groups.students.add", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = StudentsIn,
    responses((status = 201, body = StudentsAdded),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the phone is already in the group", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn add_students(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<StudentsAdded>), ApiError> {
    let group_id = path_id(&id, "group")?;
    // The two forms are told apart by the `students` key, so each is then read strictly and
    // its errors name the right fields (an untagged enum would only say "no variant matched").
    let many = body.as_object().is_some_and(|o| o.contains_key("students"));
    let bytes = serde_json::to_vec(&body).map_err(|err| ApiError::Internal(err.into()))?;
    let added = if many {
        let batch: StudentBatchIn = parse_json(&bytes)?;
        StudentsAdded::Many(StudentList {
            items: add_many(&state, auth, group_id, &batch.students).await?,
        })
    } else {
        let student: StudentIn = parse_json(&bytes)?;
        StudentsAdded::One(add_one(&state, auth, group_id, &student).await?)
    };
    Ok((StatusCode::CREATED, Json(added)))
}

async fn add_one(
    state: &AppState,
    auth: AuthUser,
    group_id: Uuid,
    input: &StudentIn,
) -> Result<StudentOut, ApiError> {
    let mut errors = FieldErrors::default();
    let student = fields::check_into(input.into(), "", &mut errors);
    errors.finish()?;
    let Some(student) = student else {
        return Err(ApiError::Validation(Vec::new()));
    };
    let mut tx = state.db.begin().await?;
    db::lock_group(&mut tx, auth.account_id, group_id)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    let inserted = db::insert_students(&mut tx, group_id, std::slice::from_ref(&student)).await;
    let row = on_unique_violation(inserted, UNIQUE_PHONE)?
        .and_then(|rows| rows.into_iter().next())
        .ok_or_else(|| student_exists(&student.phone))?;
    crate::planning::refill_schedules(state, &mut tx, group_id).await?;
    tx.commit().await?;
    Ok(row.into())
}

async fn add_many(
    state: &AppState,
    auth: AuthUser,
    group_id: Uuid,
    inputs: &[StudentIn],
) -> Result<Vec<StudentOut>, ApiError> {
    let mut errors = FieldErrors::default();
    if inputs.is_empty() || inputs.len() > MAX_BATCH {
        errors.add("students", format!("must have 1 to {MAX_BATCH} students"));
    }
    let Batch {
        students,
        first_with_phone,
    } = check_batch(inputs, &mut errors);
    errors.finish()?;
    let mut tx = state.db.begin().await?;
    db::lock_group(&mut tx, auth.account_id, group_id)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    let phones: Vec<String> = students.iter().map(|s| s.phone.clone()).collect();
    let mut errors = FieldErrors::default();
    for phone in db::existing_phones(&mut *tx, group_id, &phones).await? {
        if let Some(index) = first_with_phone.get(&phone) {
            errors.add(
                &format!("students[{index}].phone"),
                format!("{phone} is already in the group"),
            );
        }
    }
    errors.finish()?;
    let rows = db::insert_students(&mut tx, group_id, &students).await?;
    crate::planning::refill_schedules(state, &mut tx, group_id).await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// A checked batch of students: the valid ones, and the index each phone was first given at.
pub struct Batch {
    pub students: Vec<NewStudent>,
    pub first_with_phone: HashMap<String, usize>,
}

/// Checks every student of a `students` array, recording errors as `students[3].phone`; a
/// phone given twice is an error on the later one. The caller checks the array's length.
pub fn check_batch(inputs: &[StudentIn], errors: &mut FieldErrors) -> Batch {
    let mut first_with_phone: HashMap<String, usize> = HashMap::new();
    let mut students = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let path = format!("students[{index}].");
        let Some(student) = fields::check_into(input.into(), &path, errors) else {
            continue;
        };
        if let Some(first) = first_with_phone.get(&student.phone) {
            errors.add(
                &format!("{path}phone"),
                format!("repeats the phone of students[{first}]"),
            );
            continue;
        }
        first_with_phone.insert(student.phone.clone(), index);
        students.push(student);
    }
    Batch {
        students,
        first_with_phone,
    }
}

/// The group's students, oldest first (students added together keep the order given).
#[utoipa::path(get, path = "/api/v1/groups/{id}/students", tag = "groups",
    operation_id = "v1.groups.students.list", security(("bearer" = [])),
    params(("id" = Uuid, Path), StudentPageQuery),
    responses((status = 200, body = StudentPage),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_students(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<StudentPageQuery>,
) -> Result<Json<StudentPage>, ApiError> {
    let group_id = path_id(&id, "group")?;
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    let subscribed = match query.subscribed.as_deref() {
        None => None,
        Some(raw) => errors.check(
            "subscribed",
            raw.parse::<bool>()
                .map_err(|_| "must be `true` or `false`".to_owned()),
        ),
    };
    errors.finish()?;
    let mut conn = state.db.acquire().await?;
    db::get_group(&mut *conn, auth.account_id, group_id)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    let rows = db::list_students(
        &mut *conn,
        group_id,
        subscribed,
        page.after,
        page.fetch_limit(),
    )
    .await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.created_at, row.id));
    Ok(Json(StudentPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One student.
#[utoipa::path(get, path = "/api/v1/students/{id}", tag = "groups", operation_id = "v1.students.get",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = StudentOut),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_student(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<StudentOut>, ApiError> {
    let id = path_id(&id, "student")?;
    let row = db::get_student(&state.db, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("student"))?;
    Ok(Json(row.into()))
}

/// Replaces a student's name, phone, channel, time zone and subscription (`country` only
/// helps read a national phone). A phone another student of the group has answers 409
/// `student_exists`. Unsent course messages follow: unsubscribing skips them, a new time zone
/// moves them to the same local time in it, a new phone or channel is used from the next one.
#[utoipa::path(put, path = "/api/v1/students/{id}", tag = "groups", operation_id = "v1.students.update",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = StudentUpdate,
    responses((status = 200, body = StudentOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "another student of the group has the phone", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_student(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StudentUpdate>,
) -> Result<Json<StudentOut>, ApiError> {
    let id = path_id(&id, "student")?;
    let mut errors = FieldErrors::default();
    let student = fields::check_into((&body).into(), "", &mut errors);
    errors.finish()?;
    let Some(student) = student else {
        return Err(ApiError::Validation(Vec::new()));
    };
    let mut tx = state.db.begin().await?;
    let before = db::lock_student(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("student"))?;
    let updated = db::update_student(&mut *tx, id, &student).await;
    let row = on_unique_violation(updated, UNIQUE_PHONE)?
        .ok_or_else(|| student_exists(&student.phone))?;
    changes::apply(&mut tx, &before, &row).await?;
    if (!before.subscribed && row.subscribed) || before.timezone != row.timezone {
        crate::planning::refill_schedules(&state, &mut tx, row.group_id).await?;
    }
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// Removes a student from the group; their unsent messages are skipped (canceled).
#[utoipa::path(delete, path = "/api/v1/students/{id}", tag = "groups", operation_id = "v1.students.delete",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn delete_student(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "student")?;
    let mut tx = state.db.begin().await?;
    db::lock_student(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("student"))?;
    student_messages::skip_unsent_for_students(&mut *tx, &[id], "student removed").await?;
    db::delete_student(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn student_exists(phone: &str) -> ApiError {
    ApiError::Conflict {
        code: "student_exists",
        detail: format!("a student with phone {phone} is already in the group"),
    }
}
