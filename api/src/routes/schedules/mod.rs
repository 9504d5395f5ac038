//! Schedules: recurring group messages. A schedule reads a cron expression in one zone or in
//! each recipient's own zone and, at every fire, sends its text to the group's subscribed
//! students through the same path as course messages. Creating, changing or resuming one
//! plans its first fires in the same transaction (`herald_shared::schedules::plan`); the
//! workers extend the plan as time passes. Pause and resume are in `lifecycle`, the fires
//! list in `fires`.

pub mod fires;
pub mod input;
pub mod lifecycle;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald_shared::cron::{Kind, Schedule};
use herald_shared::db::schedules::{self as db, ScheduleRow};
use herald_shared::schedules::RECIPIENT_ZONE;
use herald_shared::time_rules::parse_zone;
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::input::{ScheduleIn, ScheduleUpdate};
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, IdempotencyKey, path_id};
use crate::idempotency::{self, Claim};
use crate::pagination::PageQuery;
use crate::pagination::PageRequest;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_schedule, list_schedules))
        .routes(routes!(get_schedule, update_schedule, delete_schedule))
        .merge(lifecycle::router())
        .merge(fires::router())
}

/// A schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleOut {
    pub id: Uuid,
    pub name: String,
    pub cron: String,
    /// `fixed-time` or `wildcard`: how the expression meets DST transitions.
    #[schema(example = "fixed-time")]
    pub kind: &'static str,
    /// The IANA zone the expression is read in, or `recipient`.
    pub timezone: String,
    pub action: ActionOut,
    /// `active` or `paused`.
    pub status: String,
    /// The earliest upcoming fire over its zones; absent when paused or no student is
    /// subscribed (with `recipient`).
    pub next_fire_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionOut {
    /// `group_message`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub group_id: Uuid,
    pub text: String,
}

/// The zones a schedule fires in now: its own, or each distinct zone of the group's
/// subscribed students.
pub async fn zones_of(
    conn: &mut PgConnection,
    row: &ScheduleRow,
) -> Result<Vec<chrono_tz::Tz>, ApiError> {
    let names = match &row.timezone {
        Some(zone) => vec![zone.clone()],
        None => db::recipient_zones(&mut *conn, row.group_id).await?,
    };
    // stored zones were validated on write
    Ok(names
        .iter()
        .filter_map(|name| parse_zone(name).ok())
        .collect())
}

/// The instant upcoming fires are counted from: now, or the plan's start if later.
pub fn upcoming_from(row: &ScheduleRow, now: DateTime<Utc>) -> DateTime<Utc> {
    now.max(row.active_from)
}

pub async fn schedule_out(
    conn: &mut PgConnection,
    row: ScheduleRow,
) -> Result<ScheduleOut, ApiError> {
    let cron = Schedule::parse(&row.cron).map_err(|err| anyhow::anyhow!("stored cron: {err}"))?;
    let next_fire_at = if row.status == "active" {
        let from = upcoming_from(&row, herald_shared::db::now(&mut *conn).await?);
        zones_of(conn, &row)
            .await?
            .into_iter()
            .filter_map(|zone| cron.next_after(zone, from))
            .min()
    } else {
        None
    };
    Ok(ScheduleOut {
        id: row.id,
        name: row.name,
        kind: match cron.kind() {
            Kind::FixedTime => "fixed-time",
            Kind::Wildcard => "wildcard",
        },
        cron: row.cron,
        timezone: row.timezone.unwrap_or_else(|| RECIPIENT_ZONE.to_owned()),
        action: ActionOut {
            kind: "group_message",
            group_id: row.group_id,
            text: row.text,
        },
        status: row.status,
        next_fire_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Plans the schedule's first horizon of fires from `now` (the database's clock) in the
/// caller's transaction.
pub async fn plan_now(
    state: &AppState,
    conn: &mut PgConnection,
    row: &ScheduleRow,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let settings = crate::planning::schedule_settings(state);
    herald_shared::schedules::plan(conn, row, now, &settings)
        .await
        .map_err(crate::planning::plan_error)?;
    Ok(())
}

/// Creates a schedule and plans its first fires (the next `schedules.horizon_secs`). All or
/// nothing.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", operation_id = "v1.schedules.create",
    security(("bearer" = [])), request_body = ScheduleIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "repeats get the first answer")),
    responses((status = 201, body = ScheduleOut),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_schedule(
    State(state): State<AppState>,
    auth: AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<ScheduleIn>,
) -> Result<Response, ApiError> {
    let request = serde_json::to_vec(&body).map_err(anyhow::Error::from)?;
    let mut tx = state.db.begin().await?;
    if let Claim::Replay(status, saved) = idempotency::claim(
        &mut tx,
        auth.account_id,
        "schedules",
        key.as_deref(),
        &request,
    )
    .await?
    {
        return Ok((status, Json(saved)).into_response());
    }
    let checked = input::check(&mut tx, auth.account_id, &body).await?;
    let row = db::insert(&mut tx, auth.account_id, &checked.fields()).await?;
    let now = herald_shared::db::now(&mut *tx).await?;
    plan_now(&state, &mut tx, &row, now).await?;
    let out =
        serde_json::to_value(schedule_out(&mut tx, row).await?).map_err(anyhow::Error::from)?;
    idempotency::save(
        &mut tx,
        auth.account_id,
        "schedules",
        key.as_deref(),
        StatusCode::CREATED,
        &out,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulePage {
    pub items: Vec<ScheduleOut>,
    pub next_cursor: Option<String>,
}

/// The account's schedules, newest first.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", operation_id = "v1.schedules.list",
    security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = SchedulePage), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_schedules(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<SchedulePage>, ApiError> {
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    errors.finish()?;
    let mut conn = state.db.acquire().await?;
    let rows = db::list(&mut *conn, auth.account_id, page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.created_at, row.id));
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(schedule_out(&mut conn, row).await?);
    }
    Ok(Json(SchedulePage { items, next_cursor }))
}

/// One schedule.
#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules", operation_id = "v1.schedules.get",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ScheduleOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_schedule(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ScheduleOut>, ApiError> {
    let id = path_id(&id, "schedule")?;
    let mut conn = state.db.acquire().await?;
    let row = db::get(&mut *conn, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("schedule"))?;
    Ok(Json(schedule_out(&mut conn, row).await?))
}

/// Changes a schedule: the fields given replace the current ones (`action` as a whole). Its
/// unsent future fires are canceled and planned again from now with the new definition; a
/// student never gets a fire's message twice. A paused schedule stays paused.
#[utoipa::path(patch, path = "/api/v1/schedules/{id}", tag = "schedules", operation_id = "v1.schedules.update",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = ScheduleUpdate,
    responses((status = 200, body = ScheduleOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_schedule(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScheduleUpdate>,
) -> Result<Json<ScheduleOut>, ApiError> {
    let id = path_id(&id, "schedule")?;
    let mut tx = state.db.begin().await?;
    let current = db::lock(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("schedule"))?;
    let merged = input::merged(&current, body);
    let checked = input::check(&mut tx, auth.account_id, &merged).await?;
    let now = herald_shared::db::now(&mut *tx).await?;
    // future fires are planned again from the new definition; a fire still being sent
    // sends the new text to those it has not reached yet
    db::cancel_fires_after(&mut tx, id, now).await?;
    db::rewrite_unsent_text(&mut *tx, id, checked.fields().text).await?;
    let row = db::update(&mut tx, id, &checked.fields(), now).await?;
    plan_now(&state, &mut tx, &row, now).await?;
    let out = schedule_out(&mut tx, row).await?;
    tx.commit().await?;
    Ok(Json(out))
}

/// Deletes a schedule with its fire history; every message not yet handed to Twilio is
/// canceled (the canceled jobs stay visible in `/api/v1/jobs`).
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules", operation_id = "v1.schedules.delete",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn delete_schedule(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "schedule")?;
    let mut tx = state.db.begin().await?;
    db::lock(&mut tx, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("schedule"))?;
    db::cancel_fires_after(&mut tx, id, DateTime::<Utc>::MIN_UTC).await?;
    db::delete(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
