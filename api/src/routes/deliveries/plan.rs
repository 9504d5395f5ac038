//! Turning a delivery request into a plan: checks the body, loads the course and the group's
//! subscribed students, checks channel limits, and computes every message's instant with
//! `herald_shared::deliveries::plan`. Shared by create and preview.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use herald_shared::courses::{self, SMS_MAX_CHARS};
use herald_shared::db::courses as course_db;
use herald_shared::db::deliveries::{self as db, NewMessage, PlanStudent};
use herald_shared::deliveries::{self, DayMessages, PlanError, Recipient, Start};
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

/// A checked request with everything needed to write or show it.
pub struct Plan {
    pub group_id: Uuid,
    pub course_id: Uuid,
    pub start: Start,
    pub timezone: Option<Tz>,
    pub catch_up: bool,
    pub students: Vec<PlanStudent>,
    pub zones: HashMap<Uuid, Tz>,
    pub messages: Vec<NewMessage>,
}

/// Checks `body` and plans every message for the account, as of `now`.
pub async fn build(
    conn: &mut PgConnection,
    account_id: Uuid,
    body: &DeliveryIn,
    now: DateTime<Utc>,
) -> Result<Plan, ApiError> {
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
    let (Some(group_id), Some(course_id), Some(local), Some(timezone)) =
        (group_id, course_id, local, timezone)
    else {
        return Err(ApiError::Validation(Vec::new()));
    };

    let mut errors = FieldErrors::default();
    let course = course_db::get_course(&mut *conn, account_id, course_id).await?;
    if course.is_none() {
        errors.add("course_id", "no such course");
    }
    if !db::group_exists(&mut *conn, account_id, group_id).await? {
        errors.add("group_id", "no such group");
    }
    errors.finish()?;
    let days = course_days(conn, course_id).await?;
    if days.is_empty() {
        return Err(ApiError::field("course_id", "the course has no days"));
    }
    let students = db::subscribed_students(&mut *conn, account_id, group_id).await?;
    if students.is_empty() {
        return Err(ApiError::field(
            "group_id",
            "the group has no subscribed students",
        ));
    }
    check_sms_limit(&students, &days)?;

    let mut zones = HashMap::new();
    let recipients: Vec<Recipient> = students
        .iter()
        .map(|student| {
            // stored zones were validated on write; an unknown one (a zone database change)
            // falls back to UTC rather than failing the whole delivery
            let zone = student.timezone.parse::<Tz>().unwrap_or(Tz::UTC);
            zones.insert(student.id, zone);
            Recipient {
                student_id: student.id,
                zone,
            }
        })
        .collect();
    let start = Start {
        local,
        zone: timezone,
    };
    let planned = deliveries::plan(&start, &recipients, &days, now, body.catch_up).map_err(|err| match err {
        PlanError::StartPassed { students: late } => {
            let first = students.iter().find(|s| late.first() == Some(&s.id));
            let example = first.map(|s| format!(" (e.g. {} in {})", s.name, s.timezone)).unwrap_or_default();
            ApiError::field(
                "start_at",
                format!(
                    "day 1 is already past for {} student(s){example}; choose a later start or set catch_up",
                    late.len()
                ),
            )
        }
        PlanError::OutOfRange => ApiError::field("start_at", "is out of the supported date range"),
    })?;
    let bodies: HashMap<(u32, u32), (&str, Option<Uuid>)> = days
        .iter()
        .flat_map(|day| {
            day.messages
                .iter()
                .map(move |(seq, body, question)| ((day.day, *seq), (body.as_str(), *question)))
        })
        .collect();
    let messages = planned
        .into_iter()
        .map(|p| {
            let (body, question_id) = bodies.get(&(p.day, p.seq)).copied().unwrap_or(("", None));
            NewMessage {
                student_id: p.student_id,
                day: i32::try_from(p.day).unwrap_or(i32::MAX),
                seq: i32::try_from(p.seq).unwrap_or(i32::MAX),
                question_id,
                body: body.to_owned(),
                at: p.at,
            }
        })
        .collect();
    Ok(Plan {
        group_id,
        course_id,
        start,
        timezone,
        catch_up: body.catch_up,
        students,
        zones,
        messages,
    })
}

/// The course's days as messages: the text, then each question with its lettered options.
async fn course_days(
    conn: &mut PgConnection,
    course_id: Uuid,
) -> Result<Vec<DayMessages>, ApiError> {
    let days = course_db::days(&mut *conn, course_id, 0, 1_000).await?;
    let ids: Vec<Uuid> = days.iter().map(|day| day.id).collect();
    let questions = course_db::questions_of(&mut *conn, &ids).await?;
    Ok(days
        .into_iter()
        .map(|day| {
            let mut messages = vec![(0, day.text.clone(), None)];
            for question in questions.iter().filter(|q| q.day_id == day.id) {
                let options = question
                    .options
                    .as_ref()
                    .map(|o| o.0.clone())
                    .unwrap_or_default();
                let seq = u32::try_from(question.position).unwrap_or(u32::MAX);
                messages.push((
                    seq,
                    courses::question_message(&question.question, &options),
                    Some(question.id),
                ));
            }
            DayMessages {
                day: u32::try_from(day.day_number).unwrap_or(0),
                messages,
            }
        })
        .collect())
}

/// A group with SMS students cannot get a message longer than SMS allows.
fn check_sms_limit(students: &[PlanStudent], days: &[DayMessages]) -> Result<(), ApiError> {
    let sms_students = students.iter().filter(|s| s.channel == "sms").count();
    if sms_students == 0 {
        return Ok(());
    }
    for day in days {
        for (seq, body, _) in &day.messages {
            let length = courses::message_length(body);
            if length > SMS_MAX_CHARS {
                let what = if *seq == 0 {
                    "text".to_owned()
                } else {
                    format!("question {seq}")
                };
                return Err(ApiError::field(
                    "course_id",
                    format!(
                        "day {} {what} is {length} characters; SMS allows {SMS_MAX_CHARS} and {sms_students} student(s) in the group use SMS",
                        day.day
                    ),
                ));
            }
        }
    }
    Ok(())
}
