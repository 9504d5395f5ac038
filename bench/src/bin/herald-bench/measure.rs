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
    if args.idle_secs > 0 {
        idle_commands(&mut redis, args.idle_secs).await?;
    }
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

/// An idle replica must cost Redis at most this many commands per second.
const IDLE_COMMANDS_BOUND: f64 = 20.0;

/// Prints how many commands per second the Redis server processed over `secs` seconds while
/// the workers idled (the whole server: the count is the run's only with a private Redis).
async fn idle_commands(redis: &mut redis::aio::ConnectionManager, secs: u64) -> anyhow::Result<()> {
    async fn processed(redis: &mut redis::aio::ConnectionManager) -> anyhow::Result<u64> {
        let info: String = redis::cmd("INFO").arg("stats").query_async(redis).await?;
        info.lines()
            .find_map(|line| line.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no total_commands_processed in INFO stats"))
    }
    // let the workers finish starting up (registration, first polls) before counting
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let before = processed(redis).await?;
    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    // this INFO is counted too; leave it out
    let commands = processed(redis).await?.saturating_sub(before + 1);
    let rate = commands as f64 / secs as f64;
    let verdict = if rate <= IDLE_COMMANDS_BOUND {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "idle: {commands} Redis commands in {secs} s = {rate:.1}/s (target <= {IDLE_COMMANDS_BOUND}/s: {verdict}; counts the whole Redis server)"
    );
    Ok(())
}
