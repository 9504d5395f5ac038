//! Rate limits applied where rows are claimed. Before the dispatcher pushes the rows it
//! picked, it reserves each one's slots: its Twilio sender's (per number or Messaging
//! Service and channel) and its kind's `rate_limit` from jobs.toml. Slots are given out at
//! most `worker.rate_horizon_ms` ahead; the task carries its slot, and the handler starts the
//! row at that instant without taking a slot again. A row whose slot would be further away
//! is not pushed: it stays `planned`/`retrying` in PostgreSQL, due again about half a
//! horizon before its turn in its limit's line (on a grid of quarter horizons: `on_grid`). So a backlog of 10,000 messages on a sender allowed
//! 20 a second costs one push and one attempt per message, and the sender's slots within the
//! horizon are shared by whichever accounts have rows due — the dispatcher's fair claim
//! interleaves them — instead of being booked 500 s ahead by the first account's backlog.
//!
//! Where a row's turn falls is projected from the end of its limit's line in Redis, then
//! after the rows of the same account this dispatcher already postponed (`tails`, per limit
//! and account, kept in memory). Per account, so that another account's first rows are
//! projected to the front of the line, not behind a backlog: when they come due with the
//! backlog's rows, the fair claim interleaves them. The loser of a turn two rows were
//! projected onto is postponed again, behind its own account's rows. A dispatcher taking the
//! queue over from another replica starts from Redis alone: rows projected twice onto the
//! same turns are postponed again when they find them taken.
//!
//! A row under two limits (a kind's `rate_limit` and a sender's) that gets a slot in the
//! first but none in the second leaves that first slot unused: the limit is never exceeded,
//! only slightly under-used. A student who changed channel after the push, or an account
//! that changed sender, is under a limit the dispatcher did not reserve: the handler takes
//! that slot itself (`rate_limit::acquire`).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_shared::db::effects::Due;
use herald_shared::db::outbound_messages;
use herald_shared::effects::{EffectKind, ReservedSlot};
use herald_shared::providers::twilio::Channel;
use uuid::Uuid;

use crate::context::WorkerContext;
use crate::rate_limit::{self, queue_limit, twilio_limit};

/// The earliest a postponed row is due again: never at once, which would spin.
const MIN_POSTPONE: Duration = Duration::from_millis(20);
/// The finest grid postponed rows come due on, in µs.
const GRID_MIN: i64 = 10_000;

/// What the dispatcher does with the rows it picked.
#[derive(Debug, Default)]
pub struct Decision {
    /// Rows to push now, each with the slot reserved for it or its instant when it is not due
    /// yet (`None`: under no limit and due).
    pub push: Vec<(Uuid, Option<ReservedSlot>)>,
    /// Rows left in PostgreSQL, due again at the given time.
    pub postpone: Vec<(Uuid, DateTime<Utc>)>,
}

/// One rate limit: its limiter's name and rate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Limit {
    name: String,
    per_second: u32,
}

/// A dispatcher's view of its limits' lines; one per dispatcher loop.
#[derive(Debug, Default)]
pub struct Throttle {
    /// Per limit and account, when the turns of the rows this dispatcher postponed end.
    tails: HashMap<(String, Uuid), DateTime<Utc>>,
}

impl Throttle {
    /// Reserves slots for the rows `due` (in the claim's fair order) and decides which are
    /// pushed now and which wait in PostgreSQL.
    pub async fn decide(&mut self, ctx: &WorkerContext, due: &[Due]) -> anyhow::Result<Decision> {
        let limits = limits_of(ctx, due).await?;
        let now = Utc::now();
        let horizon = Duration::from_millis(ctx.config.worker.rate_horizon_ms);
        self.tails.retain(|_, tail| *tail > now);

        let mut slot_at: Vec<Option<DateTime<Utc>>> = vec![None; due.len()];
        let mut reserved_in: Vec<Vec<String>> = vec![Vec::new(); due.len()];
        let mut postponed_to: Vec<Option<DateTime<Utc>>> = vec![None; due.len()];
        for limit in distinct(&limits) {
            let rows: Vec<usize> = (0..due.len())
                .filter(|&row| postponed_to[row].is_none() && limits[row].contains(&limit))
                .collect();
            // Rows claimed ahead of their instant (the dispatch lead) take slots from their
            // latest instant on: a row is never started before it is due, and starting it at
            // its slot then keeps the limit's spacing.
            let not_before = rows
                .iter()
                .map(|&row| (due[row].due_at - now).to_std().unwrap_or_default())
                .max()
                .unwrap_or_default();
            let reserved = rate_limit::reserve(
                ctx,
                &limit.name,
                limit.per_second,
                horizon,
                not_before,
                rows.len(),
            )
            .await?;
            let line_end = now + reserved.slot(reserved.granted);
            for (n, &row) in rows.iter().enumerate() {
                if n < reserved.granted {
                    let at = now + reserved.slot(n);
                    slot_at[row] = Some(slot_at[row].map_or(at, |earlier| earlier.max(at)));
                    reserved_in[row].push(limit.name.clone());
                    continue;
                }
                let tail = self
                    .tails
                    .entry((limit.name.clone(), due[row].account_id))
                    .or_insert(line_end);
                let turn = (*tail).max(line_end);
                *tail = turn + reserved.spacing;
                let lead = (turn - now)
                    .to_std()
                    .unwrap_or_default()
                    .saturating_sub(horizon / 2)
                    .max(MIN_POSTPONE);
                postponed_to[row] = Some(on_grid(now + lead, horizon / 4));
            }
            let waiting = rows.len().saturating_sub(reserved.granted);
            if waiting > 0 {
                metrics::counter!("herald_rate_limit_postponed_total", "limit" => limit.name)
                    .increment(waiting as u64);
            }
        }

        let mut decision = Decision::default();
        for (row, ((until, at), limits)) in due
            .iter()
            .zip(postponed_to.into_iter().zip(slot_at).zip(reserved_in))
        {
            match (until, at) {
                (Some(until), _) => decision.postpone.push((row.id, until)),
                (None, Some(at)) => decision
                    .push
                    .push((row.id, Some(ReservedSlot { at, limits }))),
                // under no limit: started at its instant when claimed ahead of it
                (None, None) => decision.push.push((
                    row.id,
                    (row.due_at > now).then(|| ReservedSlot {
                        at: row.due_at,
                        limits: Vec::new(),
                    }),
                )),
            }
        }
        Ok(decision)
    }
}

/// The limits each row goes out under, aligned with `due`: its kind's `rate_limit`, and for
/// a message to a student (outside sandbox mode) its Twilio sender's limit.
async fn limits_of(ctx: &WorkerContext, due: &[Due]) -> Result<Vec<Vec<Limit>>, sqlx::Error> {
    let mut limits: Vec<Vec<Limit>> = due
        .iter()
        .map(|row| {
            let settings = ctx.jobs.get(row.kind);
            settings
                .rate_limit
                .map(|rate| Limit {
                    name: queue_limit(&settings.queue),
                    per_second: rate.per_second,
                })
                .into_iter()
                .collect()
        })
        .collect();
    if ctx.twilio.is_sandbox() {
        return Ok(limits);
    }
    let messages: Vec<Uuid> = due
        .iter()
        .filter(|row| row.kind == EffectKind::Message)
        .map(|row| row.id)
        .collect();
    if messages.is_empty() {
        return Ok(limits);
    }
    let position: HashMap<Uuid, usize> = due
        .iter()
        .enumerate()
        .map(|(position, row)| (row.id, position))
        .collect();
    for found in outbound_messages::student_senders(&ctx.db, &messages).await? {
        let Some(channel) = found.channel.as_deref().and_then(Channel::parse) else {
            continue;
        };
        let (Some(sender), Some(&row)) = (
            ctx.twilio.sender_for(channel, &found.senders),
            position.get(&found.effect_id),
        ) else {
            continue;
        };
        limits[row].push(Limit {
            name: twilio_limit(&sender, channel),
            per_second: ctx.twilio.per_second(channel),
        });
    }
    Ok(limits)
}

/// `at` rounded up to a multiple of `step` since the epoch. Postponed rows come due on this
/// grid, so rows of different accounts projected near the same turn are claimed in one
/// round, where the fair claim interleaves them. Off the grid, the row due a moment earlier
/// would take every slot that frees up: a large backlog, whose rows fall due every few
/// milliseconds, would keep another account's rows waiting for good.
fn on_grid(at: DateTime<Utc>, step: Duration) -> DateTime<Utc> {
    let step = i64::try_from(step.as_micros())
        .unwrap_or(i64::MAX)
        .max(GRID_MIN);
    let micros = at.timestamp_micros();
    let rounded = micros.div_euclid(step) * step + if micros % step == 0 { 0 } else { step };
    DateTime::from_timestamp_micros(rounded).unwrap_or(at)
}

/// Each limit once, in the order rows first name it.
fn distinct(limits: &[Vec<Limit>]) -> Vec<Limit> {
    let mut distinct: Vec<Limit> = Vec::new();
    for limit in limits.iter().flatten() {
        if !distinct.contains(limit) {
            distinct.push(limit.clone());
        }
    }
    distinct
}
