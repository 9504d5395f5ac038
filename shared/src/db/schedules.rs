//! Queries on `schedules`, `schedule_fires` and `schedule_messages`: the API's CRUD and
//! transitions, the planner's bulk writes (fires, message and effect rows) and the fires
//! history. What to plan is decided in `crate::schedules`.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use super::outbound_messages::{self, Batch};
use crate::effects::{EffectKind, EffectState, MessageSource};

/// Rows per bulk insert statement.
const CHUNK: usize = 5_000;

#[derive(Debug, Clone, FromRow)]
pub struct ScheduleRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub cron: String,
    /// `None`: each recipient's own zone.
    pub timezone: Option<String>,
    pub group_id: Uuid,
    pub text: String,
    /// `active` or `paused`.
    pub status: String,
    pub active_from: DateTime<Utc>,
    pub planned_until: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a schedule is made of, for create and update.
#[derive(Debug, Clone)]
pub struct ScheduleFields<'a> {
    pub name: &'a str,
    pub cron: &'a str,
    pub timezone: Option<&'a str>,
    pub group_id: Uuid,
    pub text: &'a str,
}

pub async fn insert(
    conn: &mut PgConnection,
    account_id: Uuid,
    fields: &ScheduleFields<'_>,
) -> Result<ScheduleRow, sqlx::Error> {
    sqlx::query_as!(
        ScheduleRow,
        "insert into schedules (account_id, name, cron, timezone, group_id, text)
         values ($1, $2, $3, $4, $5, $6)
         returning id, account_id, name, cron, timezone, group_id, text, status, active_from,
                   planned_until, created_at, updated_at",
        account_id,
        fields.name,
        fields.cron,
        fields.timezone,
        fields.group_id,
        fields.text,
    )
    .fetch_one(conn)
    .await
}

pub async fn get(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<ScheduleRow>, sqlx::Error> {
    sqlx::query_as!(
        ScheduleRow,
        "select id, account_id, name, cron, timezone, group_id, text, status, active_from,
                planned_until, created_at, updated_at
         from schedules where account_id = $1 and id = $2",
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// Reads and locks the account's schedule for a change (update, pause, resume, delete).
pub async fn lock(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<ScheduleRow>, sqlx::Error> {
    sqlx::query_as!(
        ScheduleRow,
        "select id, account_id, name, cron, timezone, group_id, text, status, active_from,
                planned_until, created_at, updated_at
         from schedules where account_id = $1 and id = $2 for update",
        account_id,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// A page of the account's schedules, newest first, after the keyset cursor.
pub async fn list(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ScheduleRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        ScheduleRow,
        "select id, account_id, name, cron, timezone, group_id, text, status, active_from,
                planned_until, created_at, updated_at
         from schedules
         where account_id = $1 and ($2::timestamptz is null or (created_at, id) < ($2, $3))
         order by created_at desc, id desc
         limit $4",
        account_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// Replaces the schedule's definition; planning restarts at `from` (nothing at or before it
/// is planned again).
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    fields: &ScheduleFields<'_>,
    from: DateTime<Utc>,
) -> Result<ScheduleRow, sqlx::Error> {
    sqlx::query_as!(
        ScheduleRow,
        "update schedules set name = $2, cron = $3, timezone = $4, group_id = $5, text = $6,
             active_from = $7, planned_until = $7
         where id = $1
         returning id, account_id, name, cron, timezone, group_id, text, status, active_from,
                   planned_until, created_at, updated_at",
        id,
        fields.name,
        fields.cron,
        fields.timezone,
        fields.group_id,
        fields.text,
        from,
    )
    .fetch_one(conn)
    .await
}

/// Pauses (`active = false`) or resumes a schedule; a resume plans from `from` on, so the
/// paused period never fires.
pub async fn set_active(
    conn: &mut PgConnection,
    id: Uuid,
    active: bool,
    from: DateTime<Utc>,
) -> Result<ScheduleRow, sqlx::Error> {
    sqlx::query_as!(
        ScheduleRow,
        "update schedules set status = case when $2 then 'active' else 'paused' end,
             active_from = case when $2 then $3 else active_from end,
             planned_until = case when $2 then $3 else planned_until end
         where id = $1
         returning id, account_id, name, cron, timezone, group_id, text, status, active_from,
                   planned_until, created_at, updated_at",
        id,
        active,
        from,
    )
    .fetch_one(conn)
    .await
}

pub async fn delete(executor: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from schedules where id = $1", id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Why the schedule itself canceled a message: re-planning the same instant revives only
/// rows canceled for this reason, never one an operator canceled through the jobs API.
const CANCELED_BY_SCHEDULE: &str = "not sent: the schedule was paused, changed or deleted";

/// Cancels the schedule's fires after `after` and their unsent messages (update, delete;
/// `DateTime::<Utc>::MIN_UTC`: every fire). A message a worker is already sending is not
/// stopped here; the handler reads the schedule again before sending. Returns the messages
/// canceled.
pub async fn cancel_fires_after(
    conn: &mut PgConnection,
    schedule_id: Uuid,
    after: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let canceled = cancel_unsent_messages(&mut *conn, schedule_id, after).await?;
    sqlx::query!(
        "update schedule_fires set state = 'canceled'
         where schedule_id = $1 and fire_at > $2 and state = 'planned'",
        schedule_id,
        after.max(DateTime::UNIX_EPOCH),
    )
    .execute(conn)
    .await?;
    Ok(canceled)
}

/// Cancels the schedule's unsent messages of fires after `after`, including those of a fire
/// still being sent (`MIN_UTC`), as a pause does: nothing more goes out once it answers.
pub async fn cancel_unsent_messages(
    conn: &mut PgConnection,
    schedule_id: Uuid,
    after: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    // PostgreSQL's timestamps start in 4713 BC, chrono's much earlier
    let after = after.max(DateTime::UNIX_EPOCH);
    Ok(sqlx::query!(
        "update effects e set state = 'canceled', finished_at = now(), last_error = $3
         from schedule_fires f join schedule_messages m on m.fire_id = f.id
         where f.schedule_id = $1 and f.fire_at > $2 and m.effect_id = e.id
           and e.state = any($4::text[]) and e.unconfirmed_since is null",
        schedule_id,
        after,
        CANCELED_BY_SCHEDULE,
        &EffectState::NOT_STARTED[..] as &[EffectState],
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Gives the schedule's unsent messages (a fire still being sent included) the new text: the
/// sender reads a message's body when it sends it.
pub async fn rewrite_unsent_text(
    executor: impl PgExecutor<'_>,
    schedule_id: Uuid,
    text: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "update outbound_messages o set body = $2
         from schedule_messages m join effects e on e.id = m.effect_id
         where m.schedule_id = $1 and o.effect_id = m.effect_id and e.state = any($3::text[])
           and e.unconfirmed_since is null and o.body <> $2",
        schedule_id,
        text,
        &EffectState::NOT_STARTED[..] as &[EffectState],
    )
    .execute(executor)
    .await?
    .rows_affected())
}

/// Whether any schedule sends to the group (a group in use cannot be deleted).
pub async fn uses_group(
    executor: impl PgExecutor<'_>,
    group_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from schedules where group_id = $1) as "exists!""#,
        group_id,
    )
    .fetch_one(executor)
    .await
}

/// Whether any student of the group gets SMS (a schedule's text must then fit SMS).
pub async fn group_has_sms(
    executor: impl PgExecutor<'_>,
    group_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from students where group_id = $1 and channel = 'sms')
           as "exists!""#,
        group_id,
    )
    .fetch_one(executor)
    .await
}

/// A subscribed student of a schedule's group, as the planner needs them.
#[derive(Debug, Clone, FromRow)]
pub struct Recipient {
    pub id: Uuid,
    pub timezone: String,
}

/// The group's subscribed students.
pub async fn recipients(
    executor: impl PgExecutor<'_>,
    group_id: Uuid,
) -> Result<Vec<Recipient>, sqlx::Error> {
    // kept until the plan commits: a student deleted meanwhile waits instead of failing the
    // plan's insert on the foreign key
    sqlx::query_as!(
        Recipient,
        "select id, timezone from students where group_id = $1 and subscribed
         order by created_at, id for key share",
        group_id,
    )
    .fetch_all(executor)
    .await
}

/// The distinct zones of the group's subscribed students.
pub async fn recipient_zones(
    executor: impl PgExecutor<'_>,
    group_id: Uuid,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "select distinct timezone from students where group_id = $1 and subscribed order by 1",
        group_id,
    )
    .fetch_all(executor)
    .await
}

/// Claims up to `limit` active schedules whose plan ends before `before`, locked until the
/// caller's transaction ends; other replicas skip them.
pub async fn claim_to_plan(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ScheduleRow>, sqlx::Error> {
    sqlx::query_as!(
        ScheduleRow,
        "select id, account_id, name, cron, timezone, group_id, text, status, active_from,
                planned_until, created_at, updated_at
         from schedules
         where status = 'active' and planned_until < $1
         order by planned_until
         limit $2
         for update skip locked",
        before,
        limit,
    )
    .fetch_all(conn)
    .await
}

/// The group's active schedules, locked; one a planner holds right now is left out (its
/// plan, being written, reads the students as they are then).
pub async fn lock_active_for_group(
    conn: &mut PgConnection,
    group_id: Uuid,
) -> Result<Vec<ScheduleRow>, sqlx::Error> {
    sqlx::query_as!(
        ScheduleRow,
        "select id, account_id, name, cron, timezone, group_id, text, status, active_from,
                planned_until, created_at, updated_at
         from schedules where group_id = $1 and status = 'active'
         order by id for update skip locked",
        group_id,
    )
    .fetch_all(conn)
    .await
}

pub async fn set_planned_until(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    until: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update schedules set planned_until = greatest(planned_until, $2) where id = $1",
        id,
        until,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// A fire to record.
#[derive(Debug, Clone)]
pub struct NewFire {
    pub timezone: String,
    pub fire_at: DateTime<Utc>,
    pub local_time: NaiveDateTime,
    /// `false`: later than catch-up allows; recorded as `missed`, nothing sent.
    pub send: bool,
    /// The students it sends to (empty when missed).
    pub students: Vec<Uuid>,
}

/// Writes fires with their message and effect rows, inside the caller's transaction.
///
/// Idempotent: a fire already planned keeps its messages and gains those of students it
/// lacks, and a fire canceled by a pause or an update is planned again with the schedule's
/// current text. The effect key is (schedule, fire instant, student), so a student gets at
/// most one message per instant whatever re-planning happens; a message already handed to a
/// worker is never planned twice.
/// Returns the messages written.
pub async fn write_fires(
    conn: &mut PgConnection,
    schedule: &ScheduleRow,
    queue: &str,
    fires: &[NewFire],
) -> Result<u64, sqlx::Error> {
    if fires.is_empty() {
        return Ok(0);
    }
    let zones: Vec<&str> = fires.iter().map(|f| f.timezone.as_str()).collect();
    let ats: Vec<DateTime<Utc>> = fires.iter().map(|f| f.fire_at).collect();
    let locals: Vec<NaiveDateTime> = fires.iter().map(|f| f.local_time).collect();
    let states: Vec<&str> = fires
        .iter()
        .map(|f| if f.send { "planned" } else { "missed" })
        .collect();
    let counts: Vec<i32> = fires
        .iter()
        .map(|f| i32::try_from(f.students.len()).unwrap_or(i32::MAX))
        .collect();
    // new, revived and already planned fires come back with their id (an already planned
    // one gets the messages of students it does not have yet); missed ones do not
    let written = sqlx::query!(
        "insert into schedule_fires (schedule_id, timezone, fire_at, local_time, state, recipients)
         select $1, f.zone, f.at, f.local, f.state, f.recipients
         from unnest($2::text[], $3::timestamptz[], $4::timestamp[], $5::text[], $6::int[])
              as f(zone, at, local, state, recipients)
         on conflict (schedule_id, timezone, fire_at) do update
             set state = case when schedule_fires.state = 'canceled' then excluded.state
                              else schedule_fires.state end,
                 recipients = case when schedule_fires.state = 'canceled' then excluded.recipients
                                   else greatest(schedule_fires.recipients, excluded.recipients) end
             where schedule_fires.state in ('canceled', 'planned')
         returning id, timezone, fire_at",
        schedule.id,
        &zones as &[&str],
        &ats,
        &locals,
        &states as &[&str],
        &counts,
    )
    .fetch_all(&mut *conn)
    .await?;

    let to_send: std::collections::HashMap<(&str, DateTime<Utc>), &NewFire> = fires
        .iter()
        .filter(|f| f.send)
        .map(|f| ((f.timezone.as_str(), f.fire_at), f))
        .collect();
    let mut fire_ids = Vec::new();
    let mut students = Vec::new();
    let mut due = Vec::new();
    for row in &written {
        let Some(fire) = to_send.get(&(row.timezone.as_str(), row.fire_at)) else {
            continue;
        };
        for student in &fire.students {
            fire_ids.push(row.id);
            students.push(*student);
            due.push(row.fire_at);
        }
    }
    let mut messages = 0;
    for ((fire_ids, students), due) in fire_ids
        .chunks(CHUNK)
        .zip(students.chunks(CHUNK))
        .zip(due.chunks(CHUNK))
    {
        messages += write_messages(conn, schedule, queue, fire_ids, students, due).await?;
    }
    Ok(messages)
}

/// One chunk of `write_fires`: outbound messages (new, or revived from `canceled` by the
/// schedule itself), then their fire.
async fn write_messages(
    conn: &mut PgConnection,
    schedule: &ScheduleRow,
    queue: &str,
    fire_ids: &[Uuid],
    students: &[Uuid],
    due: &[DateTime<Utc>],
) -> Result<u64, sqlx::Error> {
    let batch = Batch {
        account_id: schedule.account_id,
        source: MessageSource::Schedule,
        kind: EffectKind::Message,
        queue,
        revive_canceled: Some(CANCELED_BY_SCHEDULE),
    };
    let messages: Vec<outbound_messages::NewMessage> = students
        .iter()
        .zip(due)
        .map(|(student, at)| outbound_messages::NewMessage {
            key: format!("schedule:{}:{}:{student}", schedule.id, at.timestamp()),
            due_at: *at,
            payload: serde_json::json!({
                "schedule_id": schedule.id, "student_id": student, "fire_at": at,
            }),
            channel: None,
            student_id: Some(*student),
            recipient: None,
            subject: None,
            body: schedule.text.clone(),
        })
        .collect();
    let written = outbound_messages::plan(&mut *conn, &batch, &messages).await?;
    let effect_ids: Vec<Uuid> = written.iter().map(|(effect, _)| *effect).collect();
    let message_fires: Vec<Uuid> = written.iter().map(|(_, index)| fire_ids[*index]).collect();
    sqlx::query!(
        "insert into schedule_messages (effect_id, schedule_id, fire_id)
         select m.effect_id, $1, m.fire_id
         from unnest($2::uuid[], $3::uuid[]) as m(effect_id, fire_id)
         on conflict (effect_id) do update set fire_id = excluded.fire_id",
        schedule.id,
        &effect_ids,
        &message_fires,
    )
    .execute(conn)
    .await?;
    Ok(written.len() as u64)
}

/// A past or planned fire with its messages counted by state.
#[derive(Debug, Clone, FromRow)]
pub struct FireOutcome {
    pub id: Uuid,
    pub timezone: String,
    pub fire_at: DateTime<Utc>,
    pub local_time: NaiveDateTime,
    pub state: String,
    pub recipients: i32,
    /// Sent, or recorded in sandbox mode.
    pub sent: i64,
    /// Failed, dead or unknown.
    pub failed: i64,
    /// Canceled, or skipped at send time (unsubscribed, removed, moved zone).
    pub skipped: i64,
    /// Not finished yet.
    pub pending: i64,
}

/// The schedule's fires at or before `until`, latest first.
pub async fn past_fires(
    executor: impl PgExecutor<'_>,
    schedule_id: Uuid,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<FireOutcome>, sqlx::Error> {
    sqlx::query_as!(
        FireOutcome,
        r#"select f.id as "id!", f.timezone as "timezone!", f.fire_at as "fire_at!",
                f.local_time as "local_time!", f.state as "state!", f.recipients as "recipients!",
                count(e.id) filter (where e.state in ('sent', 'sandboxed')) as "sent!",
                count(e.id) filter (where e.state in ('failed', 'dead', 'unknown')) as "failed!",
                count(e.id) filter (where e.state = 'canceled') as "skipped!",
                count(e.id) filter (where e.state = any($4::text[])) as "pending!"
         from (select * from schedule_fires where schedule_id = $1 and fire_at <= $2
               order by fire_at desc, timezone limit $3) f
         left join schedule_messages m on m.fire_id = f.id
         left join effects e on e.id = m.effect_id
         group by f.id, f.timezone, f.fire_at, f.local_time, f.state, f.recipients
         order by f.fire_at desc, f.timezone"#,
        schedule_id,
        until,
        limit,
        &EffectState::UNSENT[..] as &[EffectState],
    )
    .fetch_all(executor)
    .await
}

/// Records the fire of this message as `missed` (found too late to send), unless some of
/// its messages did go out: then the fire stays `planned` and its counts tell the rest.
pub async fn mark_fire_missed(
    executor: impl PgExecutor<'_>,
    effect_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update schedule_fires f set state = 'missed' from schedule_messages m
         where m.effect_id = $1 and f.id = m.fire_id and f.state = 'planned'
           and not exists (
               select 1 from schedule_messages o join effects e on e.id = o.effect_id
               where o.fire_id = f.id and o.effect_id <> $1
                 and e.state in ('sending', 'sent', 'sandboxed'))",
        effect_id,
    )
    .execute(executor)
    .await?;
    Ok(())
}
