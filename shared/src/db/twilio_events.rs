//! What Twilio tells Herald: delivery status callbacks, opt-out and opt-in keywords, and
//! replies to questions.

use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

/// How far along a message is by Twilio's status; a callback only ever moves it forward, so
/// out-of-order callbacks cannot move it back. Final states share the top rank: the first
/// one reported stays.
pub fn status_rank(status: &str) -> Option<i32> {
    match status {
        "accepted" | "scheduled" | "queued" => Some(1),
        "sending" => Some(2),
        "sent" => Some(3),
        "delivered" | "undelivered" | "failed" | "read" | "canceled" => Some(4),
        _ => None,
    }
}

const RANK_SQL: &str = "case provider_status
    when 'accepted' then 1 when 'scheduled' then 1 when 'queued' then 1
    when 'sending' then 2 when 'sent' then 3
    when 'delivered' then 4 when 'undelivered' then 4 when 'failed' then 4 when 'read' then 4
    when 'canceled' then 4 else 0 end";

/// What recording a status callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The message moved forward.
    Updated,
    /// The message already has this or a later status.
    Stale,
    /// No message has this SID yet: kept in `early_statuses` for the sweep to apply.
    Early,
}

/// Records a status callback, or keeps it for later when the SID is not recorded yet (the
/// worker records it a few milliseconds after Twilio answers, and Twilio may call back first).
pub async fn record_or_keep_status(
    conn: &mut PgConnection,
    sid: &str,
    status: &str,
    error_code: Option<i32>,
    error_message: Option<&str>,
) -> Result<Recorded, sqlx::Error> {
    if record_status(&mut *conn, sid, status, error_code, error_message).await? {
        return Ok(Recorded::Updated);
    }
    let known: bool =
        sqlx::query_scalar("select exists(select 1 from effects where provider_id = $1)")
            .bind(sid)
            .fetch_one(&mut *conn)
            .await?;
    if known {
        // the worker may have recorded the SID between the two statements above: try again
        if record_status(&mut *conn, sid, status, error_code, error_message).await? {
            return Ok(Recorded::Updated);
        }
        return Ok(Recorded::Stale);
    }
    sqlx::query(
        "insert into early_statuses (sid, status, error_code, error_message) values ($1, $2, $3, $4)
         on conflict do nothing",
    )
    .bind(sid)
    .bind(status)
    .bind(error_code)
    .bind(error_message)
    .execute(conn)
    .await?;
    Ok(Recorded::Early)
}

/// Applies kept callbacks whose SID is now recorded, oldest first, and forgets ones older
/// than a day (a SID Herald never sent). Returns how many were applied.
pub async fn apply_early_statuses(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let matched: Vec<(String, String, Option<i32>, Option<String>)> = sqlx::query_as(
        "delete from early_statuses es using effects e
         where e.provider_id = es.sid
         returning es.sid, es.status, es.error_code, es.error_message",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut ordered = matched;
    ordered.sort_by_key(|(_, status, _, _)| status_rank(status).unwrap_or(0));
    let mut applied = 0;
    for (sid, status, code, message) in &ordered {
        if record_status(&mut *conn, sid, status, *code, message.as_deref()).await? {
            applied += 1;
        }
    }
    sqlx::query("delete from early_statuses where received_at < now() - interval '1 day'")
        .execute(conn)
        .await?;
    Ok(applied)
}

/// Records a status callback for the message Twilio knows as `sid` (a course delivery's or a
/// schedule's). Returns whether a row changed (false: unknown SID, or the callback was older
/// than what is recorded).
pub async fn record_status(
    conn: &mut PgConnection,
    sid: &str,
    status: &str,
    error_code: Option<i32>,
    error_message: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let Some(rank) = status_rank(status) else {
        return Ok(false);
    };
    let mut changed = 0;
    for table in ["delivery_messages", "schedule_messages"] {
        changed += sqlx::query(&format!(
            "update {table} m
             set provider_status = $2, error_code = coalesce($3, m.error_code),
                 error_message = coalesce($4, m.error_message)
             from effects e
             where e.id = m.effect_id and e.provider_id = $1 and ({RANK_SQL}) < $5"
        ))
        .bind(sid)
        .bind(status)
        .bind(error_code)
        .bind(error_message)
        .bind(rank)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(changed > 0)
}

/// Sets `subscribed` on every student with this phone (in every group of every account: an
/// opt-out is the person's, and Twilio blocks the number for the sender anyway). Returns the
/// students changed.
pub async fn set_subscribed(
    executor: impl PgExecutor<'_>,
    phone: &str,
    subscribed: bool,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "update students set subscribed = $2 where phone = $1 and subscribed <> $2 returning id",
    )
    .bind(phone)
    .bind(subscribed)
    .fetch_all(executor)
    .await
}

/// The question most recently sent to this phone.
#[derive(Debug, Clone, FromRow)]
pub struct AskedQuestion {
    pub delivery_message_id: Uuid,
    pub delivery_id: Uuid,
    pub student_id: Option<Uuid>,
    #[sqlx(rename = "type")]
    pub kind: Option<String>,
    pub options: Option<Json<Vec<String>>>,
    pub correct_answer: Option<String>,
}

pub async fn latest_question(
    conn: &mut PgConnection,
    phone: &str,
) -> Result<Option<AskedQuestion>, sqlx::Error> {
    sqlx::query_as(
        "select m.id as delivery_message_id, m.delivery_id, m.student_id, q.type, q.options, q.correct_answer
         from delivery_messages m
         join students s on s.id = m.student_id
         join effects e on e.id = m.effect_id
         left join questions q on q.id = m.question_id
         where s.phone = $1 and m.seq > 0 and e.state in ('sent', 'sandboxed')
         order by e.finished_at desc nulls last
         limit 1",
    )
    .bind(phone)
    .fetch_optional(conn)
    .await
}

pub async fn insert_answer(
    executor: impl PgExecutor<'_>,
    question: &AskedQuestion,
    body: &str,
    correct: Option<bool>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into answers (delivery_id, student_id, delivery_message_id, body, correct)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(question.delivery_id)
    .bind(question.student_id)
    .bind(question.delivery_message_id)
    .bind(body)
    .bind(correct)
    .execute(executor)
    .await?;
    Ok(())
}
