//! The `message` kind: one outbound message to a student over SMS or WhatsApp through
//! Twilio, or recorded in sandbox mode, whatever source planned it.
//!
//! Everything that may have changed since the message was planned is read at send time: a
//! deleted or unsubscribed student or a stopped delivery cancels the message, a paused one
//! holds it for resume (see `gates`), and a changed phone number or channel is used as it is
//! now.
//!
//! A message goes out from its account's own sender when it has one (`account_twilio_senders`),
//! else from the platform's default; the sender is recorded with the outcome, since replies
//! are routed by it.
//!
//! Each sender (number or Messaging Service, per channel) sends at most its configured rate
//! across all replicas. The dispatcher reserves the slot of the sender the message would go
//! out from when it pushes the row (`crate::throttle`), and the job starts at that slot. Only
//! a message whose sender changed since (the student moved to the other channel, the
//! account set its own number) takes its slot here (`rate_limit`), waiting only while that
//! leaves room for the Twilio call inside the job's timeout; when the sender's line is
//! longer, the job gives the row back to the dispatcher for later, uncounted. The timeout
//! itself covers the Twilio call only.

use std::time::Duration;

use chrono::Utc;
use herald_shared::courses::{SMS_MAX_CHARS, WHATSAPP_MAX_CHARS, message_length};
use herald_shared::db::effects::{SentMessage, Started};
use herald_shared::db::outbound_messages::{self, ToSend};
use herald_shared::effects::EffectKind;
use herald_shared::providers::twilio::{
    CLOCK_SKEW, Channel, Delivery, Lookup, Outgoing, Sender, TwilioError,
};

use super::gates;
use super::{JobError, Outcome};
use crate::context::WorkerContext;
use crate::outage::TWILIO;
use crate::rate_limit::{self, Slot, twilio_limit};

/// Room kept for the database writes around the Twilio call within the job's timeout.
const MARGIN: Duration = Duration::from_secs(1);

/// A wait after which the message is read again before sending.
const LONG_WAIT: Duration = Duration::from_millis(100);

/// Why a send stopped before its end: a decision not to send, or a failure.
enum Stop {
    Decided(Outcome),
    Failed(JobError),
}

impl From<JobError> for Stop {
    fn from(err: JobError) -> Self {
        Self::Failed(err)
    }
}

impl From<Outcome> for Stop {
    fn from(outcome: Outcome) -> Self {
        Self::Decided(outcome)
    }
}

/// Sends the outbound message of the started effect.
/// `reserved` names the rate limits whose slot the dispatcher reserved for this push.
pub async fn send(
    ctx: &WorkerContext,
    started: &Started,
    reserved: &[String],
) -> Result<Outcome, JobError> {
    match run(ctx, started, reserved).await {
        Ok(outcome) | Err(Stop::Decided(outcome)) => Ok(outcome),
        Err(Stop::Failed(err)) => Err(err),
    }
}

async fn run(ctx: &WorkerContext, started: &Started, reserved: &[String]) -> Result<Outcome, Stop> {
    let mut message = find(ctx, started).await?;
    if started.unconfirmed_since.is_some() {
        // an earlier attempt may have reached Twilio: ask before anything else, since a
        // message Twilio has is sent whatever has changed since
        look_up(ctx, started, &message).await?;
    }
    gate(ctx, started, &message).await?;
    let (mut phone, mut channel) = recipient(&message)?;
    let sender = ctx.twilio.sender_for(channel, &message.senders);
    if !ctx.twilio.is_sandbox() {
        let Some(sender) = &sender else {
            return Err(JobError::Permanent(format!(
                "no {channel} sender: set twilio.{channel}_from or twilio.messaging_service_sid"
            ))
            .into());
        };
        if !reserved.contains(&twilio_limit(sender, channel))
            && wait_for_slot(ctx, channel, sender).await?
        {
            // a pause, stop, unsubscribe or new text may have come while this job waited
            message = find(ctx, started).await?;
            gate(ctx, started, &message).await?;
            let now = recipient(&message)?;
            // the slot was taken for one sender; a student who changed channel meanwhile
            // waits for the other sender's slot on the next attempt
            if now.1 != channel {
                return Err(JobError::Retryable {
                    message: "the student changed channel while the message waited".to_owned(),
                    retry_after: None,
                }
                .into());
            }
            (phone, channel) = now;
        }
    }
    // the text was checked against the group's channels when written; a student who moved
    // to SMS since may still get one longer than SMS carries: refused here, not by Twilio
    if let Some(refusal) = too_long(channel, &message.body) {
        record_refusal(ctx, started, None, &refusal).await;
        return Err(JobError::Permanent(refusal).into());
    }
    let sent = SentMessage {
        sent_from: sender.as_ref().map(|sender| sender.address().to_owned()),
        recipient: Some(phone.clone()),
        channel: Some(channel.as_str()),
    };
    let outgoing = Outgoing {
        to: &phone,
        channel,
        body: &message.body,
        sender: sender.as_ref(),
        effect_id: started.id,
    };
    let timeout = ctx.jobs.get(EffectKind::Message).timeout;
    let answer = tokio::time::timeout(timeout, ctx.twilio.send(outgoing))
        .await
        .map_err(|_| JobError::Unconfirmed {
            message: format!("no answer from Twilio within the job's timeout ({timeout:?})"),
        })?;
    match answer {
        Ok(Delivery::Sent { sid }) => {
            ctx.outages.accepted(TWILIO);
            Ok(Outcome::Sent {
                provider_id: sid,
                message: Some(sent),
            })
        }
        Ok(Delivery::Sandboxed) => Ok(Outcome::Sandboxed {
            message: Some(sent),
        }),
        Err(err) => Err(refused(ctx, started, err).await.into()),
    }
}

/// The job's error for Twilio's refusal or failure.
async fn refused(ctx: &WorkerContext, started: &Started, err: TwilioError) -> JobError {
    match err {
        TwilioError::Retryable {
            message,
            retry_after,
        } => JobError::Retryable {
            message,
            retry_after,
        },
        // not the message's fault: it waits, uncounted, until the credentials work
        TwilioError::CredentialsRefused { .. } => JobError::Outage {
            provider: TWILIO,
            message: err.to_string(),
        },
        TwilioError::Permanent {
            code, ref message, ..
        } => {
            // Twilio read the credentials before refusing the message
            ctx.outages.accepted(TWILIO);
            let code = code.and_then(|code| i32::try_from(code).ok());
            record_refusal(ctx, started, code, message).await;
            JobError::Permanent(err.to_string())
        }
        TwilioError::NotConfigured(text) => JobError::Permanent(text),
        // the request may have reached Twilio: the next attempt looks it up first (after the
        // backoff, since a slow Twilio may still be creating it)
        TwilioError::Unconfirmed { message, .. } => JobError::Unconfirmed { message },
    }
}

/// The message as it is now; skipped when it is gone.
async fn find(ctx: &WorkerContext, started: &Started) -> Result<ToSend, Stop> {
    let message = outbound_messages::find_to_send(&ctx.db, started.id)
        .await
        .map_err(|err| JobError::failed_to("read the message", err))?
        .ok_or(Outcome::Skipped {
            reason: "not sent: the message no longer exists".to_owned(),
        })?;
    Ok(message)
}

/// Stops the send when the message's source no longer wants it now.
async fn gate(ctx: &WorkerContext, started: &Started, message: &ToSend) -> Result<(), Stop> {
    match gates::check(ctx, started, message).await? {
        Some(outcome) => Err(outcome.into()),
        None => Ok(()),
    }
}

/// Asks Twilio whether an earlier attempt (from `unconfirmed_since` to `unconfirmed_until`)
/// created the message: found, it is recorded sent with its SID; not found, the send goes
/// on. A status callback that already named the message settles it without asking. The
/// message is looked for as it would go out now (the student's phone and channel, the
/// account's sender): a student whose number changed since is not found, and gets it at the
/// new number.
async fn look_up(ctx: &WorkerContext, started: &Started, message: &ToSend) -> Result<(), Stop> {
    let (Some(phone), Some(channel)) = (
        &message.phone,
        message.student_channel.as_deref().and_then(Channel::parse),
    ) else {
        // the student is gone: nothing to look for, and nothing will be sent
        return Ok(());
    };
    let Some(sender) = ctx.twilio.sender_for(channel, &message.senders) else {
        return Ok(());
    };
    let sent = |sid: String| {
        tracing::info!(%sid, "an earlier attempt had reached Twilio; recorded as sent");
        Stop::Decided(Outcome::Sent {
            provider_id: Some(sid),
            message: Some(SentMessage {
                sent_from: Some(sender.address().to_owned()),
                recipient: Some(phone.clone()),
                channel: Some(channel.as_str()),
            }),
        })
    };
    if let Some(sid) = &started.provider_id {
        return Err(sent(sid.clone()));
    }
    let since = started.unconfirmed_since.unwrap_or(started.due);
    let until = started.unconfirmed_until.unwrap_or_else(Utc::now);
    let unconfirmed = |message: String| Stop::Failed(JobError::Unconfirmed { message });
    let skip = outbound_messages::sids_sent_to(&ctx.db, started.id, phone, since - CLOCK_SKEW)
        .await
        .map_err(|err| unconfirmed(format!("read the recipient's recorded messages: {err}")))?;
    let lookup = Lookup {
        to: phone,
        channel,
        sender: &sender,
        body: &message.body,
        since,
        until,
        skip: &skip,
    };
    let timeout = ctx.jobs.get(EffectKind::Message).timeout;
    let found = tokio::time::timeout(timeout, ctx.twilio.find_sent(&lookup))
        .await
        .map_err(|_| unconfirmed(format!("Twilio look-up: no answer within {timeout:?}")))?;
    match found {
        Ok(Some(sid)) => Err(sent(sid)),
        Ok(None) => Ok(()),
        // the question is still open: look up again on the next attempt, and once attempts
        // run out the message is `unknown`, never re-sent blindly
        Err(err) => Err(unconfirmed(format!("Twilio look-up: {err}"))),
    }
}

/// The student's current phone and channel, or why the message is not to be sent.
fn recipient(message: &ToSend) -> Result<(String, Channel), Stop> {
    let (Some(phone), Some(channel), Some(subscribed)) =
        (&message.phone, &message.student_channel, message.subscribed)
    else {
        return Err(Outcome::Skipped {
            reason: "not sent: the student was removed".to_owned(),
        }
        .into());
    };
    if !subscribed {
        return Err(Outcome::Skipped {
            reason: "not sent: the student unsubscribed".to_owned(),
        }
        .into());
    }
    let channel = Channel::parse(channel)
        .ok_or_else(|| JobError::Permanent(format!("unknown channel {channel:?}")))?;
    Ok((phone.clone(), channel))
}

/// Why `body` cannot go over `channel`, if it is longer than the channel carries.
fn too_long(channel: Channel, body: &str) -> Option<String> {
    let limit = match channel {
        Channel::Sms => SMS_MAX_CHARS,
        Channel::Whatsapp => WHATSAPP_MAX_CHARS,
    };
    let length = message_length(body);
    (length > limit).then(|| {
        format!("not sent: the message is {length} characters and {channel} carries {limit}")
    })
}

/// Copies a permanent refusal onto the message row, for the deliveries and schedules APIs.
/// The effect row records the failure whatever happens here, so a write error must not turn
/// the refusal into a retry (it would be refused again).
async fn record_refusal(ctx: &WorkerContext, started: &Started, code: Option<i32>, text: &str) {
    if let Err(err) = outbound_messages::record_refusal(&ctx.db, started.id, code, text).await {
        tracing::warn!(effect_id = %started.id, error = %err, "could not record a refusal on the message");
    }
}

/// Waits for the sender's next rate-limit slot; true when the wait was long enough for the
/// message to have changed. Deferred when the slot is too far away to wait for inside the
/// job's timeout: the timeout less Twilio's own and a margin. (A kind-wide `rate_limit` for
/// `message` in jobs.toml, unset by default, waits first and is not subtracted.)
async fn wait_for_slot(
    ctx: &WorkerContext,
    channel: Channel,
    sender: &Sender,
) -> Result<bool, Stop> {
    let timeout = ctx.jobs.get(EffectKind::Message).timeout;
    let max_wait = timeout
        .saturating_sub(ctx.twilio.timeout())
        .saturating_sub(MARGIN);
    let key = twilio_limit(sender, channel);
    let slot = rate_limit::acquire(ctx, &key, ctx.twilio.per_second(channel), max_wait)
        .await
        .map_err(|err| JobError::failed_to("rate limiter unavailable (Redis)", err))?;
    match slot {
        Slot::Now { waited } => Ok(waited >= LONG_WAIT),
        Slot::Later { wait } => {
            metrics::counter!("herald_rate_limit_deferred_total", "limit" => format!("twilio:{channel}"))
                .increment(1);
            Err(Outcome::Deferred {
                until: rate_limit::come_back_at(wait, max_wait),
            }
            .into())
        }
    }
}
