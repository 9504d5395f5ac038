//! End-to-end tests: the real `herald-api` and `herald-worker` binaries as separate
//! processes, on a fresh PostgreSQL database (migrated by `herald-api migrate`), a Redis key
//! prefix of their own, and a real SMTP server (aiosmtpd). Processes are killed with SIGKILL
//! and SIGTERM to check that no e-mail is lost or sent twice.

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

mod auth;
mod config;
mod contract;
mod crash;
mod cron;
mod deliveries;
mod flow;
mod metrics;
mod schedules;
mod stack;
