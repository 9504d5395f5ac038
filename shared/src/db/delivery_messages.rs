//! Queries on `delivery_messages` for the worker's sending side: what a `message` effect
//! needs at send time, and Twilio's refusal recorded on the message.
//!
//! (Planning the rows, pausing and resuming belong to `db::deliveries`.)

use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::account_senders::AccountSenders;

/// A delivery message as the sender sees it: its text, the student's current phone, channel
/// and subscription (all `None` once the student is deleted), and the delivery's status.
#[derive(Debug, Clone, FromRow)]
pub struct ToSend {
    pub id: Uuid,
    pub delivery_id: Uuid,
    /// `scheduled`, `paused` or `stopped`.
    pub delivery_status: String,
    pub student_id: Option<Uuid>,
    pub phone: Option<String>,
    pub channel: Option<String>,
    pub subscribed: Option<bool>,
    pub body: String,
    /// The delivery's account's own Twilio senders, read in the same query.
    #[sqlx(flatten)]
    pub senders: AccountSenders,
}

/// Reads a message with its student and delivery; `None` when the message is gone.
pub async fn find_to_send(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<ToSend>, sqlx::Error> {
    sqlx::query_as(
        "select m.id, m.delivery_id, d.status as delivery_status, m.student_id,
                s.phone, s.channel, s.subscribed, m.body,
                a.sms_from, a.whatsapp_from, a.messaging_service_sid
         from delivery_messages m
         join deliveries d on d.id = m.delivery_id
         left join students s on s.id = m.student_id
         left join account_twilio_senders a on a.account_id = d.account_id
         where m.id = $1",
    )
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// Records why the provider refused the message (Twilio's error code and text).
pub async fn record_error(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    code: Option<i32>,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("update delivery_messages set error_code = $2, error_message = $3 where id = $1")
        .bind(id)
        .bind(code)
        .bind(message)
        .execute(executor)
        .await?;
    Ok(())
}
