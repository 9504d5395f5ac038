//! The limits generation jobs share across every replica, kept in Redis:
//!
//! - **A provider's requests and tokens per minute.** Each is a schedule of the earliest
//!   instant the next call may start (as `crate::rate_limit` keeps for senders): a call takes
//!   the later of the two, moves the request schedule on by `60 s / requests_per_minute` and
//!   the token schedule by its reserved tokens × `60 s / tokens_per_minute`. A call reserves
//!   its prompt's estimate plus `llm.max_output_tokens`, and settles with the `usage` the
//!   answer reports: a call that used more than it reserved (the estimate was low) moves the
//!   schedule on by the difference. One that used less gives nothing back, because OpenAI
//!   counts a request against its tokens per minute at `max_tokens` plus the prompt when it
//!   arrives, whatever the answer then uses (measured with the benchmark's stand-in, which
//!   counts the same way: giving unused tokens back sent 18 % more than the limit and drew
//!   429s). Calls are spread evenly rather than let through in bursts at the start of each
//!   minute, so the provider's own per-minute limit is never met head-on.
//! - **A provider's own "wait"**: a 429 moves both schedules to the instant it asked for, so
//!   every replica waits, not only the job that was told.
//! - **Jobs running per account** (`llm.max_concurrent_per_account`): leases in a sorted set
//!   per account, each expiring after twice the job's timeout so a replica that died holding
//!   one does not hold it for ever. A job with no lease goes back to the dispatcher uncounted,
//!   and the dispatcher's fair share hands the freed slots to other accounts meanwhile.
//!
//! The clock is Redis's (`TIME`) in every script, so replicas with skewed clocks share one
//! schedule.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use uuid::Uuid;

use crate::context::WorkerContext;

/// Reserves a call on KEYS[1] (requests) and KEYS[2] (tokens) if it can start within ARGV[4]
/// µs; ARGV[1] is µs per request, ARGV[2] µs per token, ARGV[3] tokens reserved. Returns
/// `{reserved (0|1), wait in µs}`.
const RESERVE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local per_request = tonumber(ARGV[1])
local per_token = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local requests_next = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local tokens_next = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local at = math.max(now, requests_next, tokens_next)
local wait = at - now
if wait > max_wait then
  return {0, wait}
end
local requests_following = at + per_request
local tokens_following = at + tokens * per_token
redis.call('SET', KEYS[1], string.format('%.0f', requests_following),
  'PX', math.floor((requests_following - now) / 1000) + 60000)
redis.call('SET', KEYS[2], string.format('%.0f', tokens_following),
  'PX', math.floor((tokens_following - now) / 1000) + 60000)
return {1, wait}
";

/// Moves KEYS[1]'s schedule on by ARGV[1] µs (from now at the earliest).
const SETTLE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local moved = math.max(now, current + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], string.format('%.0f', moved),
  'PX', math.floor((moved - now) / 1000) + 60000)
return 1
";

/// Pushes KEYS[1] and KEYS[2] to at least ARGV[1] µs from now.
const PAUSE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local until_at = now + tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  local current = tonumber(redis.call('GET', key) or '0') or 0
  if current < until_at then
    redis.call('SET', key, string.format('%.0f', until_at),
      'PX', math.floor((until_at - now) / 1000) + 60000)
  end
end
return 1
";

/// Takes (or renews) lease ARGV[1] in KEYS[1] if fewer than ARGV[2] live ones are held; a
/// lease lives ARGV[3] ms. Returns 1 when held.
const LEASE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local expires = now + tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], expires, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 1
end
return 0
";

static RESERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE));
static SETTLE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE));
static PAUSE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(PAUSE));
static LEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LEASE));

/// A provider's limits, as its row gives them.
#[derive(Debug, Clone, Copy)]
pub struct ProviderLimits {
    pub provider_id: Uuid,
    pub requests_per_minute: u32,
    pub tokens_per_minute: u32,
}

impl ProviderLimits {
    fn keys(&self, ctx: &WorkerContext) -> [String; 2] {
        let prefix = &ctx.config.redis.key_prefix;
        [
            format!("{prefix}llm:{}:requests", self.provider_id),
            format!("{prefix}llm:{}:tokens", self.provider_id),
        ]
    }

    fn micros_per_token(&self) -> f64 {
        60e6 / f64::from(self.tokens_per_minute.max(1))
    }
}

/// The answer of [`reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// The call may start after this wait (already reserved).
    After(Duration),
    /// No slot within the wait allowed; the next is this far away. Nothing was reserved.
    Later(Duration),
}

/// Reserves one call of `tokens` on the provider, starting at most `max_wait` from now.
pub async fn reserve(
    ctx: &WorkerContext,
    limits: ProviderLimits,
    tokens: u32,
    max_wait: Duration,
) -> Result<Reserved, redis::RedisError> {
    let [requests, tokens_key] = limits.keys(ctx);
    let per_request = 60e6 / f64::from(limits.requests_per_minute.max(1));
    let mut conn = ctx.redis.clone();
    let (reserved, wait_micros): (u8, u64) = RESERVE_SCRIPT
        .key(&requests)
        .key(&tokens_key)
        .arg(per_request)
        .arg(limits.micros_per_token())
        .arg(tokens)
        .arg(u64::try_from(max_wait.as_micros()).unwrap_or(u64::MAX))
        .invoke_async(&mut conn)
        .await?;
    let wait = Duration::from_micros(wait_micros);
    Ok(if reserved == 1 {
        Reserved::After(wait)
    } else {
        Reserved::Later(wait)
    })
}

/// Settles a call that reserved `reserved` tokens and used `used`: the token schedule moves
/// on by what was used beyond the reservation (see the module doc for why nothing is given
/// back).
pub async fn settle(
    ctx: &WorkerContext,
    limits: ProviderLimits,
    reserved: u32,
    used: u32,
) -> Result<(), redis::RedisError> {
    if used <= reserved {
        return Ok(());
    }
    let [_, tokens_key] = limits.keys(ctx);
    let delta = (f64::from(used) - f64::from(reserved)) * limits.micros_per_token();
    let mut conn = ctx.redis.clone();
    let _: u8 = SETTLE_SCRIPT
        .key(&tokens_key)
        .arg(delta)
        .invoke_async(&mut conn)
        .await?;
    Ok(())
}

/// Holds every call to the provider for `wait` (it answered 429 and asked for that).
pub async fn pause(
    ctx: &WorkerContext,
    limits: ProviderLimits,
    wait: Duration,
) -> Result<(), redis::RedisError> {
    let [requests, tokens] = limits.keys(ctx);
    let mut conn = ctx.redis.clone();
    let _: u8 = PAUSE_SCRIPT
        .key(&requests)
        .key(&tokens)
        .arg(u64::try_from(wait.as_micros()).unwrap_or(u64::MAX))
        .invoke_async(&mut conn)
        .await?;
    Ok(())
}

/// One running job's place among its account's (see the module doc).
#[derive(Debug, Clone)]
pub struct Lease {
    key: String,
    holder: Uuid,
}

/// Takes a lease for job `holder` of `account_id`; `None` when the account has
/// `llm.max_concurrent_per_account` jobs running already.
pub async fn lease(
    ctx: &WorkerContext,
    account_id: Uuid,
    holder: Uuid,
    lives: Duration,
) -> Result<Option<Lease>, redis::RedisError> {
    let key = format!("{}llm:running:{account_id}", ctx.config.redis.key_prefix);
    let mut conn = ctx.redis.clone();
    let held: u8 = LEASE_SCRIPT
        .key(&key)
        .arg(holder.to_string())
        .arg(ctx.config.llm.max_concurrent_per_account)
        .arg(u64::try_from(lives.as_millis()).unwrap_or(u64::MAX))
        .invoke_async(&mut conn)
        .await?;
    Ok((held == 1).then_some(Lease { key, holder }))
}

/// Gives the lease back; an error leaves it to expire.
pub async fn release(ctx: &WorkerContext, lease: Lease) {
    let mut conn = ctx.redis.clone();
    let released: Result<u8, _> = redis::cmd("ZREM")
        .arg(&lease.key)
        .arg(lease.holder.to_string())
        .query_async(&mut conn)
        .await;
    if let Err(err) = released {
        tracing::warn!(error = %err, "could not give a generation lease back; it expires by itself");
    }
}
