//! `POST /api/v1/cron/preview`: the exact instants Herald's cron engine would fire an
//! expression at, for UIs and for checking a schedule across DST transitions.

use axum::Json;
use chrono::{DateTime, Utc};
use herald_shared::cron::{self, Kind, PREVIEW_LIMIT, Schedule};
use herald_shared::time_rules;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, AuthUser};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(preview))
}

/// An expression to preview.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CronPreviewIn {
    /// crontab(5): 5 fields, or 6 with a leading seconds field; names, lists, ranges, steps,
    /// `@hourly` … `@yearly`.
    #[schema(example = "30 2 * * *")]
    pub expression: String,
    /// IANA zone the expression is read in.
    #[schema(example = "America/New_York")]
    pub timezone: String,
    /// Fires strictly after this instant (RFC 3339); default now.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub after: Option<String>,
    /// How many fires, 1–1000 (default 10).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub count: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CronPreviewOut {
    /// The fire instants, strictly increasing.
    pub fires: Vec<DateTime<Utc>>,
    /// `fixed-time` (once per matching local time; a time in a DST gap moves forward, a
    /// repeated one fires at the earlier instant) or `wildcard` (minute or hour field starts
    /// with `*`: every real instant whose local time matches).
    #[schema(example = "fixed-time")]
    pub kind: &'static str,
}

/// The instants an expression fires at in a zone.
#[utoipa::path(post, path = "/api/v1/cron/preview", tag = "cron", operation_id = "v1.cron.preview",
    security(("bearer" = [])), request_body = CronPreviewIn,
    responses((status = 200, body = CronPreviewOut),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn preview(
    _auth: AuthUser,
    ApiJson(body): ApiJson<CronPreviewIn>,
) -> Result<Json<CronPreviewOut>, ApiError> {
    let mut errors = FieldErrors::default();
    let schedule = errors.check(
        "expression",
        Schedule::parse(&body.expression).map_err(|err| err.to_string()),
    );
    let zone = errors.check("timezone", time_rules::parse_zone(&body.timezone));
    let after = match body.after.as_deref() {
        None => Some(Utc::now()),
        Some(raw) => errors.check(
            "after",
            DateTime::parse_from_rfc3339(raw)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|_| {
                    format!("`{raw}` is not an RFC 3339 instant like 2026-03-07T00:00:00Z")
                }),
        ),
    };
    let count = match body.count {
        None => Some(10),
        Some(count) => errors.check(
            "count",
            usize::try_from(count)
                .ok()
                .filter(|n| (1..=PREVIEW_LIMIT).contains(n))
                .ok_or_else(|| format!("must be from 1 to {PREVIEW_LIMIT}")),
        ),
    };
    errors.finish()?;
    let (Some(schedule), Some(zone), Some(after), Some(count)) = (schedule, zone, after, count)
    else {
        return Err(ApiError::Validation(Vec::new()));
    };
    let fires = cron::preview(schedule.expression(), zone, after, count)
        .map_err(|err| ApiError::field("expression", err.to_string()))?;
    let kind = match schedule.kind() {
        Kind::FixedTime => "fixed-time",
        Kind::Wildcard => "wildcard",
    };
    Ok(Json(CronPreviewOut { fires, kind }))
}
