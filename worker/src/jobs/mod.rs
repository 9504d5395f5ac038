//! The apalis handler every queue runs: it takes the effect row from `queued` to `sending`,
//! runs the kind's handler, and records the outcome. Herald, not apalis-redis, decides
//! retries: a retryable failure re-plans the row (`retrying`, due after the backoff) and
//! the apalis task ends `Ok`; a permanent failure or exhausted attempts end the row
//! `failed`/`dead` and the task with `AbortError`. apalis-redis's own 25 retries therefore
//! only ever happen when PostgreSQL itself is unreachable, and re-running then is harmless.
//!
//! A handler may also decide not to send: `Skipped` ends the row `canceled`, `Held` parks it
//! as `held` for whoever re-plans it, and `Deferred` gives it back to the dispatcher for later
//! without counting the attempt (a rate limit with no slot soon enough). An `Outage` (the
//! provider refused Herald's credentials) keeps the row `retrying` without counting the
//! attempt either, so messages outlast the outage (see `crate::outage`).

pub mod batch;
pub mod campaign_email;
pub mod email;
mod gates;
pub mod generation;
pub mod message;
mod retry;

use std::time::Duration;

use apalis::prelude::{AbortError, BoxDynError, Data};
use chrono::{DateTime, Utc};
use herald_shared::db::campaign_sends;
use herald_shared::db::effects::{self, Retry, SentMessage, SentOutcome, Started};
use herald_shared::effects::{EffectKind, EffectState, EffectTask};

use crate::context::WorkerContext;
use crate::rate_limit::{self, Slot, queue_limit};
use retry::retry_write;

/// How one attempt ended, as decided by a kind's handler.
#[derive(Debug)]
pub enum Outcome {
    /// Handed to the provider; its id for the message, if it gives one, and how an
    /// outbound message went out (its sender: replies are routed by it).
    Sent {
        provider_id: Option<String>,
        message: Option<SentMessage>,
    },
    /// Sandbox mode: recorded and logged only (with the sender it would have used).
    Sandboxed { message: Option<SentMessage> },
    /// Not sent and never will be (the recipient unsubscribed, the delivery was stopped):
    /// the row ends `canceled` with `reason` as its `last_error`.
    Skipped { reason: String },
    /// Not sent now, to be re-planned later by someone else (a paused delivery's message,
    /// re-planned on resume): the row becomes `held` with `reason` as its `last_error`.
    Held { reason: String },
    /// Nothing was tried (no rate-limit slot soon enough): the row goes back to the
    /// dispatcher, due at `until`, and the attempt does not count.
    Deferred { until: DateTime<Utc> },
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth trying again later (timeouts, 4xx SMTP replies, 429/5xx, connection errors).
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Trying again will not help (rejected address, invalid payload).
    #[error("{0}")]
    Permanent(String),
    /// The request may have reached the provider and its answer was not read (a timeout
    /// after the request was written, a reset connection, a 5xx, the job's own timeout):
    /// sending again blindly could send twice. A provider that can be asked (Twilio) is asked
    /// on the next attempt; one that cannot (SMTP after DATA) leaves the row `unknown`.
    #[error("{message}")]
    Unconfirmed { message: String },
    /// The provider refused Herald's own credentials: every message fails alike until they
    /// are fixed, so the attempt does not count and the message waits.
    #[error("{message}")]
    Outage {
        provider: &'static str,
        message: String,
    },
}

impl JobError {
    /// A retryable failure of `what`, one of Herald's own steps (a read or write in PostgreSQL,
    /// a limiter in Redis), with the error's text.
    pub fn failed_to(what: &str, err: impl std::fmt::Display) -> Self {
        Self::Retryable {
            message: format!("{what}: {err}"),
            retry_after: None,
        }
    }
}

/// The apalis handler for every queue. Its span names the effect and, once the row is read,
/// the API request that planned it, so every log line of the attempt leads back to that call.
#[tracing::instrument(name = "effect", skip_all,
    fields(effect_id = %task.effect_id, kind = tracing::field::Empty,
           attempt = tracing::field::Empty, request_id = tracing::field::Empty))]
pub async fn handle_effect(
    task: EffectTask,
    ctx: Data<WorkerContext>,
) -> Result<String, BoxDynError> {
    // The row's rate-limit slot, reserved by the dispatcher: waited for while the row is
    // still `queued` (a pause or stop meanwhile cancels it), never inside the attempt.
    let reserved = match &task.slot {
        Some(slot) => {
            if let Ok(wait) = (slot.at - Utc::now()).to_std() {
                tokio::time::sleep(wait).await;
            }
            slot.limits.as_slice()
        }
        None => &[],
    };
    // A database error here leaves the row `queued`: the plain error lets apalis try again,
    // and the sweep re-dispatches the row if that also fails.
    let Some(started) = ctx.transitions.start_sending(task.effect_id).await? else {
        return Ok("skipped: the row is not queued (done elsewhere or canceled)".to_owned());
    };
    let pickup = (Utc::now() - started.due).to_std().unwrap_or_default();
    let kind: EffectKind = started
        .kind
        .parse()
        .map_err(|_| AbortError::new("unknown kind"))?;
    let span = tracing::Span::current();
    span.record("kind", kind.as_str());
    span.record("attempt", started.attempts);
    if let Some(request_id) = &started.request_id {
        span.record("request_id", request_id.as_str());
    }
    let settings = ctx.jobs.get(kind);
    metrics::histogram!("herald_pickup_latency_seconds", "queue" => settings.queue.clone())
        .record(pickup.as_secs_f64());

    // each kind bounds its provider call by the kind's timeout (a rate-limit wait before it
    // does not count); a timeout there is `Unconfirmed`, never a blind retry
    let result = run_kind(&ctx, kind, &started, reserved).await;
    record(&ctx, kind, &started, result).await
}

/// Runs the kind's handler. `reserved` names the limits whose slot the dispatcher reserved
/// for this push (see `crate::throttle`); any other limit the row is under is taken here.
async fn run_kind(
    ctx: &WorkerContext,
    kind: EffectKind,
    started: &Started,
    reserved: &[String],
) -> Result<Outcome, JobError> {
    let settings = ctx.jobs.get(kind);
    let key = queue_limit(&settings.queue);
    if let Some(limit) = settings.rate_limit
        && !reserved.contains(&key)
    {
        // The kind's own limit (`rate_limit` in jobs.toml), before any provider-specific one.
        // Waiting is bounded by half the attempt's timeout; beyond that the row goes back to
        // the dispatcher uncounted, as for a Twilio sender's limit.
        let max_wait = settings.timeout / 2;
        let slot = rate_limit::acquire(ctx, &key, limit.per_second, max_wait)
            .await
            .map_err(|err| JobError::failed_to("rate limiter unavailable (Redis)", err))?;
        if let Slot::Later { wait } = slot {
            metrics::counter!("herald_rate_limit_deferred_total", "limit" => key).increment(1);
            return Ok(Outcome::Deferred {
                until: rate_limit::come_back_at(wait, max_wait),
            });
        }
    }
    match kind {
        EffectKind::Email => email::send(ctx, started).await,
        EffectKind::Message => message::send(ctx, started, reserved).await,
        EffectKind::Generation => generation::write(ctx, started).await,
        EffectKind::CampaignEmail => campaign_email::send(ctx, started).await,
    }
}

async fn record(
    ctx: &WorkerContext,
    kind: EffectKind,
    started: &Started,
    result: Result<Outcome, JobError>,
) -> Result<String, BoxDynError> {
    let settings = ctx.jobs.get(kind);
    let id = started.id;
    let attempt = started.attempt();
    let outcome_label = match &result {
        Ok(Outcome::Sent { .. }) => "sent",
        Ok(Outcome::Sandboxed { .. }) => "sandboxed",
        Ok(Outcome::Skipped { .. }) => "canceled",
        Ok(Outcome::Held { .. }) => "held",
        Ok(Outcome::Deferred { .. }) => "deferred",
        Err(JobError::Retryable { .. }) if settings.may_retry_after(attempts(started)) => {
            "retrying"
        }
        Err(JobError::Retryable { .. }) => "dead",
        Err(JobError::Permanent(_)) => "failed",
        Err(JobError::Outage { .. }) => "outage",
        Err(JobError::Unconfirmed { .. })
            if kind == EffectKind::Message && settings.may_retry_after(attempts(started)) =>
        {
            "unconfirmed"
        }
        Err(JobError::Unconfirmed { .. }) => "unknown",
    };
    metrics::counter!("herald_effects_finished_total", "kind" => kind.as_str(), "outcome" => outcome_label)
        .increment(1);
    match result {
        Ok(Outcome::Sent {
            provider_id,
            message,
        }) => {
            let sent = SentOutcome {
                id,
                token: attempt.token,
                state: EffectState::Sent,
                provider_id,
                message,
            };
            ctx.transitions.finish_sent(sent).await?;
            Ok("sent".to_owned())
        }
        Ok(Outcome::Sandboxed { message }) => {
            let sandboxed = SentOutcome {
                id,
                token: attempt.token,
                state: EffectState::Sandboxed,
                provider_id: None,
                message,
            };
            ctx.transitions.finish_sent(sandboxed).await?;
            Ok("sandboxed".to_owned())
        }
        Ok(Outcome::Skipped { reason }) => {
            tracing::info!(effect_id = %id, %reason, "effect canceled");
            retry_write("record a skip", || {
                effects::finish_skipped(&ctx.db, attempt, EffectState::Canceled, &reason)
            })
            .await?;
            Ok(format!("canceled: {reason}"))
        }
        Ok(Outcome::Held { reason }) => {
            tracing::info!(effect_id = %id, %reason, "effect held");
            // re-checks the delivery (campaign) under a lock: a resume or stop may have just
            // committed
            if kind == EffectKind::CampaignEmail {
                retry_write("park an e-mail", || {
                    campaign_sends::park(&ctx.db, attempt.id, attempt.token)
                })
                .await?;
            } else {
                retry_write("park a message", || {
                    effects::park_for_delivery(&ctx.db, attempt, &reason)
                })
                .await?;
            }
            Ok(format!("held: {reason}"))
        }
        Ok(Outcome::Deferred { until }) => {
            tracing::debug!(effect_id = %id, %until, "effect deferred");
            retry_write("defer", || effects::defer(&ctx.db, attempt, until)).await?;
            Ok(format!("deferred until {until}"))
        }
        Err(JobError::Retryable {
            message,
            retry_after,
        }) if outcome_label == "retrying" => {
            let delay = settings.retry_delay(attempts(started), retry_after);
            let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            tracing::warn!(effect_id = %id, attempt = started.attempts, ?delay, error = %message, "attempt failed; retry scheduled");
            retry_write("schedule a retry", || {
                effects::retry(&ctx.db, attempt, Retry::Counted, &message, next)
            })
            .await?;
            Ok(format!("retry scheduled in {delay:?}: {message}"))
        }
        Err(JobError::Retryable { message, .. }) => {
            let error = format!("gave up after {} attempts: {message}", started.attempts);
            tracing::error!(effect_id = %id, error = %error, "effect is dead");
            retry_write("record a dead effect", || {
                effects::finish_failed(&ctx.db, attempt, EffectState::Dead, &error)
            })
            .await?;
            Err(AbortError::new(error).into())
        }
        Err(JobError::Outage { provider, message }) => {
            let retry = Duration::from_secs(ctx.config.twilio.auth_failure_retry_secs);
            ctx.outages.refused(provider, &message, retry);
            let delay = crate::outage::jittered(retry);
            let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            tracing::warn!(effect_id = %id, %provider, ?delay, error = %message, "provider outage; retry scheduled, attempt not counted");
            retry_write("schedule an outage retry", || {
                effects::retry(&ctx.db, attempt, Retry::Uncounted, &message, next)
            })
            .await?;
            Ok(format!("provider outage, retry in {delay:?}: {message}"))
        }
        Err(JobError::Unconfirmed { message }) if outcome_label == "unconfirmed" => {
            let delay = settings.retry_delay(attempts(started), None);
            let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            tracing::warn!(effect_id = %id, attempt = started.attempts, ?delay, error = %message, "the provider may have the message; it is looked up before any re-send");
            retry_write("schedule a look-up", || {
                effects::retry(&ctx.db, attempt, Retry::Unconfirmed, &message, next)
            })
            .await?;
            Ok(format!("look-up scheduled in {delay:?}: {message}"))
        }
        Err(JobError::Unconfirmed { message }) => {
            let error = format!("the provider may or may not have it: {message}");
            tracing::error!(effect_id = %id, error = %error, "effect is unknown");
            retry_write("record an unknown effect", || {
                effects::finish_failed(&ctx.db, attempt, EffectState::Unknown, &error)
            })
            .await?;
            Err(AbortError::new(error).into())
        }
        Err(JobError::Permanent(message)) => {
            tracing::error!(effect_id = %id, error = %message, "effect failed permanently");
            retry_write("record a failure", || {
                effects::finish_failed(&ctx.db, attempt, EffectState::Failed, &message)
            })
            .await?;
            Err(AbortError::new(message).into())
        }
    }
}

fn attempts(started: &Started) -> u32 {
    u32::try_from(started.attempts).unwrap_or(u32::MAX)
}
