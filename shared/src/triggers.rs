//! Cron triggers from `jobs.toml`: `[cron.<name>] schedule, timezone, job, catch_up_secs`.
//! Each fire is one row (trigger, instant) in `cron_fires`, so N worker replicas run it once;
//! a fire missed while every worker was down runs when one returns if it is at most
//! `catch_up_secs` late, and is recorded as `missed` otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::config::ConfigError;
use crate::cron::Schedule;
use crate::time_rules;

/// A `[cron.<name>]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrigger {
    schedule: String,
    #[serde(default = "utc")]
    timezone: String,
    job: String,
    #[serde(default = "default_catch_up")]
    catch_up_secs: u64,
}

fn utc() -> String {
    "UTC".to_owned()
}

fn default_catch_up() -> u64 {
    300
}

/// The periodic jobs a trigger can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronJob {
    /// Deletes old finished rows: effects past their retention (not those a delivery's history
    /// refers to), spent idempotency keys, used or expired tokens.
    Housekeeping,
    /// Does nothing but record the fire: proves cron is alive (and is what tests count).
    Heartbeat,
}

impl CronJob {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "housekeeping" => Some(Self::Housekeeping),
            "heartbeat" => Some(Self::Heartbeat),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Housekeeping => "housekeeping",
            Self::Heartbeat => "heartbeat",
        }
    }
}

/// A validated trigger.
#[derive(Debug, Clone)]
pub struct CronTrigger {
    pub name: String,
    pub schedule: Schedule,
    pub zone: Tz,
    pub job: CronJob,
    /// How late a missed fire may still run.
    pub catch_up: Duration,
}

/// Validates every `[cron.*]` section.
pub fn parse(raw: &BTreeMap<String, RawTrigger>) -> Result<Vec<CronTrigger>, ConfigError> {
    raw.iter()
        .map(|(name, trigger)| {
            let invalid = |key: &str, reason: String| ConfigError {
                setting: format!("jobs.toml: cron.{name}.{key}"),
                reason,
            };
            let schedule = Schedule::parse(&trigger.schedule)
                .map_err(|err| invalid("schedule", err.to_string()))?;
            let zone = time_rules::parse_zone(&trigger.timezone)
                .map_err(|err| invalid("timezone", err))?;
            let job = CronJob::parse(&trigger.job).ok_or_else(|| {
                invalid("job", "must be `housekeeping` or `heartbeat`".to_owned())
            })?;
            if name.is_empty() || name.contains(':') {
                return Err(invalid(
                    "name",
                    "must not be empty or contain ':'".to_owned(),
                ));
            }
            Ok(CronTrigger {
                name: name.clone(),
                schedule,
                zone,
                job,
                catch_up: Duration::from_secs(trigger.catch_up_secs),
            })
        })
        .collect()
}
