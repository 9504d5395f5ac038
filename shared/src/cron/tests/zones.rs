//! Fires across real 2026 transitions, written out by hand from the tz database.

use chrono_tz::America::{New_York, Santiago};
use chrono_tz::Asia::Kolkata;
use chrono_tz::Australia::Lord_Howe;
use chrono_tz::Europe::London;
use chrono_tz::Pacific::Chatham;

use super::fires;

// New York: 2026-03-08 02:00 EST → 03:00 EDT (07:00Z); 2026-11-01 02:00 EDT → 01:00 EST (06:00Z).

#[test]
fn new_york_fixed_time_in_the_spring_gap_fires_when_the_gap_ends() {
    let got = fires("30 2 * * *", New_York, "2026-03-07T00:00:00Z", 3);
    // 02:30 does not exist on 03-08: it fires at 03:30 EDT
    assert_eq!(
        got,
        [
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:30:00Z",
            "2026-03-09T06:30:00Z"
        ]
    );
}

#[test]
fn new_york_fixed_time_in_the_repeated_hour_fires_once_at_the_earlier_instant() {
    let got = fires("30 1 * * *", New_York, "2026-10-31T00:00:00Z", 3);
    assert_eq!(
        got,
        [
            "2026-10-31T05:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z"
        ]
    );
}

#[test]
fn new_york_hourly_fires_at_both_one_oclocks_and_skips_the_missing_two_oclock() {
    let autumn = fires("0 * * * *", New_York, "2026-11-01T04:00:00Z", 4);
    assert_eq!(
        autumn,
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T08:00:00Z"
        ]
    );
    // 01:00 EST, then 03:00 EDT an hour later: every real hour still fires once
    let spring = fires("0 * * * *", New_York, "2026-03-08T05:00:00Z", 3);
    assert_eq!(
        spring,
        [
            "2026-03-08T06:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T08:00:00Z"
        ]
    );
}

#[test]
fn new_york_every_twenty_minutes_covers_the_repeated_hour_twice() {
    let got = fires("*/20 * * * *", New_York, "2026-11-01T04:50:00Z", 7);
    let expected = [
        "05:00", "05:20", "05:40", "06:00", "06:20", "06:40", "07:00",
    ]
    .map(|time| format!("2026-11-01T{time}:00Z"));
    assert_eq!(got, expected);
    // nothing in the gap: 01:40 EST, then 03:00 EDT
    let spring = fires("*/20 * * * *", New_York, "2026-03-08T06:30:00Z", 3);
    assert_eq!(
        spring,
        [
            "2026-03-08T06:40:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:20:00Z"
        ]
    );
}

#[test]
fn new_york_weekday_mornings_stay_at_nine_local_across_both_transitions() {
    let spring = fires("0 9 * * 1-5", New_York, "2026-03-05T00:00:00Z", 4);
    assert_eq!(
        spring,
        [
            "2026-03-05T14:00:00Z",
            "2026-03-06T14:00:00Z",
            "2026-03-09T13:00:00Z",
            "2026-03-10T13:00:00Z"
        ]
    );
    let autumn = fires("0 9 * * mon-fri", New_York, "2026-10-29T00:00:00Z", 3);
    assert_eq!(
        autumn,
        [
            "2026-10-29T13:00:00Z",
            "2026-10-30T13:00:00Z",
            "2026-11-02T14:00:00Z"
        ]
    );
}

// London: 2026-03-29 01:00 GMT → 02:00 BST (01:00Z); 2026-10-25 02:00 BST → 01:00 GMT (01:00Z).

#[test]
fn london_gap_time_and_the_real_time_it_moves_to_fire_once() {
    let got = fires("30 1 * * *", London, "2026-03-28T00:00:00Z", 3);
    assert_eq!(
        got,
        [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-30T00:30:00Z"
        ]
    );
    // 01:30 (moved to 02:30 BST) and 02:30 BST are one instant
    let both = fires("30 1,2 * * *", London, "2026-03-29T00:00:00Z", 3);
    assert_eq!(
        both,
        [
            "2026-03-29T01:30:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-30T01:30:00Z"
        ]
    );
}

#[test]
fn london_repeated_hour_fires_fixed_times_once_and_wildcards_twice() {
    let fixed = fires("30 1 * * *", London, "2026-10-24T12:00:00Z", 2);
    assert_eq!(fixed, ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]);
    let wildcard = fires("30 * * * *", London, "2026-10-24T23:00:00Z", 4);
    assert_eq!(
        wildcard,
        [
            "2026-10-24T23:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T02:30:00Z"
        ]
    );
}

// Lord Howe: 2026-04-05 02:00 (+11) → 01:30 (+10:30) at 04-04 15:00Z;
// 2026-10-04 02:00 (+10:30) → 02:30 (+11) at 10-03 15:30Z.

#[test]
fn lord_howe_half_hour_gap_moves_a_fixed_time_by_thirty_minutes() {
    let got = fires("15 2 * * *", Lord_Howe, "2026-10-02T12:00:00Z", 3);
    // 02:15 on 10-04 becomes 02:45 (+11)
    assert_eq!(
        got,
        [
            "2026-10-02T15:45:00Z",
            "2026-10-03T15:45:00Z",
            "2026-10-04T15:15:00Z"
        ]
    );
}

#[test]
fn lord_howe_shifted_gap_time_and_a_later_real_time_both_fire_in_time_order() {
    // 02:10 is in the gap and fires at 02:40 (+11); 02:35 exists and fires at 02:35, first
    let got = fires("10,35 2 * * *", Lord_Howe, "2026-10-03T12:00:00Z", 4);
    assert_eq!(
        got,
        [
            "2026-10-03T15:35:00Z",
            "2026-10-03T15:40:00Z",
            "2026-10-04T15:10:00Z",
            "2026-10-04T15:35:00Z"
        ]
    );
}

#[test]
fn lord_howe_repeated_half_hour_fires_fixed_times_once_and_wildcards_twice() {
    let fixed = fires("45 1 * * *", Lord_Howe, "2026-04-03T12:00:00Z", 3);
    assert_eq!(
        fixed,
        [
            "2026-04-03T14:45:00Z",
            "2026-04-04T14:45:00Z",
            "2026-04-05T15:15:00Z"
        ]
    );
    // 01:20 and 01:40 at +11, 01:40 again at +10:30, then 02:00 and 02:20
    let wildcard = fires("*/20 * * * *", Lord_Howe, "2026-04-04T14:10:00Z", 5);
    let expected =
        ["14:20", "14:40", "15:10", "15:30", "15:50"].map(|t| format!("2026-04-04T{t}:00Z"));
    assert_eq!(wildcard, expected);
}

// Chatham: 2026-04-05 03:45 (+13:45) → 02:45 (+12:45) at 04-04 14:00Z;
// 2026-09-27 02:45 (+12:45) → 03:45 (+13:45) at 09-26 14:00Z.

#[test]
fn chatham_gap_starting_at_a_quarter_to_moves_three_oclock_an_hour_later() {
    let got = fires("0 3 * * *", Chatham, "2026-09-25T12:00:00Z", 3);
    assert_eq!(
        got,
        [
            "2026-09-25T14:15:00Z",
            "2026-09-26T14:15:00Z",
            "2026-09-27T13:15:00Z"
        ]
    );
}

#[test]
fn chatham_repeated_hour_fires_fixed_times_once_and_wildcards_twice() {
    let fixed = fires("0 3 * * *", Chatham, "2026-04-03T12:00:00Z", 3);
    assert_eq!(
        fixed,
        [
            "2026-04-03T13:15:00Z",
            "2026-04-04T13:15:00Z",
            "2026-04-05T14:15:00Z"
        ]
    );
    // 03:00 local happens at 13:15Z (+13:45) and again at 14:15Z (+12:45)
    let wildcard = fires("0 * * * *", Chatham, "2026-04-04T12:00:00Z", 4);
    let expected = ["12:15", "13:15", "14:15", "15:15"].map(|t| format!("2026-04-04T{t}:00Z"));
    assert_eq!(wildcard, expected);
}

// Santiago changes at local midnight: 2026-04-05 00:00 (−03) → 04-04 23:00 (−04) at 03:00Z;
// 2026-09-06 00:00 (−04) → 01:00 (−03) at 04:00Z, so 09-06 has no 00:xx at all.

#[test]
fn santiago_midnight_in_the_gap_fires_at_one_oclock() {
    let daily = fires("@daily", Santiago, "2026-09-04T12:00:00Z", 3);
    assert_eq!(
        daily,
        [
            "2026-09-05T04:00:00Z",
            "2026-09-06T04:00:00Z",
            "2026-09-07T03:00:00Z"
        ]
    );
    // 2026-09-06 is a Sunday
    let weekly = fires("0 0 * * sun", Santiago, "2026-09-01T00:00:00Z", 2);
    assert_eq!(weekly, ["2026-09-06T04:00:00Z", "2026-09-13T03:00:00Z"]);
    let hourly = fires("0 * * * *", Santiago, "2026-09-06T02:30:00Z", 3);
    assert_eq!(
        hourly,
        [
            "2026-09-06T03:00:00Z",
            "2026-09-06T04:00:00Z",
            "2026-09-06T05:00:00Z"
        ]
    );
}

#[test]
fn santiago_repeated_hour_before_midnight_fires_fixed_times_once_and_wildcards_twice() {
    let fixed = fires("30 23 * * *", Santiago, "2026-04-03T12:00:00Z", 3);
    assert_eq!(
        fixed,
        [
            "2026-04-04T02:30:00Z",
            "2026-04-05T02:30:00Z",
            "2026-04-06T03:30:00Z"
        ]
    );
    let hourly = fires("0 * * * *", Santiago, "2026-04-05T01:30:00Z", 3);
    assert_eq!(
        hourly,
        [
            "2026-04-05T02:00:00Z",
            "2026-04-05T03:00:00Z",
            "2026-04-05T04:00:00Z"
        ]
    );
}

#[test]
fn kolkata_has_no_transitions_so_nine_oclock_is_always_three_thirty_utc() {
    let schedule = super::Schedule::parse("0 9 * * 1-5").unwrap();
    let fires: Vec<_> = schedule
        .fires(Kolkata, super::utc("2026-01-01T00:00:00Z"))
        .take(261)
        .collect();
    assert!(
        fires
            .iter()
            .all(|at| at.format("%H:%M:%S").to_string() == "03:30:00")
    );
    assert_eq!(fires[260].format("%Y-%m-%d").to_string(), "2026-12-31");
}
