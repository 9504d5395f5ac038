//! The three parts of a run (population, planning, firing) and the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use herald_bench::redis_connection;
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
    let prefix = bench.scratch.prefix.clone();
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
    let held_planned = held(&mut redis, &prefix).await?;
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
    let mut held_firing = Held::default();
    let load_before = load_average();
    loop {
        held_firing = held_firing.max(held(&mut redis, &prefix).await?);
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
    let load_after = load_average();
    let firing = Firing::read(&db, from, to).await?;
    bench.stop_workers().await;
    let sent_total: i64 = sqlx::query_scalar(
        "select count(*) from effects where kind = 'message' and state = 'sent'",
    )
    .fetch_one(&db)
    .await?;
    let tally = bench.standin.tally();
    let kept = held_by_kind(&mut redis, &prefix).await?;
    let kept_total = kept.values().fold(Held::default(), |a, b| Held {
        bytes: a.bytes + b.bytes,
        keys: a.keys + b.keys,
    });

    let mut out = String::new();
    let students = args.groups * args.students_per_group;
    writeln!(
        out,
        "## Schedules: {} schedules, timezone = recipient, {} groups × {} students over {} zones, {} replica(s)\n",
        args.schedules,
        args.groups,
        args.students_per_group,
        herald_bench::ZONES.len(),
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
        "Storage: {pending} pending zone-fires; per zone-fire {:.2} rows (1 fire + {:.2} messages + {:.2} effects) and {:.0} bytes of PostgreSQL (tables and indexes: {}). Redis: the run's keys hold {} bytes in {} keys with every fire pending (none is in Redis until due; the server's used_memory, shared with anything else on it, went {} → {} bytes); while firing, at most {} bytes in {} keys.",
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
        held_planned.bytes,
        held_planned.keys,
        redis_before,
        redis_after,
        held_firing.bytes,
        held_firing.keys,
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
        herald_bench::verdict(firing.fire_ms[1] <= 1_000.0),
    )?;
    writeln!(
        out,
        "Machine: 1-minute load average {load_before} at the window's start, {load_after} at its end ({} cores).",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
    )?;
    writeln!(
        out,
        "Redis after the run (workers stopped, {sent_total} messages sent): the run's keys hold {} bytes in {} keys, {:.0} bytes per sent message: {}.",
        kept_total.bytes,
        kept_total.keys,
        kept_total.bytes as f64 / sent_total.max(1) as f64,
        kept.iter()
            .map(|(kind, held)| format!("{kind} {} keys {} bytes", held.keys, held.bytes))
            .collect::<Vec<_>>()
            .join(", "),
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
            states: herald_bench::states_line(&states),
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

/// What the run's Redis keys hold.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    bytes: u64,
    keys: u64,
}

/// `MEMORY USAGE` summed over every key under `prefix` (the run's queues, worker
/// registrations and rate limiter state).
async fn held(redis: &mut ConnectionManager, prefix: &str) -> anyhow::Result<Held> {
    Ok(held_by_kind(redis, prefix)
        .await?
        .values()
        .fold(Held::default(), |a, b| Held {
            bytes: a.bytes + b.bytes,
            keys: a.keys + b.keys,
        }))
}

/// [`held`] per kind of key: the key after the prefix, up to the id of a per-task key
/// (`messages:meta`, `messages:idempotency`, `messages:data`…).
async fn held_by_kind(
    redis: &mut ConnectionManager,
    prefix: &str,
) -> anyhow::Result<BTreeMap<String, Held>> {
    let mut kinds = BTreeMap::<String, Held>::new();
    for key in herald_shared::redis_conn::keys_with_prefix(redis, prefix).await? {
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(redis)
            .await?;
        let rest = key.strip_prefix(prefix).unwrap_or(&key);
        let kind = rest.splitn(3, ':').take(2).collect::<Vec<_>>().join(":");
        let held = kinds.entry(kind).or_default();
        held.bytes += bytes.unwrap_or(0);
        held.keys += 1;
    }
    Ok(kinds)
}

/// The 1-minute load average, as `/proc/loadavg` says it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Redis `used_memory`, in bytes.
async fn used_memory(redis: &mut ConnectionManager) -> anyhow::Result<i64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(redis).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no used_memory in INFO"))
}
