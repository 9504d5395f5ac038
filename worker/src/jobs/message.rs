//! The `message` kind: one course message to a student over SMS or WhatsApp through Twilio,
//! or recorded in sandbox mode.
//!
//! Everything that may have changed since the message was planned is read at send time: a
//! deleted or unsubscribed student or a stopped delivery cancels the message, a paused one
//! holds it for resume, and a changed phone number or channel is used as it is now.
//!
//! Each sender (number or Messaging Service, per channel) sends at most its configured rate
//! across all replicas (`rate_limit`). A job waits for its slot only while that leaves room
//! for the Twilio call inside the job's timeout; when the sender's queue is longer, the job
//! gives the row back to the dispatcher for later, uncounted, instead of sleeping into its
//! timeout and burning attempts (or, worse, being resolved as a stuck send).

use std::time::Duration;

use herald_shared::db::delivery_messages::{self, ToSend};
use herald_shared::db::effects::Started;
use herald_shared::effects::{EffectKind, MessagePayload};
use herald_shared::providers::twilio::{Channel, Delivery, Outgoing, TwilioError};

use super::{JobError, Outcome};
use crate::context::WorkerContext;
use crate::rate_limit::{self, Slot};

/// Room kept for the database writes around the Twilio call within the job's timeout.
const MARGIN: Duration = Duration::from_secs(1);

/// Sends the delivery message named in the row's payload.
pub async fn send(ctx: &WorkerContext, started: &Started) -> Result<Outcome, JobError> {
    let payload: MessagePayload = serde_json::from_value(started.payload.clone())
        .map_err(|err| JobError::Permanent(format!("invalid message payload: {err}")))?;
    let found = delivery_messages::find_to_send(&ctx.db, payload.delivery_message_id)
        .await
        .map_err(|err| JobError::Retryable {
            message: format!("read the delivery message: {err}"),
            retry_after: None,
        })?;
    let Some(message) = found else {
        return Ok(Outcome::Skipped {
            reason: "not sent: the delivery message no longer exists".to_owned(),
        });
    };
    let (phone, channel) = match recipient(&message)? {
        Ok(recipient) => recipient,
        Err(outcome) => return Ok(outcome),
    };
    let outgoing = Outgoing {
        to: &phone,
        channel,
        body: &message.body,
    };
    if !ctx.twilio.is_sandbox()
        && let Some(outcome) = wait_for_slot(ctx, channel).await?
    {
        return Ok(outcome);
    }
    let err = match ctx.twilio.send(outgoing).await {
        Ok(Delivery::Sent { sid }) => return Ok(Outcome::Sent { provider_id: sid }),
        Ok(Delivery::Sandboxed) => return Ok(Outcome::Sandboxed),
        Err(err) => err,
    };
    match err {
        TwilioError::Retryable {
            message,
            retry_after,
        } => Err(JobError::Retryable {
            message,
            retry_after,
        }),
        TwilioError::Permanent {
            code, ref message, ..
        } => {
            let code = code.and_then(|code| i32::try_from(code).ok());
            // The effect row records the failure whatever happens here; the message row's
            // copy is for the deliveries API, so a write error must not turn a permanent
            // refusal into a retry (Twilio would refuse again).
            if let Err(db_err) =
                delivery_messages::record_error(&ctx.db, payload.delivery_message_id, code, message)
                    .await
            {
                tracing::warn!(delivery_message_id = %payload.delivery_message_id, error = %db_err, "could not record Twilio's error on the message");
            }
            Err(JobError::Permanent(err.to_string()))
        }
        TwilioError::NotConfigured(text) => Err(JobError::Permanent(text)),
    }
}

/// The student's current phone and channel, or why the message is not to be sent.
fn recipient(message: &ToSend) -> Result<Result<(String, Channel), Outcome>, JobError> {
    match message.delivery_status.as_str() {
        "scheduled" => {}
        "paused" => {
            return Ok(Err(Outcome::Held {
                reason: "not sent: the delivery is paused; resuming re-plans it".to_owned(),
            }));
        }
        status => {
            return Ok(Err(Outcome::Skipped {
                reason: format!("not sent: the delivery is {status}"),
            }));
        }
    }
    let (Some(phone), Some(channel), Some(subscribed)) =
        (&message.phone, &message.channel, message.subscribed)
    else {
        return Ok(Err(Outcome::Skipped {
            reason: "not sent: the student was removed".to_owned(),
        }));
    };
    if !subscribed {
        return Ok(Err(Outcome::Skipped {
            reason: "not sent: the student unsubscribed".to_owned(),
        }));
    }
    let channel = Channel::parse(channel)
        .ok_or_else(|| JobError::Permanent(format!("unknown channel {channel:?}")))?;
    Ok(Ok((phone.clone(), channel)))
}

/// Waits for the sender's next rate-limit slot. `Some(Deferred)` when it is too far away to
/// wait for inside the job's timeout: the timeout less Twilio's own and a margin. (A kind-wide
/// `rate_limit` for `message` in jobs.toml, unset by default, waits first and is not
/// subtracted; with both, a long double wait ends in the attempt's timeout and a retry.)
async fn wait_for_slot(ctx: &WorkerContext, channel: Channel) -> Result<Option<Outcome>, JobError> {
    let Some(sender) = ctx.twilio.sender(channel) else {
        return Err(JobError::Permanent(format!(
            "no {channel} sender: set twilio.{channel}_from or twilio.messaging_service_sid"
        )));
    };
    let timeout = ctx.jobs.get(EffectKind::Message).timeout;
    let max_wait = timeout
        .saturating_sub(ctx.twilio.timeout())
        .saturating_sub(MARGIN);
    let key = format!("twilio:{}", sender.rate_key(channel));
    let slot = rate_limit::acquire(ctx, &key, ctx.twilio.per_second(channel), max_wait)
        .await
        .map_err(|err| JobError::Retryable {
            message: format!("rate limiter unavailable (Redis): {err}"),
            retry_after: None,
        })?;
    match slot {
        Slot::Now { .. } => Ok(None),
        Slot::Later { wait } => {
            metrics::counter!("herald_rate_limit_deferred_total", "limit" => format!("twilio:{channel}"))
                .increment(1);
            Ok(Some(Outcome::Deferred {
                until: rate_limit::come_back_at(wait, max_wait),
            }))
        }
    }
}
