//! A student's unsent course messages, when the student changes: unsubscribing or removal
//! skips them, a new time zone moves them. (A schedule's messages are checked against the
//! student when sent, so a student who opts back in before a fire still gets it.)

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use crate::effects::EffectState;

/// Skips (cancels) every unsent course message of these students: they unsubscribed or were
/// removed. A message already `sending` is in the provider's hands and is left alone.
pub async fn skip_unsent_for_students(
    executor: impl PgExecutor<'_>,
    student_ids: &[Uuid],
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "update effects e set state = 'canceled', last_error = $2, finished_at = now()
         from outbound_messages m
         where m.effect_id = e.id and m.student_id = any($1) and m.source = 'delivery'
           and e.state = any($3::text[]) and e.unconfirmed_since is null",
        student_ids,
        reason,
        &EffectState::NOT_STARTED[..] as &[EffectState],
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Messages a new time zone moves (`effects::move_unstarted`): those waiting for their time (`held` ones are re-planned on
/// resume, in the zone the student has then).
pub const MOVABLE: [EffectState; 3] = [
    EffectState::Planned,
    EffectState::Queued,
    EffectState::Retrying,
];

/// An unsent message of a student whose delivery follows the student's own clock.
#[derive(Debug, Clone, FromRow)]
pub struct UnsentMessage {
    pub effect_id: Uuid,
    pub next_attempt_at: DateTime<Utc>,
}

/// The student's messages not yet handed over (`planned`, `queued`, `retrying`) in
/// deliveries without a fixed zone: the ones a new time zone moves. (`held` messages are
/// re-planned on resume, in the zone the student has then.)
pub async fn unsent_on_own_clock(
    executor: impl PgExecutor<'_>,
    student_id: Uuid,
) -> Result<Vec<UnsentMessage>, sqlx::Error> {
    sqlx::query_as!(
        UnsentMessage,
        "select e.id as effect_id, e.next_attempt_at
         from outbound_messages o
         join delivery_messages m on m.effect_id = o.effect_id
         join deliveries d on d.id = m.delivery_id
         join effects e on e.id = m.effect_id
         where o.student_id = $1 and d.timezone is null and e.state = any($2::text[])",
        student_id,
        &MOVABLE[..] as &[EffectState],
    )
    .fetch_all(executor)
    .await
}
