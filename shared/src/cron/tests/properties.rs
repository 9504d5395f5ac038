//! Property test: for random expressions, zones and instants, the engine's fires over a 40-day
//! horizon equal the brute-force reference's. The reference reads the generated items itself,
//! so the parser is checked too.

use chrono::{DateTime, Duration, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::super::{Field, Schedule};
use super::reference::{Expression, FieldSpec, Item, reference};

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
