//! What comes back after a campaign e-mail went out: SendGrid's events (`email_events`, once
//! per `sg_event_id`), replies, automatic replies and delivery reports (`campaign_replies`),
//! and what they do to the prospect — a reply ends the sequence (`replied`), a hard bounce or
//! a spam report suppresses the address for the account and ends it, an unsubscribe too.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::campaign_sends::{self, Ending, SentSend};
use super::suppressions::{self, SuppressionReason};

/// One provider event to record.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub sg_event_id: &'a str,
    pub account_id: Option<Uuid>,
    pub effect_id: Option<Uuid>,
    pub event: &'a str,
    pub email: &'a str,
    pub reason: Option<&'a str>,
    pub occurred_at: Option<DateTime<Utc>>,
}

/// Records the event unless its `sg_event_id` is recorded already; true when new.
pub async fn record_event(
    conn: &mut PgConnection,
    event: &NewEvent<'_>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query_scalar!(
        "insert into email_events (sg_event_id, account_id, effect_id, event, email, reason,
                                   occurred_at)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (sg_event_id) do nothing
         returning sg_event_id",
        event.sg_event_id,
        event.account_id,
        event.effect_id,
        event.event,
        event.email,
        event.reason,
        event.occurred_at,
    )
    .fetch_optional(conn)
    .await?;
    Ok(inserted.is_some())
}

/// Records the provider's latest word on the e-mail (`delivered`, `deferred`, `bounced`, …) on
/// its message row.
pub async fn record_status(
    conn: &mut PgConnection,
    effect_id: Uuid,
    status: &str,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update outbound_messages set provider_status = $2,
             error_message = coalesce($3, error_message)
         where effect_id = $1",
        effect_id,
        status,
        reason,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What an answer to a campaign e-mail was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Reply,
    /// An out-of-office or other automatic answer: recorded, the sequence goes on.
    AutoReply,
    /// A delivery report (the address does not take mail).
    Bounce,
}

impl ReplyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::AutoReply => "auto_reply",
            Self::Bounce => "bounce",
        }
    }
}

/// Records an answer to `send` and applies it: a reply ends the prospect's sequence
/// (`replied`), a bounce suppresses the address and ends it (`bounced`), an automatic reply
/// changes nothing else.
pub async fn record_reply(
    conn: &mut PgConnection,
    send: &SentSend,
    kind: ReplyKind,
    from: Option<&str>,
    subject: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into campaign_replies (account_id, campaign_id, person_id, effect_id, kind,
                                       from_email, subject)
         values ($1, $2, $3, $4, $5, $6, $7)",
        send.account_id,
        send.campaign_id,
        send.person_id,
        send.effect_id,
        kind.as_str(),
        from,
        subject,
    )
    .execute(&mut *conn)
    .await?;
    match kind {
        ReplyKind::Reply => {
            campaign_sends::end_sequence(
                conn,
                send.campaign_id,
                send.person_id,
                Ending::Replied,
                "not sent: the prospect replied",
            )
            .await?;
        }
        ReplyKind::Bounce => {
            suppress_and_end(conn, send, SuppressionReason::Bounced, "delivery report").await?;
        }
        ReplyKind::AutoReply => {}
    }
    Ok(())
}

/// Suppresses the send's address for its account (`source` says who reported it) and ends
/// the prospect's sequence in the send's campaign: `bounced` for a bounce, `unsubscribed` for
/// an unsubscribe or a complaint. Other campaigns of the account stop at their next send
/// (every send checks the suppressions).
pub async fn suppress_and_end(
    conn: &mut PgConnection,
    send: &SentSend,
    reason: SuppressionReason,
    source: &str,
) -> Result<(), sqlx::Error> {
    suppressions::suppress(
        conn,
        send.account_id,
        &send.email.to_lowercase(),
        reason,
        Some(source),
    )
    .await?;
    let ending = match reason {
        SuppressionReason::Bounced => Ending::Bounced,
        _ => Ending::Unsubscribed,
    };
    let text = format!("not sent: the address is suppressed ({})", reason.as_str());
    campaign_sends::end_sequence(conn, send.campaign_id, send.person_id, ending, &text).await?;
    Ok(())
}
