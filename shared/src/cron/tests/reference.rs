//! A brute-force reference for the property test: a generated expression that knows what it
//! means (crontab(5)'s rules written out plainly, not through the engine's bitmasks), and the
//! fires the DST rule gives it, found by walking minute by minute.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;

use super::super::Kind;
use crate::time_rules::resolve_local;

#[derive(Debug, Clone)]
pub(super) enum Item {
    Star,
    StarStep(u32),
    Value(u32),
    Range(u32, u32),
    RangeStep(u32, u32, u32),
    ValueStep(u32, u32),
}

/// One generated field: its items, its bounds, and whether to write names.
#[derive(Debug, Clone)]
pub(super) struct FieldSpec {
    pub(super) items: Vec<Item>,
    pub(super) min: u32,
    pub(super) max: u32,
    pub(super) names: Option<&'static [&'static str]>,
}

impl FieldSpec {
    fn starts_with_star(&self) -> bool {
        matches!(self.items.first(), Some(Item::Star | Item::StarStep(_)))
    }

    /// crontab(5)'s meaning, written out plainly.
    fn contains(&self, v: u32) -> bool {
        let (min, max) = (self.min, self.max);
        self.items.iter().any(|item| match *item {
            Item::Star => true,
            Item::StarStep(s) => (v - min).is_multiple_of(s),
            Item::Value(a) => v == a,
            Item::Range(a, b) => a <= v && v <= b,
            Item::RangeStep(a, b, s) => a <= v && v <= b && (v - a).is_multiple_of(s),
            Item::ValueStep(a, s) => a <= v && v <= max && (v - a).is_multiple_of(s),
        })
    }

    fn render(&self) -> String {
        let name = |v: u32| match self.names {
            // 7 (Sunday again) has no name of its own
            Some(names) if ((v - self.min) as usize) < names.len() => {
                let name = names[(v - self.min) as usize];
                if v.is_multiple_of(2) {
                    name.to_uppercase()
                } else {
                    name.to_owned()
                }
            }
            _ => v.to_string(),
        };
        let items: Vec<String> = self
            .items
            .iter()
            .map(|item| match *item {
                Item::Star => "*".to_owned(),
                Item::StarStep(s) => format!("*/{s}"),
                Item::Value(a) => name(a),
                Item::Range(a, b) => format!("{}-{}", name(a), name(b)),
                Item::RangeStep(a, b, s) => format!("{}-{}/{s}", name(a), name(b)),
                Item::ValueStep(a, s) => format!("{}/{s}", name(a)),
            })
            .collect();
        items.join(",")
    }
}

#[derive(Debug, Clone)]
pub(super) struct Expression {
    pub(super) minute: FieldSpec,
    pub(super) hour: FieldSpec,
    pub(super) day_of_month: FieldSpec,
    pub(super) month: FieldSpec,
    pub(super) day_of_week: FieldSpec,
}

impl Expression {
    pub(super) fn render(&self) -> String {
        let fields = [
            &self.minute,
            &self.hour,
            &self.day_of_month,
            &self.month,
            &self.day_of_week,
        ];
        fields.map(FieldSpec::render).join(" ")
    }

    pub(super) fn kind(&self) -> Kind {
        if self.minute.starts_with_star() || self.hour.starts_with_star() {
            Kind::Wildcard
        } else {
            Kind::FixedTime
        }
    }

    fn either_day(&self) -> bool {
        !self.day_of_month.starts_with_star() && !self.day_of_week.starts_with_star()
    }

    fn matches(&self, local: NaiveDateTime) -> bool {
        let weekday = local.weekday().num_days_from_sunday();
        let by_day = self.day_of_month.contains(local.day());
        let by_weekday =
            self.day_of_week.contains(weekday) || (weekday == 0 && self.day_of_week.contains(7));
        let day = if self.either_day() {
            by_day || by_weekday
        } else {
            by_day && by_weekday
        };
        local.second() == 0
            && self.minute.contains(local.minute())
            && self.hour.contains(local.hour())
            && self.month.contains(local.month())
            && day
    }

    /// Whether any date can match: the weekday rules aside, some chosen day of the month must
    /// exist in some chosen month (2024 is a leap year).
    pub(super) fn possible(&self) -> bool {
        self.either_day()
            || (1..=12).filter(|m| self.month.contains(*m)).any(|m| {
                (1..=31).any(|d| {
                    self.day_of_month.contains(d)
                        && chrono::NaiveDate::from_ymd_opt(2024, m, d).is_some()
                })
            })
    }
}

/// The fires in `(after, end]` by the rule, walking minute by minute.
pub(super) fn reference(
    expression: &Expression,
    zone: Tz,
    after: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let minute = |at: DateTime<Utc>| at.timestamp().div_euclid(60) * 60;
    let mut fires = Vec::new();
    match expression.kind() {
        Kind::Wildcard => {
            // every real minute whose local time matches
            let mut at = minute(after) + 60;
            while at <= end.timestamp() {
                let instant = DateTime::from_timestamp(at, 0).unwrap();
                if expression.matches(instant.with_timezone(&zone).naive_local()) {
                    fires.push(instant);
                }
                at += 60;
            }
        }
        Kind::FixedTime => {
            // every matching local minute (well past both ends), resolved by the single rule
            let start = DateTime::from_timestamp(minute(after), 0)
                .unwrap()
                .naive_utc()
                - Duration::days(2);
            let stop = end.naive_utc() + Duration::days(2);
            let mut local = start;
            while local <= stop {
                if expression.matches(local) {
                    let at = resolve_local(zone, local);
                    if after < at && at <= end {
                        fires.push(at);
                    }
                }
                local += Duration::minutes(1);
            }
            fires.sort();
            fires.dedup();
        }
    }
    fires
}
