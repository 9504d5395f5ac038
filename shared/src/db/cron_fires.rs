//! Queries on `cron_fires`: recording fires (once, whoever comes first), claiming due ones,
//! and recording their outcome.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

/// The latest fire recorded for a trigger, whatever its state.
pub async fn last_fire(
    executor: impl PgExecutor<'_>,
    trigger: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar!(
        "select max(fire_at) from cron_fires where trigger = $1",
        trigger,
    )
    .fetch_one(executor)
    .await
}

/// Records fires; ones already recorded (by another replica) are left alone.
pub async fn record(
    executor: impl PgExecutor<'_>,
    trigger: &str,
    fires: &[DateTime<Utc>],
    state: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "insert into cron_fires (trigger, fire_at, state, finished_at)
         select $1, f, $3, case when $3 = 'missed' then now() end from unnest($2::timestamptz[]) as f
         on conflict on constraint cron_fires_once do nothing",
        trigger,
        fires,
        state,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// A fire this replica claimed.
#[derive(Debug, Clone, FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub trigger: String,
    pub fire_at: DateTime<Utc>,
    /// This claim's run number; `finish` only counts for the claim that is still current.
    pub runs: i32,
}

/// Claims the oldest due fire of `triggers` for this replica (`skip locked`: a fire another
/// replica is claiming is skipped). One at a time, so `started_at` is when it really starts.
/// Due means at or before `now`, the runner's clock (which records the fires too; a test's
/// controlled one), and never before the database's: a replica whose clock runs fast does not
/// start fires early.
pub async fn claim_next(
    executor: impl PgExecutor<'_>,
    triggers: &[String],
    runner: &str,
    now: DateTime<Utc>,
) -> Result<Option<Claimed>, sqlx::Error> {
    sqlx::query_as!(
        Claimed,
        "update cron_fires set state = 'running', runs = runs + 1, runner = $2, started_at = now(),
                alive_at = now()
         where id = (
             select id from cron_fires
             where state = 'planned' and fire_at <= least($3, now()) and trigger = any($1)
             order by fire_at
             limit 1
             for update skip locked)
         returning id, trigger, fire_at, runs",
        triggers,
        runner,
        now,
    )
    .fetch_optional(executor)
    .await
}

/// Records how a claimed fire ended: `done`, `failed` (with the error) or `missed` — only if
/// this replica's claim is still the current one (it was not released and re-claimed). A fire
/// found too late once claimed never ran its job: the claim is taken back from `runs`, which
/// counts the times the job started.
pub async fn finish(
    executor: impl PgExecutor<'_>,
    claimed: &Claimed,
    runner: &str,
    state: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update cron_fires set state = $2, error = $3, finished_at = now(),
             runs = case when $2 = 'missed' then runs - 1 else runs end
         where id = $1 and state = 'running' and runner = $4 and runs = $5",
        claimed.id,
        state,
        error,
        runner,
        claimed.runs,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Records that the replica running a claimed fire is still at it; false when the claim is no
/// longer this replica's (it was released as stale and perhaps claimed again).
pub async fn still_running(
    executor: impl PgExecutor<'_>,
    claimed: &Claimed,
    runner: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update cron_fires set alive_at = now()
         where id = $1 and state = 'running' and runner = $2 and runs = $3",
        claimed.id,
        runner,
        claimed.runs,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Fires whose replica showed no sign of life (a claim or [`still_running`]) for
/// `older_than_secs` go back to `planned`: it died before finishing them. They are re-run,
/// or recorded `missed` if now too late.
pub async fn release_stale(
    executor: impl PgExecutor<'_>,
    older_than_secs: f64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "update cron_fires set state = 'planned'
         where state = 'running'
           and greatest(alive_at, started_at) < now() - make_interval(secs => $1)",
        older_than_secs,
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}
