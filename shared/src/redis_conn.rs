//! Redis connections with the timeouts Herald needs: redis-rs defaults to a 500 ms response
//! timeout, which apalis-redis turns into a fatal worker error under load.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;

use crate::config::RedisConfig;

/// A reconnecting connection with 5 s connect and response timeouts.
pub async fn connect(config: &RedisConfig) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(config.url.expose_secret())?;
    let manager_config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    client
        .get_connection_manager_with_config(manager_config)
        .await
}

/// True when Redis answers PING.
pub async fn is_reachable(conn: &ConnectionManager) -> bool {
    let mut conn = conn.clone();
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok()
}

/// Every key that starts with `prefix` (a deployment's or a test's), found with SCAN, which
/// unlike KEYS does not hold the server while it walks the key space.
pub async fn keys_with_prefix<C>(conn: &mut C, prefix: &str) -> redis::RedisResult<Vec<String>>
where
    C: redis::aio::ConnectionLike + Send + Sync,
{
    use redis::AsyncCommands;
    let options = redis::ScanOptions::default()
        .with_pattern(format!("{prefix}*"))
        .with_count(1000);
    let mut found = conn.scan_options::<String>(options).await?;
    let mut keys = Vec::new();
    while let Some(key) = found.next_item().await {
        keys.push(key?);
    }
    Ok(keys)
}

/// Deletes every key that starts with `prefix` ([`keys_with_prefix`]), in batches, with UNLINK
/// (freed in the background); the number deleted.
pub async fn delete_keys_with_prefix<C>(conn: &mut C, prefix: &str) -> redis::RedisResult<usize>
where
    C: redis::aio::ConnectionLike + Send + Sync,
{
    let keys = keys_with_prefix(conn, prefix).await?;
    for batch in keys.chunks(1000) {
        let () = redis::cmd("UNLINK").arg(batch).query_async(conn).await?;
    }
    Ok(keys.len())
}
