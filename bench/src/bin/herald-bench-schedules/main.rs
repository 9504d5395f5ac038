//! `herald-bench-schedules`: what do 10,000 schedules on each recipient's own clock cost?
//! Planning time per fire, fire-to-start lateness, and the rows and Redis memory a pending
//! fire holds.
//!
//! One run, on a fresh PostgreSQL database (migrated by `herald-api migrate`) and Redis key
//! prefix, with real `herald-worker` processes next to this binary and an in-process Twilio
//! stand-in that accepts every message at once:
//!
//! 1. **Population**, written straight into the database: `--groups` groups of
//!    `--students-per-group` SMS students, group `g`'s students in zones `g·n … g·n+n−1`
//!    (mod 50) of [`herald_bench::ZONES`], so every group spans n zones and all 50 are
//!    used; `--schedules` schedules with `timezone = recipient`, schedule `i` on group
//!    `i mod groups` with the cron `"<i mod 60> * * * * *"` (every minute, at second
//!    `i mod 60`: the fires spread evenly over each minute, so plenty fall inside a short
//!    run; a daily `0 8 * * 1-5` costs the same per fire but would not fire during one).
//!    The schedules start `--lead-secs` from now, so nothing is due while the first plan is
//!    written.
//! 2. **Planning**: start `--replicas` workers with `schedules.horizon_secs =
//!    --horizon-secs`; time until every schedule is planned to the end of its horizon.
//!    Table sizes and Redis `used_memory` are read before and right after.
//! 3. **Firing**: let the fires of `--run-secs` happen; from the effect rows, the lateness of
//!    each message's start (`sending_at − due_at`) and of each zone-fire's first start, and
//!    (after stopping the workers) the stand-in's request count against the rows `sent`.
//!
//! ```text
//! cargo build --release --bins && target/release/herald-bench-schedules --replicas 1
//! ```

mod measure;
mod setup;

use clap::Parser;
use herald_bench::Servers;

use crate::setup::Bench;

/// `application_name` of the bench's own connections.
const BENCH_APP: &str = "herald-bench-schedules";

#[derive(Parser, Debug)]
#[command(
    name = "herald-bench-schedules",
    about = "Schedule planning and firing benchmark for herald-worker"
)]
pub struct Args {
    /// Schedules, all with `timezone = recipient`.
    #[arg(long, default_value_t = 10_000)]
    schedules: usize,
    /// Groups the schedules are spread over.
    #[arg(long, default_value_t = 1_000)]
    groups: usize,
    /// Students per group, each in another zone (at most 50).
    #[arg(long, default_value_t = 5)]
    students_per_group: usize,
    /// herald-worker processes.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    #[command(flatten)]
    servers: Servers,
    /// Seconds from the population to the schedules' start (the first plan must be written
    /// before the first fire for the storage figures to be clean); below half of
    /// `--horizon-secs`, since the planner takes a schedule only once its plan ends within
    /// half the horizon.
    #[arg(long, default_value_t = 90)]
    lead_secs: u64,
    /// `schedules.horizon_secs` of the workers.
    #[arg(long, default_value_t = 240)]
    horizon_secs: u64,
    /// Seconds of fires whose lateness is measured (they start 5 s after the lead).
    #[arg(long, default_value_t = 120)]
    run_secs: u64,
    /// `twilio.sms_per_second` of the workers: raised as for a Messaging Service with a
    /// large pool, so the limiter's spacing is not what is measured.
    #[arg(long, default_value_t = 100_000)]
    sms_per_second: u32,
    /// Keep the database, the Redis keys and the logs.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    herald_bench::run::main(BENCH_APP, &args, args.keep, Bench::create(&args)).await;
}
