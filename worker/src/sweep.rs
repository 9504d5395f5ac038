//! The recovery sweep, run by every replica every `worker.sweep_interval_secs` (each step is
//! a conditional update or guarded by a Redis lock, so replicas do not collide):
//! - rows `queued` too long (Redis flushed, a worker killed before starting them) are
//!   dispatched again;
//! - rows stuck in `sending` (a worker killed mid-send) become `unknown`, visibly;
//! - Twilio status callbacks that arrived before their message's SID was recorded are applied;
//! - finished apalis tasks older than the retention are trimmed from Redis, which
//!   apalis-redis never does itself. Only `done`/`dead` tasks are touched; a task waiting for
//!   an apalis retry is never deleted (deleting one poisons the queue).

use std::time::Duration;

use herald_shared::db::{effects, twilio_events};
use tokio::sync::watch;

use crate::context::WorkerContext;

/// Runs the sweep until `shutdown` turns true.
pub async fn run(ctx: WorkerContext, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_secs(ctx.config.worker.sweep_interval_secs);
    loop {
        if let Err(err) = sweep_once(&ctx).await {
            tracing::error!(error = %err, "sweep failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = crate::context::stopped(&mut shutdown) => return,
        }
    }
}

/// What one sweep changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub requeued: u64,
    pub unknown: u64,
    pub trimmed: u64,
    /// Twilio status callbacks that had arrived before their SID was recorded, now applied.
    pub early_statuses: u64,
}

/// One pass of every step.
pub async fn sweep_once(ctx: &WorkerContext) -> anyhow::Result<Swept> {
    let worker = &ctx.config.worker;
    let mut swept = Swept {
        requeued: effects::requeue_stale(&ctx.db, worker.requeue_after_secs as f64).await?,
        ..Swept::default()
    };
    for settings in ctx.jobs.all() {
        let stuck_after = settings.timeout.as_secs_f64() + worker.stuck_sending_grace_secs as f64;
        swept.unknown +=
            effects::resolve_stuck_sending(&ctx.db, settings.kind, stuck_after).await?;
        swept.trimmed += trim_finished(ctx, &ctx.redis_queue(&settings.queue)).await?;
    }
    let mut conn = ctx.db.acquire().await?;
    swept.early_statuses = twilio_events::apply_early_statuses(&mut conn).await?;
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
    metrics::counter!("herald_sweep_unknown_total").increment(swept.unknown);
    Ok(swept)
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
