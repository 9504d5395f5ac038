//! Provider outages that are Herald's, not the message's: today, Twilio refusing Herald's own
//! credentials (HTTP 401/403, e.g. a rotated auth token). Failing each message for that would
//! fail every message permanently, so instead:
//! - the message stays `retrying`, its attempt not counted, and is tried again after
//!   `twilio.auth_failure_retry_secs` (± 10 % jitter) — so sending resumes by itself once the
//!   credentials work, however long the outage lasted;
//! - each refusal counts in `herald_provider_auth_failures_total{provider}`;
//! - `/readyz` reports the provider as failing (503) from the first refusal until a call
//!   succeeds, or until no refusal was seen for three retry periods (no message is waiting
//!   for it any more: nothing left to say the credentials are still wrong).
//!
//! Each replica knows only the answers it got; every replica sees refusals soon, since the
//! waiting messages are retried by whichever replica takes them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng as _;
use serde::Serialize;
use tokio::time::Instant;

/// The provider name in metrics, logs and `/readyz`.
pub const TWILIO: &str = "twilio";

/// The providers currently refusing Herald's credentials, as one replica saw them.
#[derive(Clone, Default)]
pub struct Outages(Arc<Mutex<BTreeMap<&'static str, Outage>>>);

struct Outage {
    since: DateTime<Utc>,
    last_seen: Instant,
    last_error: String,
    /// How long a refusal keeps the provider failing without a new one.
    lasts: Duration,
}

/// A failing provider as `/readyz` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OutageReport {
    pub since: DateTime<Utc>,
    pub error: String,
}

impl Outages {
    /// Records that `provider` refused Herald's credentials; `retry` is how long the refused
    /// messages wait before their next try.
    pub fn refused(&self, provider: &'static str, error: &str, retry: Duration) {
        metrics::counter!("herald_provider_auth_failures_total", "provider" => provider)
            .increment(1);
        let Ok(mut outages) = self.0.lock() else {
            return;
        };
        let now = Instant::now();
        let lasts = retry * 3;
        match outages.get_mut(provider) {
            Some(outage) if now.duration_since(outage.last_seen) <= outage.lasts => {
                outage.last_seen = now;
                outage.last_error = error.to_owned();
                outage.lasts = lasts;
            }
            _ => {
                tracing::error!(%provider, %error, "provider refuses Herald's credentials: messages wait, uncounted, until it accepts them");
                outages.insert(
                    provider,
                    Outage {
                        since: Utc::now(),
                        last_seen: now,
                        last_error: error.to_owned(),
                        lasts,
                    },
                );
            }
        }
        metrics::gauge!("herald_provider_failing", "provider" => provider).set(1.0);
    }

    /// Records that `provider` accepted Herald's credentials (it took a message, or refused
    /// one for a reason of the message's own).
    pub fn accepted(&self, provider: &'static str) {
        let Ok(mut outages) = self.0.lock() else {
            return;
        };
        if let Some(outage) = outages.remove(provider) {
            tracing::info!(%provider, since = %outage.since, "provider accepts Herald's credentials again");
            metrics::gauge!("herald_provider_failing", "provider" => provider).set(0.0);
        }
    }

    /// The providers failing now, by name; an outage with no refusal for its lifetime ends.
    pub fn failing(&self) -> BTreeMap<&'static str, OutageReport> {
        let now = Instant::now();
        self.0
            .lock()
            .map(|mut outages| {
                outages.retain(|provider, outage| {
                    let current = now.duration_since(outage.last_seen) <= outage.lasts;
                    if !current {
                        tracing::info!(%provider, "no credential refusal seen for three retry periods; no longer reported failing");
                        metrics::gauge!("herald_provider_failing", "provider" => *provider)
                            .set(0.0);
                    }
                    current
                });
                outages
                    .iter()
                    .map(|(provider, outage)| {
                        (
                            *provider,
                            OutageReport {
                                since: outage.since,
                                error: outage.last_error.clone(),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `period` with ± 10 % jitter, so messages refused together do not all come back at once.
pub fn jittered(period: Duration) -> Duration {
    let factor = rand::thread_rng().gen_range(0.9..=1.1);
    period.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_outage_ends_on_acceptance_or_when_refusals_stop() {
        let outages = Outages::default();
        outages.refused(TWILIO, "HTTP 401", Duration::from_millis(10));
        assert_eq!(outages.failing()[TWILIO].error, "HTTP 401");
        outages.accepted(TWILIO);
        assert!(outages.failing().is_empty());

        outages.refused(TWILIO, "HTTP 403", Duration::from_millis(10));
        assert!(!outages.failing().is_empty());
        // no refusal for three retry periods: nothing is waiting to say it still fails
        let deadline = Instant::now() + Duration::from_secs(5);
        while !outages.failing().is_empty() {
            assert!(Instant::now() < deadline, "the outage never lapsed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
