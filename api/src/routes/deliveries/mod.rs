//! Course deliveries: schedule a course to a group (every message of every day planned as an
//! effect row, in one transaction), preview the plan, list and inspect deliveries with their
//! progress. Lifecycle (pause/resume/stop) is in `lifecycle`, messages and answers in
//! `messages`.

pub mod lifecycle;
pub mod messages;
pub mod plan;

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald_shared::db::deliveries::{self as db, DeliveryRow, Keep};
use herald_shared::effects::EffectKind;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::plan::DeliveryIn;
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, IdempotencyKey, path_id};
use crate::idempotency::{self, Claim};
use crate::pagination::PageQuery;
use crate::pagination::PageRequest;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_delivery, list_deliveries))
        .routes(routes!(preview_delivery))
        .routes(routes!(get_delivery))
        .merge(lifecycle::router())
        .merge(messages::router())
}

/// A delivery and its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: Uuid,
    /// Absent once the group was deleted.
    pub group_id: Option<Uuid>,
    /// Absent once the course was deleted.
    pub course_id: Option<Uuid>,
    /// The wall-clock start as given.
    pub start_at: String,
    /// The zone everyone's instants are computed in; absent: each student's own.
    pub timezone: Option<String>,
    pub catch_up: bool,
    /// `scheduled`, `paused`, `stopped` or `completed` (scheduled with nothing left to send).
    pub status: String,
    /// When the next message goes out, if any is planned.
    pub next_send_at: Option<DateTime<Utc>>,
    pub message_count: i64,
    /// Messages per state (`planned`, `queued`, `sending`, `sent`, `sandboxed`, `retrying`,
    /// `failed`, `dead`, `unknown`, `canceled`, `held`).
    pub progress: BTreeMap<String, i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Builds the answer for a delivery from its row and current progress.
pub async fn delivery_out(
    conn: &mut PgConnection,
    row: DeliveryRow,
) -> Result<DeliveryOut, ApiError> {
    let progress = db::progress(conn, row.id).await?;
    Ok(delivery_with(row, progress))
}

/// A delivery with its progress already read.
fn delivery_with(row: DeliveryRow, progress: db::Progress) -> DeliveryOut {
    let status = if row.status == "scheduled" && progress.unsent() == 0 {
        "completed".to_owned()
    } else {
        row.status
    };
    DeliveryOut {
        id: row.id,
        group_id: row.group_id,
        course_id: row.course_id,
        start_at: row.start_local.format("%Y-%m-%d %H:%M:%S").to_string(),
        timezone: row.timezone,
        catch_up: row.catch_up,
        status,
        next_send_at: progress.next_send_at,
        message_count: progress.counts.iter().map(|(_, count)| count).sum(),
        progress: progress
            .counts
            .into_iter()
            .map(|(state, count)| (state.to_string(), count))
            .collect(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// Schedules a course to a group's subscribed students: every message of every day is planned
/// now, each at its instant on the student's clock (see `start_at`). All or nothing.
#[utoipa::path(post, path = "/api/v1/deliveries", tag = "deliveries", operation_id = "v1.deliveries.create",
    security(("bearer" = [])), request_body = DeliveryIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "repeats get the first answer")),
    responses((status = 201, body = DeliveryOut),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_delivery(
    State(state): State<AppState>,
    auth: AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<DeliveryIn>,
) -> Result<Response, ApiError> {
    let request = serde_json::to_vec(&body).map_err(anyhow::Error::from)?;
    let mut tx = state.db.begin().await?;
    if let Claim::Replay(status, saved) = idempotency::claim(
        &mut tx,
        auth.account_id,
        "deliveries",
        key.as_deref(),
        &request,
    )
    .await?
    {
        return Ok((status, Json(saved)).into_response());
    }
    let max_messages = state.config.limits.max_messages_per_delivery;
    let plan = plan::build(
        &mut tx,
        auth.account_id,
        &body,
        Utc::now(),
        max_messages,
        Keep::Locked,
    )
    .await?;
    let row = db::insert(
        &mut tx,
        auth.account_id,
        plan.group_id,
        plan.course_id,
        plan.start.local,
        plan.timezone.map(|zone| zone.name()),
        plan.catch_up,
    )
    .await?;
    let queue = &state.jobs.get(EffectKind::Message).queue;
    plan.write(&mut tx, auth.account_id, row.id, queue).await?;
    let out =
        serde_json::to_value(delivery_out(&mut tx, row).await?).map_err(anyhow::Error::from)?;
    idempotency::save(
        &mut tx,
        auth.account_id,
        "deliveries",
        key.as_deref(),
        StatusCode::CREATED,
        &out,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// One student's planned days.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewStudent {
    pub student_id: Uuid,
    pub name: String,
    /// The zone the student's times are computed in.
    pub timezone: String,
    pub days: Vec<PreviewDay>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewDay {
    pub day: u32,
    pub at: DateTime<Utc>,
    /// The same instant on the student's clock.
    pub local: String,
}

/// The plan a delivery request would create, without creating anything: totals over every
/// student, and the first `limit` students' days.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewOut {
    /// Subscribed students the delivery would send to.
    pub student_count: u64,
    /// Messages it would plan (days' texts and questions, for every student).
    pub message_count: u64,
    /// When its first message would go out.
    pub first_send_at: DateTime<Utc>,
    /// When its last message would go out.
    pub last_send_at: DateTime<Utc>,
    /// The first `limit` students (oldest first) with their day-by-day instants.
    pub students: Vec<PreviewStudent>,
}

const PREVIEW_DEFAULT_STUDENTS: i64 = 100;
const PREVIEW_MAX_STUDENTS: i64 = 1_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// Students whose days are shown, 1–1,000 (default 100); the totals cover everyone.
    pub limit: Option<String>,
}

/// Shows when each student would get each day, without creating anything. The totals
/// (students, messages, first and last send) cover the whole group; the day-by-day plans only
/// the first `limit` students.
#[utoipa::path(post, path = "/api/v1/deliveries/preview", tag = "deliveries", operation_id = "v1.deliveries.preview",
    security(("bearer" = [])), params(PreviewQuery), request_body = DeliveryIn,
    responses((status = 200, body = PreviewOut), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn preview_delivery(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<PreviewQuery>,
    ApiJson(body): ApiJson<DeliveryIn>,
) -> Result<Json<PreviewOut>, ApiError> {
    let mut errors = FieldErrors::default();
    let limit = match query.limit.as_deref() {
        None => PREVIEW_DEFAULT_STUDENTS,
        Some(raw) => errors
            .check(
                "limit",
                raw.parse::<i64>()
                    .ok()
                    .filter(|n| (1..=PREVIEW_MAX_STUDENTS).contains(n))
                    .ok_or_else(|| format!("must be a number from 1 to {PREVIEW_MAX_STUDENTS}")),
            )
            .unwrap_or(PREVIEW_DEFAULT_STUDENTS),
    };
    errors.finish()?;
    let mut conn = state.db.acquire().await?;
    let max_messages = state.config.limits.max_messages_per_delivery;
    let plan = plan::build(
        &mut conn,
        auth.account_id,
        &body,
        Utc::now(),
        max_messages,
        Keep::Unlocked,
    )
    .await?;
    let shown = db::subscribed_students(&mut *conn, plan.group_id, None, limit).await?;
    let students = shown
        .into_iter()
        .filter_map(|student| {
            let zone_plan = plan.for_zone(&student.timezone)?;
            let zone = zone_plan.zone;
            let days = zone_plan
                .slots
                .iter()
                .filter(|slot| slot.seq == 0)
                .map(|slot| PreviewDay {
                    day: slot.day,
                    at: slot.at,
                    local: slot
                        .at
                        .with_timezone(&zone)
                        .format("%Y-%m-%d %H:%M:%S %Z")
                        .to_string(),
                })
                .collect();
            Some(PreviewStudent {
                student_id: student.id,
                name: student.name,
                timezone: zone.name().to_owned(),
                days,
            })
        })
        .collect();
    Ok(Json(PreviewOut {
        student_count: plan.student_count,
        message_count: plan.message_count,
        first_send_at: plan.first_send_at,
        last_send_at: plan.last_send_at,
        students,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryOut>,
    pub next_cursor: Option<String>,
}

/// The account's deliveries, newest first.
#[utoipa::path(get, path = "/api/v1/deliveries", tag = "deliveries", operation_id = "v1.deliveries.list",
    security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = DeliveryPage), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_deliveries(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    errors.finish()?;
    let mut conn = state.db.acquire().await?;
    let rows = db::list(&mut *conn, auth.account_id, page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.created_at, row.id));
    // one query for the whole page's progress, not one per delivery
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut progress = db::progress_of_many(&mut conn, &ids).await?;
    let items = rows
        .into_iter()
        .map(|row| {
            let of_row = progress.remove(&row.id).unwrap_or_default();
            delivery_with(row, of_row)
        })
        .collect();
    Ok(Json(DeliveryPage { items, next_cursor }))
}

/// One delivery with its progress.
#[utoipa::path(get, path = "/api/v1/deliveries/{id}", tag = "deliveries", operation_id = "v1.deliveries.get",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DeliveryOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_delivery(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<DeliveryOut>, ApiError> {
    let id = path_id(&id, "delivery")?;
    let mut conn = state.db.acquire().await?;
    let row = db::get(&mut *conn, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    Ok(Json(delivery_out(&mut conn, row).await?))
}
