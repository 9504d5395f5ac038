//! Cron triggers from `jobs.toml`: `[cron.<name>] schedule, timezone, job, catch_up`.
//! Each fire is one row (trigger, instant) in `cron_fires`, so N worker replicas run it once;
//! a fire missed while every worker was down runs when one returns if it is at most
//! `catch_up` late, and is recorded as `missed` otherwise.

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
    /// `"6h"`, `"15m"`, `"1h 30m"` (humantime units), or a number of seconds.
    #[serde(default = "default_catch_up")]
    catch_up: CatchUp,
}

/// `catch_up` as written: a duration text or whole seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum CatchUp {
    Seconds(u64),
    Text(String),
}

impl CatchUp {
    fn duration(&self) -> Result<Duration, String> {
        let duration = match self {
            Self::Seconds(secs) => Duration::from_secs(*secs),
            Self::Text(text) => humantime::parse_duration(text.trim()).map_err(|err| {
                format!("`{text}` is not a duration like \"90s\", \"15m\" or \"6h\": {err}")
            })?,
        };
        // a fire is always found a little late: zero would record every fire as missed
        if duration < Duration::from_secs(1) {
            return Err("must be at least 1 second".to_owned());
        }
        Ok(duration)
    }
}

fn utc() -> String {
    "UTC".to_owned()
}

fn default_catch_up() -> CatchUp {
    CatchUp::Seconds(300)
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
            let catch_up = trigger
                .catch_up
                .duration()
                .map_err(|err| invalid("catch_up", err))?;
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
                catch_up,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(section: &str) -> Result<CronTrigger, ConfigError> {
        let raw: BTreeMap<String, BTreeMap<String, RawTrigger>> =
            toml::from_str(&format!("[cron.nightly]\n{section}")).map_err(|err| ConfigError {
                setting: "jobs.toml".to_owned(),
                reason: err.to_string(),
            })?;
        parse(&raw["cron"]).map(|mut triggers| triggers.remove(0))
    }

    #[test]
    fn catch_up_is_a_duration_text_or_seconds_and_defaults_to_five_minutes() {
        let base = "schedule = \"17 3 * * *\"\njob = \"housekeeping\"\n";
        let cases = [
            ("catch_up = \"6h\"", 6 * 3600),
            ("catch_up = \"1h 30m\"", 5400),
            ("catch_up = \"90s\"", 90),
            ("catch_up = 120", 120),
            ("", 300),
        ];
        for (line, secs) in cases {
            let trigger = parse_one(&format!("{base}{line}\n")).unwrap();
            assert_eq!(trigger.catch_up, Duration::from_secs(secs), "{line}");
            assert_eq!(trigger.zone, chrono_tz::UTC);
        }
    }

    #[test]
    fn bad_sections_name_the_key() {
        let cases = [
            ("schedule = \"61 * * * *\"\njob = \"heartbeat\"", "schedule"),
            (
                "schedule = \"@daily\"\njob = \"heartbeat\"\ntimezone = \"Mars/Olympus\"",
                "timezone",
            ),
            ("schedule = \"@daily\"\njob = \"backup\"", "job"),
            (
                "schedule = \"@daily\"\njob = \"heartbeat\"\ncatch_up = \"soon\"",
                "catch_up",
            ),
            (
                "schedule = \"@daily\"\njob = \"heartbeat\"\ncatch_up = 0",
                "catch_up",
            ),
        ];
        for (section, key) in cases {
            let err = parse_one(section).unwrap_err();
            assert_eq!(
                err.setting,
                format!("jobs.toml: cron.nightly.{key}"),
                "{section}: {err}"
            );
        }
    }
}
