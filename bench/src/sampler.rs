//! Watching the workers work through a run's rows: a [`Baseline`] taken while they idle,
//! then a sampler that every 50 ms reads the queue's window (queued rows), the Redis depth
//! of the queue and each worker's RSS and keeps the maxima until every row is final, then
//! the CPU time all of it cost.

use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;

use super::cpu::CpuUse;
use super::process::rss_kib;
use super::rows::Rows;
use super::scratch::Scratch;
use super::workers::Workers;

const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Samples between progress lines (10 s).
const PROGRESS_EVERY: u32 = 200;

/// What the sampler saw.
#[derive(Debug, Default)]
pub struct Peaks {
    /// Most rows of the queue in state `queued` at once.
    pub window: i64,
    /// Most ids in the queue's Redis `scheduled` set and `active` list together.
    pub redis_depth: i64,
    /// Peak RSS per replica, in KiB.
    pub rss_kib: Vec<u64>,
    pub samples: u64,
}

/// Taken once the workers are healthy, before any row is planned: what the drain's figures
/// are measured against.
pub struct Baseline {
    idle_rss: Vec<u64>,
    pids: Vec<u32>,
    cpu: CpuUse,
    started: Instant,
}

/// What the workers' drain of the rows cost.
#[derive(Debug)]
pub struct Drained {
    /// Each worker's RSS after idling, KiB.
    pub idle_rss: Vec<u64>,
    pub peaks: Peaks,
    /// CPU time from the baseline until every row was final.
    pub cpu: CpuUse,
    /// Wall time from [`Baseline::start_clock`] until every row was final.
    pub wall: Duration,
}

impl Baseline {
    /// Lets the freshly started workers (listening on `ports`) idle for 2 s so startup
    /// allocations settle, then reads their RSS and everyone's CPU time.
    pub async fn take(
        scratch: &Scratch,
        workers: &Workers,
        ports: &[u16],
        redis: &mut ConnectionManager,
    ) -> anyhow::Result<Self> {
        let pids = workers.pids();
        eprintln!(
            "{} worker(s) healthy on ports {ports:?}; idling 2 s",
            pids.len()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_rss = pids
            .iter()
            .map(|pid| rss_kib(*pid))
            .collect::<anyhow::Result<_>>()?;
        let cpu = CpuUse::now(scratch.pool()?, redis, &pids, scratch.app).await?;
        Ok(Self {
            idle_rss,
            pids,
            cpu,
            started: Instant::now(),
        })
    }

    /// Starts the wall clock of [`Drained::wall`] (else it runs from the baseline).
    pub fn start_clock(&mut self) {
        self.started = Instant::now();
    }

    /// Samples every 50 ms until none of `rows` is left to work on (checked once nothing
    /// waits and `due` has passed), keeping the maxima; then reads the wall time and the CPU
    /// time used since the baseline. Fails when a worker exits or after `timeout_secs`.
    pub async fn until_final(
        self,
        scratch: &Scratch,
        workers: &mut Workers,
        redis: &mut ConnectionManager,
        rows: Rows<'_>,
        due: DateTime<Utc>,
        timeout_secs: u64,
    ) -> anyhow::Result<Drained> {
        let (unit, when, unfinished) = rows.wording();
        // One dedicated connection: the sampler should not queue behind anything.
        let mut conn = scratch.pool()?.acquire().await?;
        let scheduled = format!("{}{}:scheduled", scratch.prefix, scratch.queue);
        let active = format!("{}{}:active", scratch.prefix, scratch.queue);
        let mut peaks = Peaks {
            rss_kib: vec![0; workers.pids().len()],
            ..Peaks::default()
        };
        let deadline = Instant::now() + Duration::from_secs(timeout_secs);
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut round: u32 = 0;
        let peaks = loop {
            tick.tick().await;
            round += 1;
            peaks.samples += 1;
            // The dispatcher's own count: served by the small `effects_queued` index.
            let queued: i64 = sqlx::query_scalar(
                "select count(*) from effects where queue = $1 and state = 'queued'",
            )
            .bind(&scratch.queue)
            .fetch_one(&mut *conn)
            .await?;
            peaks.window = peaks.window.max(queued);
            let (zcard, llen): (i64, i64) = redis::pipe()
                .zcard(&scheduled)
                .llen(&active)
                .query_async(redis)
                .await?;
            peaks.redis_depth = peaks.redis_depth.max(zcard + llen);
            workers.sample_rss(&mut peaks.rss_kib, when)?;
            // Not-yet-final rows can only be absent once nothing waits in the window, so the
            // costlier count runs only then (and now and then, for the progress line).
            let idle = queued == 0 && zcard + llen == 0 && Utc::now() > due;
            let progress = round.is_multiple_of(PROGRESS_EVERY);
            if idle || progress {
                let left = rows.unfinished(&mut conn).await?;
                if left == 0 {
                    break peaks;
                }
                if progress {
                    eprintln!("  {left} {unit} left, {queued} queued");
                }
            }
            if Instant::now() > deadline {
                bail!("{unfinished} after {timeout_secs} s");
            }
        };
        let wall = self.started.elapsed();
        drop(conn);
        let cpu = CpuUse::now(scratch.pool()?, redis, &self.pids, scratch.app)
            .await?
            .since(&self.cpu);
        Ok(Drained {
            idle_rss: self.idle_rss,
            peaks,
            cpu,
            wall,
        })
    }
}
