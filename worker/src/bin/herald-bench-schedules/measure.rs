//! The three parts of a run (population, planning, firing) and the report.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use herald_worker::bench::redis_connection;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::Args;
use crate::setup::Bench;

/// The tables a planned fire writes to.
const TABLES: [&str; 3] = ["schedule_fires", "schedule_messages", "effects"];
/// Effect states of a message not finished yet.
const UNFINISHED: &str = "('planned', 'queued', 'sending', 'retrying')";

pub async fn measure(bench: &mut Bench, args: &Args) -> anyhow::Result<String> {
    let mut redis = redis_connection(&bench.scratch.redis_url).await?;
    let lead = chrono::Duration::seconds(i64::try_from(args.lead_secs)?);
    let horizon = chrono::Duration::seconds(i64::try_from(args.horizon_secs)?);
    let start = Utc::now() + lead;
    let populating = Instant::now();
    bench.populate(args, start).await?;
    eprintln!(
        "populated {} schedules, {} students in {:.1} s",
        args.schedules,
        args.groups * args.students_per_group,
        populating.elapsed().as_secs_f64()
    );
    let db = bench.scratch.pool()?.clone();
    let bytes_before = table_bytes(&db).await?;
    let redis_before = used_memory(&mut redis).await?;

    // This machine's PostgreSQL runs with autovacuum off. Without the statistics autovacuum's
    // ANALYZE keeps fresh, the foreign-key checks of the growing tables keep a plan made
    // while they were empty (a sequential scan): do what autovacuum would.
    let analyzer = tokio::spawn({
        let db = db.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if sqlx::query("analyze schedule_fires, schedule_messages, effects")
                    .execute(&db)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });

    // planning
    let planning = Instant::now();
    let workers_started = Utc::now();
    bench.start_workers(args).await?;
    let plan_end = workers_started + horizon;
    loop {
        let left: i64 =
            sqlx::query_scalar("select count(*) from schedules where planned_until < $1")
                .bind(plan_end)
                .fetch_one(&db)
                .await?;
        if left == 0 {
            break;
        }
        if Utc::now() > plan_end {
            bail!("{left} schedules still unplanned after the whole horizon");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let planning = planning.elapsed();
    let planned_at = Utc::now();
    let due_early: i64 =
        sqlx::query_scalar("select count(*) from effects where kind = 'message' and due_at <= $1")
            .bind(planned_at)
            .fetch_one(&db)
            .await?;
    let bytes_after = table_bytes(&db).await?;
    let redis_after = used_memory(&mut redis).await?;
    let (fires, messages): (i64, i64) = sqlx::query_as(
        "select (select count(*) from schedule_fires), (select count(*) from schedule_messages)",
    )
    .fetch_one(&db)
    .await?;
    let pending: i64 = sqlx::query_scalar(
        "select count(*) from schedule_fires where state = 'planned' and fire_at > now()",
    )
    .fetch_one(&db)
    .await?;
    eprintln!("planned {fires} zone-fires ({messages} messages) in {planning:.1?}");

    // firing
    let from = start + chrono::Duration::seconds(5);
    let to = from + chrono::Duration::seconds(i64::try_from(args.run_secs)?);
    let give_up = to + chrono::Duration::seconds(120);
    loop {
        let unfinished: i64 = sqlx::query_scalar(&format!(
            "select count(*) from effects where kind = 'message' and due_at <= $1
               and state in {UNFINISHED}"
        ))
        .bind(to)
        .fetch_one(&db)
        .await?;
        let now = Utc::now();
        if now > to + chrono::Duration::seconds(2) && unfinished == 0 {
            break;
        }
        if now > give_up {
            bail!("{unfinished} messages due in the window still unfinished 2 minutes after it");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    analyzer.abort();
    let firing = Firing::read(&db, from, to).await?;
    bench.stop_workers().await;
    let sent_total: i64 = sqlx::query_scalar(
        "select count(*) from effects where kind = 'message' and state = 'sent'",
    )
    .fetch_one(&db)
    .await?;
    let tally = bench.standin.tally();

    let mut out = String::new();
    let students = args.groups * args.students_per_group;
    writeln!(
        out,
        "## Schedules: {} schedules, timezone = recipient, {} groups × {} students over {} zones, {} replica(s)\n",
        args.schedules,
        args.groups,
        args.students_per_group,
        herald_worker::bench::ZONES.len(),
        args.replicas
    )?;
    let per_fire_us = planning.as_secs_f64() * 1e6 / fires.max(1) as f64;
    let per_message_us = planning.as_secs_f64() * 1e6 / messages.max(1) as f64;
    writeln!(
        out,
        "Planning (horizon {} s, first fire {} s ahead): {fires} zone-fires, {messages} messages for {students} students, in {:.2} s from the workers' start: {:.0} zone-fires/s, {per_fire_us:.0} µs per zone-fire, {per_message_us:.0} µs per message. Messages already due while planning: {due_early}.",
        args.horizon_secs,
        args.lead_secs,
        planning.as_secs_f64(),
        fires as f64 / planning.as_secs_f64(),
    )?;
    let grown: i64 = bytes_after
        .iter()
        .zip(&bytes_before)
        .map(|(a, b)| a - b)
        .sum();
    writeln!(
        out,
        "Storage: {pending} pending zone-fires; per zone-fire {:.2} rows (1 fire + {:.2} messages + {:.2} effects) and {:.0} bytes of PostgreSQL (tables and indexes: {}); Redis used_memory {} → {} bytes ({:+} for all pending fires: they are not in Redis until due).",
        1.0 + 2.0 * messages as f64 / fires.max(1) as f64,
        messages as f64 / fires.max(1) as f64,
        messages as f64 / fires.max(1) as f64,
        grown as f64 / fires.max(1) as f64,
        TABLES
            .iter()
            .zip(bytes_after.iter().zip(&bytes_before))
            .map(|(table, (a, b))| format!("{table} +{} KiB", (a - b) / 1024))
            .collect::<Vec<_>>()
            .join(", "),
        redis_before,
        redis_after,
        redis_after - redis_before,
    )?;
    writeln!(
        out,
        "Firing ({} s of fires): {} messages in {} zone-fires ({:.0} messages/s), states {}; message start lateness p50/p99/max {:.0}/{:.0}/{:.0} ms; zone-fire first-start lateness p50/p99/max {:.0}/{:.0}/{:.0} ms (target p99 ≤ 1,000 ms: {}).",
        args.run_secs,
        firing.messages,
        firing.fires,
        firing.messages as f64 / args.run_secs as f64,
        firing.states,
        firing.message_ms[0],
        firing.message_ms[1],
        firing.message_ms[2],
        firing.fire_ms[0],
        firing.fire_ms[1],
        firing.fire_ms[2],
        herald_worker::bench::verdict(firing.fire_ms[1] <= 1_000.0),
    )?;
    writeln!(
        out,
        "Once: the Twilio stand-in got {} requests for {sent_total} messages recorded sent over the whole run ({}).",
        tally.requests,
        if i64::try_from(tally.requests)? == sent_total {
            "none twice"
        } else {
            "MISMATCH"
        }
    )?;
    Ok(out)
}

/// What the rows of the firing window say.
struct Firing {
    messages: i64,
    fires: i64,
    states: String,
    /// p50, p99, max of `sending_at − due_at` per message, in ms.
    message_ms: [f64; 3],
    /// p50, p99, max of each zone-fire's first `sending_at − fire_at`, in ms.
    fire_ms: [f64; 3],
}

impl Firing {
    async fn read(db: &PgPool, from: DateTime<Utc>, to: DateTime<Utc>) -> anyhow::Result<Self> {
        let states: Vec<(String, i64)> = sqlx::query_as(
            "select e.state, count(*) from effects e
             where e.kind = 'message' and e.due_at between $1 and $2 group by 1 order by 1",
        )
        .bind(from)
        .bind(to)
        .fetch_all(db)
        .await?;
        let messages = states.iter().map(|(_, n)| n).sum();
        let message_ms = percentiles(
            db,
            "select extract(epoch from e.sending_at - e.due_at) * 1000 as ms from effects e
             where e.kind = 'message' and e.state = 'sent' and e.due_at between $1 and $2",
            from,
            to,
        )
        .await?;
        let fire_ms = percentiles(
            db,
            "select extract(epoch from min(e.sending_at) - f.fire_at) * 1000 as ms
             from schedule_fires f
             join schedule_messages m on m.fire_id = f.id
             join effects e on e.id = m.effect_id
             where f.fire_at between $1 and $2 and e.state = 'sent'
             group by f.id, f.fire_at",
            from,
            to,
        )
        .await?;
        let fires: i64 = sqlx::query_scalar(
            "select count(*) from schedule_fires where fire_at between $1 and $2",
        )
        .bind(from)
        .bind(to)
        .fetch_one(db)
        .await?;
        Ok(Self {
            messages,
            fires,
            states: herald_worker::bench::states_line(&states),
            message_ms,
            fire_ms,
        })
    }
}

/// p50, p99 and max of the `ms` column of `rows` (bound to the window `$1`–`$2`).
async fn percentiles(
    db: &PgPool,
    rows: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<[f64; 3]> {
    let (p50, p99, max): (Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(&format!(
        "select percentile_cont(0.5) within group (order by ms)::float8,
                percentile_cont(0.99) within group (order by ms)::float8, max(ms)::float8
         from ({rows}) r"
    ))
    .bind(from)
    .bind(to)
    .fetch_one(db)
    .await?;
    Ok([p50, p99, max].map(|v| v.unwrap_or(f64::NAN)))
}

/// Bytes of each of [`TABLES`] with its indexes.
async fn table_bytes(db: &PgPool) -> anyhow::Result<Vec<i64>> {
    let mut sizes = Vec::new();
    for table in TABLES {
        sizes.push(
            sqlx::query_scalar("select pg_total_relation_size($1::regclass)")
                .bind(table)
                .fetch_one(db)
                .await?,
        );
    }
    Ok(sizes)
}

/// Redis `used_memory`, in bytes.
async fn used_memory(redis: &mut ConnectionManager) -> anyhow::Result<i64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(redis).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no used_memory in INFO"))
}
