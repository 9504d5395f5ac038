//! The `generation` kind: one campaign e-mail written by its step's model
//! (`herald_shared::providers::llm`), stored in `campaign_messages`.
//!
//! A job writes only the message run it was planned for, and only while its campaign is
//! `generating`; a newer run, a stop or a deleted campaign makes it a no-op (`canceled`).
//! It takes a lease among its account's running jobs first, then checks the campaign's cost
//! limit (reached: every pending message is blocked, visibly) and takes a slot of the
//! provider's request and token limits (`crate::llm_limits`); with no lease or no slot soon
//! enough the job goes back to the dispatcher without counting an attempt.
//!
//! The message's result and what the call cost are written in one transaction before the
//! effect's outcome; a job run twice (its worker died after writing) finds its message
//! written and does nothing more.

use std::time::Duration;

use chrono::Utc;
use herald_shared::campaign_prompts;
use herald_shared::db::campaign_messages::{self, Ending, Job, Spent};
use herald_shared::db::campaigns;
use herald_shared::db::effects::Started;
use herald_shared::effects::EffectKind;
use herald_shared::money;
use herald_shared::providers::llm::{Answer, LlmError, Request, Usage, Written};
use rand::Rng;

use super::{JobError, Outcome};
use crate::context::WorkerContext;
use crate::llm_limits::{self, ProviderLimits, Reserved};

/// Tokens a prompt is reckoned at before the provider counts them: one per 4 bytes (the
/// usual rule of thumb for English), plus the system prompt and message framing.
fn estimated_input_tokens(prompt: &str) -> u32 {
    u32::try_from(prompt.len() / 4 + 80).unwrap_or(u32::MAX)
}

/// When a job that found its account's leases all held comes back: soon, spread out so the
/// account's waiting jobs do not all return at once.
fn lease_retry() -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds(rand::thread_rng().gen_range(500..2500))
}

/// Writes the message of the started job, holding one of its account's leases throughout:
/// from the cost check to the cost recorded, so with one lease per account the cost limit
/// is never overshot by more than one call (by at most one per lease with more).
pub async fn write(ctx: &WorkerContext, started: &Started) -> Result<Outcome, JobError> {
    let settings = ctx.jobs.get(EffectKind::Generation);
    let lease = llm_limits::lease(ctx, started.account_id, started.id, settings.timeout * 2)
        .await
        .map_err(|err| JobError::failed_to("generation limits unavailable (Redis)", err))?;
    let Some(lease) = lease else {
        metrics::counter!("herald_llm_lease_deferred_total").increment(1);
        return Ok(Outcome::Deferred {
            until: lease_retry(),
        });
    };
    let outcome = write_leased(ctx, started).await;
    llm_limits::release(ctx, lease).await;
    outcome
}

async fn write_leased(ctx: &WorkerContext, started: &Started) -> Result<Outcome, JobError> {
    let message_id = campaign_messages::message_of(&started.payload)
        .ok_or_else(|| JobError::Permanent("invalid generation payload".to_owned()))?;
    let mut conn = ctx
        .db
        .acquire()
        .await
        .map_err(|err| JobError::failed_to("database", err))?;
    let Some((job, earlier)) = campaign_messages::job(&mut conn, message_id)
        .await
        .map_err(|err| JobError::failed_to("database", err))?
    else {
        return skipped("the message was deleted with its campaign or prospect");
    };
    drop(conn);
    if job.effect_id != Some(started.id) || !matches!(job.state.as_str(), "pending" | "failed") {
        return skipped("the message has a newer run, or was blocked or written meanwhile");
    }
    if job.campaign_state != "generating" {
        return skipped(&format!("the campaign is {}", job.campaign_state));
    }
    let position = usize::try_from(job.position).unwrap_or(usize::MAX);
    if earlier.len() + 1 != position {
        // an earlier step is being written again: wait for it, planned again when it is done
        let mut conn = ctx
            .db
            .acquire()
            .await
            .map_err(|err| JobError::failed_to("database", err))?;
        campaign_messages::wait_again(&mut conn, job.id, started.id)
            .await
            .map_err(|err| JobError::failed_to("database", err))?;
        return skipped(
            "an earlier step of the prospect is being written again; this one waits for it",
        );
    }
    if let Some(max) = job.max_cost_microusd
        && job.campaign_cost_microusd >= max
    {
        return reached_cost_limit(ctx, &job, max).await;
    }
    let prompt = match campaign_prompts::render(&job, &earlier) {
        Ok(prompt) => prompt,
        Err(reason) => return failed(ctx, &job, started, reason, None).await,
    };
    let api_key = match ctx.secrets.open(&job.sealed_api_key) {
        Ok(key) => key,
        Err(err) => {
            let reason = format!("the provider's API key cannot be opened: {err}");
            return failed(ctx, &job, started, reason, None).await;
        }
    };
    let settings = ctx.jobs.get(EffectKind::Generation);
    match call(ctx, &job, &prompt, &api_key, settings.timeout / 2).await {
        Called::Waited(until) => Ok(Outcome::Deferred { until }),
        Called::Answered(Answer {
            usage,
            written: Written::Email(email),
        }) => {
            let ending = Ending::Written {
                subject: email.subject,
                body: email.body,
            };
            if finish(ctx, &job, started, &ending, usage).await? {
                Ok(Outcome::Sent {
                    provider_id: None,
                    message: None,
                })
            } else {
                skipped("the message moved on while it was written; only the cost was recorded")
            }
        }
        Called::Answered(Answer {
            usage,
            written: Written::Unusable(reason),
        }) => failed(ctx, &job, started, reason, usage).await,
        Called::Failed(LlmError::Permanent(reason)) => {
            failed(ctx, &job, started, reason, None).await
        }
        Called::Failed(LlmError::Retryable {
            message,
            retry_after,
            ..
        }) => {
            let attempts = u32::try_from(started.attempts).unwrap_or(u32::MAX);
            if !settings.may_retry_after(attempts) {
                let reason = format!("gave up after {attempts} attempts: {message}");
                let ending = Ending::Failed(reason);
                finish(ctx, &job, started, &ending, None).await?;
            }
            Err(JobError::Retryable {
                message,
                retry_after,
            })
        }
    }
}

/// How the call went.
enum Called {
    /// No provider slot within the wait allowed: back to the dispatcher until then.
    Waited(chrono::DateTime<Utc>),
    Answered(Answer),
    Failed(LlmError),
}

/// Takes a slot of the provider's limits (waiting up to `max_wait`), calls, and settles the
/// tokens reserved with those used; a 429 holds every replica's calls to the provider.
async fn call(
    ctx: &WorkerContext,
    job: &Job,
    prompt: &str,
    api_key: &str,
    max_wait: Duration,
) -> Called {
    let limits = ProviderLimits {
        provider_id: job.provider_id,
        requests_per_minute: u32::try_from(job.requests_per_minute).unwrap_or(1),
        tokens_per_minute: u32::try_from(job.tokens_per_minute).unwrap_or(1),
    };
    let max_output_tokens = ctx.config.llm.max_output_tokens;
    let reserved_tokens = estimated_input_tokens(prompt).saturating_add(max_output_tokens);
    match llm_limits::reserve(ctx, limits, reserved_tokens, max_wait).await {
        Ok(Reserved::After(wait)) => tokio::time::sleep(wait).await,
        Ok(Reserved::Later(wait)) => {
            metrics::counter!("herald_rate_limit_deferred_total", "limit" => "llm").increment(1);
            let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            return Called::Waited(until);
        }
        Err(err) => {
            return Called::Failed(LlmError::Retryable {
                message: format!("rate limiter unavailable (Redis): {err}"),
                retry_after: None,
                throttled: false,
            });
        }
    }
    let request = Request {
        base_url: &job.base_url,
        api_key,
        model: &job.model,
        prompt,
        max_output_tokens,
    };
    let answer = ctx.llm.write_email(&request).await;
    let used = match &answer {
        Ok(Answer {
            usage: Some(usage), ..
        }) => usage.input_tokens.saturating_add(usage.output_tokens),
        // unknown use keeps the whole reservation; a refused call used nothing
        Ok(_) => reserved_tokens,
        Err(_) => 0,
    };
    if let Err(err) = llm_limits::settle(ctx, limits, reserved_tokens, used).await {
        tracing::warn!(error = %err, "could not settle an LLM call's tokens; its reservation stands");
    }
    match answer {
        Ok(answer) => Called::Answered(answer),
        Err(err) => {
            if let LlmError::Retryable {
                throttled: true,
                retry_after,
                ..
            } = &err
            {
                let wait = retry_after.unwrap_or(Duration::from_secs(1));
                if let Err(err) = llm_limits::pause(ctx, limits, wait).await {
                    tracing::warn!(error = %err, "could not hold the provider's calls after a 429");
                }
            }
            Called::Failed(err)
        }
    }
}

/// The message failed: recorded with `reason` and whatever the call cost; the job fails too.
async fn failed(
    ctx: &WorkerContext,
    job: &Job,
    started: &Started,
    reason: String,
    usage: Option<Usage>,
) -> Result<Outcome, JobError> {
    finish(ctx, job, started, &Ending::Failed(reason.clone()), usage).await?;
    Err(JobError::Permanent(reason))
}

/// Writes how the run ended and what it cost; `false` when the message had moved on (a
/// newer run, a stop): then only the cost was recorded.
async fn finish(
    ctx: &WorkerContext,
    job: &Job,
    started: &Started,
    ending: &Ending,
    usage: Option<Usage>,
) -> Result<bool, JobError> {
    let spent = usage.map(|usage| spent(job, usage)).unwrap_or_default();
    let mut tx = ctx
        .db
        .begin()
        .await
        .map_err(|err| JobError::failed_to("database", err))?;
    let recorded =
        campaign_messages::finish(&mut tx, job.campaign_id, job.id, started.id, ending, spent)
            .await
            .map_err(|err| JobError::failed_to("database", err))?;
    tx.commit()
        .await
        .map_err(|err| JobError::failed_to("database", err))?;
    if !recorded {
        tracing::info!(message_id = %job.id, "the message moved on meanwhile; only the cost was recorded");
    }
    Ok(recorded)
}

/// What a call's tokens cost at the model's prices.
fn spent(job: &Job, usage: Usage) -> Spent {
    let input = i64::from(usage.input_tokens);
    let output = i64::from(usage.output_tokens);
    Spent {
        input_tokens: input,
        output_tokens: output,
        cost_microusd: money::cost_of_tokens(input, job.input_microusd_per_mtok)
            .saturating_add(money::cost_of_tokens(output, job.output_microusd_per_mtok)),
    }
}

/// The campaign spent its `max_cost_usd`: every pending message is blocked, this one too.
async fn reached_cost_limit(ctx: &WorkerContext, job: &Job, max: i64) -> Result<Outcome, JobError> {
    let reason = format!(
        "not written: the campaign reached its max_cost_usd ({})",
        money::usd(max)
    );
    let mut tx = ctx
        .db
        .begin()
        .await
        .map_err(|err| JobError::failed_to("database", err))?;
    campaigns::lock(&mut tx, job.account_id, job.campaign_id)
        .await
        .map_err(|err| JobError::failed_to("database", err))?;
    campaign_messages::block_pending(&mut tx, job.campaign_id, &reason)
        .await
        .map_err(|err| JobError::failed_to("database", err))?;
    tx.commit()
        .await
        .map_err(|err| JobError::failed_to("database", err))?;
    skipped(&reason)
}

fn skipped(reason: &str) -> Result<Outcome, JobError> {
    Ok(Outcome::Skipped {
        reason: reason.to_owned(),
    })
}
