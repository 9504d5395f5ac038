//! Herald's shared library: what both `herald-api` and `herald-worker` need.

/// Layered, validated configuration.
pub mod config;
/// PostgreSQL pool, migrations and queries.
pub mod db;
/// Effect kinds, states and payloads.
pub mod effects;
/// `jobs.toml`: per-kind queue, retries, timeouts, windows.
pub mod jobs_config;
/// Provider clients (SMTP e-mail, …).
pub mod providers;
/// Redis connections with sane timeouts.
pub mod redis_conn;
/// Logging setup.
pub mod telemetry;
