//! Student groups: create, list (with student counts), get, rename, delete. A group's students
//! have their own routes in `students` (one by one or many at once) and `import` (CSV, read
//! by `csv_body` and `csv_rows`); `fields` holds the checks all ways of adding one share.

pub mod changes;
pub mod csv_body;
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

/// A group's own fields (students have their own routes).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupIn {
    /// 1–200 characters.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupOut {
    pub id: Uuid,
    pub name: String,
    /// Students in the group, subscribed or not.
    pub student_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<GroupSummary> for GroupOut {
    fn from(row: GroupSummary) -> Self {
        Self {
            id: row.id,
            name: row.name,
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

fn check_name(name: &str, errors: &mut FieldErrors) -> String {
    let name = name.trim();
    match name.chars().count() {
        0 => errors.add("name", "must not be empty"),
        201.. => errors.add("name", "must be at most 200 characters"),
        _ => {}
    }
    name.to_owned()
}

/// Creates an empty group.
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
    errors.finish()?;
    let row = db::insert_group(&state.db, auth.account_id, &name).await?;
    let out = GroupOut {
        id: row.id,
        name: row.name,
        student_count: 0,
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

/// Renames a group.
#[utoipa::path(put, path = "/api/v1/groups/{id}", tag = "groups", operation_id = "v1.groups.update",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = GroupIn,
    responses((status = 200, body = GroupOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_group(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GroupIn>,
) -> Result<Json<GroupOut>, ApiError> {
    let id = path_id(&id, "group")?;
    let mut errors = FieldErrors::default();
    let name = check_name(&body.name, &mut errors);
    errors.finish()?;
    let mut tx = state.db.begin().await?;
    db::lock_group(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    db::update_group(&mut *tx, id, &name).await?;
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
