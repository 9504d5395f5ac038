//! Test support for Herald's test suites (api, worker, shared's provider tests and the
//! end-to-end tests that start the real binaries). A dev-dependency only: nothing in a
//! binary depends on it.
//!
//! - [`env`]: a fresh, migrated database and Redis key prefix per test ([`env::TestEnv`]),
//!   both removed when the test ends, passing or failing ([`env::Scratch`]).
//! - [`wait`]: the one way to wait — poll a condition with a deadline
//!   ([`wait::wait_until`], [`wait::wait_for`]).
//! - [`pipeline`]: wait until the pipeline is idle before asserting that something did
//!   *not* happen, and which replica ran each task.
//! - [`fixtures`]: accounts, e-mails, deliveries, students and messages, planned through the
//!   real planners.
//! - [`smtp`]: the SMTP stand-in (aiosmtpd) and its Maildir; [`smtp_script`]: a raw SMTP
//!   server that stalls or hangs up on cue; [`twilio_standin`]: a stateful
//!   Twilio stand-in for fault tests; [`llm_standin`]: an OpenAI-compatible stand-in that
//!   writes each e-mail from its prompt, answers badly on cue, and records each call.
//! - [`prism`]: Prism on a provider's published API description, behind a proxy that records
//!   its verdict on each request (the contract tests).
//! - [`campaigns`]: an LLM provider, model, people and a campaign, and generation started.
//! - [`process`]: free ports and readiness waits for the real binaries.
//!
//! In-process worker replicas (`herald_worker::run` in a task) stay in the worker suite
//! (`worker/tests/worker/helpers.rs`), the only suite that runs them. Moving them here would
//! make this crate depend on `herald-worker`, so the api and shared suites would build the
//! worker and api's tests would reach into the worker, against the dependency direction
//! (api → shared ← worker) that CI checks for normal dependencies; a `worker` feature would
//! avoid that only by adding a worker → herald-testing → worker cycle for one type. This crate
//! depends on `herald-shared` alone; the e2e suite starts the real binaries and needs only
//! [`process`].
//!
//! Wall-clock assertions left in the suites, each in a test whose point is timing (its name
//! says so):
//! - upper bounds, which can fail on an overloaded machine (`.config/nextest.toml` runs the
//!   tightest in-process ones alone and retries the end-to-end ones once on CI):
//!   - pickup within a second: `worker::delivery::in_sandbox_mode…`,
//!     `worker::dispatch::an_effect_due_later…`;
//!   - a local push picked up at once: `worker::dispatch::a_push_by_the_local_dispatcher…`;
//!   - another account's messages within 5 s beside a backlog:
//!     `worker::dispatch::another_accounts…`, `worker::throttle::another_accounts…`;
//!   - fires and schedule messages started within a second: `worker::cron::a_per_second…`,
//!     `worker::schedules::two_replicas_send_each_fire…`, `e2e::schedules` (3 s for
//!     `e2e::deliveries`);
//!   - a graceful shutdown that waits for the send, not the whole timeout:
//!     `worker::lifecycle::a_shutdown_during_a_send…`;
//! - lower bounds, safe under load: rate limits spacing sends (`worker::rate_limits`,
//!   `worker::throttle::a_rate_limited_backlog…`, `worker::messages::one_sms_per_second…`),
//!   a 429 retried no sooner than its `Retry-After` (`worker::messages::a_503_…`,
//!   `worker::generation::throttling…`), a provider's requests per minute across replicas
//!   (`worker::generation::two_replicas…`), cron
//!   fires one second apart (`worker::cron`, `e2e::cron`);
//! - time that must pass for the scenario, not asserted: workers down across three cron
//!   fires (`e2e::cron::fires_missed…`), a schedule paused across three fires
//!   (`e2e::schedules`).

pub mod campaigns;
pub mod env;
pub mod fixtures;
pub mod llm_standin;
pub mod pipeline;
pub mod prism;
pub mod process;
pub mod smtp;
pub mod smtp_script;
pub mod twilio_standin;
pub mod wait;
