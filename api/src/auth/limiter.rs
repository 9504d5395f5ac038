//! The brute-force limit on sign-in: failed attempts counted per account (e-mail) and per
//! client IP in Redis, so the limit holds across API replicas. Over either limit, logins
//! answer 429 with `Retry-After` until the window ends; a success clears the account count.
//! Password-reset e-mails are capped per address per hour the same way.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

fn keys(state: &AppState, email: &str, ip: IpAddr) -> [(String, u32); 2] {
    let prefix = &state.config.redis.key_prefix;
    let email_hash = hex::encode(Sha256::digest(email.as_bytes()));
    [
        (
            format!("{prefix}login-fail:email:{email_hash}"),
            state.config.auth.max_failed_logins_per_account,
        ),
        (
            format!("{prefix}login-fail:ip:{ip}"),
            state.config.auth.max_failed_logins_per_ip,
        ),
    ]
}

/// Refuses the attempt when either counter is at its limit.
pub async fn check(state: &AppState, email: &str, ip: IpAddr) -> Result<(), ApiError> {
    let mut conn = state.redis.clone();
    for (key, limit) in keys(state, email, ip) {
        let (count, ttl): (Option<u32>, i64) = redis::pipe()
            .get(&key)
            .ttl(&key)
            .query_async(&mut conn)
            .await?;
        if count.unwrap_or(0) >= limit {
            return Err(ApiError::TooManyRequests {
                retry_after_secs: ttl.max(1).unsigned_abs(),
            });
        }
    }
    Ok(())
}

/// Counts a failed attempt against both the account and the IP.
pub async fn record_failure(state: &AppState, email: &str, ip: IpAddr) -> Result<(), ApiError> {
    let mut conn = state.redis.clone();
    let window = i64::try_from(state.config.auth.login_window_secs).unwrap_or(i64::MAX);
    let mut pipe = redis::pipe();
    for (key, _) in keys(state, email, ip) {
        pipe.incr(&key, 1)
            .ignore()
            .expire(&key, window)
            .arg("NX")
            .ignore();
    }
    let () = pipe.query_async(&mut conn).await?;
    Ok(())
}

/// Clears the account's count after a successful login.
pub async fn record_success(state: &AppState, email: &str, ip: IpAddr) -> Result<(), ApiError> {
    let mut conn = state.redis.clone();
    let [(account_key, _), _] = keys(state, email, ip);
    let () = redis::cmd("DEL")
        .arg(account_key)
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Counts a password-reset e-mail for `email`; false once the hourly allowance is used up.
pub async fn allow_reset_email(state: &AppState, email: &str) -> Result<bool, ApiError> {
    let mut conn = state.redis.clone();
    let email_hash = hex::encode(Sha256::digest(email.as_bytes()));
    let key = format!("{}reset-mail:{email_hash}", state.config.redis.key_prefix);
    let (count,): (u32,) = redis::pipe()
        .incr(&key, 1)
        .expire(&key, 3600)
        .arg("NX")
        .ignore()
        .query_async(&mut conn)
        .await?;
    Ok(count <= state.config.auth.max_reset_emails_per_hour)
}
