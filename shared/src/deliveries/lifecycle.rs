//! Pause, resume and stop of a delivery, inside the caller's transaction (the caller locks the
//! delivery and checks the transition is allowed). Pause holds every unsent message (`held`);
//! a message already `sending` is in the provider's hands and goes out. Resume re-plans the
//! held messages: each student's next unsent day at the next occurrence of their send time,
//! later days one day apart. Stop cancels every unsent message for good.

use chrono::Utc;
use chrono_tz::Tz;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{HeldMessage, Recipient, Start, replan_held};
use crate::db::deliveries::{self as db, DeliveryRow};
use crate::db::effects;
use crate::effects::EffectState;

/// Holds the delivery's unsent messages.
pub async fn pause(conn: &mut PgConnection, delivery_id: Uuid) -> Result<(), sqlx::Error> {
    db::move_messages(
        &mut *conn,
        delivery_id,
        &WAITING,
        EffectState::Held,
        "delivery paused",
    )
    .await?;
    db::set_status(&mut *conn, delivery_id, "paused").await
}

/// Re-plans the held messages from now on and runs the delivery again.
pub async fn resume(conn: &mut PgConnection, row: &DeliveryRow) -> Result<(), sqlx::Error> {
    let start = Start {
        local: row.start_local,
        zone: row.timezone.as_deref().and_then(|z| z.parse::<Tz>().ok()),
    };
    let held: Vec<HeldMessage> = db::held_messages(&mut *conn, row.id)
        .await?
        .into_iter()
        .filter_map(|held| {
            Some(HeldMessage {
                effect_id: held.effect_id,
                recipient: Recipient {
                    student_id: held.student_id.unwrap_or_else(Uuid::nil),
                    zone: held
                        .timezone
                        .as_deref()
                        .and_then(|z| z.parse::<Tz>().ok())
                        .unwrap_or(Tz::UTC),
                },
                day: u32::try_from(held.day).ok()?,
                seq: u32::try_from(held.seq).ok()?,
            })
        })
        .collect();
    let plan = replan_held(&start, &held, Utc::now());
    effects::move_unstarted(&mut *conn, &plan, &[EffectState::Held]).await?;
    db::set_status(&mut *conn, row.id, "scheduled").await
}

/// Cancels every unsent message of the delivery for good.
pub async fn stop(conn: &mut PgConnection, delivery_id: Uuid) -> Result<(), sqlx::Error> {
    db::move_messages(
        &mut *conn,
        delivery_id,
        &EffectState::NOT_STARTED,
        EffectState::Canceled,
        "delivery stopped",
    )
    .await?;
    db::set_status(&mut *conn, delivery_id, "stopped").await
}

/// Messages waiting for their time: what a pause holds.
const WAITING: [EffectState; 3] = [
    EffectState::Planned,
    EffectState::Queued,
    EffectState::Retrying,
];
