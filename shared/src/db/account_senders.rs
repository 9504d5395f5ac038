//! An account's own Twilio senders: numbers or a Messaging Service on the platform's Twilio
//! account that belong to this account alone. Messages of an account with its own sender go
//! out from it; replies to it reach that account only.

use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

/// The senders an account has set; `None` fields use the platform's default sender.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow)]
pub struct AccountSenders {
    pub sms_from: Option<String>,
    pub whatsapp_from: Option<String>,
    pub messaging_service_sid: Option<String>,
}

/// The account's senders (all `None` when it has none).
pub async fn get(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
) -> Result<AccountSenders, sqlx::Error> {
    let found = sqlx::query_as!(
        AccountSenders,
        "select sms_from, whatsapp_from, messaging_service_sid
         from account_twilio_senders where account_id = $1",
        account_id,
    )
    .fetch_optional(executor)
    .await?;
    Ok(found.unwrap_or_default())
}

/// Which field another account already holds, from the unique index that refused a write.
pub fn taken_field(err: &sqlx::Error) -> Option<&'static str> {
    let sqlx::Error::Database(err) = err else {
        return None;
    };
    match err.constraint()? {
        "account_twilio_senders_sms" => Some("sms_from"),
        "account_twilio_senders_whatsapp" => Some("whatsapp_from"),
        "account_twilio_senders_service" => Some("messaging_service_sid"),
        _ => None,
    }
}

/// Replaces the account's senders. A sender another account holds fails with a unique
/// violation ([`taken_field`] names it).
pub async fn put(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    senders: &AccountSenders,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into account_twilio_senders (account_id, sms_from, whatsapp_from, messaging_service_sid)
         values ($1, $2, $3, $4)
         on conflict (account_id) do update set sms_from = excluded.sms_from,
             whatsapp_from = excluded.whatsapp_from,
             messaging_service_sid = excluded.messaging_service_sid",
        account_id,
        senders.sms_from.as_deref(),
        senders.whatsapp_from.as_deref(),
        senders.messaging_service_sid.as_deref(),
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// The account that owns the sender an inbound message was sent to: its number `to` on
/// `channel` (`sms` or `whatsapp`), or its Messaging Service.
pub async fn owner(
    executor: impl PgExecutor<'_>,
    channel: &str,
    to: &str,
    messaging_service_sid: Option<&str>,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select account_id from account_twilio_senders
         where messaging_service_sid = $3
            or ($1 = 'sms' and sms_from = $2)
            or ($1 = 'whatsapp' and whatsapp_from = $2)
         order by messaging_service_sid = $3 desc nulls last
         limit 1",
        channel,
        to,
        messaging_service_sid,
    )
    .fetch_optional(executor)
    .await
}
