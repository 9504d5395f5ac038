//! One measurement: start the workers, let them idle, plan the burst, sample until every
//! row is final, then collect what the rows, `/proc` and Redis say it cost.

use anyhow::bail;
use herald_bench::{Baseline, Rows, redis_connection};
use uuid::Uuid;

use crate::Args;
use crate::report::Report;
use crate::setup::Bench;

/// Runs the benchmark on a freshly created `bench`; returns the report.
pub async fn measure(bench: &mut Bench, args: &Args) -> anyhow::Result<String> {
    let pool = bench.scratch.pool()?.clone();
    let mut redis = redis_connection(&bench.scratch.redis_url).await?;
    let account: Uuid =
        sqlx::query_scalar("insert into accounts (name) values ('bench') returning id")
            .fetch_one(&pool)
            .await?;

    let ports = bench.start_workers(args).await?;
    let mut baseline = Baseline::take(&bench.scratch, &bench.workers, &ports, &mut redis).await?;
    let (due, plan_time, committed) =
        crate::plan::plan(&pool, account, &bench.scratch.queue, args).await?;
    let slack = (due - committed).num_milliseconds();
    eprintln!(
        "planned {} e-mails in {:.2} s; due {} ms after the commit",
        args.effects,
        plan_time.as_secs_f64(),
        slack
    );
    if slack < 0 {
        eprintln!(
            "warning: planning ended after the due instant; raise --lead-secs for a clean measurement"
        );
    }

    baseline.start_clock();
    // With --spread-secs the last row falls due that much later: only then can all be final.
    let last_due = due + chrono::Duration::milliseconds((args.spread_secs * 1000.0) as i64);
    let drained = baseline
        .until_final(
            &bench.scratch,
            &mut bench.workers,
            &mut redis,
            Rows::Effects,
            last_due,
            args.timeout_secs,
        )
        .await?;
    let Some(recorded) = Rows::Effects.recorded(&pool).await? else {
        bail!(
            "no row was started or finished; see the worker logs in {}",
            bench.scratch.dir.display()
        );
    };
    let report = Report {
        args,
        email: bench.scratch.job_settings()?,
        due,
        plan_time,
        recorded,
        drained,
    };
    report.write()
}
