//! Herald's shared library: what both `herald-api` and `herald-worker` need.

/// Campaign step prompts: MiniJinja templates and the variables they may name.
/// Launching and resuming a campaign: its first e-mails planned as outbound messages.
pub mod campaign_launch;
pub mod campaign_prompts;
pub mod campaign_schedule;
/// Layered, validated configuration.
pub mod config;
/// Course content rules: grading, message rendering, channel limits.
pub mod courses;
/// Cron expressions (crontab(5)) and their fire instants under the DST rules.
pub mod cron;
/// PostgreSQL pool, migrations and queries.
pub mod db;
/// Planning course deliveries: each message's instant per student.
pub mod deliveries;
/// Domain values (e-mail addresses, …) with parse constructors.
pub mod domain;
/// Effect kinds, states and payloads.
pub mod effects;
/// SendGrid's webhooks: Event Webhook signatures and events, Inbound Parse headers.
pub mod email_events;
/// `jobs.toml`: per-kind queue, retries, timeouts, windows.
pub mod jobs_config;
/// US-dollar amounts stored exactly as micro-dollars.
pub mod money;
/// Which addresses an account may make Herald connect to.
pub mod net;
/// Phone numbers validated for their region and kept in E.164.
pub mod phone;
/// Provider clients (SMTP e-mail, …).
pub mod providers;
/// Redis connections with sane timeouts.
pub mod redis_conn;
/// Inbound messages from students routed to the account they are for.
pub mod replies;
/// Planning schedules (recurring group messages) ahead of their fires.
pub mod schedules;
/// Secrets at rest: AES-256-GCM sealing with `secrets.encryption_key`.
pub mod secrets;
/// Logging setup.
pub mod telemetry;
/// Local-time resolution (DST gaps and repeats) for deliveries and cron.
pub mod time_rules;
/// Cron triggers from jobs.toml (`[cron.<name>]`).
pub mod triggers;
pub mod unsubscribe;
