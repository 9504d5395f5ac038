//! Rate limits that hold across every replica, kept in Redis: at most `per_second` sends per
//! key (a Twilio sender, say), spaced evenly, so a burst of N goes out at 0, 1/rate, 2/rate, …
//! rather than all at the start of a second as a fixed-window counter would let it.
//!
//! Each key holds the earliest instant the next send may happen. One Lua script reads it,
//! reserves the slot at `max(now, next)` and moves it on by `1/rate`, atomically; the clock is
//! Redis's (`TIME`), so replicas with skewed clocks still share one schedule. The caller
//! sleeps until its slot. A slot further away than `max_wait` is not reserved: the caller is
//! told how long the queue is and should give the job back (see `jobs::message`) instead of
//! sleeping past its own timeout.
//!
//! The dispatcher reserves slots for the rows it pushes (`reserve`, several at once, at most
//! `worker.rate_horizon_ms` ahead: see `crate::throttle`) on the same keys, so handlers
//! and dispatcher share one schedule per limit.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_shared::providers::twilio::{Channel, Sender};
use rand::Rng;
use redis::Script;

use crate::context::WorkerContext;

/// Reserves the next slot of KEYS[1] if it is at most ARGV[2] µs away; ARGV[1] is the spacing
/// in µs. Returns `{reserved (0|1), wait in µs}`. Instants are µs since the epoch: about 2^51,
/// exact in Lua's doubles; `%.0f` keeps them out of exponent notation when stored.
const RESERVE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local spacing = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local at = math.max(now, next_free)
local wait = at - now
if wait > max_wait then
  return {0, wait}
end
local following = at + spacing
redis.call('SET', KEYS[1], string.format('%.0f', following),
  'PX', math.floor((following - now) / 1000) + 1000)
return {1, wait}
";

/// Reserves up to ARGV[3] consecutive slots of KEYS[1] that are at most ARGV[2] µs away and
/// at least ARGV[4] µs away; ARGV[1] is the spacing in µs. Returns `{slots reserved, wait in
/// µs until the first}`.
const RESERVE_MANY: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local spacing = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local not_before = now + tonumber(ARGV[4])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local first = math.max(not_before, next_free)
local granted = 0
if first - now <= horizon then
  granted = math.min(wanted, math.floor((now + horizon - first) / spacing) + 1)
end
if granted > 0 then
  local following = first + granted * spacing
  redis.call('SET', KEYS[1], string.format('%.0f', following),
    'PX', math.floor((following - now) / 1000) + 1000)
end
return {granted, first - now}
";

static RESERVE_MANY_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE_MANY));

/// The script, hashed once; redis-rs sends `EVALSHA` and loads it on a `NOSCRIPT`.
static RESERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE));

/// The limiter of a Twilio sender on a channel.
pub fn twilio_limit(sender: &Sender, channel: Channel) -> String {
    format!("twilio:{}", sender.rate_key(channel))
}

/// The limiter of a job kind's own `rate_limit` (jobs.toml), by its queue.
pub fn queue_limit(queue: &str) -> String {
    format!("queue:{queue}")
}

/// The answer of `acquire`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The slot was reserved and its time has come (after waiting this long): send now.
    Now { waited: Duration },
    /// No slot within `max_wait`: the next free one is this far away. Nothing was reserved.
    Later { wait: Duration },
}

/// Waits for a slot to send under `per_second` for `name`, shared by every replica, for at
/// most `max_wait`.
pub async fn acquire(
    ctx: &WorkerContext,
    name: &str,
    per_second: u32,
    max_wait: Duration,
) -> Result<Slot, redis::RedisError> {
    let key = format!("{}rate:{name}", ctx.config.redis.key_prefix);
    let spacing_micros = 1_000_000_u64.div_ceil(u64::from(per_second.max(1)));
    let max_wait_micros = u64::try_from(max_wait.as_micros()).unwrap_or(u64::MAX);
    let mut conn = ctx.redis.clone();
    let (reserved, wait_micros): (u8, u64) = RESERVE_SCRIPT
        .key(&key)
        .arg(spacing_micros)
        .arg(max_wait_micros)
        .invoke_async(&mut conn)
        .await?;
    let wait = Duration::from_micros(wait_micros);
    if reserved == 0 {
        return Ok(Slot::Later { wait });
    }
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    Ok(Slot::Now { waited: wait })
}

/// Slots reserved ahead by [`reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// How many of the slots asked for were reserved.
    pub granted: usize,
    /// From now until the first slot asked for (reserved or not).
    pub first: Duration,
    /// Between consecutive slots.
    pub spacing: Duration,
}

impl Reserved {
    /// From now until slot `n` (0 is the first): reserved when `n < granted`, else where it
    /// would fall if the limit's line did not grow meanwhile.
    pub fn slot(&self, n: usize) -> Duration {
        self.first + self.spacing * u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Reserves up to `wanted` consecutive slots under `per_second` for `name`, those at most
/// `horizon` and at least `not_before` away; nothing waits.
pub async fn reserve(
    ctx: &WorkerContext,
    name: &str,
    per_second: u32,
    horizon: Duration,
    not_before: Duration,
    wanted: usize,
) -> Result<Reserved, redis::RedisError> {
    let not_before_micros = u64::try_from(not_before.as_micros()).unwrap_or(u64::MAX);
    let key = format!("{}rate:{name}", ctx.config.redis.key_prefix);
    let spacing_micros = 1_000_000_u64.div_ceil(u64::from(per_second.max(1)));
    let horizon_micros = u64::try_from(horizon.as_micros()).unwrap_or(u64::MAX);
    let mut conn = ctx.redis.clone();
    let (granted, first_micros): (u64, u64) = RESERVE_MANY_SCRIPT
        .key(&key)
        .arg(spacing_micros)
        .arg(horizon_micros)
        .arg(wanted)
        .arg(not_before_micros)
        .invoke_async(&mut conn)
        .await?;
    Ok(Reserved {
        granted: usize::try_from(granted).unwrap_or(wanted),
        first: Duration::from_micros(first_micros),
        spacing: Duration::from_micros(spacing_micros),
    })
}

/// When a job told `Slot::Later { wait }` should come back: once the queue ahead (`wait`) has
/// shrunk to what it may wait for (`max_wait`), give or take, jittered so that deferred jobs
/// do not all return at one instant.
pub fn come_back_at(wait: Duration, max_wait: Duration) -> DateTime<Utc> {
    let back = wait
        .saturating_sub(max_wait / 2)
        .max(Duration::from_millis(100));
    let back = back.mul_f64(rand::thread_rng().gen_range(1.0..1.2));
    Utc::now() + chrono::Duration::from_std(back).unwrap_or_default()
}
