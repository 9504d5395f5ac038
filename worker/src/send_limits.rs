//! The limits campaign e-mails share across every replica and every campaign, kept in Redis:
//!
//! - **A sender's gap and rolling daily cap.** Each sender has a sorted set of its sends, by
//!   instant, over the last 24 hours, and of the slots reserved ahead. A send takes the later
//!   of now, its last entry plus `min_gap_secs`, and the instant its rolling cap frees a place;
//!   when that is later than now the slot stays reserved under the e-mail's id and the e-mail
//!   waits for it (uncounted), so e-mails of one sender that fall due together (follow-ups of
//!   a busy day, two campaigns sharing a sender) line up one gap apart instead of all trying
//!   again at the same instant. A reservation the e-mail cannot use (its prospect's window is
//!   closed by then) is given back.
//! - **A campaign's daily cap**, per day of the campaign's zone: a set of the e-mails sent that
//!   day.
//!
//! An e-mail whose send then fails still counts (the server may have counted it too). The
//! clock is Redis's (`TIME`), so replicas with skewed clocks share one schedule. The launch
//! plan already spaces first e-mails by the same rules; these hold for follow-ups and for
//! senders shared between campaigns.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::NaiveDate;
use redis::Script;
use uuid::Uuid;

use crate::context::WorkerContext;

/// A day, in milliseconds.
const DAY_MS: u64 = 86_400_000;

/// How late an e-mail may come back to its reserved slot and still use it: the dispatcher
/// hands a deferred row back within about a second of its time.
const LATE_MS: u64 = 5_000;

/// Takes (or finds) the slot of e-mail ARGV[1] in sender set KEYS[1]: ARGV[2] is the gap in
/// ms, ARGV[3] the rolling cap, ARGV[4] how late (ms) a found slot may still be used. Returns
/// the slot's distance from now in ms (0: now).
const RESERVE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local day = 86400000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - day)
local mine = redis.call('ZSCORE', KEYS[1], ARGV[1])
if mine then
  if tonumber(mine) >= now - tonumber(ARGV[4]) then
    return math.max(0, tonumber(mine) - now)
  end
  -- a slot long past (the e-mail came back after its window closed, or to try again after a
  -- failure): it no longer keeps the gap to the sends around now, so take a new one
  redis.call('ZREM', KEYS[1], ARGV[1])
end
local gap = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local at = now
local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if last[2] then
  at = math.max(at, tonumber(last[2]) + gap)
end
local count = redis.call('ZCARD', KEYS[1])
if count >= cap then
  local bound = redis.call('ZRANGE', KEYS[1], count - cap, count - cap, 'WITHSCORES')
  at = math.max(at, tonumber(bound[2]) + day)
end
redis.call('ZADD', KEYS[1], at, ARGV[1])
redis.call('PEXPIRE', KEYS[1], at - now + day)
return at - now
";

/// Counts e-mail ARGV[1] in campaign day set KEYS[1] unless ARGV[2] are counted already
/// (the set lives ARGV[3] ms). Returns 1 when counted (or already was).
const COUNT_DAY: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 1
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
";

static RESERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE));
static COUNT_DAY_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(COUNT_DAY));

fn sender_key(ctx: &WorkerContext, sender_id: Uuid) -> String {
    format!("{}sender:{sender_id}:sends", ctx.config.redis.key_prefix)
}

/// The slot of e-mail `effect_id` on the sender: how long until it (zero: go now). The slot
/// is reserved for the e-mail until it is used or given back.
pub async fn reserve(
    ctx: &WorkerContext,
    sender_id: Uuid,
    effect_id: Uuid,
    min_gap: Duration,
    daily_cap: u32,
) -> Result<Duration, redis::RedisError> {
    let mut conn = ctx.redis.clone();
    let wait_ms: u64 = RESERVE_SCRIPT
        .key(sender_key(ctx, sender_id))
        .arg(effect_id.to_string())
        .arg(u64::try_from(min_gap.as_millis()).unwrap_or(u64::MAX))
        .arg(daily_cap.max(1))
        .arg(LATE_MS)
        .invoke_async(&mut conn)
        .await?;
    Ok(Duration::from_millis(wait_ms))
}

/// Gives back a slot the e-mail will not use.
pub async fn give_back(
    ctx: &WorkerContext,
    sender_id: Uuid,
    effect_id: Uuid,
) -> Result<(), redis::RedisError> {
    let mut conn = ctx.redis.clone();
    let _: i64 = redis::cmd("ZREM")
        .arg(sender_key(ctx, sender_id))
        .arg(effect_id.to_string())
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Counts the e-mail against its campaign's cap for `day` (of the campaign's zone); false
/// when the day is full.
pub async fn count_campaign_day(
    ctx: &WorkerContext,
    campaign_id: Uuid,
    day: NaiveDate,
    effect_id: Uuid,
    daily_cap: u32,
) -> Result<bool, redis::RedisError> {
    let key = format!(
        "{}campaign:{campaign_id}:sent:{day}",
        ctx.config.redis.key_prefix
    );
    let mut conn = ctx.redis.clone();
    let counted: u8 = COUNT_DAY_SCRIPT
        .key(key)
        .arg(effect_id.to_string())
        .arg(daily_cap.max(1))
        // kept two days: a day of a zone far from UTC ends up to 14 hours after UTC's
        .arg(2 * DAY_MS)
        .invoke_async(&mut conn)
        .await?;
    Ok(counted == 1)
}
