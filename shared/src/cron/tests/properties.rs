//! Property test: for random expressions, zones and instants, the engine's fires over a 40-day
//! horizon equal a brute-force reference that walks minute by minute and applies the DST rule
//! literally. The reference evaluates the generated items itself, so it checks the parser too.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::super::{Field, Kind, Schedule};
use crate::time_rules::resolve_local;

const HORIZON_DAYS: i64 = 40;

/// Zones with interesting transitions (and two without).
const ZONES: [&str; 10] = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Santiago",
    "Asia/Kolkata",
    "UTC",
    "Europe/Dublin",
    "America/St_Johns",
    "Asia/Tehran",
];

#[derive(Debug, Clone)]
enum Item {
    Star,
    StarStep(u32),
    Value(u32),
    Range(u32, u32),
    RangeStep(u32, u32, u32),
    ValueStep(u32, u32),
}

/// One generated field: its items, its bounds, and whether to write names.
#[derive(Debug, Clone)]
struct FieldSpec {
    items: Vec<Item>,
    min: u32,
    max: u32,
    names: Option<&'static [&'static str]>,
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
            Item::StarStep(s) => (v - min) % s == 0,
            Item::Value(a) => v == a,
            Item::Range(a, b) => a <= v && v <= b,
            Item::RangeStep(a, b, s) => a <= v && v <= b && (v - a) % s == 0,
            Item::ValueStep(a, s) => a <= v && v <= max && (v - a) % s == 0,
        })
    }

    fn render(&self) -> String {
        let name = |v: u32| match self.names {
            // 7 (Sunday again) has no name of its own
            Some(names) if ((v - self.min) as usize) < names.len() => {
                let name = names[(v - self.min) as usize];
                if v % 2 == 0 {
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
struct Expression {
    minute: FieldSpec,
    hour: FieldSpec,
    day_of_month: FieldSpec,
    month: FieldSpec,
    day_of_week: FieldSpec,
}

impl Expression {
    fn render(&self) -> String {
        let fields = [
            &self.minute,
            &self.hour,
            &self.day_of_month,
            &self.month,
            &self.day_of_week,
        ];
        fields.map(FieldSpec::render).join(" ")
    }

    fn kind(&self) -> Kind {
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
    fn possible(&self) -> bool {
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
fn reference(
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

fn field(
    min: u32,
    max: u32,
    names: Option<&'static [&'static str]>,
    star_weight: u32,
) -> impl Strategy<Value = FieldSpec> {
    let item = prop_oneof![
        Just(Item::Star),
        (1..=max).prop_map(Item::StarStep),
        (min..=max).prop_map(Item::Value),
        (min..=max, min..=max).prop_map(|(a, b)| Item::Range(a.min(b), a.max(b))),
        (min..=max, min..=max, 1..=max).prop_map(|(a, b, s)| Item::RangeStep(
            a.min(b),
            a.max(b),
            s
        )),
        (min..=max, 1..=max).prop_map(|(a, s)| Item::ValueStep(a, s)),
    ];
    let items = prop_oneof![
        star_weight => Just(vec![Item::Star]),
        4 => prop::collection::vec(item, 1..=3),
    ];
    (items, any::<bool>()).prop_map(move |(items, named)| FieldSpec {
        items,
        min,
        max,
        names: names.filter(|_| named),
    })
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Hours are biased toward 23:00–03:59, where these zones change their clocks.
fn hour() -> impl Strategy<Value = FieldSpec> {
    let near = prop::sample::select(vec![0, 1, 2, 3, 23]);
    let item = prop_oneof![
        near.clone().prop_map(Item::Value),
        (near.clone(), near).prop_map(|(a, b)| Item::Range(a.min(b), a.max(b))),
    ];
    let transition_hours = prop::collection::vec(item, 1..=2).prop_map(|items| FieldSpec {
        items,
        min: 0,
        max: 23,
        names: None,
    });
    prop_oneof![3 => field(0, 23, None, 2), 2 => transition_hours]
}

fn expression() -> impl Strategy<Value = Expression> {
    (
        field(0, 59, None, 2),
        hour(),
        field(1, 31, None, 4),
        field(1, 12, Some(&MONTHS), 8),
        field(0, 7, Some(&WEEKDAYS), 4),
    )
        .prop_map(
            |(minute, hour, day_of_month, month, day_of_week)| Expression {
                minute,
                hour,
                day_of_month,
                month,
                day_of_week,
            },
        )
}

/// Zone offset changes in 2024–2030 to within a day, by probing every day (the tz database
/// keeps them at least a week apart).
fn transitions(zone: Tz) -> Vec<DateTime<Utc>> {
    let offset = |at: DateTime<Utc>| at.with_timezone(&zone).offset().fix();
    let first = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    (0..7 * 366)
        .map(|day| first + Duration::days(day))
        .filter(|day| offset(*day) != offset(*day + Duration::days(1)))
        .collect()
}

/// A zone and an instant in 2024–2030: uniformly, early in a month with transitions in some
/// zones, or within three days before one of this zone's own transitions.
fn zone_and_instant() -> impl Strategy<Value = (Tz, DateTime<Utc>)> {
    let start = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    let end = Utc
        .with_ymd_and_hms(2031, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    let uniform = (start..end).prop_map(|at| DateTime::from_timestamp(at, 0).unwrap());
    let months = prop::sample::select(vec![3, 4, 9, 10, 11]);
    let early_in_month = (2024..=2030, months, 1..=20u32, 0..86_400i64).prop_map(|(y, m, d, s)| {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap() + Duration::seconds(s)
    });
    let zone = prop::sample::select(ZONES.to_vec()).prop_map(|name| name.parse::<Tz>().unwrap());
    let pick = any::<prop::sample::Index>();
    let before = 0..3 * 86_400i64;
    (
        zone,
        prop_oneof![uniform, early_in_month],
        pick,
        before,
        0..3u8,
    )
        .prop_map(|(zone, at, pick, before, choice)| {
            let changes = transitions(zone);
            if choice == 0 || changes.is_empty() {
                (zone, at)
            } else {
                (zone, *pick.get(&changes) - Duration::seconds(before))
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn fires_equal_a_minute_by_minute_reference(
        expression in expression(),
        (zone, after) in zone_and_instant(),
    ) {
        let text = expression.render();
        match Schedule::parse(&text) {
            Err(error) => {
                prop_assert!(!expression.possible(), "`{}` refused: {}", text, error);
                prop_assert_eq!(error.field, Field::DayOfMonth);
            }
            Ok(schedule) => {
                prop_assert!(expression.possible(), "`{}` accepted but can never fire", text);
                prop_assert_eq!(schedule.kind(), expression.kind());
                let end = after + Duration::days(HORIZON_DAYS);
                let got: Vec<_> = schedule.fires(zone, after).take_while(|at| *at <= end).collect();
                let want = reference(&expression, zone, after, end);
                prop_assert_eq!(got, want, "`{}` in {} after {}", text, zone, after);
            }
        }
    }
}
