//! Notices Redis losing its data (`FLUSHALL`, a failover to an empty replica, a restart
//! without persistence) within seconds, and dispatches again at once the rows it held.
//!
//! The deployment's Redis holds one epoch key, `{key_prefix}herald-epoch`, whose value is a
//! ULID. The dispatcher reads it at most every `worker.redis_epoch_check_ms` (one `GET`) and
//! compares it with the value it last saw:
//! - the same: nothing was lost;
//! - another value: another replica found the key missing, wrote a new epoch and
//!   re-dispatched the rows; this replica adopts it and does nothing more;
//! - missing: Redis lost its data. The replica writes a new epoch with `SET NX` (only one
//!   replica wins) and the winner moves every `queued` row of this deployment's queues back to
//!   `planned`, due now; the dispatcher pushes them again in its next round.
//!
//! A process that finds the key missing at its first check (a fresh Redis, or one that lost
//! its data while no worker ran) re-dispatches only the rows queued before it started: those
//! were pushed to a Redis that no longer holds them, while a row queued since may have been
//! pushed by another new replica to this Redis (a duplicate would be harmless, see below, but
//! useless). What the process saw survives restarts of the dispatcher loop, so a Redis
//! restart that makes the dispatcher fail is still noticed when it comes back.
//!
//! Without this, such rows wait for the sweep's `worker.requeue_after_secs`.
//!
//! **Why a duplicate Redis copy sends nothing twice.** The loss is noticed some time after it
//! happened, and rows pushed in between (by any replica, after the flush) are in Redis and
//! still `queued`: they are re-planned and pushed a second time (a new dispatch number, so a
//! new push key). Each copy's handler first moves its row `queued → sending` with a
//! conditional update (`effects::start_sending`, `… where state = 'queued'`), so exactly one
//! copy starts the row and the other finds it `planned`, `queued` again for the next
//! dispatch, `sending` or finished; a copy that finds it `planned` does nothing, and the
//! later dispatch is started only by whichever copy reaches it first. The cost of the race
//! is one extra task that does nothing, never a second send. Rows already `sending` are not
//! touched.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use herald_shared::config::Config;
use herald_shared::db::effects::{self, Requeue};
use tokio::time::Instant;

use crate::context::WorkerContext;

/// This process's view of the Redis epoch, shared by every run of the dispatcher loop.
#[derive(Clone)]
pub struct Epoch {
    key: String,
    every: Duration,
    booted: DateTime<Utc>,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    /// The epoch last read or written; `None` before the first check.
    known: Option<String>,
    checked_at: Option<Instant>,
}

impl Epoch {
    pub fn new(config: &Config) -> Self {
        Self {
            key: format!("{}herald-epoch", config.redis.key_prefix),
            every: Duration::from_millis(config.worker.redis_epoch_check_ms),
            booted: Utc::now(),
            seen: Arc::default(),
        }
    }

    /// How often the dispatcher looks at the epoch.
    pub fn interval(&self) -> Duration {
        self.every
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks the epoch if the last check is older than the interval; returns how many rows
    /// were dispatched again.
    pub async fn check_if_due(&self, ctx: &WorkerContext) -> anyhow::Result<u64> {
        if self
            .seen()
            .checked_at
            .is_some_and(|at| at.elapsed() < self.every)
        {
            return Ok(0);
        }
        self.check(ctx).await
    }

    /// Reads the epoch now and, when Redis lost its data, re-dispatches the rows it held.
    pub async fn check(&self, ctx: &WorkerContext) -> anyhow::Result<u64> {
        let mut conn = ctx.redis.clone();
        let current: Option<String> = redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut conn)
            .await
            .context("read the Redis epoch")?;
        let known = {
            let mut seen = self.seen();
            seen.checked_at = Some(Instant::now());
            seen.known.clone()
        };
        if let Some(current) = current {
            if known.is_some() && known.as_ref() != Some(&current) {
                tracing::warn!(
                    "Redis lost its data; another replica has dispatched its rows again"
                );
            }
            self.seen().known = Some(current);
            return Ok(0);
        }
        let mine = ulid::Ulid::new().to_string();
        let set: Option<String> = redis::cmd("SET")
            .arg(&self.key)
            .arg(&mine)
            .arg("NX")
            .query_async(&mut conn)
            .await
            .context("write a new Redis epoch")?;
        if set.is_none() {
            // another replica won the race and re-dispatches; adopt what it wrote
            self.seen().known = redis::cmd("GET")
                .arg(&self.key)
                .query_async(&mut conn)
                .await
                .context("read the Redis epoch")?;
            return Ok(0);
        }
        let queued_before = if known.is_some() {
            Utc::now()
        } else {
            self.booted
        };
        let queues: Vec<String> = ctx.jobs.all().map(|s| s.queue.clone()).collect();
        let lost = Requeue::Lost {
            queues: &queues,
            queued_before,
        };
        let requeued = match effects::requeue(&ctx.db, lost).await {
            Ok(requeued) => requeued,
            Err(err) => {
                // Let the key go missing again, so that the next check (by any replica) does
                // the work.
                let _: Result<i64, _> = redis::cmd("DEL")
                    .arg(&self.key)
                    .query_async(&mut conn)
                    .await;
                return Err(anyhow::Error::new(err).context("dispatch again the rows Redis lost"));
            }
        };
        self.seen().known = Some(mine);
        if requeued > 0 {
            tracing::warn!(
                rows = requeued,
                "Redis lost its data (no epoch key): its queued rows are dispatched again"
            );
        }
        metrics::counter!("herald_redis_epoch_requeued_total").increment(requeued);
        Ok(requeued)
    }
}
