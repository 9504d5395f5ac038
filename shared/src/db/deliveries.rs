//! Queries on `deliveries` and `delivery_messages` (a delivery message's day, sequence and
//! question; the message itself is an outbound message): creating a delivery with all its
//! messages in bulk, progress, and pause/resume/stop transitions.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use super::outbound_messages::{self, Batch};
use crate::effects::{EffectKind, EffectState, MessageSource};

/// Rows per bulk insert statement.
const CHUNK: usize = 5_000;

#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub group_id: Option<Uuid>,
    pub course_id: Option<Uuid>,
    pub start_local: NaiveDateTime,
    pub timezone: Option<String>,
    pub catch_up: bool,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How many subscribed students of a group keep their clock in one zone.
#[derive(Debug, Clone, FromRow)]
pub struct ZoneCount {
    /// The students' zone as stored (IANA name).
    pub timezone: String,
    pub students: i64,
    /// Of them, those on SMS.
    pub sms: i64,
}

/// Whether planning keeps the students it counts until the transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// `for key share`: a student deleted meanwhile is either waited for (and then left out)
    /// or waits for the plan to commit (and then has its new messages skipped like any
    /// others) — never planned for and gone, which would fail on the foreign key. The
    /// weakest lock that stops a delete: a STOP from the Twilio webhook (an update of
    /// `subscribed`) does not wait for a long plan, and the worker checks the subscription
    /// again before it sends. Creating a delivery keeps them.
    Locked,
    /// Nothing is locked: a preview writes nothing.
    Unlocked,
}

/// The group's subscribed students counted per zone (the group must be the caller's; see
/// `group_exists`).
pub async fn subscribed_zones(
    conn: &mut PgConnection,
    group_id: Uuid,
    keep: Keep,
) -> Result<Vec<ZoneCount>, sqlx::Error> {
    match keep {
        Keep::Locked => {
            sqlx::query_as!(
                ZoneCount,
                r#"with s as (select timezone, channel from students
                              where group_id = $1 and subscribed for key share)
                   select timezone as "timezone!", count(*) as "students!",
                          count(*) filter (where channel = 'sms') as "sms!"
                   from s group by timezone order by timezone"#,
                group_id,
            )
            .fetch_all(conn)
            .await
        }
        Keep::Unlocked => {
            sqlx::query_as!(
                ZoneCount,
                r#"with s as (select timezone, channel from students
                              where group_id = $1 and subscribed)
                   select timezone as "timezone!", count(*) as "students!",
                          count(*) filter (where channel = 'sms') as "sms!"
                   from s group by timezone order by timezone"#,
                group_id,
            )
            .fetch_all(conn)
            .await
        }
    }
}

/// A subscribed student to plan for.
#[derive(Debug, Clone, FromRow)]
pub struct PlanStudent {
    pub id: Uuid,
    pub name: String,
    pub timezone: String,
    pub created_at: DateTime<Utc>,
}

/// A page of the group's subscribed students, oldest first, after `(created_at, id)`.
pub async fn subscribed_students(
    executor: impl PgExecutor<'_>,
    group_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<PlanStudent>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        PlanStudent,
        "select id, name, timezone, created_at from students
         where group_id = $1 and subscribed
           and ($2::timestamptz is null or (created_at, id) > ($2, $3))
         order by created_at, id
         limit $4",
        group_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// The first (oldest) subscribed student of the group in any of `zones`.
pub async fn first_student_in(
    executor: impl PgExecutor<'_>,
    group_id: Uuid,
    zones: &[&str],
) -> Result<Option<PlanStudent>, sqlx::Error> {
    sqlx::query_as!(
        PlanStudent,
        "select id, name, timezone, created_at from students
         where group_id = $1 and subscribed and timezone = any($2)
         order by created_at, id
         limit 1",
        group_id,
        zones as &[&str],
    )
    .fetch_optional(executor)
    .await
}

/// Whether the account has the group (it may have no students yet), keeping it
/// (`for key share`) until the caller's transaction ends: a group delete racing with a new
/// delivery or schedule waits, then sees it and answers 409, instead of one of them failing
/// on the foreign key.
pub async fn group_exists(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    group_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let found: Option<Uuid> = sqlx::query_scalar!(
        "select id from groups where account_id = $1 and id = $2 for key share",
        account_id,
        group_id,
    )
    .fetch_optional(executor)
    .await?;
    Ok(found.is_some())
}

pub async fn insert(
    conn: &mut PgConnection,
    account_id: Uuid,
    group_id: Uuid,
    course_id: Uuid,
    start_local: NaiveDateTime,
    timezone: Option<&str>,
    catch_up: bool,
) -> Result<DeliveryRow, sqlx::Error> {
    sqlx::query_as!(
        DeliveryRow,
        "insert into deliveries (account_id, group_id, course_id, start_local, timezone, catch_up)
         values ($1, $2, $3, $4, $5, $6)
         returning id, group_id, course_id, start_local, timezone, catch_up, status,
                   created_at, updated_at",
        account_id,
        group_id,
        course_id,
        start_local,
        timezone,
        catch_up,
    )
    .fetch_one(conn)
    .await
}

/// One message to plan: an outbound message and its delivery facts.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub student_id: Uuid,
    pub day: i32,
    pub seq: i32,
    pub question_id: Option<Uuid>,
    pub body: String,
    pub at: DateTime<Utc>,
}

/// Writes every message of a delivery, in bulk, inside the caller's transaction: the
/// outbound messages (`outbound_messages::plan`) and their day, sequence and question.
pub async fn insert_messages(
    conn: &mut PgConnection,
    account_id: Uuid,
    delivery_id: Uuid,
    queue: &str,
    messages: &[NewMessage],
) -> Result<(), sqlx::Error> {
    let batch = Batch {
        account_id,
        source: MessageSource::Delivery,
        kind: EffectKind::Message,
        queue,
        revive_canceled: None,
    };
    for chunk in messages.chunks(CHUNK) {
        // time-ordered, as the effects' (see `outbound_messages::plan`)
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let planned: Vec<outbound_messages::NewMessage> = chunk
            .iter()
            .zip(&ids)
            .map(|(m, id)| outbound_messages::NewMessage {
                key: format!(
                    "delivery:{delivery_id}:{}:{}:{}",
                    m.student_id, m.day, m.seq
                ),
                due_at: m.at,
                payload: serde_json::json!({ "delivery_message_id": id }),
                channel: None,
                student_id: Some(m.student_id),
                recipient: None,
                subject: None,
                body: m.body.clone(),
            })
            .collect();
        let written = outbound_messages::plan(&mut *conn, &batch, &planned).await?;
        let effect_ids: Vec<Uuid> = written.iter().map(|(effect, _)| *effect).collect();
        let message_ids: Vec<Uuid> = written.iter().map(|(_, index)| ids[*index]).collect();
        let days: Vec<i32> = written.iter().map(|(_, index)| chunk[*index].day).collect();
        let seqs: Vec<i32> = written.iter().map(|(_, index)| chunk[*index].seq).collect();
        let questions: Vec<Option<Uuid>> = written
            .iter()
            .map(|(_, index)| chunk[*index].question_id)
            .collect();
        sqlx::query!(
            "insert into delivery_messages (id, delivery_id, day, seq, question_id, effect_id)
             select m.id, $1, m.day, m.seq, m.question_id, m.effect_id
             from unnest($2::uuid[], $3::int[], $4::int[], $5::uuid[], $6::uuid[])
                  as m(id, day, seq, question_id, effect_id)",
            delivery_id,
            &message_ids,
            &days,
            &seqs,
            &questions as &[Option<Uuid>],
            &effect_ids,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn get(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<DeliveryRow>, sqlx::Error> {
    sqlx::query_as!(
        DeliveryRow,
        "select id, group_id, course_id, start_local, timezone, catch_up, status, created_at,
                updated_at
         from deliveries where account_id = $1 and id = $2",
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// The account's delivery, locked for a status change.
pub async fn lock(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<DeliveryRow>, sqlx::Error> {
    sqlx::query_as!(
        DeliveryRow,
        "select id, group_id, course_id, start_local, timezone, catch_up, status, created_at,
                updated_at
         from deliveries where account_id = $1 and id = $2 for update",
        account_id,
        id,
    )
    .fetch_optional(conn)
    .await
}

pub async fn list(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        DeliveryRow,
        "select id, group_id, course_id, start_local, timezone, catch_up, status, created_at,
                updated_at
         from deliveries
         where account_id = $1 and ($2::timestamptz is null or (created_at, id) < ($2, $3))
         order by created_at desc, id desc limit $4",
        account_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// Message counts per effect state, and the next planned send.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub counts: Vec<(EffectState, i64)>,
    pub next_send_at: Option<DateTime<Utc>>,
}

impl Progress {
    /// Messages not yet in a final state.
    pub fn unsent(&self) -> i64 {
        self.counts
            .iter()
            .filter(|(state, _)| state.is_unsent())
            .map(|(_, count)| count)
            .sum()
    }
}

pub async fn progress(conn: &mut PgConnection, delivery_id: Uuid) -> Result<Progress, sqlx::Error> {
    let mut all = progress_of_many(conn, &[delivery_id]).await?;
    Ok(all.remove(&delivery_id).unwrap_or_default())
}

/// [`progress`] of every delivery in `ids` in one query (a listing's page); a delivery
/// without messages is missing from the map.
pub async fn progress_of_many(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Progress>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select m.delivery_id, e.state as "state: EffectState", count(*) as "count!",
                min(e.next_attempt_at) filter (where e.state in ('planned', 'retrying')) as next
         from delivery_messages m join effects e on e.id = m.effect_id
         where m.delivery_id = any($1)
         group by m.delivery_id, e.state order by m.delivery_id, e.state"#,
        ids,
    )
    .fetch_all(conn)
    .await?;
    let mut all = std::collections::HashMap::<Uuid, Progress>::new();
    for row in rows {
        let (delivery_id, state, count, next) = (row.delivery_id, row.state, row.count, row.next);
        let progress = all.entry(delivery_id).or_default();
        progress.counts.push((state, count));
        progress.next_send_at = match (progress.next_send_at, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(all)
}

pub async fn set_status(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update deliveries set status = $2 where id = $1",
        id,
        status,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Moves the delivery's messages in any of `from` to `to` (pause: → held; stop: → canceled).
/// A row already `sending` is left alone: it is in the provider's hands.
pub async fn move_messages(
    executor: impl PgExecutor<'_>,
    delivery_id: Uuid,
    from: &[EffectState],
    to: EffectState,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "update effects e set state = $3, last_error = $4,
             finished_at = case when $3 = 'canceled' then now() else e.finished_at end
         from delivery_messages m
         where m.effect_id = e.id and m.delivery_id = $1 and e.state = any($2::text[])
           and e.unconfirmed_since is null",
        delivery_id,
        from as &[EffectState],
        to.as_str(),
        reason,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// A held message with its student's zone.
#[derive(Debug, Clone, FromRow)]
pub struct HeldRow {
    pub effect_id: Uuid,
    pub student_id: Option<Uuid>,
    pub timezone: Option<String>,
    pub day: i32,
    pub seq: i32,
}

pub async fn held_messages(
    executor: impl PgExecutor<'_>,
    delivery_id: Uuid,
) -> Result<Vec<HeldRow>, sqlx::Error> {
    sqlx::query_as!(
        HeldRow,
        r#"select e.id as effect_id, o.student_id, s.timezone as "timezone?", m.day, m.seq
         from delivery_messages m join effects e on e.id = m.effect_id
         join outbound_messages o on o.effect_id = m.effect_id
         left join students s on s.id = o.student_id
         where m.delivery_id = $1 and e.state = 'held'"#,
        delivery_id,
    )
    .fetch_all(executor)
    .await
}

/// Whether a delivery that is not stopped and still has unsent messages uses the course (or
/// group).
pub async fn active_for(
    executor: impl PgExecutor<'_>,
    column: ActiveFor,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let (course, group) = match column {
        ActiveFor::Course => (Some(id), None),
        ActiveFor::Group => (None, Some(id)),
    };
    sqlx::query_scalar!(
        r#"select exists(
             select 1 from deliveries d
             join delivery_messages m on m.delivery_id = d.id
             join effects e on e.id = m.effect_id
             where (d.course_id = $1 or d.group_id = $2) and d.status <> 'stopped'
               and e.state = any($3::text[])) as "active!""#,
        course,
        group,
        &EffectState::UNSENT[..] as &[EffectState],
    )
    .fetch_one(executor)
    .await
}

/// What `active_for` looks at.
#[derive(Debug, Clone, Copy)]
pub enum ActiveFor {
    Course,
    Group,
}
