//! `POST /webhooks/sendgrid/events`: SendGrid's signed Event Webhook about campaign e-mails
//! sent through it.
//!
//! The ECDSA signature (`X-Twilio-Email-Event-Webhook-Signature`, over the timestamp header
//! and the body) is checked with `sendgrid.event_webhook_public_key`; a missing or bad
//! signature, or no key configured, answers 403 and changes nothing. SendGrid delivers each
//! event at least once: one already recorded (`sg_event_id`) is skipped. Each event names its
//! e-mail by the `effect_id` Herald sent as a custom argument:
//!
//! - `delivered`, `deferred`, `processed`, a soft bounce (`blocked`): the message's provider
//!   status;
//! - a hard bounce: the address is suppressed (`bounced`) and the prospect's sequence ends;
//! - `spamreport`: suppressed (`complained`), the sequence ends (`unsubscribed`);
//! - `unsubscribe`: suppressed (`unsubscribed`), the sequence ends;
//! - `dropped` (SendGrid would not send it, e.g. an address on its own suppression list):
//!   the sequence ends, `skipped` with SendGrid's reason.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_shared::db::campaign_sends::{self, Ending};
use herald_shared::db::email_events::{self, NewEvent};
use herald_shared::db::suppressions::SuppressionReason;
use herald_shared::email_events::{Event, EventKind, EventWebhookKey, parse_events};
use herald_shared::time_rules::fits_postgres;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::extract::unreadable_body;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

const SIGNATURE: &str = "x-twilio-email-event-webhook-signature";
const TIMESTAMP: &str = "x-twilio-email-event-webhook-timestamp";

/// Records SendGrid's events about campaign e-mails (see the module doc).
#[utoipa::path(post, path = "/webhooks/sendgrid/events", tag = "webhooks", operation_id = "webhooks.sendgrid.events",
    request_body(content = String, content_type = "application/json",
        description = "SendGrid's events: a JSON array of objects with `sg_event_id`, `event`, `email`, …"),
    params(("X-Twilio-Email-Event-Webhook-Signature" = String, Header),
        ("X-Twilio-Email-Event-Webhook-Timestamp" = String, Header)),
    responses((status = 204), (status = 403, description = "missing or bad signature", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "not SendGrid's event JSON", content_type = "application/problem+json", body = Problem)))]
async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|err| unreadable_body(&err, "a webhook"))?;
    if !signed(&state, &headers, &body) {
        return Err(ApiError::Forbidden(
            "the event webhook signature is missing or does not verify",
        ));
    }
    let events = parse_events(&body).map_err(|err| ApiError::field("body", err.to_string()))?;
    let mut tx = state.db.begin().await?;
    for event in &events {
        apply(&mut tx, event).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Whether the request carries a valid signature by the configured key.
fn signed(state: &AppState, headers: &HeaderMap, body: &[u8]) -> bool {
    let key = state.config.sendgrid.event_webhook_public_key.trim();
    if key.is_empty() {
        return false;
    }
    let (Some(signature), Some(timestamp)) = (
        headers.get(SIGNATURE).and_then(|v| v.to_str().ok()),
        headers.get(TIMESTAMP).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    EventWebhookKey::parse(key).is_ok_and(|key| key.verify(timestamp, body, signature))
}

/// Records one event (once) and applies it to its e-mail and prospect. An event is applied
/// only to an e-mail Herald sent through SendGrid to the address the event names: SendGrid's
/// `custom_args` are written by whoever sends, so an effect id alone is not trusted.
async fn apply(conn: &mut sqlx::PgConnection, event: &Event) -> Result<(), ApiError> {
    let send = match event.effect_id {
        Some(id) => campaign_sends::find_sent(&mut *conn, &[id])
            .await?
            .filter(|send| {
                send.transport == "sendgrid" && send.email.eq_ignore_ascii_case(event.email.trim())
            }),
        None => None,
    };
    let name = clean(&event_name(&event.kind));
    let (sg_event_id, email) = (clean(&event.sg_event_id), clean(&event.email));
    let reason = event.reason.as_deref().map(clean);
    let new = NewEvent {
        sg_event_id: &sg_event_id,
        account_id: send.as_ref().map(|send| send.account_id),
        effect_id: send.as_ref().map(|send| send.effect_id),
        event: &name,
        email: &email,
        reason: reason.as_deref(),
        // a time PostgreSQL cannot store is SendGrid's mistake, not a reason to lose the event
        occurred_at: event.timestamp.filter(|at| fits_postgres(*at)),
    };
    if !email_events::record_event(conn, &new).await? {
        return Ok(());
    }
    // an event about an e-mail Herald does not know (another system's, or one deleted since)
    // is recorded and goes no further
    let Some(send) = send else {
        return Ok(());
    };
    email_events::record_status(conn, send.effect_id, &name, reason.as_deref()).await?;
    match &event.kind {
        EventKind::HardBounce => {
            email_events::suppress_and_end(conn, &send, SuppressionReason::Bounced, "sendgrid")
                .await?;
        }
        EventKind::SpamReport => {
            email_events::suppress_and_end(conn, &send, SuppressionReason::Complained, "sendgrid")
                .await?;
        }
        EventKind::Unsubscribe => {
            email_events::suppress_and_end(
                conn,
                &send,
                SuppressionReason::Unsubscribed,
                "sendgrid",
            )
            .await?;
        }
        EventKind::Dropped => {
            let reason = format!(
                "SendGrid dropped an e-mail: {}",
                reason.as_deref().unwrap_or("no reason given")
            );
            campaign_sends::end_sequence(
                conn,
                send.campaign_id,
                send.person_id,
                Ending::Skipped,
                &reason,
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// `text` without NUL characters, which PostgreSQL's text cannot hold.
fn clean(text: &str) -> String {
    text.replace('\0', "")
}

/// The event's name as recorded (and as the message's provider status).
fn event_name(kind: &EventKind) -> String {
    match kind {
        EventKind::Processed => "processed",
        EventKind::Delivered => "delivered",
        EventKind::Deferred => "deferred",
        EventKind::Dropped => "dropped",
        EventKind::HardBounce => "bounced",
        EventKind::SoftBounce => "blocked",
        EventKind::SpamReport => "spamreport",
        EventKind::Unsubscribe => "unsubscribe",
        EventKind::Other(name) => name.as_str(),
    }
    .to_owned()
}
