//! `herald-bench`: how fast do real `herald-worker` processes drain a burst of effects that
//! all fall due at the same instant, and what does that cost in memory and in Redis?
//!
//! One run: a fresh PostgreSQL database and Redis key prefix, N worker replicas started from
//! the binaries next to this one (e-mail in sandbox mode, so no SMTP server is involved and
//! the numbers are Herald's own overhead), `--effects` e-mails planned in a few big INSERTs
//! due at one instant, then a 50 ms sampler of the Redis window and the workers' RSS until
//! every row is final. The figures come from the rows' own timestamps, not the sampler's
//! clock. Everything is torn down afterwards unless `--keep`.
//!
//! ```text
//! cargo build --release --bins && target/release/herald-bench --effects 20000 --replicas 2
//! ```
//!
//! Modules: [`setup`] owns the run's scratch state and processes, [`plan`] writes the burst,
//! [`measure`] runs and samples the drain, [`report`] prints the result; the run's life
//! (teardown whatever happens) is [`herald_bench::run`].

mod measure;
mod plan;
mod report;
mod setup;

use clap::Parser;
use herald_bench::Servers;

use crate::setup::Bench;

/// `application_name` of the bench's own connections.
const BENCH_APP: &str = "herald-bench";

#[derive(Parser, Debug)]
#[command(
    name = "herald-bench",
    about = "Drain-rate benchmark for herald-worker"
)]
pub struct Args {
    /// E-mail effects to plan, all due at one instant.
    #[arg(long, default_value_t = 20_000)]
    effects: i64,
    /// herald-worker processes to run.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    #[command(flatten)]
    servers: Servers,
    /// Seconds between planning and the due instant (the workers must not see half a plan).
    #[arg(long, default_value_t = 2.0)]
    lead_secs: f64,
    /// Spread the due instants evenly over this many seconds instead of one instant; below
    /// the drain rate this measures pickup latency of steady traffic rather than queueing.
    #[arg(long, default_value_t = 0.0)]
    spread_secs: f64,
    /// Override jobs.toml `concurrency` of the email kind (per replica).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Override jobs.toml `window` of the email kind (ids in Redis, all replicas).
    #[arg(long)]
    window: Option<u32>,
    /// Override `worker.poll_interval_ms`.
    #[arg(long)]
    poll_interval_ms: Option<u64>,
    /// Override `worker.dispatch_batch`.
    #[arg(long)]
    dispatch_batch: Option<u32>,
    /// Override `database.max_connections` (per replica).
    #[arg(long)]
    db_max_connections: Option<u32>,
    /// Before planning, count the Redis commands the idle workers cause over this many
    /// seconds (`INFO stats` of the whole server: give the run a private Redis with
    /// `--redis-url`); 0 skips it.
    #[arg(long, default_value_t = 0)]
    idle_secs: u64,
    /// Give up waiting for the drain after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Keep the database, the Redis keys and the worker logs.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    herald_bench::run::main(BENCH_APP, &args, args.keep, Bench::create(&args)).await;
}
