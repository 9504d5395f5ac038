//! Part 2, sending: the workers start against the Twilio stand-in, a one-day course is
//! delivered to the whole group in UTC so every message falls due at one instant, and the
//! run is sampled until every message row is final.

use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use herald_bench::{Baseline, Drained, Recorded, Rows, clock_ticks, cpu_ticks};
use herald_shared::jobs_config::JobSettings;
use redis::aio::ConnectionManager;
use serde_json::{Value, json};

use crate::Args;
use crate::api::Api;
use crate::setup::Bench;
use herald_bench::Tally;

/// Part 2 as measured.
pub struct Sending {
    /// The message kind's settings as the workers read them.
    pub message: JobSettings,
    /// The instant every message fell due.
    pub due: DateTime<Utc>,
    pub recorded: Recorded,
    /// The drain; its wall time runs from creating the delivery.
    pub drained: Drained,
    /// The delivery's `status` as herald-api reports it.
    pub status: String,
    pub standin: Tally,
    pub api_cpu: f64,
    /// This process: the stand-in and the sampler.
    pub own_cpu: f64,
}

/// Part 2: the workers send a one-day course to the whole group, every message due at
/// one instant.
pub async fn send_first_day(
    bench: &mut Bench,
    api: &Api,
    redis: &mut ConnectionManager,
    group: &str,
    course: &str,
    args: &Args,
) -> anyhow::Result<Sending> {
    let pool = bench.scratch.pool()?.clone();
    let ports = bench.start_workers(args).await?;
    let mut baseline = Baseline::take(&bench.scratch, &bench.workers, &ports, redis).await?;
    let api_pid = bench.api_pid()?;
    let own_pid = std::process::id();
    let others_before = (cpu_ticks(api_pid), cpu_ticks(own_pid));

    // A whole second `lead_secs` ahead, read in UTC: the same instant for everyone.
    let due = DateTime::from_timestamp(Utc::now().timestamp() + 1 + args.lead_secs as i64, 0)
        .context("no start instant")?;
    baseline.start_clock();
    let created = Instant::now();
    let delivery = api
        .create_delivery(
            &json!({"group_id": group, "course_id": course, "timezone": "UTC",
                    "start_at": due.format("%Y-%m-%d %H:%M:%S").to_string()}),
            args.students,
        )
        .await?;
    let slack = (due - Utc::now()).num_milliseconds();
    eprintln!(
        "sending delivery of {} messages created in {:.2} s; due {slack} ms later",
        args.students,
        created.elapsed().as_secs_f64()
    );
    if slack < 0 {
        eprintln!(
            "warning: creating the delivery ended after its start; raise --lead-secs for a clean measurement"
        );
    }

    let rows = Rows::Delivery(&delivery);
    let drained = baseline
        .until_final(
            &bench.scratch,
            &mut bench.workers,
            redis,
            rows,
            due,
            args.timeout_secs,
        )
        .await?;
    // herald-api and this process are reported apart from the workers: read their own
    // clock ticks rather than add them to `drained.cpu.processes`.
    let ticks = clock_ticks();
    let others_secs = |before: Option<u64>, pid: u32| {
        before
            .zip(cpu_ticks(pid))
            .map_or(f64::NAN, |(b, a)| a.saturating_sub(b) as f64 / ticks)
    };
    let api_cpu = others_secs(others_before.0, api_pid);
    let own_cpu = others_secs(others_before.1, own_pid);

    let Some(recorded) = rows.recorded(&pool).await? else {
        bail!(
            "no message was started or finished; see the logs in {}",
            bench.scratch.dir.display()
        );
    };
    let status = api
        .get(&format!("/api/v1/deliveries/{delivery}"))
        .await?
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    Ok(Sending {
        message: bench.scratch.job_settings()?,
        due,
        recorded,
        drained,
        status,
        standin: bench.standin.tally(),
        api_cpu,
        own_cpu,
    })
}
