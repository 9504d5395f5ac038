//! The `housekeeping` cron job: deletes finished rows older than `worker.retention_days`, at
//! most `worker.housekeeping_batch` rows per statement.
//! E-mail effects, old schedule fires (with their messages) and SendGrid events go;
//! course-message and campaign e-mail effects stay while a delivery's or campaign's history
//! refers to them. It also trims finished apalis tasks from
//! Redis past `worker.redis_task_retention_secs` — which the sweep does every interval too,
//! since Redis memory cannot wait a day.

use sqlx::PgPool;

use crate::context::WorkerContext;

/// What one run deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cleaned {
    pub effects: u64,
    pub cron_fires: u64,
    pub schedule_fires: u64,
    /// SendGrid events kept to skip their repeats (SendGrid retries for up to 72 hours).
    pub email_events: u64,
    pub tokens: u64,
    /// Finished apalis tasks removed from Redis.
    pub redis_tasks: u64,
    /// Delete statements run (each removes at most `worker.housekeeping_batch` rows).
    pub batches: u64,
}

/// A table housekeeping deletes from; [`delete_batch`] holds which of its rows go.
#[derive(Debug, Clone, Copy)]
enum Deletion {
    ScheduleFires,
    Effects,
    CronFires,
    EmailEvents,
    IdempotencyKeys,
    UserTokens,
    RefreshTokens,
}

/// Spent idempotency keys and tokens: their own lifetimes, not the retention.
const TOKENS: [Deletion; 3] = [
    Deletion::IdempotencyKeys,
    Deletion::UserTokens,
    Deletion::RefreshTokens,
];

/// One housekeeping run.
pub async fn run(ctx: &WorkerContext) -> anyhow::Result<Cleaned> {
    let mut cleaned = Cleaned::default();
    let mut batches = 0;
    cleaned.schedule_fires = delete(ctx, Deletion::ScheduleFires, &mut batches).await?;
    cleaned.effects = delete(ctx, Deletion::Effects, &mut batches).await?;
    cleaned.cron_fires = delete(ctx, Deletion::CronFires, &mut batches).await?;
    cleaned.email_events = delete(ctx, Deletion::EmailEvents, &mut batches).await?;
    for tokens in TOKENS {
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
async fn delete(ctx: &WorkerContext, deletion: Deletion, batches: &mut u64) -> anyhow::Result<u64> {
    let days = i32::try_from(ctx.config.worker.retention_days).unwrap_or(i32::MAX);
    let batch = i64::from(ctx.config.worker.housekeeping_batch);
    let mut deleted = 0;
    loop {
        let done = delete_batch(&ctx.db, deletion, batch, days).await?;
        *batches += 1;
        deleted += done;
        if i64::try_from(done).unwrap_or(i64::MAX) < batch {
            return Ok(deleted);
        }
    }
}

/// Deletes at most `batch` rows of one deletion (`ctid`s picked first, so `limit` applies);
/// `days` is the retention.
async fn delete_batch(
    db: &PgPool,
    deletion: Deletion,
    batch: i64,
    days: i32,
) -> Result<u64, sqlx::Error> {
    let done = match deletion {
        // A fire goes once every message of it is finished; its message rows go with it
        // (cascade), and their effects with the next deletion.
        Deletion::ScheduleFires => {
            sqlx::query!(
                "delete from schedule_fires where ctid = any(array(
                     select t.ctid from schedule_fires t
                     where t.fire_at < now() - make_interval(days => $2)
                       and not exists (
                           select 1 from schedule_messages m join effects e on e.id = m.effect_id
                           where m.fire_id = t.id
                             and e.state not in
                                 ('sent', 'sandboxed', 'failed', 'dead', 'unknown', 'canceled'))
                     limit $1))",
                batch,
                days,
            )
            .execute(db)
            .await?
        }
        // course, schedule and campaign messages' effects stay while their history refers to
        // them (a campaign's thread and replies are matched by its sends' Message-IDs)
        Deletion::Effects => {
            sqlx::query!(
                "delete from effects where ctid = any(array(
                     select t.ctid from effects t
                     where t.state in ('sent', 'sandboxed', 'failed', 'dead', 'unknown', 'canceled')
                       and t.finished_at < now() - make_interval(days => $2)
                       and not exists (select 1 from delivery_messages m where m.effect_id = t.id)
                       and not exists (select 1 from schedule_messages m where m.effect_id = t.id)
                       and not exists (select 1 from campaign_sends m where m.effect_id = t.id)
                     limit $1))",
                batch,
                days,
            )
            .execute(db)
            .await?
        }
        // Each trigger's latest fire stays: it is where catch-up after downtime starts.
        Deletion::CronFires => {
            sqlx::query!(
                "delete from cron_fires where ctid = any(array(
                     select t.ctid from cron_fires t
                     where t.state in ('done', 'failed', 'missed')
                       and t.fire_at < now() - make_interval(days => $2)
                       and t.fire_at < (select max(l.fire_at) from cron_fires l
                                        where l.trigger = t.trigger)
                     limit $1))",
                batch,
                days,
            )
            .execute(db)
            .await?
        }
        Deletion::EmailEvents => {
            sqlx::query!(
                "delete from email_events where ctid = any(array(
                     select t.ctid from email_events t
                     where t.received_at < now() - make_interval(days => $2)
                     limit $1))",
                batch,
                days,
            )
            .execute(db)
            .await?
        }
        Deletion::IdempotencyKeys => {
            sqlx::query!(
                "delete from idempotency_keys where ctid = any(array(
                     select t.ctid from idempotency_keys t
                     where t.created_at < now() - interval '1 day'
                     limit $1))",
                batch,
            )
            .execute(db)
            .await?
        }
        Deletion::UserTokens => {
            sqlx::query!(
                "delete from user_tokens where ctid = any(array(
                     select t.ctid from user_tokens t
                     where t.expires_at < now() - interval '1 day'
                     limit $1))",
                batch,
            )
            .execute(db)
            .await?
        }
        Deletion::RefreshTokens => {
            sqlx::query!(
                "delete from refresh_tokens where ctid = any(array(
                     select t.ctid from refresh_tokens t
                     where t.expires_at < now()
                     limit $1))",
                batch,
            )
            .execute(db)
            .await?
        }
    };
    Ok(done.rows_affected())
}
