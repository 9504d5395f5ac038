//! The API's integration tests: the real router on a real port, a fresh PostgreSQL database
//! and Redis key prefix per test.

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

mod auth;
mod bodies;
mod campaign_generation;
mod campaign_prospects;
mod campaign_sending;
mod campaigns;
mod courses;
mod cron;
mod deliveries;
mod groups;
mod health;
mod helpers;
mod jobs;
mod llm;
mod openapi;
mod pagination;
mod people;
mod replies;
mod schedules;
mod senders;
mod suppressions;
mod unsubscribe;
mod webhooks;
