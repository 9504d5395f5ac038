//! The `campaign_email` kind: one campaign e-mail to a prospect, over its sender's SMTP
//! server (lettre) or SendGrid's v3 Mail Send.
//!
//! Everything that may have changed since it was planned is read when it goes out: a paused
//! campaign holds it (resume re-plans it), an ended campaign or prospect (a reply, an
//! unsubscribe, a bounce) cancels it, and so does a suppression of the address, which also
//! ends the prospect's sequence. It goes only while the prospect's window is open on their
//! clock, within its sender's gap and rolling cap and the campaign's cap for the day
//! (`crate::send_limits`); otherwise it waits for its turn, uncounted.
//!
//! Neither SMTP nor SendGrid can be asked whether they took a message: a send whose answer
//! was lost (SMTP after DATA, a SendGrid timeout or 5xx) ends `unknown`, never sent twice.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use herald_shared::campaign_schedule::{Window, prospect_zone};
use herald_shared::db::campaign_sends::{self, Ending, ToSend};
use herald_shared::db::effects::{SentMessage, Started};
use herald_shared::providers::email::{EmailError, outreach_message};
use herald_shared::providers::outreach::OutreachEmail;
use herald_shared::providers::sendgrid::SendGridError;
use herald_shared::time_rules::resolve_local;
use herald_shared::unsubscribe;

use super::{JobError, Outcome};
use crate::context::WorkerContext;
use crate::send_limits;

/// Sends the campaign e-mail of the started effect.
pub async fn send(ctx: &WorkerContext, started: &Started) -> Result<Outcome, JobError> {
    let send = campaign_sends::find_to_send(&ctx.db, started.id)
        .await
        .map_err(|err| JobError::failed_to("read the e-mail", err))?;
    let Some(send) = send else {
        return Ok(skipped("the prospect or the campaign no longer exists"));
    };
    if let Some(outcome) = gate(ctx, &send).await? {
        return Ok(outcome);
    }
    if let Some(outcome) = wait_for_turn(ctx, started, &send).await {
        return Ok(outcome);
    }
    // a reply, unsubscribe, pause or stop may have come while the turn was taken: read again
    // just before handing it over (what remains is the provider exchange itself)
    if let Some(outcome) = recheck(ctx, started, &send).await? {
        return Ok(outcome);
    }
    let email = outreach(ctx, started, &send);
    let sent = SentMessage {
        sent_from: Some(send.from_email.clone()),
        recipient: Some(send.email.clone()),
        channel: Some("email"),
    };
    let provider_id = match send.transport.as_str() {
        "sendgrid" => match by_sendgrid(ctx, &send, &email).await? {
            Ok(id) => id,
            Err(refused) => return pause_for_refused_key(ctx, &send, &refused).await,
        },
        _ => by_smtp(ctx, &send, &email).await?,
    };
    Ok(Outcome::Sent {
        provider_id: Some(provider_id),
        message: Some(sent),
    })
}

/// The gates again, on the e-mail as it is now; a slot taken is given back when it will not
/// go.
async fn recheck(
    ctx: &WorkerContext,
    started: &Started,
    send: &ToSend,
) -> Result<Option<Outcome>, JobError> {
    let now = campaign_sends::find_to_send(&ctx.db, started.id)
        .await
        .map_err(|err| JobError::failed_to("read the e-mail", err))?;
    let outcome = match now {
        None => Some(skipped("the prospect or the campaign no longer exists")),
        Some(now) => gate(ctx, &now).await?,
    };
    if outcome.is_some()
        && let Err(err) = send_limits::give_back(ctx, send.sender_id, started.id).await
    {
        tracing::warn!(error = %err, "could not give a sender's slot back; it passes by itself");
    }
    Ok(outcome)
}

/// SendGrid refused the sender's key: every e-mail of the sender would be refused alike, so
/// the campaign is paused (this e-mail held with the others) until the user fixes the sender
/// and resumes, rather than failing every prospect's sequence.
async fn pause_for_refused_key(
    ctx: &WorkerContext,
    send: &ToSend,
    refused: &str,
) -> Result<Outcome, JobError> {
    let paused = async {
        let mut tx = ctx.db.begin().await?;
        campaign_sends::pause(&mut tx, send.campaign_id).await?;
        tx.commit().await
    };
    paused
        .await
        .map_err(|err| JobError::failed_to("pause the campaign", err))?;
    tracing::warn!(campaign_id = %send.campaign_id, sender_id = %send.sender_id, error = %refused, "SendGrid refused a sender's key; campaign paused");
    Ok(Outcome::Held {
        reason: format!(
            "not sent: {refused}; the campaign is paused: fix the sender's key and resume it"
        ),
    })
}

fn skipped(reason: &str) -> Outcome {
    Outcome::Skipped {
        reason: format!("not sent: {reason}"),
    }
}

/// Why the e-mail is not to go now, by its campaign, its prospect and the suppressions.
async fn gate(ctx: &WorkerContext, send: &ToSend) -> Result<Option<Outcome>, JobError> {
    match send.campaign_state.as_str() {
        "running" => {}
        "paused" => {
            return Ok(Some(Outcome::Held {
                reason: "not sent: the campaign is paused; resuming re-plans it".to_owned(),
            }));
        }
        state => return Ok(Some(skipped(&format!("the campaign is {state}")))),
    }
    if send.prospect_state != "active" {
        return Ok(Some(skipped(&format!(
            "the prospect is {}",
            send.prospect_state
        ))));
    }
    if let Some(reason) = &send.suppressed {
        let ending = match reason.as_str() {
            "bounced" => Ending::Bounced,
            "unsubscribed" | "complained" => Ending::Unsubscribed,
            _ => Ending::Skipped,
        };
        let text = format!("the address is suppressed ({reason})");
        let mut conn = ctx
            .db
            .acquire()
            .await
            .map_err(|err| JobError::failed_to("end the sequence", err))?;
        campaign_sends::end_sequence(&mut conn, send.campaign_id, send.person_id, ending, &text)
            .await
            .map_err(|err| JobError::failed_to("end the sequence", err))?;
        return Ok(Some(skipped(&text)));
    }
    Ok(None)
}

/// The prospect's window, and the zone it is read in.
fn window_of(send: &ToSend) -> (Window, Tz, Tz) {
    let campaign_zone = prospect_zone(None, &send.default_timezone);
    let zone = prospect_zone(send.timezone.as_deref(), &send.default_timezone);
    (
        Window::new(&send.window_days, send.window_start, send.window_end),
        zone,
        campaign_zone,
    )
}

/// Waits for the e-mail's turn: the prospect's window open, a slot of its sender, room in the
/// campaign's day. `Some(Deferred)` when the turn is later. Redis unavailable is Herald's own
/// trouble, not the e-mail's: it waits, uncounted, rather than running out of attempts
/// (which would end the prospect's sequence) during an outage.
async fn wait_for_turn(ctx: &WorkerContext, started: &Started, send: &ToSend) -> Option<Outcome> {
    match take_turn(ctx, started, send).await {
        Ok(outcome) => outcome,
        Err(err) => {
            tracing::warn!(effect_id = %started.id, error = %err, "send limits unavailable (Redis); the e-mail waits");
            Some(Outcome::Deferred {
                until: Utc::now() + chrono::Duration::seconds(REDIS_RETRY_SECS),
            })
        }
    }
}

/// How long an e-mail waits when Redis cannot be asked for its turn.
const REDIS_RETRY_SECS: i64 = 30;

async fn take_turn(
    ctx: &WorkerContext,
    started: &Started,
    send: &ToSend,
) -> Result<Option<Outcome>, redis::RedisError> {
    let (window, zone, campaign_zone) = window_of(send);
    let now = Utc::now();
    if !window.is_open(zone, now) {
        return Ok(Some(later(window.next_open(zone, now))));
    }
    let gap = Duration::from_secs(u64::try_from(send.min_gap_secs).unwrap_or(0));
    let cap = u32::try_from(send.daily_cap).unwrap_or(1);
    let wait = send_limits::reserve(ctx, send.sender_id, started.id, gap, cap).await?;
    if !wait.is_zero() {
        let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
        if window.is_open(zone, at) {
            return Ok(Some(Outcome::Deferred { until: at }));
        }
        // the slot falls outside the window: given back, a new one is taken when it opens
        send_limits::give_back(ctx, send.sender_id, started.id).await?;
        return Ok(Some(later(window.next_open(zone, at))));
    }
    let day = now.with_timezone(&campaign_zone).date_naive();
    let cap = u32::try_from(send.campaign_daily_cap).unwrap_or(1);
    if !send_limits::count_campaign_day(ctx, send.campaign_id, day, started.id, cap).await? {
        send_limits::give_back(ctx, send.sender_id, started.id).await?;
        let tomorrow = day
            .succ_opt()
            .map(|date| resolve_local(campaign_zone, date.and_time(NaiveTime::MIN)));
        return Ok(Some(later(
            tomorrow.and_then(|at| window.next_open(zone, at)),
        )));
    }
    Ok(None)
}

/// Back to the dispatcher until `at` (an hour from now if no instant was found, which a
/// window open on at least one weekday never gives).
fn later(at: Option<DateTime<Utc>>) -> Outcome {
    Outcome::Deferred {
        until: at.unwrap_or_else(|| Utc::now() + chrono::Duration::hours(1)),
    }
}

/// The e-mail as it goes out.
fn outreach(ctx: &WorkerContext, started: &Started, send: &ToSend) -> OutreachEmail {
    let token = unsubscribe::token(&ctx.secrets, send.campaign_id, send.person_id);
    let base = ctx.config.api.public_url.as_str().trim_end_matches('/');
    OutreachEmail {
        from_name: send.from_name.clone(),
        from_email: send.from_email.clone(),
        reply_to: send.reply_to.clone(),
        to: send.email.clone(),
        subject: send.subject.clone().unwrap_or_default(),
        body: send.body.clone(),
        message_id: send.message_id.clone(),
        thread: send.thread.clone(),
        unsubscribe_url: format!("{base}/u/{token}"),
        effect_id: started.id,
    }
}

/// The sender's secret (SMTP password or SendGrid key) in clear; empty when it has none.
fn secret(ctx: &WorkerContext, send: &ToSend) -> Result<String, JobError> {
    match &send.sealed_secret {
        // sealed with another key (secrets.encryption_key changed): the user sets it again
        Some(sealed) => ctx.secrets.open(sealed).map_err(|err| {
            JobError::Permanent(format!("the sender's secret cannot be opened: {err}"))
        }),
        None => Ok(String::new()),
    }
}

/// Sends over the sender's SMTP server; the server's final reply.
async fn by_smtp(
    ctx: &WorkerContext,
    send: &ToSend,
    email: &OutreachEmail,
) -> Result<String, JobError> {
    let message = outreach_message(email).map_err(smtp_error)?;
    let client = ctx
        .mailboxes
        .client(
            send,
            secret(ctx, send)?,
            ctx.config.email.allow_private_smtp_hosts,
            Duration::from_secs(ctx.config.email.smtp_timeout_secs),
        )
        .await
        .map_err(smtp_error)?;
    client.send(&message).await.map_err(smtp_error)
}

fn smtp_error(err: EmailError) -> JobError {
    match err {
        EmailError::Permanent(message) => JobError::Permanent(message),
        EmailError::Retryable(message) => JobError::Retryable {
            message,
            retry_after: None,
        },
        EmailError::Unconfirmed(message) => JobError::Unconfirmed { message },
    }
}

/// Sends through SendGrid with the sender's key; SendGrid's message id (or the effect's when
/// it gives none: its events name the e-mail by the effect anyway). `Ok(Err)`: SendGrid
/// refused the key.
async fn by_sendgrid(
    ctx: &WorkerContext,
    send: &ToSend,
    email: &OutreachEmail,
) -> Result<Result<String, String>, JobError> {
    let key = secret(ctx, send)?;
    match ctx.sendgrid.send(&key, email).await {
        Ok(accepted) => Ok(Ok(accepted
            .message_id
            .unwrap_or_else(|| email.effect_id.to_string()))),
        Err(SendGridError::Retryable {
            message,
            retry_after,
        }) => Err(JobError::Retryable {
            message,
            retry_after,
        }),
        Err(SendGridError::Unconfirmed { message }) => Err(JobError::Unconfirmed { message }),
        Err(err @ SendGridError::CredentialsRefused { .. }) => Ok(Err(err.to_string())),
        Err(err @ SendGridError::Permanent { .. }) => Err(JobError::Permanent(err.to_string())),
    }
}
