//! CSV import of a group's students: `name,phone,channel,timezone` (and optionally
//! `country`), in any column order. Valid rows are added, or update the student with the same
//! phone; invalid rows are reported by line and the rest still go in, all in one transaction.

use axum::Json;
use axum::extract::{Path, State};
use herald_shared::db::groups as db;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::csv_rows::read_rows;
use crate::csv_import::{CsvBody, ImportOut};
use crate::error::{ApiError, Problem};
use crate::extract::{AuthUser, path_id};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(import_students))
}

/// Imports students from CSV (`Content-Type: text/csv`, UTF-8). The first line is the
/// header: `name`, `phone`, `channel` and `timezone` in any order, optionally `country` (a
/// region to read national phones in); other or missing columns answer 422 on `header`.
/// Each valid row adds a student, or — when its phone is already in the group — replaces
/// that student's name, channel and time zone (their subscription stays as it was, so an
/// import never re-subscribes someone who opted out). Invalid rows, and rows repeating an
/// earlier row's phone, are skipped and reported by line; the valid rows are committed
/// together, all or none. At most 10,000 rows and 2 MiB (413 beyond).
#[utoipa::path(post, path = "/api/v1/groups/{id}/students/import", tag = "groups",
    operation_id = "v1.groups.students.import", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content = String, content_type = "text/csv",
        description = "name,phone,channel,timezone[,country] with a header row"),
    responses((status = 200, body = ImportOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "more than 10,000 rows or 2 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "the header is wrong", body = Problem, content_type = "application/problem+json")))]
async fn import_students(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    CsvBody(bytes): CsvBody,
) -> Result<Json<ImportOut>, ApiError> {
    let group_id = path_id(&id, "group")?;
    // Checking 10,000 phone numbers takes a noticeable moment of CPU; keep it off the
    // threads that serve other requests.
    let rows = tokio::task::spawn_blocking(move || read_rows(&bytes))
        .await
        .map_err(|err| ApiError::Internal(err.into()))??;
    let mut tx = state.db.begin().await?;
    db::lock_group(&mut tx, auth.account_id, group_id)
        .await?
        .ok_or(ApiError::NotFound("group"))?;
    let mut out = ImportOut {
        created: 0,
        updated: 0,
        errors: rows.errors,
    };
    if !rows.students.is_empty() {
        let phones: Vec<String> = rows.students.iter().map(|s| s.phone.clone()).collect();
        let before = db::students_by_phone(&mut *tx, group_id, &phones).await?;
        let done = db::upsert_students(&mut tx, group_id, &rows.students).await?;
        (out.created, out.updated) = (done.created, done.updated);
        // an updated time zone moves the student's unsent messages, as a PUT would
        let after = db::students_by_phone(&mut *tx, group_id, &phones).await?;
        for old in &before {
            if let Some(new) = after.iter().find(|new| new.id == old.id) {
                super::changes::apply(&mut tx, old, new).await?;
            }
        }
        crate::planning::refill_schedules(&state, &mut tx, group_id).await?;
    }
    tx.commit().await?;
    Ok(Json(out))
}
