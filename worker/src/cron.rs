//! The cron runner, in every replica: records each trigger's fires as rows (unique per
//! trigger and instant, so whoever records first wins and the rest do nothing), claims the due
//! ones with `skip locked`, and runs them — so N replicas run each fire once. It sleeps until
//! the next fire instant (computed by `herald_shared::cron` with DESIGN.md's DST rules).
//!
//! Catch-up: after downtime, the fires since the trigger's last recorded one are recorded too;
//! those at most `catch_up` late run, older ones are recorded `missed`. A trigger with no
//! history starts when the worker process starts; housekeeping keeps each trigger's latest
//! fire for that reason.
//!
//! A claimed fire whose replica stops showing signs of life (it touches the row while the job
//! runs) is released and run again: a long job is not, a dead replica's is.

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_shared::db::cron_fires;
use herald_shared::triggers::{CronJob, CronTrigger};
use tokio::sync::watch;

use crate::context::WorkerContext;

/// Most fires recorded per insert (a per-second trigger after a day's downtime has 86,400).
const MAX_BACKFILL: usize = 1_000;
/// The cron runner's name in `/healthz` and logs.
pub const LOOP: &str = "cron";
/// Longest sleep between passes, so a changed clock or a lost wake-up heals.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);
/// How often the replica running a fire's job says it is still at it.
const ALIVE_EVERY: Duration = Duration::from_secs(30);
/// A fire `running` with no sign of life for this long was claimed by a replica that died;
/// it is released (six missed signs: a slow database does not make a job run twice).
const STALE_RUNNING_SECS: f64 = 180.0;

/// Runs until `shutdown` turns true; a failed pass ends the run with the error, for the
/// supervisor to restart it. A trigger with no recorded fire starts at `booted`, the worker
/// process's start: fires before it are not owed, and every fire after it is (however late
/// this loop wakes up, restarts included).
pub async fn run(
    ctx: WorkerContext,
    mut shutdown: watch::Receiver<bool>,
    booted: DateTime<Utc>,
) -> anyhow::Result<()> {
    let triggers: Vec<CronTrigger> = ctx.jobs.triggers().to_vec();
    if triggers.is_empty() {
        crate::context::stopped(&mut shutdown).await;
        return Ok(());
    }
    let names: Vec<String> = triggers.iter().map(|t| t.name.clone()).collect();
    loop {
        pass(&ctx, &triggers, &names, booted, &Utc::now).await?;
        ctx.loops.passed(LOOP);
        let now = Utc::now();
        let next = triggers
            .iter()
            .filter_map(|t| t.schedule.next_after(t.zone, now))
            .min();
        let wait = next
            .and_then(|at| (at - Utc::now()).to_std().ok())
            .unwrap_or_default()
            .min(MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::context::stopped(&mut shutdown) => return Ok(()),
        }
    }
}

/// Records due fires, then claims and runs them. `clock` is read when the pass starts and
/// again as each fire is claimed (so a long job makes the next fire late, not early); tests
/// pass a controlled one to walk across DST nights.
pub async fn pass(
    ctx: &WorkerContext,
    triggers: &[CronTrigger],
    names: &[String],
    booted: DateTime<Utc>,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
) -> anyhow::Result<()> {
    let now = clock();
    for trigger in triggers {
        record_due(ctx, trigger, now, booted).await?;
    }
    cron_fires::release_stale(&ctx.db, STALE_RUNNING_SECS).await?;
    while let Some(fire) = cron_fires::claim_next(&ctx.db, names, &ctx.replica, clock()).await? {
        let Some(trigger) = triggers.iter().find(|t| t.name == fire.trigger) else {
            continue;
        };
        let late = (clock() - fire.fire_at).to_std().unwrap_or_default();
        if late > trigger.catch_up {
            cron_fires::finish(&ctx.db, &fire, &ctx.replica, "missed", None).await?;
            continue;
        }
        metrics::histogram!("herald_cron_lateness_seconds", "trigger" => trigger.name.clone())
            .record(late.as_secs_f64());
        match while_alive(ctx, &fire, ALIVE_EVERY, run_job(ctx, trigger.job)).await {
            Ok(()) => cron_fires::finish(&ctx.db, &fire, &ctx.replica, "done", None).await?,
            Err(err) => {
                tracing::error!(trigger = %trigger.name, error = %err, "cron job failed");
                let error = err.to_string();
                cron_fires::finish(&ctx.db, &fire, &ctx.replica, "failed", Some(&error)).await?;
            }
        }
    }
    Ok(())
}

/// Records the trigger's fires up to `now`: late ones as `missed`, the rest as `planned`, in
/// chunks of `MAX_BACKFILL` so a long downtime is recorded completely without one huge insert.
async fn record_due(
    ctx: &WorkerContext,
    trigger: &CronTrigger,
    now: DateTime<Utc>,
    booted: DateTime<Utc>,
) -> anyhow::Result<()> {
    let catch_up = chrono::Duration::from_std(trigger.catch_up).unwrap_or(chrono::Duration::MAX);
    loop {
        let from = match cron_fires::last_fire(&ctx.db, &trigger.name).await? {
            Some(last) => last,
            None => booted,
        };
        let due: Vec<DateTime<Utc>> = trigger
            .schedule
            .fires(trigger.zone, from)
            .take_while(|at| *at <= now)
            .take(MAX_BACKFILL)
            .collect();
        let (missed, planned): (Vec<_>, Vec<_>) = due.iter().partition(|at| now - **at > catch_up);
        if !missed.is_empty() {
            let recorded = cron_fires::record(&ctx.db, &trigger.name, &missed, "missed").await?;
            if recorded > 0 {
                tracing::warn!(trigger = %trigger.name, fires = recorded, "cron fires missed while no worker ran");
            }
        }
        cron_fires::record(&ctx.db, &trigger.name, &planned, "planned").await?;
        if due.len() < MAX_BACKFILL {
            return Ok(());
        }
    }
}

/// Runs a claimed fire's `job`, saying every `every` that this replica is still running it,
/// so a long job is not released as stale and run again elsewhere.
pub async fn while_alive<T>(
    ctx: &WorkerContext,
    fire: &cron_fires::Claimed,
    every: Duration,
    job: impl Future<Output = T>,
) -> T {
    tokio::pin!(job);
    let mut alive = tokio::time::interval(every);
    alive.tick().await; // the claim itself was the first sign
    loop {
        tokio::select! {
            result = &mut job => return result,
            _ = alive.tick() => {
                match cron_fires::still_running(&ctx.db, fire, &ctx.replica).await {
                    // a long job is progress: the cron loop is not stale while it runs
                    Ok(true) => ctx.loops.passed(LOOP),
                    // released as stale (this replica went silent too long): the fire is
                    // another run's now, and this one's outcome will not be recorded
                    Ok(false) => tracing::error!(trigger = %fire.trigger, "a cron fire was released while its job still ran here"),
                    Err(err) => tracing::warn!(trigger = %fire.trigger, error = %err, "could not record that a cron job is still running"),
                }
            }
        }
    }
}

async fn run_job(ctx: &WorkerContext, job: CronJob) -> anyhow::Result<()> {
    match job {
        CronJob::Housekeeping => {
            let cleaned = crate::housekeeping::run(ctx).await?;
            tracing::info!(?cleaned, "housekeeping done");
        }
        CronJob::Heartbeat => tracing::debug!("cron heartbeat"),
    }
    Ok(())
}
