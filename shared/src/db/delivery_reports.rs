//! What a delivery's owner reads: its messages (filtered, keyset-paged by day, sequence and
//! student) and its students' answers.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

/// One message as the delivery's owner sees it.
#[derive(Debug, Clone, FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub student_id: Option<Uuid>,
    pub day: i32,
    pub seq: i32,
    pub body: String,
    pub state: String,
    pub due_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub provider_id: Option<String>,
    pub provider_status: Option<String>,
    pub error_code: Option<i32>,
}

/// A page of a delivery's messages ordered by (day, seq, student), after `after`.
pub async fn messages(
    executor: impl PgExecutor<'_>,
    delivery_id: Uuid,
    state: Option<&str>,
    student_id: Option<Uuid>,
    after: Option<(i32, i32, Uuid)>,
    limit: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    let (after_day, after_seq, after_student) = match after {
        Some((day, seq, student)) => (Some(day), Some(seq), Some(student)),
        None => (None, None, None),
    };
    sqlx::query_as!(
        MessageRow,
        "select m.id, o.student_id, m.day, m.seq, o.body, e.state, e.due_at, e.next_attempt_at,
                e.finished_at, e.attempts, e.last_error, e.provider_id, o.provider_status, o.error_code
         from delivery_messages m
         join outbound_messages o on o.effect_id = m.effect_id
         join effects e on e.id = m.effect_id
         where m.delivery_id = $1
           and ($2::text is null or e.state = $2)
           and ($3::uuid is null or o.student_id = $3)
           and ($4::int is null
                or (m.day, m.seq, coalesce(o.student_id, '00000000-0000-0000-0000-000000000000'::uuid)) > ($4, $5, $6))
         order by m.day, m.seq, coalesce(o.student_id, '00000000-0000-0000-0000-000000000000'::uuid)
         limit $7",
        delivery_id,
        state,
        student_id,
        after_day,
        after_seq,
        after_student,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// A recorded answer.
#[derive(Debug, Clone, FromRow)]
pub struct AnswerRow {
    pub id: Uuid,
    pub student_id: Option<Uuid>,
    pub day: i32,
    pub question_id: Option<Uuid>,
    pub body: String,
    pub correct: Option<bool>,
    pub received_at: DateTime<Utc>,
}

/// A page of a delivery's answers, oldest first, after `(received_at, id)`.
pub async fn answers(
    executor: impl PgExecutor<'_>,
    delivery_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<AnswerRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        AnswerRow,
        "select a.id, a.student_id, m.day, m.question_id, a.body, a.correct, a.received_at
         from answers a join delivery_messages m on m.id = a.delivery_message_id
         where a.delivery_id = $1 and ($2::timestamptz is null or (a.received_at, a.id) > ($2, $3))
         order by a.received_at, a.id limit $4",
        delivery_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}
