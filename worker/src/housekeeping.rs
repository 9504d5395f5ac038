//! The `housekeeping` cron job: deletes finished rows older than `worker.retention_days`, at
//! most `worker.housekeeping_batch` rows per statement.
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
    /// Delete statements run (each removes at most `worker.housekeeping_batch` rows).
    pub batches: u64,
}

/// Rows of `table` (aliased `t`) matching `condition`, where `$2` is the retention in days.
struct Deletion {
    table: &'static str,
    condition: &'static str,
}

/// A fire goes once every message of it is finished; its message rows go with it (cascade),
/// and their effects with the next deletion.
const SCHEDULE_FIRES: Deletion = Deletion {
    table: "schedule_fires",
    condition: "t.fire_at < now() - make_interval(days => $2)
        and not exists (
            select 1 from schedule_messages m join effects e on e.id = m.effect_id
            where m.fire_id = t.id
              and e.state not in ('sent', 'sandboxed', 'failed', 'dead', 'unknown', 'canceled'))",
};

const EFFECTS: Deletion = Deletion {
    table: "effects",
    condition: "t.state in ('sent', 'sandboxed', 'failed', 'dead', 'unknown', 'canceled')
        and t.finished_at < now() - make_interval(days => $2)
        and not exists (select 1 from delivery_messages m where m.effect_id = t.id)
        and not exists (select 1 from schedule_messages m where m.effect_id = t.id)",
};

/// Each trigger's latest fire stays: it is where catch-up after downtime starts.
const CRON_FIRES: Deletion = Deletion {
    table: "cron_fires",
    condition: "t.state in ('done', 'failed', 'missed')
        and t.fire_at < now() - make_interval(days => $2)
        and t.fire_at < (select max(l.fire_at) from cron_fires l where l.trigger = t.trigger)",
};

/// Spent idempotency keys and tokens: their own lifetimes, not the retention (`$2` unused
/// but typed, so every deletion binds the same parameters).
const TOKENS: [Deletion; 3] = [
    Deletion {
        table: "idempotency_keys",
        condition: "t.created_at < now() - interval '1 day' and $2::int is not null",
    },
    Deletion {
        table: "user_tokens",
        condition: "t.expires_at < now() - interval '1 day' and $2::int is not null",
    },
    Deletion {
        table: "refresh_tokens",
        condition: "t.expires_at < now() and $2::int is not null",
    },
];

/// One housekeeping run.
pub async fn run(ctx: &WorkerContext) -> anyhow::Result<Cleaned> {
    let mut cleaned = Cleaned::default();
    let mut batches = 0;
    cleaned.schedule_fires = delete(ctx, &SCHEDULE_FIRES, &mut batches).await?;
    cleaned.effects = delete(ctx, &EFFECTS, &mut batches).await?;
    cleaned.cron_fires = delete(ctx, &CRON_FIRES, &mut batches).await?;
    for tokens in &TOKENS {
        cleaned.tokens += delete(ctx, tokens, &mut batches).await?;
    }
    cleaned.batches = batches;
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
    cleaned.redis_tasks = redis_tasks;
    Ok(cleaned)
}

/// Deletes every row `deletion` names, `worker.housekeeping_batch` at a time, each batch its
/// own statement (and so its own short transaction), until a batch comes back short.
async fn delete(
    ctx: &WorkerContext,
    deletion: &Deletion,
    batches: &mut u64,
) -> anyhow::Result<u64> {
    let days = i32::try_from(ctx.config.worker.retention_days).unwrap_or(i32::MAX);
    let batch = i64::from(ctx.config.worker.housekeeping_batch);
    let sql = format!(
        "delete from {table} where ctid = any(array(
             select t.ctid from {table} t where {condition} limit $1))",
        table = deletion.table,
        condition = deletion.condition,
    );
    let mut deleted = 0;
    loop {
        let done = sqlx::query(&sql)
            .bind(batch)
            .bind(days)
            .execute(&ctx.db)
            .await?
            .rows_affected();
        *batches += 1;
        deleted += done;
        if i64::try_from(done).unwrap_or(i64::MAX) < batch {
            return Ok(deleted);
        }
    }
}
