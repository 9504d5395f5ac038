//! A delivery request's body, checked and turned into the planner's request
//! (`herald_shared::deliveries::plan`, which plans and writes it). Shared by create and
//! preview.

use herald_shared::db::deliveries::Keep;
use herald_shared::deliveries::plan::{self, Plan, Refused, Request};
use herald_shared::time_rules;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, FieldErrors};
/// A delivery to schedule (or preview).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryIn {
    pub group_id: String,
    pub course_id: String,
    /// Wall-clock start of day 1, `YYYY-MM-DD HH:MM:SS`. Without `timezone` it is read on each
    /// student's own clock; day k goes out at that time k − 1 days later.
    #[schema(example = "2026-03-08 09:00:00")]
    pub start_at: String,
    /// An IANA zone: everyone gets the same instants, computed in this zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Send days already past for a student now instead of refusing the start time.
    #[serde(default)]
    pub catch_up: bool,
}

/// Checks `body` and plans every message for the account, as of `now` (see
/// `herald_shared::deliveries::plan::build`).
pub async fn build(
    conn: &mut PgConnection,
    account_id: Uuid,
    body: &DeliveryIn,
    now: chrono::DateTime<chrono::Utc>,
    max_messages: u64,
    keep: Keep,
) -> Result<Plan, ApiError> {
    let request = parse(body)?;
    plan::build(conn, account_id, &request, now, max_messages, keep)
        .await
        .map_err(|refused| match refused {
            Refused::Fields(fields) => {
                let mut errors = FieldErrors::default();
                for (field, message) in fields {
                    errors.add(field, message);
                }
                errors
                    .finish()
                    .err()
                    .unwrap_or(ApiError::Validation(Vec::new()))
            }
            Refused::Database(err) => err.into(),
        })
}

/// The body's fields, parsed; every malformed one is named.
fn parse(body: &DeliveryIn) -> Result<Request, ApiError> {
    let mut errors = FieldErrors::default();
    let group_id = errors.check(
        "group_id",
        body.group_id
            .parse::<Uuid>()
            .map_err(|_| "must be a group id".to_owned()),
    );
    let course_id = errors.check(
        "course_id",
        body.course_id
            .parse::<Uuid>()
            .map_err(|_| "must be a course id".to_owned()),
    );
    let local = errors.check("start_at", time_rules::parse_local(&body.start_at));
    let timezone = match &body.timezone {
        Some(name) => errors
            .check("timezone", time_rules::parse_zone(name))
            .map(Some),
        None => Some(None),
    };
    errors.finish()?;
    let (Some(group_id), Some(course_id), Some(start_local), Some(timezone)) =
        (group_id, course_id, local, timezone)
    else {
        return Err(ApiError::Validation(Vec::new()));
    };
    Ok(Request {
        group_id,
        course_id,
        start_local,
        timezone,
        catch_up: body.catch_up,
    })
}
