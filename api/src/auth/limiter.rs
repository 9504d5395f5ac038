//! Limits on the auth endpoints, counted in Redis so they hold across API replicas.
//!
//! - Sign-in: attempts are counted *before* the password is checked, in one Lua script that
//!   refuses when a counter is at its limit and otherwise counts the attempt on every counter,
//!   so N parallel guesses evaluate at most the limit, never N. Two counters: per (account,
//!   client) — a stranger exhausting it locks out only themselves, never the account's owner
//!   on another network — and per client across accounts. A success gives its attempt back
//!   and clears the (account, client) count. Clients are keyed by `client_ip::limit_key`
//!   (IPv6 by /64), so an attacker needs many networks, not many addresses, to guess more.
//! - Sign-up: per client per hour. Password-reset e-mails: per address per hour.
//!
//! Over a limit the answer is 429 with `Retry-After` (the counter's remaining window).

use std::sync::LazyLock;

use redis::Script;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// KEYS: counters; ARGV[1]: window in s; ARGV[1 + i]: limit of KEYS[i]. Returns
/// `{1, 0}` when the attempt was counted on every key, `{0, ttl}` when a key is at its limit
/// (nothing counted).
const RESERVE: &str = r"
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0') or 0
  if count >= tonumber(ARGV[i + 1]) then
    return {0, redis.call('TTL', key)}
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then
    redis.call('EXPIRE', key, ARGV[1])
  end
end
return {1, 0}
";

/// Gives one attempt back on every key (never below zero); with ARGV[1] = 1 the first key
/// is cleared instead.
const GIVE_BACK: &str = r"
for i, key in ipairs(KEYS) do
  if i == 1 and ARGV[1] == '1' then
    redis.call('DEL', key)
  elseif (tonumber(redis.call('GET', key) or '0') or 0) > 0 then
    redis.call('DECR', key)
  end
end
return 1
";

/// KEYS[1]: counts one hit, starting an ARGV[1]-second window on the first. Returns
/// `{count, ttl}`.
const HIT: &str = r"
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {count, redis.call('TTL', KEYS[1])}
";

static RESERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE));
static GIVE_BACK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(GIVE_BACK));
static HIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(HIT));

fn hashed(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// (account, client) and client counters of sign-in attempts.
fn login_keys(state: &AppState, email: &str, client: &str) -> [String; 2] {
    let prefix = &state.config.redis.key_prefix;
    [
        format!("{prefix}login:account-client:{}:{client}", hashed(email)),
        format!("{prefix}login:client:{client}"),
    ]
}

fn too_many(ttl: i64) -> ApiError {
    ApiError::TooManyRequests {
        retry_after_secs: ttl.max(1).unsigned_abs(),
    }
}

/// Counts a sign-in attempt (or password check) for `email` from `client` before the
/// password is looked at; 429 when either limit is reached.
pub async fn reserve_login(state: &AppState, email: &str, client: &str) -> Result<(), ApiError> {
    let auth = &state.config.auth;
    let [account_key, client_key] = login_keys(state, email, client);
    let mut conn = state.redis.clone();
    let (counted, ttl): (u8, i64) = RESERVE_SCRIPT
        .key(account_key)
        .key(client_key)
        .arg(auth.login_window_secs)
        .arg(auth.max_failed_logins_per_account)
        .arg(auth.max_failed_logins_per_ip)
        .invoke_async(&mut conn)
        .await?;
    if counted == 0 {
        return Err(too_many(ttl));
    }
    Ok(())
}

/// The password was right: the attempt was no failure, so it is given back, and the
/// (account, client) count starts over.
pub async fn login_succeeded(state: &AppState, email: &str, client: &str) -> Result<(), ApiError> {
    release(state, email, client, true).await
}

/// The password was never evaluated (no hashing slot): the attempt is given back.
pub async fn give_back(state: &AppState, email: &str, client: &str) -> Result<(), ApiError> {
    release(state, email, client, false).await
}

async fn release(
    state: &AppState,
    email: &str,
    client: &str,
    clear_account: bool,
) -> Result<(), ApiError> {
    let [account_key, client_key] = login_keys(state, email, client);
    let mut conn = state.redis.clone();
    let _: u8 = GIVE_BACK_SCRIPT
        .key(account_key)
        .key(client_key)
        .arg(u8::from(clear_account))
        .invoke_async(&mut conn)
        .await?;
    Ok(())
}

/// Counts one hit on `key` in a fixed window: `(count including this one, seconds left)`.
async fn hit(state: &AppState, key: &str, window_secs: u64) -> Result<(u32, i64), ApiError> {
    let mut conn = state.redis.clone();
    Ok(HIT_SCRIPT
        .key(key)
        .arg(window_secs)
        .invoke_async(&mut conn)
        .await?)
}

/// Counts a sign-up from `client`; 429 beyond `auth.max_signups_per_ip_per_hour`.
pub async fn allow_signup(state: &AppState, client: &str) -> Result<(), ApiError> {
    let key = format!("{}signup:client:{client}", state.config.redis.key_prefix);
    let (count, ttl) = hit(state, &key, 3600).await?;
    if count > state.config.auth.max_signups_per_ip_per_hour {
        return Err(too_many(ttl));
    }
    Ok(())
}

/// Counts a password-reset request for `email`; false once the hourly allowance is used up.
pub async fn allow_reset_email(state: &AppState, email: &str) -> Result<bool, ApiError> {
    let key = format!(
        "{}reset-mail:{}",
        state.config.redis.key_prefix,
        hashed(email)
    );
    let (count, _) = hit(state, &key, 3600).await?;
    Ok(count <= state.config.auth.max_reset_emails_per_hour)
}
