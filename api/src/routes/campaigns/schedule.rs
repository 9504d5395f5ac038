//! `GET /api/v1/campaigns/{id}/schedule`: the launch plan before anything is sent — when each
//! prospect whose first e-mail is written would get it, from which sender, and how the first
//! e-mails spread over the campaign's days (`herald_shared::campaign_schedule` has the rules).
//!
//! The plan starts at the next whole minute and is computed afresh at each request; within a
//! minute it is the same plan (its jitter is seeded with the campaign), so the pages of one
//! preview fit together.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, DurationRound, NaiveDate, TimeDelta, Utc};
use herald_shared::campaign_launch::PlanInputs;
use herald_shared::campaign_schedule::Prospect;
use herald_shared::db::campaign_messages;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::find;
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiQuery, AuthUser, path_id};
use crate::pagination::{PageQuery, PageRequest};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_schedule))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LaunchPlanOut {
    /// When the plan starts (the next whole minute).
    pub starts_at: DateTime<Utc>,
    /// Prospects given a first e-mail.
    pub planned: usize,
    /// Prospects left out: the caps would carry the plan beyond a year.
    pub unplanned: usize,
    /// Active prospects whose first e-mail is not written (pending, failed or blocked): not in
    /// the plan.
    pub not_written: i64,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
    /// First e-mails per day of the campaign's `default_timezone`.
    pub days: Vec<PlanDayOut>,
    /// A page of the plan in time order.
    pub items: Vec<PlannedEmailOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanDayOut {
    pub date: NaiveDate,
    pub first_emails: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlannedEmailOut {
    pub person_id: Uuid,
    pub email: String,
    pub sender_id: Uuid,
    pub at: DateTime<Utc>,
    /// `at` on the prospect's clock, with its offset.
    pub local_time: String,
    /// The zone it is read in (the prospect's, else the campaign's).
    pub timezone: String,
}

/// The launch plan of a campaign that is generating or ready, for its prospects whose first
/// e-mail is written. 409 `campaign_state` in any other state.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/schedule", tag = "campaigns",
    operation_id = "v1.campaigns.schedule", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = LaunchPlanOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the campaign is not generating or ready", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn get_schedule(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<LaunchPlanOut>, ApiError> {
    let id = path_id(&id, "campaign")?;
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    errors.finish()?;
    let mut conn = state.db.acquire().await?;
    let campaign = find(&mut conn, auth.account_id, id).await?;
    let row = &campaign.row;
    if row.state != "generating" && row.state != "ready" {
        return Err(ApiError::Conflict {
            code: "campaign_state",
            detail: format!(
                "the campaign is {}; a launch plan is shown while it is generating or ready",
                row.state
            ),
        });
    }
    let inputs = PlanInputs::read(&mut conn, &campaign).await?;
    let (written, not_written) = campaign_messages::first_steps_written(&mut conn, id).await?;
    drop(conn);
    let zone = inputs.zone;
    let prospects: Vec<Prospect> = written
        .iter()
        .map(|person| Prospect {
            person_id: person.person_id,
            zone: inputs.zone_of(person.timezone.as_deref()),
        })
        .collect();
    let starts_at = next_minute();
    let plan = inputs
        .plan(starts_at, prospects)
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;
    let mut days: BTreeMap<NaiveDate, u32> = BTreeMap::new();
    for planned in &plan.planned {
        *days
            .entry(planned.at.with_timezone(&zone).date_naive())
            .or_default() += 1;
    }
    let people: BTreeMap<Uuid, (&str, Option<&str>)> = written
        .iter()
        .map(|person| {
            (
                person.person_id,
                (person.email.as_str(), person.timezone.as_deref()),
            )
        })
        .collect();
    let planned = plan.planned.len();
    // the plan comes in time order; the keyset pages need ties in person order too
    let mut ordered = plan.planned;
    ordered.sort_by_key(|planned| (planned.at, planned.person_id));
    let rows: Vec<_> = ordered
        .iter()
        .filter(|planned| {
            page.after
                .is_none_or(|after| (planned.at, planned.person_id) > after)
        })
        .take(usize::try_from(page.fetch_limit()).unwrap_or(usize::MAX))
        .copied()
        .collect();
    let (rows, next_cursor) = page.finish(rows, |planned| (planned.at, planned.person_id));
    let items = rows
        .into_iter()
        .map(|planned| {
            let (email, own_zone) = people
                .get(&planned.person_id)
                .copied()
                .unwrap_or(("", None));
            let their_zone = inputs.zone_of(own_zone);
            PlannedEmailOut {
                person_id: planned.person_id,
                email: email.to_owned(),
                sender_id: planned.sender_id,
                at: planned.at,
                local_time: planned.at.with_timezone(&their_zone).to_rfc3339(),
                timezone: their_zone.name().to_owned(),
            }
        })
        .collect();
    Ok(Json(LaunchPlanOut {
        starts_at,
        planned,
        unplanned: plan.unplanned.len(),
        not_written,
        first_at: ordered.first().map(|planned| planned.at),
        last_at: ordered.last().map(|planned| planned.at),
        days: days
            .into_iter()
            .map(|(date, first_emails)| PlanDayOut { date, first_emails })
            .collect(),
        items,
        next_cursor,
    }))
}

/// The next whole minute, where a plan starts.
pub(super) fn next_minute() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::minutes(1))
        .map_or_else(|_| Utc::now(), |minute| minute + TimeDelta::minutes(1))
}
