//! Part 1, planning: one `POST /api/v1/deliveries` of the `--days`-day course to the whole
//! group, timed, with herald-api's memory sampled every 5 ms (its peak is short-lived) and
//! its and PostgreSQL's CPU time counted. No worker runs during this part.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{Days, Utc};
use herald_bench::{CpuUse, rss_kib};
use redis::aio::ConnectionManager;
use serde_json::json;

use crate::api::Api;
use crate::setup::Bench;
use crate::{Args, BENCH_APP};

/// herald-api's memory is sampled this often while it plans: the peak is short-lived.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// Part 1 as measured.
#[derive(Debug)]
pub struct Planning {
    pub messages: usize,
    pub elapsed: Duration,
    pub rss_before: u64,
    pub rss_peak: u64,
    pub rss_after: u64,
    /// Two seconds after the answer: what the allocator kept.
    pub rss_settled: u64,
    pub api_cpu: f64,
    pub postgres_cpu: f64,
}

/// Part 1: one delivery of the `days`-day course to the whole group, timed, with
/// herald-api's memory sampled throughout.
pub async fn plan_course(
    bench: &Bench,
    api: &Api,
    redis: &mut ConnectionManager,
    group: &str,
    course: &str,
    args: &Args,
) -> anyhow::Result<Planning> {
    let pool = bench.scratch.pool()?;
    let api_pid = bench.api_pid()?;
    // 09:00 the day after tomorrow (UTC date) is in the future on every clock, up to +14.
    let start = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(2))
        .and_then(|day| day.and_hms_opt(9, 0, 0))
        .context("no start date")?;
    let messages = args.students * args.days as usize;
    let rss_before = rss_kib(api_pid)?;
    let cpu_before = CpuUse::now(pool, redis, &[api_pid], BENCH_APP).await?;
    let peak = Arc::new(AtomicU64::new(rss_before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (peak, done) = (peak.clone(), done.clone());
        async move {
            while !done.load(Ordering::Relaxed) {
                if let Ok(kib) = rss_kib(api_pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(RSS_SAMPLE_EVERY).await;
            }
        }
    });
    let started = Instant::now();
    let created = api
        .create_delivery(
            &json!({"group_id": group, "course_id": course,
                    "start_at": start.format("%Y-%m-%d %H:%M:%S").to_string()}),
            messages,
        )
        .await;
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    let rss_after = rss_kib(api_pid)?;
    let cpu = CpuUse::now(pool, redis, &[api_pid], BENCH_APP)
        .await?
        .since(&cpu_before);
    let delivery = created?;
    let rows: i64 = sqlx::query_scalar(
        "select count(*) from delivery_messages m join effects e on e.id = m.effect_id
         where m.delivery_id = $1::uuid and e.state = 'planned'",
    )
    .bind(&delivery)
    .fetch_one(pool)
    .await?;
    if rows != messages as i64 {
        bail!("{rows} planned rows in the database, expected {messages}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(Planning {
        messages,
        elapsed,
        rss_before,
        rss_peak: peak.load(Ordering::Relaxed).max(rss_after),
        rss_after,
        rss_settled: rss_kib(api_pid)?,
        api_cpu: cpu.processes,
        postgres_cpu: cpu.postgres,
    })
}
