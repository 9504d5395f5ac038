//! What a change to a student means for their unsent course messages: unsubscribing skips
//! (cancels) them; a new time zone moves each to the same wall-clock time in the new zone
//! (deliveries with a fixed zone are not affected). A new phone or channel needs nothing
//! here: the worker reads both at send time.

use chrono::Utc;
use chrono_tz::Tz;
use herald_shared::db::groups::StudentRow;
use herald_shared::db::{effects, student_messages};
use herald_shared::deliveries::shift_zone;
use sqlx::PgConnection;

use crate::error::ApiError;

/// Applies the consequences of `before` → `after`, in the caller's transaction.
pub async fn apply(
    conn: &mut PgConnection,
    before: &StudentRow,
    after: &StudentRow,
) -> Result<(), ApiError> {
    if before.subscribed && !after.subscribed {
        student_messages::skip_unsent_for_students(&mut *conn, &[after.id], "student unsubscribed")
            .await?;
        return Ok(());
    }
    if before.timezone != after.timezone
        && let (Ok(old), Ok(new)) = (before.timezone.parse::<Tz>(), after.timezone.parse::<Tz>())
    {
        let now = Utc::now();
        let moved: Vec<_> = student_messages::unsent_on_own_clock(&mut *conn, after.id)
            .await?
            .into_iter()
            .map(|message| {
                (
                    message.effect_id,
                    shift_zone(message.next_attempt_at, old, new, now),
                )
            })
            .collect();
        effects::move_unstarted(conn, &moved, &student_messages::MOVABLE).await?;
    }
    Ok(())
}
