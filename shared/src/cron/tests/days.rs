//! The day-field rules, seconds, and the public API's edges.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use chrono_tz::America::New_York;
use chrono_tz::UTC;

use super::super::{Field, PREVIEW_LIMIT, Schedule, preview};
use super::{fires, utc};

/// The dates in 2026 on which `expression` fires at midnight UTC.
fn dates_in_2026(expression: &str) -> Vec<NaiveDate> {
    let end = utc("2027-01-01T00:00:00Z");
    Schedule::parse(expression)
        .unwrap()
        .fires(UTC, utc("2025-12-31T23:59:59Z"))
        .take_while(|at| *at < end)
        .map(|at| at.date_naive())
        .collect()
}

fn days_of_2026(keep: impl Fn(NaiveDate) -> bool) -> Vec<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    first.iter_days().take(365).filter(|d| keep(*d)).collect()
}

#[test]
fn both_day_fields_restricted_fire_on_a_day_matching_either() {
    let got = dates_in_2026("0 0 13 * 5");
    let expected = days_of_2026(|d| d.day() == 13 || d.weekday() == Weekday::Fri);
    assert_eq!(got, expected);
    // Friday the 13th (February, March and November 2026) fires once
    assert_eq!(got.len(), 12 + 52 - 3);
}

#[test]
fn a_day_field_starting_with_a_star_makes_both_day_fields_required() {
    let got = dates_in_2026("0 0 */2 * fri");
    let expected = days_of_2026(|d| d.day() % 2 == 1 && d.weekday() == Weekday::Fri);
    assert_eq!(got, expected);
    assert_eq!(dates_in_2026("0 0 13 * *"), days_of_2026(|d| d.day() == 13));
    assert_eq!(
        dates_in_2026("0 0 * * 5"),
        days_of_2026(|d| d.weekday() == Weekday::Fri)
    );
}

#[test]
fn the_thirtieth_of_february_or_a_monday_fires_on_mondays_in_february() {
    let got = fires("0 0 30 2 1", UTC, "2026-01-01T00:00:00Z", 5);
    let days = [
        "2026-02-02",
        "2026-02-09",
        "2026-02-16",
        "2026-02-23",
        "2027-02-01",
    ];
    assert_eq!(got, days.map(|d| format!("{d}T00:00:00Z")));
}

#[test]
fn leap_days_are_found_years_apart_without_walking_there() {
    let got = fires("0 0 29 2 *", UTC, "2026-01-01T00:00:00Z", 3);
    assert_eq!(
        got,
        [
            "2028-02-29T00:00:00Z",
            "2032-02-29T00:00:00Z",
            "2036-02-29T00:00:00Z"
        ]
    );
    // 2100 is not a leap year
    let got = fires("0 0 29 2 *", UTC, "2096-03-01T00:00:00Z", 1);
    assert_eq!(got, ["2104-02-29T00:00:00Z"]);
}

#[test]
fn yearly_fires_on_new_years_day_local_time() {
    let got = fires("@yearly", New_York, "2026-01-01T05:00:00Z", 2);
    assert_eq!(got, ["2027-01-01T05:00:00Z", "2028-01-01T05:00:00Z"]);
}

#[test]
fn a_leading_seconds_field_fires_at_those_seconds() {
    let got = fires("*/15 * * * * *", UTC, "2026-01-01T00:00:00Z", 4);
    let times = ["00:00:15", "00:00:30", "00:00:45", "00:01:00"];
    assert_eq!(got, times.map(|t| format!("2026-01-01T{t}Z")));
    // a fixed time with seconds in the New York gap moves forward by the gap too
    let gap = fires("30 30 2 * * *", New_York, "2026-03-08T00:00:00Z", 1);
    assert_eq!(gap, ["2026-03-08T07:30:30Z"]);
}

#[test]
fn next_after_is_strictly_after_even_on_a_fire_or_between_seconds() {
    let hourly = Schedule::parse("0 * * * *").unwrap();
    let on_a_fire = hourly.next_after(UTC, utc("2026-01-01T10:00:00Z"));
    assert_eq!(on_a_fire, Some(utc("2026-01-01T11:00:00Z")));
    let just_before = utc("2026-01-01T10:00:00Z") - Duration::milliseconds(1);
    assert_eq!(
        hourly.next_after(UTC, just_before),
        Some(utc("2026-01-01T10:00:00Z"))
    );
}

#[test]
fn fires_strictly_increase_through_a_year_of_transitions() {
    let schedule = Schedule::parse("*/7 0-3 * * *").unwrap();
    let fires: Vec<_> = schedule
        .fires(New_York, utc("2026-01-01T00:00:00Z"))
        .take(365 * 36)
        .collect();
    assert!(fires.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn preview_lists_the_next_fires_and_caps_the_count() {
    let got = preview("0 9 * * *", UTC, utc("2026-01-01T00:00:00Z"), 2).unwrap();
    assert_eq!(
        got,
        [utc("2026-01-01T09:00:00Z"), utc("2026-01-02T09:00:00Z")]
    );
    let capped = preview("* * * * *", UTC, utc("2026-01-01T00:00:00Z"), 5000).unwrap();
    assert_eq!(capped.len(), PREVIEW_LIMIT);
    let refused = preview("0 0 * * 8", UTC, utc("2026-01-01T00:00:00Z"), 1).unwrap_err();
    assert_eq!(refused.field, Field::DayOfWeek);
}

#[test]
fn samoa_skipping_a_whole_day_moves_its_noon_a_day_forward_onto_the_next_noon() {
    // Apia went from 2011-12-29 24:00 (−10) straight to 2011-12-31 00:00 (+14)
    let got = fires(
        "0 12 * * *",
        chrono_tz::Pacific::Apia,
        "2011-12-28T00:00:00Z",
        4,
    );
    let expected = ["2011-12-28", "2011-12-29", "2011-12-30", "2011-12-31"];
    assert_eq!(got, expected.map(|d| format!("{d}T22:00:00Z")));
    let hourly = fires(
        "0 * * * *",
        chrono_tz::Pacific::Apia,
        "2011-12-30T08:30:00Z",
        3,
    );
    assert_eq!(
        hourly,
        [
            "2011-12-30T09:00:00Z",
            "2011-12-30T10:00:00Z",
            "2011-12-30T11:00:00Z"
        ]
    );
}
