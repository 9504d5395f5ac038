//! The grammar: what is accepted, what it means, and how refusals read.

use chrono_tz::UTC;

use super::super::{Field, Kind, ParseError, Schedule};
use super::fires;

fn refusal(expression: &str) -> ParseError {
    Schedule::parse(expression).unwrap_err()
}

#[test]
fn lists_ranges_and_steps_combine_in_one_field() {
    let got = fires(
        "1,10-12,20-30/5,*/50 0 1 1 *",
        UTC,
        "2025-12-31T00:00:00Z",
        9,
    );
    let minutes = ["00", "01", "10", "11", "12", "20", "25", "30", "50"];
    assert_eq!(got, minutes.map(|m| format!("2026-01-01T00:{m}:00Z")));
}

#[test]
fn a_start_with_a_step_runs_to_the_end_of_the_field_as_in_vixie_cron() {
    let got = fires("0 20/2 * * *", UTC, "2026-01-01T00:00:00Z", 3);
    assert_eq!(
        got,
        [
            "2026-01-01T20:00:00Z",
            "2026-01-01T22:00:00Z",
            "2026-01-02T20:00:00Z"
        ]
    );
}

#[test]
fn month_and_day_names_are_accepted_in_any_case_and_in_ranges() {
    let named = Schedule::parse("0 0 * JAN,Mar-may Mon-FRI").unwrap();
    let numbered = Schedule::parse("0 0 * 1,3-5 1-5").unwrap();
    assert_eq!(named.fields, numbered.fields);
}

#[test]
fn zero_and_seven_are_both_sunday() {
    let zero = Schedule::parse("0 0 * * 0").unwrap();
    let seven = Schedule::parse("0 0 * * 7").unwrap();
    let name = Schedule::parse("0 0 * * sun").unwrap();
    assert_eq!(zero.fields, seven.fields);
    assert_eq!(zero.fields, name.fields);
    let weekend = Schedule::parse("0 0 * * 6-7").unwrap();
    assert_eq!(
        weekend.fields,
        Schedule::parse("0 0 * * 0,6").unwrap().fields
    );
}

#[test]
fn macros_mean_their_five_field_forms() {
    let pairs = [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@ANNUALLY", "0 0 1 1 *"),
    ];
    for (name, expansion) in pairs {
        let left = Schedule::parse(name).unwrap();
        let right = Schedule::parse(expansion).unwrap();
        assert_eq!(
            (left.fields, left.kind),
            (right.fields, right.kind),
            "{name}"
        );
    }
}

#[test]
fn a_minute_or_hour_field_starting_with_a_star_makes_a_wildcard_schedule() {
    let kind = |expression: &str| Schedule::parse(expression).unwrap().kind();
    assert_eq!(kind("*/20 * * * *"), Kind::Wildcard);
    assert_eq!(kind("0 * * * *"), Kind::Wildcard);
    assert_eq!(kind("*/5 9 * * *"), Kind::Wildcard);
    assert_eq!(kind("@hourly"), Kind::Wildcard);
    assert_eq!(kind("30 2 * * *"), Kind::FixedTime);
    assert_eq!(kind("0 9 * * 1-5"), Kind::FixedTime);
    assert_eq!(kind("0-59 0-23 * * *"), Kind::FixedTime);
    assert_eq!(kind("@daily"), Kind::FixedTime);
    // the seconds field plays no part
    assert_eq!(kind("* 30 2 * * *"), Kind::FixedTime);
}

#[test]
fn refusals_name_the_field_and_the_reason() {
    assert_eq!(
        refusal("0 0 * * 8").to_string(),
        "day-of-week: 8 is out of range 0–7"
    );
    assert_eq!(
        refusal("60 0 * * *").to_string(),
        "minute: 60 is out of range 0–59"
    );
    assert_eq!(refusal("0 24 * * *").field, Field::Hour);
    assert_eq!(
        refusal("0 0 0 * *").to_string(),
        "day-of-month: 0 is out of range 1–31"
    );
    assert_eq!(refusal("0 0 * 13 *").field, Field::Month);
    assert_eq!(
        refusal("60 0 0 * * *").to_string(),
        "second: 60 is out of range 0–59"
    );
    assert_eq!(
        refusal("0 0 * foo *").to_string(),
        "month: `foo` is not a number (1–12) or a name (jan–dec)"
    );
    assert_eq!(
        refusal("x 0 * * *").to_string(),
        "minute: `x` is not a number"
    );
    assert_eq!(
        refusal("*/0 * * * *").to_string(),
        "minute: step `0` is out of range 1–59"
    );
    assert_eq!(refusal("0 0 * * 5-1").field, Field::DayOfWeek);
    assert_eq!(refusal("0 0 * * fri-sun").field, Field::DayOfWeek);
    assert_eq!(refusal("1,,2 * * * *").field, Field::Minute);
    assert_eq!(refusal("0 0 * *").field, Field::Expression);
    assert_eq!(refusal("0 0 0 0 * * *").field, Field::Expression);
    assert_eq!(refusal("@reboot").field, Field::Expression);
    assert_eq!(refusal("@often").field, Field::Expression);
    assert_eq!(refusal("").field, Field::Expression);
    assert_eq!(refusal("99999999999 * * * *").field, Field::Minute);
    assert_eq!(refusal("-1 * * * *").field, Field::Minute);
}

#[test]
fn an_expression_that_can_never_fire_is_refused() {
    assert_eq!(
        refusal("0 0 30 2 *").to_string(),
        "day-of-month: day 30 never occurs in February, so this never fires"
    );
    assert_eq!(
        refusal("0 0 31 4,jun *").to_string(),
        "day-of-month: day 31 never occurs in April, June, so this never fires"
    );
    assert_eq!(refusal("0 0 30,31 2 */2").field, Field::DayOfMonth);
    // 29 February comes round every four years, and the weekday rule can add days
    assert!(Schedule::parse("0 0 29 2 *").is_ok());
    assert!(Schedule::parse("0 0 30 2 1").is_ok());
}
