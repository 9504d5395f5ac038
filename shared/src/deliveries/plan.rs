//! Planning a delivery request: loads the course, counts the group's subscribed students per
//! zone, checks the channel limits and the size limit (`limits.max_messages_per_delivery`),
//! and computes each zone's instants with [`plan_zone`] — everyone on the same clock gets the
//! same plan, so nothing here grows with the group. The messages are written a page of
//! students at a time ([`Plan::write`]). The API creates and previews deliveries with it.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{DayMessages, PlanError, Slot, Start, plan_zone};
use crate::courses::{self, SMS_MAX_CHARS};
use crate::db::courses as course_db;
use crate::db::deliveries::{self as db, Keep, NewMessage, ZoneCount};

/// Most messages written per statement pair, and most bytes of message text held for one
/// page: planning memory depends on these, not on the size of the delivery.
const WRITE_CHUNK_MESSAGES: usize = 5_000;
const WRITE_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// The plan of everyone on one clock.
pub struct ZonePlan {
    /// The clock the instants are on: the delivery's zone, or the students' own.
    pub zone: Tz,
    /// Every message of one student, in order.
    pub slots: Vec<Slot>,
}

/// A checked request with everything needed to write or show it. Nothing in it grows with
/// the group: students are read a page at a time when the messages are written.
pub struct Plan {
    pub group_id: Uuid,
    pub course_id: Uuid,
    pub start: Start,
    pub timezone: Option<Tz>,
    pub catch_up: bool,
    /// By the students' zone as stored.
    pub zones: HashMap<String, ZonePlan>,
    /// The text and question of each (day, seq).
    bodies: HashMap<(u32, u32), (String, Option<Uuid>)>,
    pub student_count: u64,
    pub message_count: u64,
    /// When the first and the last message go out.
    pub first_send_at: DateTime<Utc>,
    pub last_send_at: DateTime<Utc>,
}

/// What a delivery request asks for, parsed by the API.
#[derive(Debug, Clone)]
pub struct Request {
    pub group_id: Uuid,
    pub course_id: Uuid,
    /// The wall-clock start of day 1, read in `timezone` (or each student's own zone).
    pub start_local: NaiveDateTime,
    pub timezone: Option<Tz>,
    /// Send days already past for a student now instead of refusing the start time.
    pub catch_up: bool,
}

/// Why a delivery cannot be planned: a request field the account's data refuses (named as
/// the API names it), or the database.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Each refused field with why.
    #[error("refused: {0:?}")]
    Fields(Vec<(&'static str, String)>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Refused {
    fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::Fields(vec![(field, message.into())])
    }
}

/// Plans every message of `request` for the account, as of `now`: at most `max_messages`
/// (`limits.max_messages_per_delivery`). `keep` says whether the counted students stay
/// locked until the caller's transaction ends (creating) or not (previewing).
pub async fn build(
    conn: &mut PgConnection,
    account_id: Uuid,
    request: &Request,
    now: DateTime<Utc>,
    max_messages: u64,
    keep: Keep,
) -> Result<Plan, Refused> {
    let (group_id, course_id, timezone) = (request.group_id, request.course_id, request.timezone);
    let course = course_db::get_course(&mut *conn, account_id, course_id).await?;
    let group = db::group_exists(&mut *conn, account_id, group_id).await?;
    let mut missing = Vec::new();
    if course.is_none() {
        missing.push(("course_id", "no such course".to_owned()));
    }
    if !group {
        missing.push(("group_id", "no such group".to_owned()));
    }
    if !missing.is_empty() {
        return Err(Refused::Fields(missing));
    }
    let days = course_days(conn, course_id).await?;
    if days.is_empty() {
        return Err(Refused::field("course_id", "the course has no days"));
    }
    let counts = db::subscribed_zones(&mut *conn, group_id, keep).await?;
    let student_count: u64 = counts.iter().map(|c| count(c.students)).sum();
    if student_count == 0 {
        return Err(Refused::field(
            "group_id",
            "the group has no subscribed students",
        ));
    }
    check_sms_limit(counts.iter().map(|c| count(c.sms)).sum(), &days)?;
    let per_student = days
        .iter()
        .map(|day| day.messages.len() as u64)
        .sum::<u64>();
    let message_count = student_count.saturating_mul(per_student);
    if message_count > max_messages {
        return Err(Refused::field(
            "group_id",
            format!(
                "the delivery would plan {message_count} messages ({student_count} subscribed \
                 students × {per_student} messages of the course); at most {max_messages} \
                 are allowed per delivery (limits.max_messages_per_delivery): split the group"
            ),
        ));
    }

    let start = Start {
        local: request.start_local,
        zone: timezone,
    };
    let mut zones = HashMap::new();
    let mut late = Vec::new();
    for zone_count in &counts {
        // stored zones were validated on write; an unknown one (a zone database change)
        // falls back to UTC rather than failing the whole delivery
        let own = zone_count.timezone.parse::<Tz>().unwrap_or(Tz::UTC);
        let slots = match plan_zone(&start, own, &days, now, request.catch_up) {
            Ok(slots) => slots,
            Err(PlanError::StartPassed) => {
                late.push(zone_count);
                continue;
            }
            Err(PlanError::OutOfRange) => {
                return Err(Refused::field(
                    "start_at",
                    "is out of the supported date range",
                ));
            }
        };
        let plan = ZonePlan {
            zone: timezone.unwrap_or(own),
            slots,
        };
        zones.insert(zone_count.timezone.clone(), plan);
    }
    if !late.is_empty() {
        return Err(start_passed(conn, group_id, &late).await?);
    }
    let ats = || {
        zones
            .values()
            .flat_map(|plan| plan.slots.iter().map(|slot| slot.at))
    };
    let (Some(first_send_at), Some(last_send_at)) = (ats().min(), ats().max()) else {
        return Err(Refused::field("course_id", "the course has no days"));
    };
    let bodies = days
        .into_iter()
        .flat_map(|day| {
            day.messages
                .into_iter()
                .map(move |(seq, body, question)| ((day.day, seq), (body, question)))
        })
        .collect();
    Ok(Plan {
        group_id,
        course_id,
        start,
        timezone,
        catch_up: request.catch_up,
        zones,
        bodies,
        student_count,
        message_count,
        first_send_at,
        last_send_at,
    })
}

/// A database count as the unsigned number it is.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The 422 for a day 1 already past on some students' clocks, with one of them as example.
async fn start_passed(
    conn: &mut PgConnection,
    group_id: Uuid,
    late: &[&ZoneCount],
) -> Result<Refused, Refused> {
    let students: u64 = late.iter().map(|zone| count(zone.students)).sum();
    let zones: Vec<&str> = late.iter().map(|zone| zone.timezone.as_str()).collect();
    let example = db::first_student_in(&mut *conn, group_id, &zones)
        .await?
        .map(|s| format!(" (e.g. {} in {})", s.name, s.timezone))
        .unwrap_or_default();
    Ok(Refused::field(
        "start_at",
        format!(
            "day 1 is already past for {students} student(s){example}; choose a later start or set catch_up"
        ),
    ))
}

impl Plan {
    /// The plan of a student whose zone is stored as `timezone`.
    pub fn for_zone(&self, timezone: &str) -> Option<&ZonePlan> {
        self.zones.get(timezone)
    }

    /// Writes every message of the delivery — an outbound message and its delivery facts each —
    /// reading the students a page at a time, so memory stays bounded by
    /// `WRITE_CHUNK_MESSAGES` and `WRITE_CHUNK_BYTES` whatever the group's size.
    pub async fn write(
        &self,
        conn: &mut PgConnection,
        account_id: Uuid,
        delivery_id: Uuid,
        queue: &str,
    ) -> Result<(), sqlx::Error> {
        let per_student = self.bodies.len().max(1);
        let bytes_per_student = self
            .bodies
            .values()
            .map(|(body, _)| body.len())
            .sum::<usize>();
        let page = (WRITE_CHUNK_MESSAGES / per_student)
            .min(WRITE_CHUNK_BYTES / bytes_per_student.max(1))
            .max(1);
        let page_limit = i64::try_from(page).unwrap_or(i64::MAX);
        let mut after = None;
        loop {
            let students =
                db::subscribed_students(&mut *conn, self.group_id, after, page_limit).await?;
            let Some(last) = students.last() else {
                break;
            };
            after = Some((last.created_at, last.id));
            let mut messages = Vec::with_capacity(students.len() * per_student);
            for student in &students {
                // the students were counted and kept (`Keep::Locked`) in this transaction
                let Some(plan) = self.for_zone(&student.timezone) else {
                    tracing::warn!(student = %student.id, "a student joined the plan after it was counted; left out");
                    continue;
                };
                for slot in &plan.slots {
                    let (body, question_id) = self
                        .bodies
                        .get(&(slot.day, slot.seq))
                        .map_or(("", None), |(body, question)| (body.as_str(), *question));
                    messages.push(NewMessage {
                        student_id: student.id,
                        day: i32::try_from(slot.day).unwrap_or(i32::MAX),
                        seq: i32::try_from(slot.seq).unwrap_or(i32::MAX),
                        question_id,
                        body: body.to_owned(),
                        at: slot.at,
                    });
                }
            }
            db::insert_messages(&mut *conn, account_id, delivery_id, queue, &messages).await?;
            if students.len() < page {
                break;
            }
        }
        Ok(())
    }
}

/// The course's days as messages: the text, then each question with its lettered options.
async fn course_days(
    conn: &mut PgConnection,
    course_id: Uuid,
) -> Result<Vec<DayMessages>, Refused> {
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
fn check_sms_limit(sms_students: u64, days: &[DayMessages]) -> Result<(), Refused> {
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
                return Err(Refused::field(
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
