//! `herald-bench-deliveries`: how long does herald-api take to schedule a course to a big
//! group, and how fast do real `herald-worker` processes send a day's messages through Twilio
//! when they all fall due at the same instant?
//!
//! One run, on a fresh PostgreSQL database (migrated by `herald-api migrate`) and Redis key
//! prefix, with the real `herald-api` and `herald-worker` binaries next to this one:
//!
//! 1. **Planning.** Sign up, create a `--days`-day course (no questions: one message a day)
//!    and a group, and import `--students` students spread over 50 IANA zones through the
//!    CSV import endpoint (`POST /api/v1/groups/{id}/students/import`, 10,000 rows a call).
//!    Then time `POST /api/v1/deliveries` (students × days messages planned in one request,
//!    each student's day 1 at 09:00 on their own clock the day after tomorrow), sampling
//!    herald-api's RSS every 5 ms. No worker runs during this part.
//! 2. **Sending.** Start `--replicas` workers against an in-process Twilio stand-in that
//!    answers every `Messages.json` request with 201 at once and counts requests per
//!    (To, Body). Create a second delivery to the same group, of a one-day course, with
//!    `timezone = "UTC"` so every student's message is due at the same instant a few seconds
//!    ahead. Wait until every message row is final; the figures come from the rows' own
//!    timestamps (`sending_at`, `finished_at`, `next_attempt_at`) and the stand-in's counts.
//!
//! The per-sender rate limit (`twilio.sms_per_second`, 1/s by default: one long code) is
//! raised to `--sms-per-second` for the sending part, as it would be for a Messaging Service
//! with a large number pool, so the measurement is Herald's own throughput rather than the
//! limiter's spacing. Everything is torn down afterwards unless `--keep`.
//!
//! ```text
//! cargo build --release --bins && target/release/herald-bench-deliveries --replicas 1
//! ```
//!
//! Modules: [`setup`] owns the run's scratch state and processes (with the Twilio stand-in
//! of [`herald_bench::Standin`]), [`api`] the herald-api client and [`students`] the group it imports; [`measure`]
//! runs both parts ([`planning`], [`sending`]) and [`report`] prints them; the run's life
//! (teardown whatever happens) is [`herald_bench::run`].

mod api;
mod measure;
mod planning;
mod report;
mod sending;
mod setup;
mod students;

use clap::Parser;
use herald_bench::Servers;

use crate::setup::Bench;

/// `application_name` of the bench's own connections (left out of the CPU counts).
const BENCH_APP: &str = "herald-bench-deliveries";

#[derive(Parser, Debug)]
#[command(
    name = "herald-bench-deliveries",
    about = "Delivery planning and SMS sending benchmark for herald-api and herald-worker"
)]
pub struct Args {
    /// Students in the group (at most 100,000).
    #[arg(long, default_value_t = 10_000)]
    students: usize,
    /// Days of the planned course (part 1); the sending part uses a one-day course.
    #[arg(long, default_value_t = 10)]
    days: u32,
    /// herald-worker processes to run for the sending part.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    #[command(flatten)]
    servers: Servers,
    /// Seconds from creating the sending delivery to its start (the start has whole seconds;
    /// the workers must not see half a plan).
    #[arg(long, default_value_t = 5)]
    lead_secs: u64,
    /// `twilio.sms_per_second` for the workers: the per-sender limit, raised as for a
    /// Messaging Service with a large pool.
    #[arg(long, default_value_t = 100_000)]
    sms_per_second: u32,
    /// Override jobs.toml `concurrency` of the message kind (per replica).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Override jobs.toml `window` of the message kind (ids in Redis, all replicas).
    #[arg(long)]
    window: Option<u32>,
    /// Override `database.max_connections` of the workers (per replica).
    #[arg(long)]
    db_max_connections: Option<u32>,
    /// Give up waiting for the messages after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Keep the database, the Redis keys and the logs.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    herald_bench::run::main(BENCH_APP, &args, args.keep, Bench::create(&args)).await;
}
