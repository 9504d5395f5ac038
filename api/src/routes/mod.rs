//! Every route of the API, grouped by resource.

pub mod account;
pub mod auth;
pub mod campaigns;
pub mod courses;
pub mod cron;
pub mod deliveries;
pub mod groups;
pub mod health;
pub mod jobs;
pub mod llm;
pub mod people;
pub mod schedules;
pub mod senders;
pub mod suppressions;
pub mod unsubscribe;
pub mod webhooks;
