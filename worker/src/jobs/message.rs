//! The `message` kind: one course or schedule message to a student over SMS or WhatsApp through Twilio,
//! or recorded in sandbox mode.
//!
//! Everything that may have changed since the message was planned is read at send time: a
//! deleted or unsubscribed student or a stopped delivery cancels the message, a paused one
//! holds it for resume, and a changed phone number or channel is used as it is now.
//!
//! A message goes out from its account's own sender when it has one (`account_twilio_senders`),
//! else from the platform's default; the sender is recorded with the outcome, since replies
//! are routed by it.
//!
//! Each sender (number or Messaging Service, per channel) sends at most its configured rate
//! across all replicas (`rate_limit`). A job waits for its slot only while that leaves room
//! for the Twilio call inside the job's timeout; when the sender's queue is longer, the job
//! gives the row back to the dispatcher for later, uncounted, instead of sleeping into its
//! timeout and burning attempts (or, worse, being resolved as a stuck send).

use std::time::Duration;

use chrono::Utc;

use herald_shared::courses::{SMS_MAX_CHARS, WHATSAPP_MAX_CHARS, message_length};
use herald_shared::cron::Schedule;
use herald_shared::db::account_senders::AccountSenders;
use herald_shared::db::effects::Started;
use herald_shared::db::{delivery_messages, schedules};
use herald_shared::effects::{EffectKind, MessagePayload};
use herald_shared::providers::twilio::{Channel, Delivery, Outgoing, Sender, TwilioError};
use herald_shared::time_rules::parse_zone;

use super::{JobError, Outcome};
use crate::context::WorkerContext;
use crate::outage::TWILIO;
use crate::rate_limit::{self, Slot};

/// Room kept for the database writes around the Twilio call within the job's timeout.
const MARGIN: Duration = Duration::from_secs(1);

/// Sends the delivery or schedule message named in the row's payload.
pub async fn send(ctx: &WorkerContext, started: &Started) -> Result<Outcome, JobError> {
    let payload: MessagePayload = serde_json::from_value(started.payload.clone())
        .map_err(|err| JobError::Permanent(format!("invalid message payload: {err}")))?;
    let mut message = match load(ctx, started, payload).await? {
        Ok(message) => message,
        Err(outcome) => return Ok(outcome),
    };
    let (phone, channel) = match recipient(&message.student)? {
        Ok(recipient) => recipient,
        Err(outcome) => return Ok(outcome),
    };
    let sender = ctx.twilio.sender_for(channel, &message.senders);
    if !ctx.twilio.is_sandbox() {
        let Some(sender) = &sender else {
            return Err(JobError::Permanent(format!(
                "no {channel} sender: set twilio.{channel}_from or twilio.messaging_service_sid"
            )));
        };
        match wait_for_slot(ctx, channel, sender).await? {
            Waited::Deferred(outcome) => return Ok(outcome),
            // a pause, stop, unsubscribe or new text may have come while this job waited:
            // read again (the slot was taken for this phone and channel, which stay)
            Waited::Long => match current(ctx, payload, started).await? {
                Ok(fresh) => match recipient(&fresh.student)? {
                    Ok(_) => message.body = fresh.body,
                    Err(outcome) => return Ok(outcome),
                },
                Err(outcome) => return Ok(outcome),
            },
            Waited::No => {}
        }
    }
    // the text was checked against the group's channels when written; a student who moved
    // to SMS since may still get one longer than SMS carries: refused here, not by Twilio
    if let Some(refusal) = too_long(channel, &message.body) {
        record_refusal(ctx, started, payload, None, &refusal).await;
        return Err(JobError::Permanent(refusal));
    }
    let outgoing = Outgoing {
        to: &phone,
        channel,
        body: &message.body,
        sender: sender.as_ref(),
    };
    let sent_from = sender.as_ref().map(|sender| sender.address().to_owned());
    let err = match ctx.twilio.send(outgoing).await {
        Ok(Delivery::Sent { sid }) => {
            ctx.outages.accepted(TWILIO);
            return Ok(Outcome::Sent {
                provider_id: sid,
                sent_from,
            });
        }
        Ok(Delivery::Sandboxed) => return Ok(Outcome::Sandboxed { sent_from }),
        Err(err) => err,
    };
    match err {
        // Stopgap until the send path resolves an unconfirmed attempt with
        // `Twilio::find_sent`: retried as before.
        TwilioError::Retryable {
            message,
            retry_after,
        }
        | TwilioError::Unconfirmed {
            message,
            retry_after,
        } => Err(JobError::Retryable {
            message,
            retry_after,
        }),
        // not the message's fault: it waits, uncounted, until the credentials work
        TwilioError::CredentialsRefused { .. } => Err(JobError::Outage {
            provider: TWILIO,
            message: err.to_string(),
        }),
        TwilioError::Permanent {
            code, ref message, ..
        } => {
            // Twilio read the credentials before refusing the message
            ctx.outages.accepted(TWILIO);
            let code = code.and_then(|code| i32::try_from(code).ok());
            record_refusal(ctx, started, payload, code, message).await;
            Err(JobError::Permanent(err.to_string()))
        }
        TwilioError::NotConfigured(text) => Err(JobError::Permanent(text)),
    }
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
async fn record_refusal(
    ctx: &WorkerContext,
    started: &Started,
    payload: MessagePayload,
    code: Option<i32>,
    message: &str,
) {
    let recorded = match payload {
        MessagePayload::Delivery {
            delivery_message_id,
        } => delivery_messages::record_error(&ctx.db, delivery_message_id, code, message).await,
        MessagePayload::Schedule { .. } => {
            schedules::record_error(&ctx.db, started.id, code, message).await
        }
    };
    if let Err(db_err) = recorded {
        tracing::warn!(effect_id = %started.id, error = %db_err, "could not record a refusal on the message");
    }
}

/// A message as it is to be sent now.
struct ToSend {
    student: Student,
    body: String,
    /// The account's own Twilio senders (read with the message, not in a query of its own).
    senders: AccountSenders,
}

/// The student's current phone, channel and subscription; all `None` once removed.
struct Student {
    phone: Option<String>,
    channel: Option<String>,
    subscribed: Option<bool>,
}

/// Reads the message row with what decides whether it still goes: `Err(outcome)` when it
/// does not (its delivery or schedule changed, or it is gone).
async fn load(
    ctx: &WorkerContext,
    started: &Started,
    payload: MessagePayload,
) -> Result<Result<ToSend, Outcome>, JobError> {
    let read_error = |err: sqlx::Error| JobError::Retryable {
        message: format!("read the message: {err}"),
        retry_after: None,
    };
    if let MessagePayload::Schedule { .. } = payload
        && let Some(outcome) = missed(ctx, started).await.map_err(read_error)?
    {
        return Ok(Err(outcome));
    }
    current(ctx, payload, started).await
}

/// The message row as it is now, gated by its delivery's or schedule's current state.
async fn current(
    ctx: &WorkerContext,
    payload: MessagePayload,
    started: &Started,
) -> Result<Result<ToSend, Outcome>, JobError> {
    let read_error = |err: sqlx::Error| JobError::Retryable {
        message: format!("read the message: {err}"),
        retry_after: None,
    };
    let gone = || Outcome::Skipped {
        reason: "not sent: the message no longer exists".to_owned(),
    };
    match payload {
        MessagePayload::Delivery {
            delivery_message_id,
        } => {
            let Some(found) = delivery_messages::find_to_send(&ctx.db, delivery_message_id)
                .await
                .map_err(read_error)?
            else {
                return Ok(Err(gone()));
            };
            if let Some(outcome) = delivery_gate(&found.delivery_status) {
                return Ok(Err(outcome));
            }
            Ok(Ok(ToSend {
                student: Student {
                    phone: found.phone,
                    channel: found.channel,
                    subscribed: found.subscribed,
                },
                body: found.body,
                senders: found.senders,
            }))
        }
        MessagePayload::Schedule { .. } => {
            let Some(found) = schedules::find_to_send(&ctx.db, started.id)
                .await
                .map_err(read_error)?
            else {
                return Ok(Err(gone()));
            };
            if let Some(outcome) = schedule_gate(&found) {
                return Ok(Err(outcome));
            }
            Ok(Ok(ToSend {
                student: Student {
                    phone: found.phone,
                    channel: found.channel,
                    subscribed: found.subscribed,
                },
                body: found.body,
                senders: found.senders,
            }))
        }
    }
}

/// A schedule message whose attempt is picked up more than `schedules.catch_up_secs` after
/// it was due (every worker was down) is not sent late: its fire is recorded `missed`, as
/// the planner records fires it finds that late. (A retry or a rate-limit deferral is due
/// at its own new time, so it is not affected.)
async fn missed(ctx: &WorkerContext, started: &Started) -> Result<Option<Outcome>, sqlx::Error> {
    let late = (Utc::now() - started.due).to_std().unwrap_or_default();
    if late <= Duration::from_secs(ctx.config.schedules.catch_up_secs) {
        return Ok(None);
    }
    schedules::mark_fire_missed(&ctx.db, started.id).await?;
    Ok(Some(Outcome::Skipped {
        reason: format!(
            "missed: picked up {}s after it was due, more than schedules.catch_up_secs",
            late.as_secs()
        ),
    }))
}

/// Why a course message is not sent now, by its delivery's status.
fn delivery_gate(status: &str) -> Option<Outcome> {
    match status {
        "scheduled" => None,
        "paused" => Some(Outcome::Held {
            reason: "not sent: the delivery is paused; resuming re-plans it".to_owned(),
        }),
        status => Some(Outcome::Skipped {
            reason: format!("not sent: the delivery is {status}"),
        }),
    }
}

/// Why a schedule message is not sent now: a paused schedule skips its fires (resuming
/// plans only later ones), and a student who moved to another group or zone after the fire
/// was planned gets the fires planned for where they are now instead. A move to a zone where
/// the schedule fires at this same instant (one with the same offset, say New York to
/// Toronto) keeps the message: the new zone's fire has the same message key, so this message
/// is the one that fire sends.
fn schedule_gate(message: &schedules::ToSend) -> Option<Outcome> {
    let skip = |reason: &str| {
        Some(Outcome::Skipped {
            reason: format!("not sent: {reason}"),
        })
    };
    if message.schedule_status != "active" {
        return skip("the schedule is paused");
    }
    if message
        .student_group_id
        .is_some_and(|group| group != message.group_id)
    {
        return skip("the student is no longer in the schedule's group");
    }
    if message.per_recipient_zone
        && message
            .student_timezone
            .as_ref()
            .is_some_and(|zone| *zone != message.fire_timezone && !fires_then_in(message, zone))
    {
        return skip("the student moved to another time zone after this fire was planned");
    }
    None
}

/// Whether the message's schedule also fires at the message's instant on `zone`'s clock.
fn fires_then_in(message: &schedules::ToSend, zone: &str) -> bool {
    let (Ok(cron), Ok(zone)) = (Schedule::parse(&message.cron), parse_zone(zone)) else {
        return false;
    };
    cron.fires_at(zone, message.fire_at)
}

/// The student's current phone and channel, or why the message is not to be sent.
fn recipient(student: &Student) -> Result<Result<(String, Channel), Outcome>, JobError> {
    let (Some(phone), Some(channel), Some(subscribed)) =
        (&student.phone, &student.channel, student.subscribed)
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

/// How the wait for a rate-limit slot ended.
enum Waited {
    /// The slot was free at once.
    No,
    /// The slot came after a wait long enough for the message's state to change.
    Long,
    /// No slot within the job's time: come back later.
    Deferred(Outcome),
}

/// A wait after which the message is read again before sending.
const LONG_WAIT: Duration = Duration::from_millis(100);

/// Waits for the sender's next rate-limit slot. `Deferred` when it is too far away to
/// wait for inside the job's timeout: the timeout less Twilio's own and a margin. (A kind-wide
/// `rate_limit` for `message` in jobs.toml, unset by default, waits first and is not
/// subtracted; with both, a long double wait ends in the attempt's timeout and a retry.)
async fn wait_for_slot(
    ctx: &WorkerContext,
    channel: Channel,
    sender: &Sender,
) -> Result<Waited, JobError> {
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
        Slot::Now { waited } if waited >= LONG_WAIT => Ok(Waited::Long),
        Slot::Now { .. } => Ok(Waited::No),
        Slot::Later { wait } => {
            metrics::counter!("herald_rate_limit_deferred_total", "limit" => format!("twilio:{channel}"))
                .increment(1);
            Ok(Waited::Deferred(Outcome::Deferred {
                until: rate_limit::come_back_at(wait, max_wait),
            }))
        }
    }
}
