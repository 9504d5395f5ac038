//! PostgreSQL access: connecting, migrations, and one module of query functions per table.
//! Functions take an executor (`&PgPool`, `&mut PgConnection` or a transaction), so the
//! caller owns the transaction.
//!
//! Queries written with `sqlx::query!` and friends are checked at compile time against the
//! query data committed in `.sqlx/` (`SQLX_OFFLINE=true`, set in `.cargo/config.toml`), so
//! building Herald needs no database; `scripts/sqlx prepare` regenerates that data after a
//! query or a migration changes. Every query here is one of them.

pub mod account_senders;
pub mod campaign_messages;
pub mod campaign_prospects;
pub mod campaign_sends;
pub mod campaigns;
pub mod courses;
pub mod cron_fires;
pub mod deliveries;
pub mod delivery_reports;
pub mod effects;
pub mod email_events;
pub mod email_senders;
pub mod groups;
pub mod idempotency;
pub mod llm;
pub mod outbound_messages;
pub mod people;
pub mod schedules;
pub mod sessions;
pub mod student_messages;
pub mod suppressions;
pub mod twilio_events;
pub mod user_tokens;
pub mod users;
pub mod written;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseConfig;

/// The schema, from `migrations/`; run by `herald-api migrate`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Opens a pool; fails fast when the server is not reachable.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(config.url.expose_secret())
        .await
}

/// The database's clock, the one the dispatcher and planners compare due times with (an API
/// host's clock may drift from it). `statement_timestamp()`, not `now()`: read after a lock
/// wait, it is the moment the caller acts, not when its transaction began.
pub async fn now(
    executor: impl sqlx::PgExecutor<'_>,
) -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
    sqlx::query_scalar!(r#"select statement_timestamp() as "now!""#)
        .fetch_one(executor)
        .await
}

/// True when the database answers a trivial query.
pub async fn is_reachable(pool: &PgPool) -> bool {
    sqlx::query_scalar!("select 1 as one")
        .fetch_one(pool)
        .await
        .is_ok()
}

/// Maps a unique-violation on `constraint` to `Ok(None)`; other errors pass through.
pub fn on_unique_violation<T>(
    result: Result<T, sqlx::Error>,
    constraint: &str,
) -> Result<Option<T>, sqlx::Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(sqlx::Error::Database(err)) if err.constraint() == Some(constraint) => Ok(None),
        Err(err) => Err(err),
    }
}
