//! Bounded in-process retries of the database writes that record an attempt. Losing such a
//! write to a passing failure (a dropped connection, a failover, a deadlock) would leave the
//! row in `sending` with nobody sending it, which the sweep can only resolve much later (and,
//! for e-mail, only as `unknown`); a few quick retries ride out the usual blips.

use std::future::Future;
use std::time::Duration;

/// Tries after the first, and the wait before each.
const BACKOFF: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(800),
    Duration::from_millis(2_000),
];

/// Runs `write` until it succeeds, fails for a reason a retry cannot fix, or the retries run
/// out; returns its last result.
pub async fn retry_write<T, F, Fut>(what: &str, mut write: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut waits = BACKOFF.iter();
    loop {
        match write().await {
            Ok(value) => return Ok(value),
            Err(err) if passing(&err) => {
                let Some(wait) = waits.next() else {
                    return Err(err);
                };
                tracing::warn!(error = %err, ?wait, "{what} failed; trying again");
                tokio::time::sleep(*wait).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Whether the error may pass: the connection or the pool, or PostgreSQL's own
/// serialization failures, deadlocks and shutdowns (SQLSTATE classes 08, 40, 57P).
fn passing(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("40") || code.starts_with("57P")
        }),
        _ => false,
    }
}
