//! The schedule planner, in every replica: extends each active schedule's plan so its fires
//! are always planned `schedules.horizon_secs` ahead (see `herald_shared::schedules`).
//!
//! A schedule whose plan ends within half the horizon is claimed with `skip locked`, so
//! replicas share the work and never plan one schedule at the same time; the writes are
//! idempotent besides (unique fires and effect keys). The fires themselves are sent by the
//! dispatcher like any other due message, so planning never sits between a fire and its
//! start.

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_shared::db::schedules;
use herald_shared::effects::EffectKind;
use herald_shared::schedules::{PlanError, PlanSettings, Planned};
use tokio::sync::watch;

use crate::context::WorkerContext;

/// The planner's name in `/healthz` and logs.
pub const LOOP: &str = "schedule_planner";

/// How often the planner looks for schedules to extend.
pub fn interval(ctx: &WorkerContext) -> Duration {
    Duration::from_millis(ctx.config.schedules.plan_interval_ms)
}

/// Runs until `shutdown` turns true; a failed pass ends the run with the error, for the
/// supervisor to restart it.
pub async fn run(ctx: WorkerContext, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let settings = settings(&ctx);
    let interval = interval(&ctx);
    loop {
        // a full batch: more schedules may be waiting
        while pass(&ctx, &settings, Utc::now()).await?.schedules == batch(&ctx) {}
        ctx.loops.passed(LOOP);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = crate::context::stopped(&mut shutdown) => return Ok(()),
        }
    }
}

/// The planning settings of this worker's configuration.
pub fn settings(ctx: &WorkerContext) -> PlanSettings {
    PlanSettings::new(
        &ctx.config.schedules,
        &ctx.jobs.get(EffectKind::Message).queue,
    )
}

fn batch(ctx: &WorkerContext) -> usize {
    usize::try_from(ctx.config.schedules.plan_batch).unwrap_or(usize::MAX)
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Schedules planned.
    pub schedules: usize,
    pub planned: Planned,
}

/// Plans, in one transaction, up to `schedules.plan_batch` schedules whose plan ends within
/// half the horizon of `now`. A schedule that cannot be planned (a definition that no longer
/// parses) is logged and moved past the horizon so it does not block the others; one whose
/// writes fail is rolled back alone and tried again next pass.
pub async fn pass(
    ctx: &WorkerContext,
    settings: &PlanSettings,
    now: DateTime<Utc>,
) -> Result<Pass, sqlx::Error> {
    let half = chrono::Duration::from_std(settings.horizon / 2).unwrap_or(chrono::Duration::MAX);
    let before = now.checked_add_signed(half).unwrap_or(now);
    let limit = i64::from(ctx.config.schedules.plan_batch);
    let started = std::time::Instant::now();
    let mut tx = ctx.db.begin().await?;
    let claimed = schedules::claim_to_plan(&mut tx, before, limit).await?;
    let mut total = Pass {
        schedules: claimed.len(),
        planned: Planned::default(),
    };
    for schedule in &claimed {
        // each schedule in its own savepoint: one that fails (a timeout, a constraint) is
        // retried next pass without undoing the others
        let mut one = sqlx::Acquire::begin(&mut *tx).await?;
        let result = herald_shared::schedules::plan(&mut one, schedule, now, settings).await;
        match result {
            Ok(planned) => {
                one.commit().await?;
                total.planned.fires += planned.fires;
                total.planned.missed += planned.missed;
                total.planned.messages += planned.messages;
            }
            Err(PlanError::Database(err)) => {
                one.rollback().await?;
                tracing::error!(schedule_id = %schedule.id, error = %err, "planning a schedule failed; retried next pass");
                metrics::counter!("herald_schedule_plan_errors_total").increment(1);
            }
            Err(err @ PlanError::Invalid { .. }) => {
                one.rollback().await?;
                tracing::error!(error = %err, "schedule cannot be planned; skipped for a horizon");
                let horizon =
                    chrono::Duration::from_std(settings.horizon).unwrap_or(chrono::Duration::MAX);
                let until = now.checked_add_signed(horizon).unwrap_or(now);
                schedules::set_planned_until(&mut *tx, schedule.id, until).await?;
            }
        }
    }
    tx.commit().await?;
    if total.schedules > 0 {
        metrics::counter!("herald_schedule_fires_planned_total")
            .increment(total.planned.fires as u64);
        metrics::counter!("herald_schedule_fires_missed_total")
            .increment(total.planned.missed as u64);
        metrics::histogram!("herald_schedule_plan_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(
            schedules = total.schedules,
            fires = total.planned.fires,
            messages = total.planned.messages,
            "planned schedules"
        );
    }
    Ok(total)
}
