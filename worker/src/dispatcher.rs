//! The dispatcher: moves due effect rows from PostgreSQL to their apalis queue in Redis.
//!
//! Every replica runs one. Per queue, a round takes a transaction-scoped advisory lock (one
//! replica dispatches a queue at a time), counts the rows already waiting in Redis, picks at
//! most `min(batch, window − waiting)` due rows with `for update skip locked`, reserves their
//! rate-limit slots (`crate::throttle`: a row with no slot within the horizon stays in
//! PostgreSQL, due again near its turn), marks the others `queued`, commits, and only then
//! pushes their ids with their slots. So Redis never holds more than the window, however many rows
//! are due. Rows are claimed up to `worker.dispatch_lead_ms` before they fall due and carry
//! their instant: the handler holds the row (still `queued`) until then, so steady traffic
//! starts on time instead of a dispatch round and a fetch late. It sleeps until a `herald_effects` notification (new or re-planned work), the
//! next due time, or a 5 s safety tick — no busy polling; while a window is full it checks
//! again every 50 ms. A lost LISTEN connection is reconnected with backoff; the loop itself
//! runs under `crate::loops::supervise`.
//!
//! Commit before push: a worker can start a task a few milliseconds after the push, and a
//! row whose claim is not yet committed still reads `planned`, so the handler would skip it
//! and the row would sit `queued` with no task until the sweep. If the push fails after the
//! commit, the rows do sit `queued` without a task, and the sweep dispatches them again
//! after `worker.requeue_after_secs`.
//!
//! Redis losing its data is noticed through an epoch key (`crate::redis_epoch`), checked at
//! most every `worker.redis_epoch_check_ms` before a round: the rows it held are dispatched
//! again at once. While rows are in flight the dispatcher wakes at least that often to look.

use std::collections::HashMap;
use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::RedisStorage;
use chrono::{DateTime, Utc};
use futures::stream;
use herald_shared::db::effects;
use herald_shared::effects::{EffectTask, ReservedSlot};
use herald_shared::jobs_config::JobSettings;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use uuid::Uuid;

use crate::context::WorkerContext;
use crate::queue::queue_config;
use crate::throttle::Throttle;

/// The notification channel written by the `effects` triggers.
pub const CHANNEL: &str = "herald_effects";
/// The dispatcher's name in `/healthz` and logs.
pub const LOOP: &str = "dispatcher";
/// Longest wait between rounds: a lost notification delays work at most this long.
pub const SAFETY_TICK: Duration = Duration::from_secs(5);
const WINDOW_FULL_RECHECK: Duration = Duration::from_millis(50);
const FIRST_RECONNECT: Duration = Duration::from_millis(500);
const MAX_RECONNECT: Duration = Duration::from_secs(30);

/// What one round did for one queue.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub pushed: usize,
    /// More due rows may be waiting: run another round at once.
    pub more: bool,
    /// The window is full (or another replica holds the queue): check again soon.
    pub blocked: bool,
    /// Rows of the queue are in Redis (`queued`): a loss of Redis data would hold them.
    pub in_flight: bool,
}

/// Dispatches until `shutdown` turns true. A round that fails for any queue (after every
/// queue had its turn) ends the run with the error, for the supervisor to restart it.
pub async fn run(ctx: WorkerContext, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut notifications = Notifications::connect(&ctx).await;
    let queues: Vec<JobSettings> = ctx.jobs.all().cloned().collect();
    let mut throttle = Throttle::default();
    loop {
        let mut more = false;
        let mut blocked = false;
        let mut in_flight = false;
        let mut failed = None;
        if let Err(err) = ctx.epoch.check_if_due(&ctx).await {
            failed = Some(err);
        }
        for settings in &queues {
            match dispatch_round(&ctx, settings, &mut throttle).await {
                Ok(round) => {
                    more |= round.more;
                    blocked |= round.blocked;
                    in_flight |= round.in_flight;
                }
                Err(err) => {
                    failed.get_or_insert(err.context(format!("dispatch queue {}", settings.queue)));
                }
            }
        }
        if let Some(err) = failed {
            return Err(err);
        }
        ctx.loops.passed(LOOP);
        if *shutdown.borrow() {
            return Ok(());
        }
        if more {
            tokio::task::yield_now().await;
            continue;
        }
        let mut wait = if blocked {
            WINDOW_FULL_RECHECK
        } else {
            until_next_due(&ctx, &queues).await
        };
        if in_flight {
            wait = wait.min(ctx.epoch.interval());
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::context::stopped(&mut shutdown) => return Ok(()),
            () = notifications.next(&ctx) => {}
        }
    }
}

/// The LISTEN connection on [`CHANNEL`], reconnected with backoff (0.5 s doubling up to
/// 30 s) whenever it is lost; meanwhile the dispatcher works on its safety tick. Its state
/// shows in `/healthz` as `dispatcher_listening`.
struct Notifications {
    listener: Option<PgListener>,
    retry_at: tokio::time::Instant,
    backoff: Duration,
}

impl Notifications {
    async fn connect(ctx: &WorkerContext) -> Self {
        let mut notifications = Self {
            listener: None,
            retry_at: tokio::time::Instant::now(),
            backoff: FIRST_RECONNECT,
        };
        notifications.reconnect(ctx).await;
        notifications
    }

    /// Resolves on a notification, or once a lost connection is back (notifications may have
    /// been missed meanwhile, so the caller runs a round either way). Cancel-safe: the
    /// dispatcher drops it whenever its timer fires first, and the backoff survives.
    async fn next(&mut self, ctx: &WorkerContext) {
        loop {
            match &mut self.listener {
                Some(listener) => match listener.recv().await {
                    Ok(_) => return,
                    Err(err) => {
                        tracing::warn!(error = %err, "LISTEN connection lost; reconnecting");
                        self.listener = None;
                        ctx.loops.set_listening(false);
                        self.retry_at = tokio::time::Instant::now() + self.backoff;
                    }
                },
                None => {
                    tokio::time::sleep_until(self.retry_at).await;
                    if self.reconnect(ctx).await {
                        return;
                    }
                }
            }
        }
    }

    /// One try to LISTEN again; on failure the next try waits twice as long.
    async fn reconnect(&mut self, ctx: &WorkerContext) -> bool {
        match listen(ctx).await {
            Ok(listener) => {
                if self.backoff > FIRST_RECONNECT {
                    tracing::info!("LISTEN connection restored");
                }
                self.listener = Some(listener);
                self.backoff = FIRST_RECONNECT;
                ctx.loops.set_listening(true);
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?self.backoff, "cannot LISTEN; dispatching on the safety tick meanwhile");
                ctx.loops.set_listening(false);
                self.retry_at = tokio::time::Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_RECONNECT);
                false
            }
        }
    }
}

async fn listen(ctx: &WorkerContext) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(&ctx.db).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Until the next row of any queue is within the dispatch lead of falling due.
async fn until_next_due(ctx: &WorkerContext, queues: &[JobSettings]) -> Duration {
    let mut wait = SAFETY_TICK;
    for settings in queues {
        if let Ok(Some(due)) = effects::next_due(&ctx.db, &settings.queue).await {
            let until = (due - Utc::now())
                .to_std()
                .unwrap_or_default()
                .saturating_sub(lead(ctx));
            wait = wait.min(until);
        }
    }
    wait
}

/// How long before rows fall due they are pushed (`worker.dispatch_lead_ms`).
fn lead(ctx: &WorkerContext) -> Duration {
    Duration::from_millis(ctx.config.worker.dispatch_lead_ms)
}

/// One dispatch round for one queue.
pub async fn dispatch_round(
    ctx: &WorkerContext,
    settings: &JobSettings,
    throttle: &mut Throttle,
) -> anyhow::Result<Round> {
    let mut tx = ctx.db.begin().await?;
    if !effects::try_lock_queue(&mut tx, &settings.queue).await? {
        return Ok(Round {
            blocked: true,
            ..Round::default()
        });
    }
    let waiting = effects::count_queued(&mut tx, &settings.queue).await?;
    let room = i64::from(settings.window) - waiting;
    metrics::gauge!("herald_queue_window_used", "queue" => settings.queue.clone())
        .set(waiting as f64);
    if room <= 0 {
        return Ok(Round {
            blocked: true,
            in_flight: true,
            ..Round::default()
        });
    }
    let limit = room.min(i64::from(ctx.config.worker.dispatch_batch));
    let due = effects::claim_due(&mut tx, &settings.queue, limit, lead(ctx)).await?;
    let more = i64::try_from(due.len()).unwrap_or(i64::MAX) == limit;
    let decision = throttle.decide(ctx, &due).await?;
    if !decision.postpone.is_empty() {
        let (ids, until): (Vec<Uuid>, Vec<DateTime<Utc>>) = decision.postpone.into_iter().unzip();
        effects::postpone(&mut tx, &ids, &until).await?;
    }
    let mut slots: HashMap<Uuid, Option<ReservedSlot>> = decision.push.into_iter().collect();
    let ids: Vec<Uuid> = slots.keys().copied().collect();
    let claimed = if ids.is_empty() {
        Vec::new()
    } else {
        effects::mark_queued(&mut tx, &ids).await?
    };
    if claimed.is_empty() {
        // postponed rows only: their new due times must hold
        tx.commit().await?;
        return Ok(Round {
            more,
            in_flight: waiting > 0,
            ..Round::default()
        });
    }
    let tasks: Vec<_> = claimed
        .iter()
        .map(|row| {
            let task = EffectTask {
                effect_id: row.id,
                slot: slots.remove(&row.id).flatten(),
            };
            // The key names this dispatch of the row: Redis drops a second push of it, and a
            // re-dispatch by the sweep (one more `dispatches`) is a new key.
            TaskBuilder::new(task)
                .idempotency_key(format!("{}:{}", row.id, row.dispatches))
                .build()
        })
        .collect();
    // The rows must read `queued` before any worker can see their ids (see the module docs).
    tx.commit().await?;
    let mut storage =
        RedisStorage::<EffectTask>::new(ctx.redis.clone()).with_config(queue_config(ctx, settings));
    storage.push_all(stream::iter(tasks)).await.map_err(|err| {
        anyhow::anyhow!(
            "push to Redis: {err}; {} claimed rows stay `queued` until the sweep dispatches them again",
            claimed.len()
        )
    })?;
    ctx.wakes.wake(&settings.queue);
    let pushed = claimed.len();
    metrics::counter!("herald_effects_dispatched_total", "queue" => settings.queue.clone())
        .increment(pushed as u64);
    Ok(Round {
        pushed,
        more,
        blocked: false,
        in_flight: true,
    })
}
