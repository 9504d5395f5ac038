//! A rate limit that holds across every replica: a per-second counter in Redis
//! (`INCR` + `EXPIRE`). A job over the limit waits for the next second.

use std::time::Duration;

use herald_shared::jobs_config::RateLimit;

use crate::context::WorkerContext;

/// Waits until this job may start under `limit` for `queue`.
pub async fn acquire(
    ctx: &WorkerContext,
    queue: &str,
    limit: RateLimit,
) -> Result<(), redis::RedisError> {
    let mut conn = ctx.redis.clone();
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let key = format!(
            "{}rate:{queue}:{}",
            ctx.config.redis.key_prefix,
            now.as_secs()
        );
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, 2)
            .ignore()
            .query_async(&mut conn)
            .await?;
        if count <= u64::from(limit.per_second) {
            return Ok(());
        }
        let until_next_second = Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos()));
        tokio::time::sleep(until_next_second).await;
    }
}
