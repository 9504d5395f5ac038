//! Integration tests of `herald-worker` on the real local PostgreSQL and Redis, with the SMTP
//! stand-in (`scripts/smtp_standin.py`) where real e-mail is sent, wiremock as Twilio, a
//! stateful Twilio stand-in that loses its answers on purpose (`herald_testing::twilio_standin`, for the fault
//! tests), and Prism on Twilio's published API description for the contract test. Each test
//! gets its own database and Redis key prefix, so tests run in parallel. See `helpers.rs`.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on any error"
)]

mod campaign_sends;
mod cron;
mod delivery;
mod dispatch;
mod generation;
mod helpers;
mod housekeeping;
mod lifecycle;
mod llm_contract;
mod messages;
mod rate_limits;
mod recovery;
mod schedules;
mod sealed_secrets;
mod supervision;
mod throttle;
mod twilio_contract;
mod twilio_faults;
