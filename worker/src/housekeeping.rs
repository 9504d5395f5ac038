//! The `housekeeping` cron job: deletes finished rows older than `worker.retention_days`.
//! E-mail effects and old schedule fires (with their messages) go; course-message effects
//! stay while a delivery's history refers to them. It also trims finished apalis tasks from
//! Redis past `worker.redis_task_retention_secs` — which the sweep does every interval too,
//! since Redis memory cannot wait a day.

use crate::context::WorkerContext;

/// What one run deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cleaned {
    pub effects: u64,
    pub cron_fires: u64,
    pub schedule_fires: u64,
    pub tokens: u64,
    /// Finished apalis tasks removed from Redis.
    pub redis_tasks: u64,
}

/// One housekeeping run.
pub async fn run(ctx: &WorkerContext) -> anyhow::Result<Cleaned> {
    let db = &ctx.db;
    let days = i32::try_from(ctx.config.worker.retention_days).unwrap_or(i32::MAX);
    // a fire goes once every message of it is finished; its message rows go with it, and
    // their effects just below
    let schedule_fires = sqlx::query(
        "delete from schedule_fires f
         where f.fire_at < now() - make_interval(days => $1)
           and not exists (
               select 1 from schedule_messages m join effects e on e.id = m.effect_id
               where m.fire_id = f.id
                 and e.state not in ('sent', 'sandboxed', 'failed', 'dead', 'unknown', 'canceled'))",
    )
    .bind(days)
    .execute(db)
    .await?
    .rows_affected();
    let effects = sqlx::query(
        "delete from effects e
         where e.state in ('sent', 'sandboxed', 'failed', 'dead', 'unknown', 'canceled')
           and e.finished_at < now() - make_interval(days => $1)
           and not exists (select 1 from delivery_messages m where m.effect_id = e.id)
           and not exists (select 1 from schedule_messages m where m.effect_id = e.id)",
    )
    .bind(days)
    .execute(db)
    .await?
    .rows_affected();
    let cron_fires = sqlx::query(
        // each trigger's latest fire stays: it is where catch-up after downtime starts
        "delete from cron_fires f where state in ('done', 'failed', 'missed')
           and fire_at < now() - make_interval(days => $1)
           and fire_at < (select max(l.fire_at) from cron_fires l where l.trigger = f.trigger)",
    )
    .bind(days)
    .execute(db)
    .await?
    .rows_affected();
    let mut tokens = 0;
    for statement in [
        "delete from idempotency_keys where created_at < now() - interval '1 day'",
        "delete from user_tokens where expires_at < now() - interval '1 day'",
        "delete from refresh_tokens where expires_at < now()",
    ] {
        tokens += sqlx::query(statement).execute(db).await?.rows_affected();
    }
    // the database work above is done whatever Redis says: its trouble is logged, and the
    // sweep trims again within an interval
    let mut redis_tasks = 0;
    for settings in ctx.jobs.all() {
        match crate::sweep::trim_queue(ctx, &ctx.redis_queue(&settings.queue)).await {
            Ok(trimmed) => redis_tasks += trimmed,
            Err(err) => {
                tracing::warn!(queue = %settings.queue, error = %err, "housekeeping could not trim Redis");
            }
        }
    }
    Ok(Cleaned {
        effects,
        cron_fires,
        schedule_fires,
        tokens,
        redis_tasks,
    })
}
