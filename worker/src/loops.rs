//! Supervision of the worker's own loops: the dispatcher, the recovery sweep, the cron runner
//! and the schedule planner.
//!
//! Each loop runs in a task of its own under [`supervise`]. A loop returns an error when a pass
//! fails (and may panic); either way the supervisor logs it, counts it in
//! `herald_loop_restarts_total{loop}`, waits (1 s, doubling up to 10 s, back to 1 s after a
//! run that completed a pass) and starts the loop again. Only the shutdown flag ends it.
//!
//! Each loop records every completed pass in [`Loops`]; `/healthz` reports each loop's last
//! pass and fails while one is **stale**: no pass for `3 × interval + worker.loop_grace_secs`
//! (since the worker started, before the first pass). The interval is how often the loop
//! passes when all is well: the dispatcher's 5 s safety tick, `worker.sweep_interval_secs`,
//! the cron runner's 30 s longest sleep (a cron job that runs long says it is alive as often),
//! and `schedules.plan_interval_ms`. The grace covers one slow pass (a large sweep, a slow
//! database); three intervals allow two missed wake-ups.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::context::WorkerContext;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before a failed loop is restarted: once a database or Redis outage ends,
/// dispatching resumes within this long, however long the outage lasted (a longer cap would
/// hold due work that long for nothing; 10 s still keeps a failing loop's log quiet).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The health of every supervised loop, shared by the loops and `/healthz`.
#[derive(Clone, Default)]
pub struct Loops(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    loops: BTreeMap<&'static str, LoopState>,
    /// Whether the dispatcher holds its LISTEN connection; `None` before it first tried.
    listening: Option<bool>,
}

struct LoopState {
    stale_after: Duration,
    /// When supervision began: staleness counts from here until the first pass.
    since: Instant,
    last_pass: Option<(Instant, DateTime<Utc>)>,
    restarts: u64,
    last_error: Option<String>,
}

/// One loop as `/healthz` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LoopReport {
    pub name: &'static str,
    /// When the loop last completed a pass (`null`: not yet).
    pub last_pass_at: Option<DateTime<Utc>>,
    /// Seconds without a pass after which the loop counts as stale.
    pub stale_after_secs: f64,
    pub stale: bool,
    /// Restarts after an error or a panic since the worker started.
    pub restarts: u64,
    /// Why it last restarted.
    pub last_error: Option<String>,
}

impl Loops {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        self.0.lock().ok().map(|mut state| f(&mut state))
    }

    /// Starts watching loop `name`; it is stale after `stale_after` without a pass.
    pub fn register(&self, name: &'static str, stale_after: Duration) {
        self.with(|state| {
            state.loops.insert(
                name,
                LoopState {
                    stale_after,
                    since: Instant::now(),
                    last_pass: None,
                    restarts: 0,
                    last_error: None,
                },
            );
        });
    }

    /// Records that loop `name` completed a pass (or, for a long cron job, is still at it).
    pub fn passed(&self, name: &'static str) {
        self.with(|state| {
            if let Some(state) = state.loops.get_mut(name) {
                state.last_pass = Some((Instant::now(), Utc::now()));
            }
        });
    }

    fn failed(&self, name: &'static str, error: &str) {
        self.with(|state| {
            if let Some(state) = state.loops.get_mut(name) {
                state.restarts += 1;
                state.last_error = Some(error.to_owned());
            }
        });
    }

    fn passed_since(&self, name: &'static str, since: Instant) -> bool {
        self.with(|state| {
            state
                .loops
                .get(name)
                .and_then(|state| state.last_pass)
                .is_some_and(|(at, _)| at >= since)
        })
        .unwrap_or(false)
    }

    /// Records whether the dispatcher's LISTEN connection is up.
    pub fn set_listening(&self, listening: bool) {
        self.with(|state| state.listening = Some(listening));
        metrics::gauge!("herald_dispatcher_listening").set(if listening { 1.0 } else { 0.0 });
    }

    /// Whether the dispatcher's LISTEN connection is up (`None` before its first try).
    pub fn listening(&self) -> Option<bool> {
        self.with(|state| state.listening).flatten()
    }

    /// Every loop, by name.
    pub fn report(&self) -> Vec<LoopReport> {
        let now = Instant::now();
        self.with(|state| {
            state
                .loops
                .iter()
                .map(|(name, loop_state)| {
                    let last = loop_state.last_pass.map_or(loop_state.since, |(at, _)| at);
                    LoopReport {
                        name,
                        last_pass_at: loop_state.last_pass.map(|(_, at)| at),
                        stale_after_secs: loop_state.stale_after.as_secs_f64(),
                        stale: now.duration_since(last) > loop_state.stale_after,
                        restarts: loop_state.restarts,
                        last_error: loop_state.last_error.clone(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
    }
}

/// How long loop with pass `interval` may go without a pass before it is stale (see the
/// module docs).
pub fn stale_after(ctx: &WorkerContext, interval: Duration) -> Duration {
    interval * 3 + Duration::from_secs(ctx.config.worker.loop_grace_secs)
}

/// Runs `body` until `shutdown` turns true, starting it again after it fails, panics or ends
/// early (see the module docs). `body` gets the context and the shutdown flag, and returns
/// `Ok` only on shutdown.
pub async fn supervise<F, Fut>(
    ctx: WorkerContext,
    name: &'static str,
    stale_after: Duration,
    mut shutdown: watch::Receiver<bool>,
    body: F,
) where
    F: Fn(WorkerContext, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    ctx.loops.register(name, stale_after);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        // a task of its own, so a panic is caught here instead of ending the worker's task
        let mut task = AbortOnDrop(tokio::spawn(body(ctx.clone(), shutdown.clone())));
        let ended = (&mut task.0).await;
        if *shutdown.borrow() {
            return;
        }
        let error = match ended {
            Ok(Ok(())) => "ended before shutdown".to_owned(),
            Ok(Err(err)) => format!("{err:#}"),
            Err(join) if join.is_panic() => format!("panicked: {}", panic_text(join)),
            Err(join) => join.to_string(),
        };
        if ctx.loops.passed_since(name, started) {
            backoff = FIRST_BACKOFF;
        }
        tracing::error!(worker_loop = name, error = %error, restart_in = ?backoff, "worker loop failed; restarting");
        metrics::counter!("herald_loop_restarts_total", "loop" => name).increment(1);
        ctx.loops.failed(name, &error);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = crate::context::stopped(&mut shutdown) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Aborts the loop's task if the supervisor itself is dropped (the shutdown grace ran out).
struct AbortOnDrop(tokio::task::JoinHandle<anyhow::Result<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_text(join: tokio::task::JoinError) -> String {
    let payload = join.into_panic();
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}
