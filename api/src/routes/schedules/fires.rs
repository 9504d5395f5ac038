//! `GET /api/v1/schedules/{id}/fires`: what a schedule will do and what it did — the next
//! fires per zone (UTC and that zone's wall clock), and past fires with their outcome.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use herald_shared::cron::Schedule;
use herald_shared::db::schedules as db;
use herald_shared::schedules::RECIPIENT_ZONE;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{upcoming_from, zones_of};
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiQuery, AuthUser, path_id};
use crate::state::AppState;

/// Most fires listed per zone, and most past fires.
const MAX_COUNT: usize = 100;
const LOCAL_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_fires))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FiresQuery {
    /// Upcoming fires per zone, and past fires, to list: 1–100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub count: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FiresOut {
    /// The schedule's zone, or `recipient`.
    pub timezone: String,
    /// `active` or `paused` (a paused schedule has no upcoming fires).
    pub status: String,
    /// Per zone the schedule fires in now (with `recipient`: each zone of a subscribed
    /// student), its next fires.
    pub upcoming: Vec<ZoneFires>,
    /// The latest fires at or before now, latest first.
    pub past: Vec<PastFire>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneFires {
    pub timezone: String,
    pub fires: Vec<FireAt>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FireAt {
    pub at: DateTime<Utc>,
    /// The same instant on the zone's wall clock.
    #[schema(example = "2026-03-08T03:30:00")]
    pub local: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PastFire {
    pub id: Uuid,
    pub timezone: String,
    pub at: DateTime<Utc>,
    pub local: String,
    /// `fired` (its messages went out, or it had none to send: `outcome` says how they
    /// fared), `due` (its time has come and its messages are waiting for a worker), `missed`
    /// (found later than catch-up allows: nothing sent) or `canceled` (paused, changed or
    /// deleted before it fired).
    #[schema(example = "fired")]
    pub state: String,
    /// Students it was planned for.
    pub recipients: i32,
    pub outcome: FireOutcomeOut,
}

/// The fire's messages by outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct FireOutcomeOut {
    /// Sent (or recorded in sandbox mode).
    pub sent: i64,
    /// Refused by the provider, retries exhausted, or unknown after a crash mid-send.
    pub failed: i64,
    /// Not sent: canceled, or skipped at send time (unsubscribed, removed, moved zone).
    pub skipped: i64,
    /// Still on their way.
    pub pending: i64,
}

/// A past fire's state as clients see it. Stored fires stay `planned` once their messages
/// exist (the messages carry the progress): at or before now that is `fired` once any of
/// them went out (or none is left to go), `due` while all are still waiting.
fn past_state(fire: &db::FireOutcome) -> String {
    match fire.state.as_str() {
        "planned" if fire.pending > 0 && fire.sent + fire.failed == 0 => "due".to_owned(),
        "planned" => "fired".to_owned(),
        other => other.to_owned(),
    }
}

/// The schedule's next fires per zone and its past fires with their outcome.
#[utoipa::path(get, path = "/api/v1/schedules/{id}/fires", tag = "schedules", operation_id = "v1.schedules.fires",
    security(("bearer" = [])), params(("id" = Uuid, Path), FiresQuery),
    responses((status = 200, body = FiresOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_fires(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<FiresQuery>,
) -> Result<Json<FiresOut>, ApiError> {
    let id = path_id(&id, "schedule")?;
    let mut errors = FieldErrors::default();
    let count = match query.count.as_deref() {
        None => Some(10),
        Some(raw) => errors.check(
            "count",
            raw.parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_COUNT).contains(n))
                .ok_or_else(|| format!("must be a number from 1 to {MAX_COUNT}")),
        ),
    };
    errors.finish()?;
    let count = count.unwrap_or(10);
    let mut conn = state.db.acquire().await?;
    let row = db::get(&mut *conn, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("schedule"))?;
    let cron = Schedule::parse(&row.cron).map_err(|err| anyhow::anyhow!("stored cron: {err}"))?;
    let now = herald_shared::db::now(&mut *conn).await?;
    let upcoming = if row.status == "active" {
        let from = upcoming_from(&row, now);
        zones_of(&mut conn, &row)
            .await?
            .into_iter()
            .map(|zone| ZoneFires {
                timezone: zone.name().to_owned(),
                fires: cron
                    .fires(zone, from)
                    .take(count)
                    .map(|at| FireAt {
                        at,
                        local: at.with_timezone(&zone).format(LOCAL_FORMAT).to_string(),
                    })
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let limit = i64::try_from(count).unwrap_or(10);
    let past = db::past_fires(&mut *conn, id, now, limit)
        .await?
        .into_iter()
        .map(|fire| PastFire {
            state: past_state(&fire),
            id: fire.id,
            timezone: fire.timezone,
            at: fire.fire_at,
            local: fire.local_time.format(LOCAL_FORMAT).to_string(),
            recipients: fire.recipients,
            outcome: FireOutcomeOut {
                sent: fire.sent,
                failed: fire.failed,
                skipped: fire.skipped,
                pending: fire.pending,
            },
        })
        .collect();
    Ok(Json(FiresOut {
        timezone: row.timezone.unwrap_or_else(|| RECIPIENT_ZONE.to_owned()),
        status: row.status,
        upcoming,
        past,
    }))
}
