//! Student groups: create (optionally with its first students), list (with student counts),
//! get, rename or describe, delete. A group's students have their own routes in `students` (one
//! by one or many at once) and `import` (CSV, its columns read by `csv_rows`); `fields` holds
//! the checks all ways of adding one share.

pub mod changes;
pub mod csv_rows;
pub mod fields;
pub mod import;
pub mod students;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_shared::db::deliveries::{self, ActiveFor};
use herald_shared::db::groups::{self as db, GroupSummary};
use herald_shared::db::schedules;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::fields::StudentIn;
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, path_id};
use crate::pagination::PageRequest;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_group, list_groups))
        .routes(routes!(get_group, update_group, delete_group))
        .merge(students::router())
        .merge(import::router())
}

/// A new group, optionally with its first students (seed 002's shape).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupIn {
    /// 1–200 characters.
    pub name: String,
    /// Up to 5,000 characters (default empty).
    #[serde(default)]
    pub description: Option<String>,
    /// Up to 1,000 students with distinct phones, the fields of
    /// `POST /groups/{id}/students`; added with the group, all or nothing.
    #[serde(default)]
    pub students: Option<Vec<StudentIn>>,
}

/// A group's own fields (students have their own routes).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupUpdate {
    /// 1–200 characters.
    pub name: String,
    /// Up to 5,000 characters; absent keeps the current description.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupOut {
    pub id: Uuid,
    pub name: String,
    /// Empty when none was given.
    pub description: String,
    /// Students in the group, subscribed or not (list them with
    /// `GET /groups/{id}/students`).
    pub student_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<GroupSummary> for GroupOut {
    fn from(row: GroupSummary) -> Self {
        Self {
            id: row.id,
            name: row.name,
            description: row.description,
            student_count: row.student_count,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupPage {
    pub items: Vec<GroupOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GroupPageQuery {
    /// Page size, 1–200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

const MAX_DESCRIPTION_CHARS: usize = 5_000;

fn check_name(name: &str, errors: &mut FieldErrors) -> String {
    let name = name.trim();
    match name.chars().count() {
        0 => errors.add("name", "must not be empty"),
        201.. => errors.add("name", "must be at most 200 characters"),
        _ => {}
    }
    name.to_owned()
}

fn check_description(description: &str, errors: &mut FieldErrors) -> String {
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.add(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        );
    }
    description.to_owned()
}

/// Creates a group, with its first students when `students` is given: the group and every
/// student are written in one transaction, and any invalid student (`students[3].phone`) or a
/// phone given twice fails the request with nothing written.
#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", operation_id = "v1.groups.create",
    security(("bearer" = [])), request_body = GroupIn,
    responses((status = 201, body = GroupOut),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_group(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<GroupIn>,
) -> Result<(StatusCode, Json<GroupOut>), ApiError> {
    let mut errors = FieldErrors::default();
    let name = check_name(&body.name, &mut errors);
    let description = check_description(body.description.as_deref().unwrap_or(""), &mut errors);
    let inputs = body.students.as_deref().unwrap_or_default();
    if inputs.len() > students::MAX_BATCH {
        errors.add(
            "students",
            format!(
                "must have at most {} students; add more with POST /groups/{{id}}/students \
                 or the CSV import",
                students::MAX_BATCH
            ),
        );
    }
    let batch = students::check_batch(inputs, &mut errors);
    errors.finish()?;
    let mut tx = state.db.begin().await?;
    let row = db::insert_group(&mut *tx, auth.account_id, &name, &description).await?;
    // a new group holds no phone yet and no schedule sends to it: nothing else to check
    let added = db::insert_students(&mut tx, row.id, &batch.students).await?;
    tx.commit().await?;
    let out = GroupOut {
        id: row.id,
        name: row.name,
        description: row.description,
        student_count: i64::try_from(added.len()).unwrap_or(i64::MAX),
        created_at: row.created_at,
        updated_at: row.updated_at,
    };
    Ok((StatusCode::CREATED, Json(out)))
}

/// Lists the account's groups, newest first.
#[utoipa::path(get, path = "/api/v1/groups", tag = "groups", operation_id = "v1.groups.list",
    security(("bearer" = [])), params(GroupPageQuery),
    responses((status = 200, body = GroupPage),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_groups(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<GroupPageQuery>,
) -> Result<Json<GroupPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    errors.finish()?;
    let rows = db::list_groups(&state.db, auth.account_id, page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.created_at, row.id));
    Ok(Json(GroupPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One group with its student count.
#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "groups", operation_id = "v1.groups.get",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = GroupOut),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_group(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<GroupOut>, ApiError> {
    let id = path_id(&id, "group")?;
    let group = db::get_group(&state.db, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    Ok(Json(group.into()))
}

/// Renames a group and, when `description` is given, replaces its description.
#[utoipa::path(put, path = "/api/v1/groups/{id}", tag = "groups", operation_id = "v1.groups.update",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = GroupUpdate,
    responses((status = 200, body = GroupOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_group(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GroupUpdate>,
) -> Result<Json<GroupOut>, ApiError> {
    let id = path_id(&id, "group")?;
    let mut errors = FieldErrors::default();
    let name = check_name(&body.name, &mut errors);
    let description = body
        .description
        .as_deref()
        .map(|description| check_description(description, &mut errors));
    errors.finish()?;
    let mut tx = state.db.begin().await?;
    db::lock_group(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    db::update_group(&mut *tx, id, &name, description.as_deref()).await?;
    let group = db::get_group(&mut *tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    tx.commit().await?;
    Ok(Json(group.into()))
}

/// Deletes a group with all its students. While a delivery to the group still has messages to
/// send, or a schedule sends to it, it answers 409 `group_in_use`: stop the delivery (or let it
/// complete) and delete the schedule first.
#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "groups", operation_id = "v1.groups.delete",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "an active delivery or a schedule sends to the group", body = Problem, content_type = "application/problem+json")))]
async fn delete_group(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "group")?;
    let mut tx = state.db.begin().await?;
    db::lock_group(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    if deliveries::active_for(&mut *tx, ActiveFor::Group, id).await? {
        return Err(ApiError::Conflict {
            code: "group_in_use",
            detail: "an active delivery sends to this group; stop it (or let it complete) first"
                .to_owned(),
        });
    }
    if schedules::uses_group(&mut *tx, id).await? {
        return Err(ApiError::Conflict {
            code: "group_in_use",
            detail: "a schedule sends to this group; delete the schedule (or point it at another group) first"
                .to_owned(),
        });
    }
    db::delete_group(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
