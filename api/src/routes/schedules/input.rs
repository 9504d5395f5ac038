//! What a client sends to create or change a schedule, and its checks: every problem is
//! reported with its field in one answer, and nothing is written unless all pass.

use chrono_tz::Tz;
use herald_shared::courses::{self, SMS_MAX_CHARS, WHATSAPP_MAX_CHARS};
use herald_shared::cron::Schedule;
use herald_shared::db::{deliveries, schedules as db};
use herald_shared::schedules::parse_schedule_zone;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, FieldErrors};

/// Longest schedule name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// A schedule to create.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleIn {
    /// 1–200 characters, surrounding white space trimmed.
    #[schema(example = "Weekday reminder")]
    pub name: String,
    /// crontab(5): 5 fields, or 6 with a leading seconds field; names, lists, ranges, steps,
    /// `@hourly` … `@yearly`. Read on the wall clock of `timezone`.
    #[schema(example = "0 8 * * 1-5")]
    pub cron: String,
    /// An IANA zone, or `recipient`: each student's own zone.
    #[schema(example = "recipient")]
    pub timezone: String,
    pub action: ActionIn,
}

/// A change to a schedule: the fields given replace the current ones (`action` as a whole).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleUpdate {
    /// 1–200 characters, surrounding white space trimmed.
    pub name: Option<String>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub action: Option<ActionIn>,
}

/// What a schedule does at each fire.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionIn {
    /// `group_message`: `text` to every subscribed student of the group.
    #[serde(rename = "type")]
    #[schema(example = "group_message")]
    pub kind: String,
    /// A group of the account.
    #[schema(format = Uuid)]
    pub group_id: String,
    /// 1–4,096 characters (WhatsApp), at most 1,600 when a student of the group uses SMS;
    /// surrounding white space trimmed.
    #[schema(example = "Class starts at 9. Bring your workbook.")]
    pub text: String,
}

/// A schedule definition that passed every check.
pub struct Checked {
    pub name: String,
    pub cron: Schedule,
    /// `None`: each recipient's zone.
    pub zone: Option<Tz>,
    pub group_id: Uuid,
    pub text: String,
}

impl Checked {
    pub fn fields(&self) -> db::ScheduleFields<'_> {
        db::ScheduleFields {
            name: &self.name,
            cron: self.cron.expression(),
            timezone: self.zone.map(|zone| zone.name()),
            group_id: self.group_id,
            text: &self.text,
        }
    }
}

/// Checks a complete definition for the account.
pub async fn check(
    conn: &mut PgConnection,
    account_id: Uuid,
    body: &ScheduleIn,
) -> Result<Checked, ApiError> {
    let mut errors = FieldErrors::default();
    let name = errors.check("name", check_name(&body.name));
    let cron = errors.check(
        "cron",
        Schedule::parse(&body.cron).map_err(|err| err.to_string()),
    );
    let zone = errors.check("timezone", parse_schedule_zone(&body.timezone));
    let action = check_action(conn, account_id, &body.action, &mut errors).await?;
    errors.finish()?;
    let (Some(name), Some(cron), Some(zone), Some((group_id, text))) = (name, cron, zone, action)
    else {
        return Err(ApiError::Validation(Vec::new()));
    };
    Ok(Checked {
        name,
        cron,
        zone,
        group_id,
        text,
    })
}

fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
    }
    Ok(name.to_owned())
}

/// The action's group and text, with its errors under `action.*`.
async fn check_action(
    conn: &mut PgConnection,
    account_id: Uuid,
    action: &ActionIn,
    errors: &mut FieldErrors,
) -> Result<Option<(Uuid, String)>, ApiError> {
    if action.kind != "group_message" {
        errors.add("action.type", "must be `group_message`");
    }
    let text = action.text.trim();
    let length = courses::message_length(text);
    let mut text_ok = true;
    if text.is_empty() {
        errors.add("action.text", "must not be empty");
        text_ok = false;
    } else if length > WHATSAPP_MAX_CHARS {
        errors.add(
            "action.text",
            format!("is {length} characters; a message allows {WHATSAPP_MAX_CHARS}"),
        );
        text_ok = false;
    }
    let Ok(group_id) = action.group_id.parse::<Uuid>() else {
        errors.add("action.group_id", "must be a group id");
        return Ok(None);
    };
    if !deliveries::group_exists(&mut *conn, account_id, group_id).await? {
        errors.add("action.group_id", "no such group");
        return Ok(None);
    }
    if text_ok && length > SMS_MAX_CHARS && db::group_has_sms(&mut *conn, group_id).await? {
        errors.add(
            "action.text",
            format!(
                "is {length} characters; SMS allows {SMS_MAX_CHARS} and students of the group use SMS"
            ),
        );
        text_ok = false;
    }
    Ok(text_ok.then(|| (group_id, text.to_owned())))
}

/// The definition after applying `update` to `current`, as a complete request.
pub fn merged(current: &db::ScheduleRow, update: ScheduleUpdate) -> ScheduleIn {
    ScheduleIn {
        name: update.name.unwrap_or_else(|| current.name.clone()),
        cron: update.cron.unwrap_or_else(|| current.cron.clone()),
        timezone: update.timezone.unwrap_or_else(|| {
            current
                .timezone
                .clone()
                .unwrap_or_else(|| herald_shared::schedules::RECIPIENT_ZONE.to_owned())
        }),
        action: update.action.unwrap_or_else(|| ActionIn {
            kind: "group_message".to_owned(),
            group_id: current.group_id.to_string(),
            text: current.text.clone(),
        }),
    }
}
