//! Tests for the cron engine: the grammar, real DST transitions in zones with unusual ones,
//! the day-field rules, and a property test against a brute-force reference.

mod days;
mod parsing;
mod properties;
mod reference;
mod zones;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::Schedule;

/// An instant written as RFC 3339.
fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The first `count` fires of `expression` after `after`, as `YYYY-MM-DDTHH:MM:SSZ`.
fn fires(expression: &str, zone: Tz, after: &str, count: usize) -> Vec<String> {
    Schedule::parse(expression)
        .unwrap()
        .fires(zone, utc(after))
        .take(count)
        .map(|at| at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}
