//! One supervised apalis worker per queue, with the counter-measures apalis-redis 1.0 needs:
//! a unique name per run (`{queue}-{replica}-{ulid}-r{run}`, since a reused name is refused
//! for minutes), a short-heartbeat config with idempotency keys enabled, a poll strategy that
//! really wakes the worker (at once when this replica's dispatcher pushes, slowly otherwise,
//! so an idle replica costs Redis little), and a restart with backoff after any Redis error
//! (the worker otherwise ends for good).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use apalis::prelude::*;
use apalis_core::backend::ext::poll_strategy::{PollSnapshot, PollStrategy};
use apalis_redis::{Config as RedisQueueConfig, RedisStorage};
use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use herald_shared::effects::EffectTask;
use herald_shared::jobs_config::JobSettings;
use tokio::sync::watch;

use crate::context::WorkerContext;
use crate::jobs::handle_effect;

/// The apalis-redis settings for one Herald queue.
pub fn queue_config(ctx: &WorkerContext, settings: &JobSettings) -> RedisQueueConfig {
    RedisQueueConfig::default()
        .queue(ctx.redis_queue(&settings.queue))
        // prefetch about what can run, so one replica does not hoard work
        .batch_size(settings.concurrency)
        .heartbeat_interval(Duration::from_secs(5))
        .missed_heartbeats(3)
        // A push key only matters while its task is in Redis, and the sweep trims finished
        // tasks after `redis_task_retention_secs`: a longer TTL would hold about 180 bytes per
        // message for nothing (24 h at 800 messages/s is 12 GiB). The effect row is the real
        // guard against a second run; this only drops a double push of the same dispatch.
        .idempotency_ttl(Some(Duration::from_secs(
            ctx.config.worker.redis_task_retention_secs,
        )))
}

/// Wake-ups for this process's queue workers: the dispatcher calls [`Wakes::wake`] after
/// pushing to a queue, so the local worker fetches at once instead of on its next slow poll.
/// Tasks pushed by other replicas are still found by the slow poll (`worker.poll_interval_ms`).
#[derive(Clone, Default)]
pub struct Wakes(Arc<Mutex<HashMap<String, Arc<Wake>>>>);

/// One queue's wake-up: a push counter and the waker of the worker's fetch loop.
#[derive(Default)]
pub struct Wake {
    pushes: AtomicU64,
    waker: AtomicWaker,
}

impl Wakes {
    /// The wake-up of `queue` (the same one for every run of its worker).
    pub fn of(&self, queue: &str) -> Arc<Wake> {
        let mut wakes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(wakes.entry(queue.to_owned()).or_default())
    }

    /// Tells `queue`'s local worker that tasks were pushed (after the push completed).
    pub fn wake(&self, queue: &str) {
        let wake = self.of(queue);
        wake.pushes.fetch_add(1, Ordering::AcqRel);
        wake.waker.wake();
    }
}

/// While the worker has had tasks within this long it counts as busy and polls every
/// [`BUSY_POLL`]; after that it polls every `worker.poll_interval_ms`.
const BUSY_FOR: Duration = Duration::from_secs(2);
/// The poll period of a busy worker. Measured under steady load, pickup needs it: with only
/// the slow poll and the push wake-ups, tasks waited in Redis (p50 0.17–0.4 s at 2,000/s).
const BUSY_POLL: Duration = Duration::from_millis(25);

/// When a worker fetches again after finding nothing: at once after a local push, every
/// [`BUSY_POLL`] while it has had work lately, and every `period` once it is idle. (apalis's
/// own `PollWith` timers never register a waker, so an idle worker would otherwise only wake
/// on its heartbeat.) A worker that finds tasks fetches again as soon as it has room,
/// whatever the strategy says.
///
/// A push can complete while a fetch that ran in Redis just before it is still being read
/// back. That fetch finds nothing, and the wake-up landed while it was in flight: so after a
/// poll that saw a new push and ended idle, the strategy wakes the worker once more, and the
/// next fetch starts after the push. (The dispatcher and the worker share one multiplexed
/// connection, whose replies come in order, so the stale fetch has always completed by then;
/// with any other ordering the task would still be found by the next poll.)
struct WakeOrEvery {
    busy: tokio::time::Interval,
    idle: tokio::time::Interval,
    wake: Arc<Wake>,
    seen: u64,
    rewake: Option<Waker>,
}

fn interval(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

impl WakeOrEvery {
    fn new(period: Duration, wake: Arc<Wake>) -> Self {
        let seen = wake.pushes.load(Ordering::Acquire);
        Self {
            busy: interval(BUSY_POLL.min(period)),
            idle: interval(period),
            wake,
            seen,
            rewake: None,
        }
    }
}

impl PollStrategy for WakeOrEvery {
    fn poll_drive(&mut self, cx: &mut Context<'_>, snapshot: &PollSnapshot) -> Poll<Option<()>> {
        // register before reading the counter, so a push in between still wakes us
        self.wake.waker.register(cx.waker());
        let pushes = self.wake.pushes.load(Ordering::Acquire);
        let mut fired = false;
        if pushes != self.seen {
            self.seen = pushes;
            self.rewake = Some(cx.waker().clone());
            fired = true;
        }
        let busy = snapshot.total_ready > 0 && snapshot.idle_for < BUSY_FOR;
        let timer = if busy { &mut self.busy } else { &mut self.idle };
        // drain until Pending, so the timer's waker is always registered
        while timer.poll_tick(cx).is_ready() {
            fired = true;
        }
        if fired {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }

    fn on_poll(&mut self, snapshot: &PollSnapshot) {
        if let Some(waker) = self.rewake.take()
            && snapshot.consecutive_ready == 0
        {
            waker.wake();
        }
    }
}

/// Runs the queue's worker until `shutdown` turns true, restarting it (with backoff) after
/// errors. On shutdown, running jobs finish; prefetched ones go back to Redis.
pub async fn supervise(
    ctx: WorkerContext,
    settings: JobSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let queue = settings.queue.clone();
    let mut run: u32 = 0;
    let mut backoff = Duration::from_millis(250);
    loop {
        let name = format!("{}-{}-{}-r{run}", queue, ctx.replica, ulid::Ulid::new());
        ctx.liveness.set(&queue, true);
        tracing::info!(worker = %name, "queue worker started");
        let mut stop = shutdown.clone();
        let signal = async move {
            let _ = stop.wait_for(|stop| *stop).await;
            Ok::<(), std::io::Error>(())
        };
        let worker = start_worker(&ctx, &settings, name.clone(), signal);
        let started = tokio::time::Instant::now();
        let result = worker.await;
        if *shutdown.borrow() {
            tracing::info!(worker = %name, "queue worker stopped");
            return;
        }
        ctx.liveness.set(&queue, false);
        metrics::counter!("herald_worker_restarts_total", "queue" => queue.clone()).increment(1);
        match result {
            Ok(()) => {
                tracing::error!(worker = %name, "queue worker ended unexpectedly; restarting")
            }
            Err(err) => {
                tracing::error!(worker = %name, error = %err, "queue worker failed; restarting")
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_millis(250);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = crate::context::stopped(&mut shutdown) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
        run += 1;
    }
}

/// Builds and starts one apalis worker. A plain function returning a boxed `Send` future:
/// checking `Send` here, on concrete types, avoids rustc's higher-ranked lifetime errors when
/// the caller is spawned.
fn start_worker(
    ctx: &WorkerContext,
    settings: &JobSettings,
    name: String,
    signal: impl Future<Output = Result<(), std::io::Error>> + Send + 'static,
) -> BoxFuture<'static, Result<(), WorkerError>> {
    let storage = RedisStorage::<EffectTask>::new(ctx.redis.clone())
        .with_config(queue_config(ctx, settings))
        .poll_with_strategy(WakeOrEvery::new(
            Duration::from_millis(ctx.config.worker.poll_interval_ms),
            ctx.wakes.of(&settings.queue),
        ));
    let worker = WorkerBuilder::new(name)
        .backend(storage)
        .catch_panic()
        .concurrency(settings.concurrency)
        .data(ctx.clone())
        .parallelize(tokio::spawn)
        .build(handle_effect);
    Box::pin(worker.run_until(signal))
}
