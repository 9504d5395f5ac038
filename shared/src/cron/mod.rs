//! Cron schedules: crontab(5) expressions and the instants they fire, by DESIGN.md's "Time"
//! rules. Pure: no I/O, no clock; the caller supplies the zone and the instant to start after.
//!
//! # Expressions
//!
//! Five fields, `minute hour day-of-month month day-of-week`, or six with a leading `second`
//! (a five-field expression fires at second 0). Each field is a list of `*`, `N`, `A-B`,
//! `*/S`, `A-B/S` or `N/S` (= `N-max/S`, as in Vixie cron); steps run from 1 to the field's
//! largest value. Months and weekdays take names (`jan`–`dec`, `sun`–`sat`, any case). `0`
//! and `7` are Sunday. When both day fields are restricted — neither starts with `*`, so
//! `*/2` counts as unrestricted, as crontab(5) words it — a day matching either fires
//! (`0 0 13 * 5`: every 13th and every Friday); otherwise a day must match both. `@hourly`,
//! `@daily` (`@midnight`), `@weekly`, `@monthly` and `@yearly` (`@annually`) are accepted;
//! `@reboot` is not. An expression that can never fire (`0 0 30 2 *`) is refused.
//!
//! # Daylight saving time (Vixie cron's rule)
//!
//! An expression whose minute or hour field starts with `*` (`*/20` too) is a
//! [`Kind::Wildcard`] schedule: it fires at every real instant whose local time matches, so
//! nothing in a spring-forward gap and both occurrences of a repeated time. Any other is a
//! [`Kind::FixedTime`] schedule: it fires once per matching local date-time, at the instant
//! `time_rules::resolve_local` gives it (02:30 in a gap fires at 03:30; 01:30 in a repeated
//! hour fires once, at the earlier instant). The seconds field plays no part in the kind.
//! Fire instants strictly increase: a fixed-time schedule fires at the *set* of its resolved
//! instants, in time order, so when several local date-times resolve to one instant it fires
//! once, and a real time just after a gap that comes before a shifted gap time still fires
//! (Lord Howe's 30-minute gap: `10,35 2 * * *` fires at 02:35, then at 02:40 for 02:10). See
//! `fires` for how the instants are found without walking minute by minute.

mod calendar;
mod fires;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use calendar::Fields;

/// The most fire times [`preview`] returns.
pub const PREVIEW_LIMIT: usize = 1000;

/// How a schedule meets daylight-saving transitions (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Once per matching local date-time; a gap time moves forward, a repeated one fires at
    /// the earlier instant.
    FixedTime,
    /// At every real instant whose local time matches.
    Wildcard,
}

/// The part of an expression a [`ParseError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The expression as a whole (field count, `@` names).
    Expression,
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    /// The name used in messages, e.g. `day-of-week`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expression => "expression",
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::DayOfMonth => "day-of-month",
            Self::Month => "month",
            Self::DayOfWeek => "day-of-week",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An expression refused, with the field at fault and why
/// (`day-of-week: 8 is out of range 0–7`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ParseError {
    pub field: Field,
    pub reason: String,
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    expression: String,
    fields: Fields,
    kind: Kind,
}

impl Schedule {
    /// Parses a crontab(5) expression (see the module docs for the grammar).
    pub fn parse(expression: &str) -> Result<Self, ParseError> {
        let (fields, kind) = parse::parse(expression)?;
        Ok(Self {
            expression: expression.trim().to_owned(),
            fields,
            kind,
        })
    }

    /// Whether this is a fixed-time or a wildcard schedule.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The expression as given (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first fire strictly after `after`, with the wall clock in `zone`; `None` only past
    /// the end of the calendar chrono can represent.
    pub fn next_after(&self, zone: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = fires::next_fire(&self.fields, self.kind, zone, after.timestamp())?;
        DateTime::from_timestamp(at, 0)
    }

    /// Whether `at` is one of the fires with the wall clock in `zone`.
    pub fn fires_at(&self, zone: Tz, at: DateTime<Utc>) -> bool {
        // fires fall on whole seconds: the first one after the second before `at` is `at` or later
        at.checked_sub_signed(chrono::Duration::seconds(1))
            .and_then(|before| self.next_after(zone, before))
            == Some(at)
    }

    /// The fires strictly after `after`, in strictly increasing order.
    pub fn fires(&self, zone: Tz, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> {
        std::iter::successors(self.next_after(zone, after), move |&previous| {
            self.next_after(zone, previous)
        })
    }
}

impl FromStr for Schedule {
    type Err = ParseError;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        Self::parse(expression)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

/// The first `count` fires of `expression` strictly after `after` in `zone`, for
/// `POST /api/v1/cron/preview`. `count` is capped at [`PREVIEW_LIMIT`].
pub fn preview(
    expression: &str,
    zone: Tz,
    after: DateTime<Utc>,
    count: usize,
) -> Result<Vec<DateTime<Utc>>, ParseError> {
    let schedule = Schedule::parse(expression)?;
    Ok(schedule
        .fires(zone, after)
        .take(count.min(PREVIEW_LIMIT))
        .collect())
}
