//! `jobs.toml`: per job kind, the queue, concurrency, attempts, retry schedule, timeout,
//! Redis window and optional rate limit. Parsed strictly (unknown keys are errors) and
//! validated once at start.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

use crate::config::ConfigError;
use crate::effects::EffectKind;

/// The committed `jobs.toml`, embedded so the binaries run with no file beside them.
pub const DEFAULT_JOBS: &str = include_str!("../../jobs.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobs {
    defaults: RawJob,
    #[serde(default)]
    job: BTreeMap<String, RawJob>,
    #[serde(default)]
    cron: BTreeMap<String, crate::triggers::RawTrigger>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    queue: Option<String>,
    max_attempts: Option<u32>,
    retry_schedule_secs: Option<Vec<u64>>,
    timeout_secs: Option<u64>,
    concurrency: Option<usize>,
    window: Option<u32>,
    rate_limit: Option<RateLimit>,
}

/// Most jobs of one kind started per second, across every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
}

/// The settings of one job kind, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    pub kind: EffectKind,
    pub queue: String,
    pub max_attempts: u32,
    pub retry_schedule: Vec<Duration>,
    pub timeout: Duration,
    pub concurrency: usize,
    pub window: u32,
    pub rate_limit: Option<RateLimit>,
}

/// Most a queue may hold: apalis-redis 1.0 crashes when ≥ 8,000 ids are due at once.
const MAX_WINDOW: u32 = 5_000;

impl JobSettings {
    /// Wait before the retry that follows failed attempt `attempt` (1-based): the schedule
    /// entry (the last one repeats) with ±20 % jitter, raised to `retry_after` when the
    /// provider asked for more.
    pub fn retry_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let index = (attempt.max(1) as usize - 1).min(self.retry_schedule.len() - 1);
        let base = self.retry_schedule[index].as_secs_f64();
        let jittered = base * rand::thread_rng().gen_range(0.8..=1.2);
        let delay = Duration::from_secs_f64(jittered);
        match retry_after {
            Some(asked) if asked > delay => asked,
            _ => delay,
        }
    }

    /// Whether another attempt is allowed after `attempts` attempts have been made.
    pub fn may_retry_after(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }
}

/// Every job kind's settings.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    kinds: BTreeMap<EffectKind, JobSettings>,
    triggers: Vec<crate::triggers::CronTrigger>,
}

impl JobsConfig {
    /// Parses and validates `jobs.toml` text; every kind Herald knows must be configured.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: RawJobs = toml::from_str(text).map_err(|err| ConfigError {
            setting: "jobs.toml".to_owned(),
            reason: err.message().to_owned() + &span_hint(text, err.span()),
        })?;
        let mut kinds = BTreeMap::new();
        for (name, job) in &raw.job {
            let setting = |key: &str| format!("jobs.toml: job.{name}.{key}");
            let kind: EffectKind = name.parse().map_err(|_| ConfigError {
                setting: format!("jobs.toml: job.{name}"),
                reason: format!("unknown job kind; known kinds: {}", EffectKind::names()),
            })?;
            let settings = JobSettings {
                kind,
                queue: job.queue.clone().unwrap_or_else(|| name.clone()),
                max_attempts: job.max_attempts.or(raw.defaults.max_attempts).unwrap_or(5),
                retry_schedule: job
                    .retry_schedule_secs
                    .clone()
                    .or_else(|| raw.defaults.retry_schedule_secs.clone())
                    .unwrap_or_else(|| vec![5, 60, 300])
                    .into_iter()
                    .map(Duration::from_secs)
                    .collect(),
                timeout: Duration::from_secs(
                    job.timeout_secs.or(raw.defaults.timeout_secs).unwrap_or(30),
                ),
                concurrency: job.concurrency.or(raw.defaults.concurrency).unwrap_or(16),
                window: job.window.or(raw.defaults.window).unwrap_or(1000),
                rate_limit: job.rate_limit.or(raw.defaults.rate_limit),
            };
            let invalid = |key: &str, reason: &str| ConfigError {
                setting: setting(key),
                reason: reason.to_owned(),
            };
            if settings.queue.is_empty() || settings.queue.contains([':', ' ']) {
                return Err(invalid(
                    "queue",
                    "must be a non-empty name without ':' or spaces",
                ));
            }
            if settings.max_attempts == 0 {
                return Err(invalid("max_attempts", "must be at least 1"));
            }
            if settings.retry_schedule.is_empty() {
                return Err(invalid(
                    "retry_schedule_secs",
                    "must list at least one delay",
                ));
            }
            if settings.timeout.is_zero() {
                return Err(invalid("timeout_secs", "must be greater than 0"));
            }
            if settings.concurrency == 0 {
                return Err(invalid("concurrency", "must be at least 1"));
            }
            if settings.window == 0 || settings.window > MAX_WINDOW {
                return Err(invalid(
                    "window",
                    &format!("must be between 1 and {MAX_WINDOW}"),
                ));
            }
            if settings
                .rate_limit
                .is_some_and(|limit| limit.per_second == 0)
            {
                return Err(invalid("rate_limit.per_second", "must be at least 1"));
            }
            kinds.insert(kind, settings);
        }
        for kind in EffectKind::ALL {
            if !kinds.contains_key(&kind) {
                return Err(ConfigError {
                    setting: format!("jobs.toml: job.{kind}"),
                    reason: "missing: every job kind needs a section".to_owned(),
                });
            }
        }
        let triggers = crate::triggers::parse(&raw.cron)?;
        Ok(Self { kinds, triggers })
    }

    /// Reads the file named by `HERALD_JOBS` if set, else the embedded `jobs.toml`.
    pub fn load() -> Result<Self, ConfigError> {
        match std::env::var("HERALD_JOBS") {
            Ok(path) => {
                let text = std::fs::read_to_string(&path).map_err(|err| ConfigError {
                    setting: "HERALD_JOBS".to_owned(),
                    reason: format!("cannot read {path}: {err}"),
                })?;
                Self::parse(&text)
            }
            Err(_) => Self::parse(DEFAULT_JOBS),
        }
    }

    /// The settings of one kind (every kind is present after `parse`).
    pub fn get(&self, kind: EffectKind) -> &JobSettings {
        &self.kinds[&kind]
    }

    /// The cron triggers.
    pub fn triggers(&self) -> &[crate::triggers::CronTrigger] {
        &self.triggers
    }

    /// Replaces the cron triggers; for tests and benchmarks.
    pub fn with_triggers(mut self, triggers: Vec<crate::triggers::CronTrigger>) -> Self {
        self.triggers = triggers;
        self
    }

    /// Every kind's settings.
    pub fn all(&self) -> impl Iterator<Item = &JobSettings> {
        self.kinds.values()
    }

    /// Changes one kind's settings; for tests and benchmarks that need, say, short retries.
    pub fn with(mut self, kind: EffectKind, change: impl FnOnce(&mut JobSettings)) -> Self {
        if let Some(settings) = self.kinds.get_mut(&kind) {
            change(settings);
        }
        self
    }
}

fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|span| format!(" (line {})", text[..span.start].lines().count().max(1)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_jobs_toml_is_valid() {
        let jobs = JobsConfig::parse(DEFAULT_JOBS).unwrap();
        let email = jobs.get(EffectKind::Email);
        assert_eq!(email.queue, "email");
        assert!(email.window < 8_000);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = JobsConfig::parse("[defaults]\nmax_attempts = 2\n[job.email]\nretries = 3\n")
            .unwrap_err();
        assert!(err.reason.contains("retries"), "{err}");
    }

    #[test]
    fn unknown_kinds_and_missing_kinds_are_refused() {
        let err = JobsConfig::parse("[defaults]\n[job.fax]\n").unwrap_err();
        assert_eq!(err.setting, "jobs.toml: job.fax");
        let err = JobsConfig::parse("[defaults]\n").unwrap_err();
        assert_eq!(err.setting, "jobs.toml: job.email");
    }

    #[test]
    fn a_window_above_the_apalis_limit_is_refused() {
        let err = JobsConfig::parse("[defaults]\n[job.email]\nwindow = 9000\n").unwrap_err();
        assert_eq!(err.setting, "jobs.toml: job.email.window");
    }

    #[test]
    fn retry_delay_follows_the_schedule_with_bounded_jitter() {
        let jobs = JobsConfig::parse(
            "[defaults]\n[job.message]\n[job.generation]\n[job.campaign_email]\n[job.email]\nretry_schedule_secs = [10, 100]\n",
        )
        .unwrap();
        let email = jobs.get(EffectKind::Email);
        for _ in 0..100 {
            let first = email.retry_delay(1, None).as_secs_f64();
            assert!((8.0..=12.0).contains(&first), "{first}");
            let later = email.retry_delay(7, None).as_secs_f64();
            assert!((80.0..=120.0).contains(&later), "{later}");
        }
        let asked = email.retry_delay(1, Some(Duration::from_secs(600)));
        assert_eq!(asked, Duration::from_secs(600));
    }
}
