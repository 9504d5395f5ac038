//! The recovery sweep, run by every replica every `worker.sweep_interval_secs` (each step is
//! a conditional update or guarded by a Redis lock, so replicas do not collide):
//! - rows `queued` too long (Redis flushed, a worker killed before starting them) are
//!   dispatched again;
//! - rows stuck in `sending` (a worker killed mid-send) are retried with a look-up at the
//!   provider first when it offers one (Twilio), else become `unknown`, visibly (SMTP);
//! - finished apalis tasks older than the retention are trimmed from Redis, which
//!   apalis-redis never does itself. Only `done`/`dead` tasks are touched; a task waiting for
//!   an apalis retry is never deleted (deleting one poisons the queue).

use std::time::Duration;

use herald_shared::db::effects::{self, Requeue, Stuck};
use herald_shared::effects::EffectKind;
use herald_shared::jobs_config::JobSettings;
use tokio::sync::watch;

use crate::context::WorkerContext;

/// The sweep's name in `/healthz` and logs.
pub const LOOP: &str = "sweep";

/// How often the sweep runs.
pub fn interval(ctx: &WorkerContext) -> Duration {
    Duration::from_secs(ctx.config.worker.sweep_interval_secs)
}

/// Runs the sweep until `shutdown` turns true; a sweep with a failed step ends the run with
/// the error, for the supervisor to restart it.
pub async fn run(ctx: WorkerContext, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let period = interval(&ctx);
    loop {
        sweep_once(&ctx).await?;
        ctx.loops.passed(LOOP);
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = crate::context::stopped(&mut shutdown) => return Ok(()),
        }
    }
}

/// What one sweep changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub requeued: u64,
    pub unknown: u64,
    pub trimmed: u64,
    /// Rows stuck in `sending` given back to be looked up at the provider.
    pub looked_up: u64,
    /// Rows stuck in `sending` given back to be done again (harmless to repeat).
    pub retried: u64,
}

/// One pass of every step. Each step runs whatever the others did: a failing one is logged
/// and counted (`herald_sweep_step_errors_total{step}`), and the pass then returns an error
/// naming every step that failed.
pub async fn sweep_once(ctx: &WorkerContext) -> anyhow::Result<Swept> {
    let worker = &ctx.config.worker;
    let mut swept = Swept::default();
    let mut failed: Vec<String> = Vec::new();
    let mut step = |name: &str, result: anyhow::Result<u64>, total: &mut u64| match result {
        Ok(count) => *total += count,
        Err(err) => {
            tracing::error!(step = name, error = %format!("{err:#}"), "sweep step failed; the other steps still run");
            metrics::counter!("herald_sweep_step_errors_total", "step" => name.to_owned())
                .increment(1);
            failed.push(format!("{name}: {err:#}"));
        }
    };
    let stale = Requeue::Stale {
        older_than_secs: worker.requeue_after_secs as f64,
    };
    let requeued = effects::requeue(&ctx.db, stale).await;
    step("requeue", requeued.map_err(Into::into), &mut swept.requeued);
    for settings in ctx.jobs.all() {
        // A live message handler may take up to: the kind's own rate-limit wait (half the
        // timeout), a look-up (the timeout), its sender's slot (less than the timeout) and
        // the Twilio call (the timeout). Four timeouts cover them all, so a row still being
        // worked on is never taken for a stuck one (which could send it twice).
        let (stuck, busy_for, total) = match settings.kind {
            EffectKind::Message => (Stuck::LookUp, settings.timeout * 4, &mut swept.looked_up),
            // an SMTP exchange is bounded per step, not as a whole: connecting, MAIL, RCPT,
            // DATA and the content may each take `email.smtp_timeout_secs`
            EffectKind::Email => (Stuck::Unknown, smtp_busy(ctx, settings), &mut swept.unknown),
            // its provider wait (half the timeout) and the call (the timeout)
            EffectKind::Generation => (Stuck::Retry, settings.timeout * 2, &mut swept.retried),
            EffectKind::CampaignEmail => {
                (Stuck::Unknown, smtp_busy(ctx, settings), &mut swept.unknown)
            }
        };
        let stuck_after = busy_for.as_secs_f64() + worker.stuck_sending_grace_secs as f64;
        let resolved = effects::resolve_stuck_sending(
            &ctx.db,
            settings.kind,
            stuck_after,
            stuck,
            settings.max_attempts,
        )
        .await;
        step("stuck_sending", resolved.map_err(Into::into), total);
        let trimmed = trim_finished(ctx, &ctx.redis_queue(&settings.queue)).await;
        step("trim_redis", trimmed, &mut swept.trimmed);
    }
    if swept.requeued > 0 {
        tracing::warn!(
            rows = swept.requeued,
            "re-dispatched rows that sat in Redis too long"
        );
    }
    if swept.unknown > 0 {
        tracing::error!(
            rows = swept.unknown,
            "rows stuck in `sending` marked `unknown`"
        );
    }
    metrics::counter!("herald_sweep_requeued_total").increment(swept.requeued);
    if swept.looked_up > 0 {
        tracing::warn!(
            rows = swept.looked_up,
            "rows stuck in `sending` retried; each is looked up at the provider before it is sent again"
        );
    }
    metrics::counter!("herald_sweep_unknown_total").increment(swept.unknown);
    metrics::counter!("herald_sweep_looked_up_total").increment(swept.looked_up);
    if swept.retried > 0 {
        tracing::warn!(
            rows = swept.retried,
            "rows stuck in `sending` (their worker stopped) retried"
        );
    }
    metrics::counter!("herald_sweep_retried_total").increment(swept.retried);
    if failed.is_empty() {
        Ok(swept)
    } else {
        Err(anyhow::anyhow!("sweep steps failed: {}", failed.join("; ")))
    }
}

/// How long a handler sending over SMTP may be busy: the kind's timeout, or the six SMTP
/// steps (connecting, MAIL, RCPT, DATA, the content and its reply) at
/// `email.smtp_timeout_secs` each, whichever is longer; a send still going is never taken for
/// a stuck one.
fn smtp_busy(ctx: &WorkerContext, settings: &JobSettings) -> Duration {
    settings
        .timeout
        .max(Duration::from_secs(6 * ctx.config.email.smtp_timeout_secs))
}

/// Deletes data and metadata of `done`/`dead` tasks of `queue` finished before the retention,
/// in batches; one replica per interval (Redis `SET NX EX`).
async fn trim_finished(ctx: &WorkerContext, queue: &str) -> anyhow::Result<u64> {
    let mut conn = ctx.redis.clone();
    let lock = format!("{queue}:herald-trim-lock");
    let interval = ctx.config.worker.sweep_interval_secs.max(1);
    let acquired: bool = redis::cmd("SET")
        .arg(&lock)
        .arg(&ctx.replica)
        .arg("NX")
        .arg("EX")
        .arg(interval)
        .query_async::<Option<String>>(&mut conn)
        .await?
        .is_some();
    if !acquired {
        return Ok(0);
    }
    trim_queue(ctx, queue).await
}

/// Deletes data and metadata of `done`/`dead` tasks of `queue` finished before the retention,
/// in batches. Safe beside another trim of the same queue: deletes are idempotent.
pub(crate) async fn trim_queue(ctx: &WorkerContext, queue: &str) -> anyhow::Result<u64> {
    let mut conn = ctx.redis.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let cutoff = now.saturating_sub(ctx.config.worker.redis_task_retention_secs);
    let mut trimmed = 0;
    for set in [format!("{queue}:done"), format!("{queue}:dead")] {
        let mut cursor: u64 = 0;
        loop {
            let (next, ids): (u64, Vec<String>) = redis::cmd("SSCAN")
                .arg(&set)
                .arg(cursor)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            trimmed += trim_ids(&mut conn, queue, &set, &ids, cutoff).await?;
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(trimmed)
}

async fn trim_ids(
    conn: &mut redis::aio::ConnectionManager,
    queue: &str,
    set: &str,
    ids: &[String],
    cutoff: u64,
) -> anyhow::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut read = redis::pipe();
    for id in ids {
        read.hget(format!("{queue}:meta:{id}"), "done_at");
    }
    let done_at: Vec<Option<u64>> = read.query_async(conn).await?;
    let old: Vec<&String> = ids
        .iter()
        .zip(done_at)
        .filter(|(_, done_at)| done_at.is_some_and(|at| at < cutoff))
        .map(|(id, _)| id)
        .collect();
    if old.is_empty() {
        return Ok(0);
    }
    let mut delete = redis::pipe();
    for id in &old {
        delete
            .del(format!("{queue}:meta:{id}"))
            .ignore()
            .hdel(format!("{queue}:data"), id.as_str())
            .ignore()
            .srem(set, id.as_str())
            .ignore();
    }
    let () = delete.query_async(conn).await?;
    Ok(old.len() as u64)
}
