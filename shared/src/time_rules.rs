//! Local time resolution, by DESIGN.md's rule for a single local date-time: a wall-clock time
//! that does not exist (spring-forward gap) moves forward by the length of the gap; one that
//! exists twice (fall-back) means the earlier instant — PEP 495 `fold=0`, like
//! `java.time.ZonedDateTime.of`. Course deliveries, and fixed-time cron expressions (triggers
//! and schedules, `cron::fires`), both resolve their local times through [`resolve_local`].

use chrono::{
    DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;

/// Longest gap searched backwards for the offset in force before it (Samoa skipped a whole
/// day in 2011).
const MAX_GAP_MINUTES: i64 = 48 * 60;

/// The instant a person means by `local` on a wall clock in `tz`.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(at) => at.with_timezone(&Utc),
        LocalResult::Ambiguous(first, second) => first.min(second).with_timezone(&Utc),
        LocalResult::None => {
            // In a gap: read the time with the offset in force just before the gap, which
            // lands exactly the gap's length later on the new offset.
            let before = (1..=MAX_GAP_MINUTES)
                .map(|minutes| local - chrono::Duration::minutes(minutes))
                .find_map(|earlier| tz.offset_from_local_datetime(&earlier).earliest())
                .map_or(0, |offset| offset.fix().local_minus_utc());
            (local - chrono::Duration::seconds(i64::from(before))).and_utc()
        }
    }
}

/// The instant of `time` on `date` + `days_after` days in `tz` (day 1 of a course is
/// `days_after = 0`).
pub fn resolve_day(
    tz: Tz,
    date: NaiveDate,
    time: NaiveTime,
    days_after: u64,
) -> Option<DateTime<Utc>> {
    let day = date.checked_add_days(Days::new(days_after))?;
    Some(resolve_local(tz, day.and_time(time)))
}

/// Parses an IANA zone name (`Europe/London`, or `UTC`). The database's legacy names without
/// an area (`EST`, `CET`, `EST5EDT`) are refused: they look like abbreviations and do not mean
/// what people expect (`EST` never observes daylight saving time).
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    let refused =
        || format!("`{name}` is not an IANA time zone name like Europe/London or America/New_York");
    if name != "UTC" && !name.contains('/') {
        return Err(refused());
    }
    name.parse::<Tz>().map_err(|_| refused())
}

/// A person's home zone: an IANA zone named by region (`Asia/Kolkata`), or `UTC`, trimmed.
/// `parse_zone` already refuses abbreviations like `EST`; the `Etc/` zones are refused here
/// too: they are fixed offsets with inverted signs (`Etc/GMT+5` is UTC−5) that never follow a
/// region's daylight saving.
pub fn parse_region_zone(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let zone = parse_zone(name)?;
    if name.starts_with("Etc/") && name != "Etc/UTC" {
        return Err(format!(
            "`{name}` is a fixed offset; use a region name like America/New_York or Asia/Kolkata"
        ));
    }
    Ok(zone.name().to_owned())
}

/// The earliest instant PostgreSQL's `timestamp` and `timestamptz` hold, in microseconds
/// since the Unix epoch: 4714-11-24 00:00:00 BC (ISO year −4713). The latest they hold
/// (294276 AD) is later than anything chrono represents, so only the lower end needs a check.
pub const POSTGRES_MIN_MICROS: i64 = -210_866_803_200_000_000;

/// Whether PostgreSQL can store the instant; one it cannot fails the whole statement
/// ("timestamp out of range"), so input is checked with this before it reaches a query.
pub fn fits_postgres(at: DateTime<Utc>) -> bool {
    at.timestamp_micros() >= POSTGRES_MIN_MICROS
}

/// Whether PostgreSQL can store the wall-clock date-time in a `timestamp` column.
pub fn fits_postgres_local(local: NaiveDateTime) -> bool {
    fits_postgres(local.and_utc())
}

/// Parses `YYYY-MM-DD HH:MM:SS`, the wall-clock form the API takes. chrono also reads signed
/// years (`-9999-01-01 09:00:00`); one PostgreSQL cannot store is refused here, as any caller
/// may write what it parsed.
pub fn parse_local(text: &str) -> Result<NaiveDateTime, String> {
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .map_err(|_| format!("`{text}` is not a date-time like 2026-03-08 09:00:00"))?;
    if !fits_postgres_local(local) {
        return Err(format!(
            "`{text}` is before 4714-11-24 BC, the earliest date-time that can be stored"
        ));
    }
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_zones_pass_and_abbreviations_or_offsets_do_not() {
        assert_eq!(parse_region_zone(" Asia/Kolkata ").unwrap(), "Asia/Kolkata");
        assert_eq!(parse_region_zone("UTC").unwrap(), "UTC");
        for bad in [
            "EST",
            "Mars/Base",
            "Etc/GMT+5",
            "GMT",
            "asia/kolkata",
            "",
            "+05:30",
        ] {
            assert!(parse_region_zone(bad).is_err(), "{bad}");
        }
    }

    fn local(text: &str) -> NaiveDateTime {
        parse_local(text).unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn postgres_range_starts_in_4714_bc() {
        let first = DateTime::from_timestamp_micros(POSTGRES_MIN_MICROS).unwrap();
        assert_eq!(first.to_rfc3339(), "-4713-11-24T00:00:00+00:00");
        assert!(fits_postgres(first));
        assert!(!fits_postgres(first - chrono::Duration::microseconds(1)));
        assert!(fits_postgres(DateTime::<Utc>::MAX_UTC));
        assert!(parse_local("-9999-01-01 09:00:00").is_err());
        let raw = |text| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap();
        assert!(fits_postgres_local(raw("-4713-11-24 00:00:00")));
        assert!(!fits_postgres_local(raw("-4713-11-23 23:59:59")));
    }

    #[test]
    fn an_ordinary_time_is_its_one_instant() {
        let at = resolve_local(chrono_tz::America::New_York, local("2026-06-01 09:00:00"));
        assert_eq!(at, utc("2026-06-01T13:00:00Z"));
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_moves_forward_by_the_gap() {
        // 02:30 does not exist on 2026-03-08 in New York: it becomes 03:30 EDT
        let at = resolve_local(chrono_tz::America::New_York, local("2026-03-08 02:30:00"));
        assert_eq!(at, utc("2026-03-08T07:30:00Z"));
        // London skips 01:00–02:00 on 2026-03-29: 01:15 becomes 02:15 BST
        let at = resolve_local(chrono_tz::Europe::London, local("2026-03-29 01:15:00"));
        assert_eq!(at, utc("2026-03-29T01:15:00Z"));
    }

    #[test]
    fn lord_howes_thirty_minute_gap_moves_by_thirty_minutes() {
        // Lord Howe goes from +10:30 to +11:00 at 02:00 on 2026-10-04
        let at = resolve_local(
            chrono_tz::Australia::Lord_Howe,
            local("2026-10-04 02:15:00"),
        );
        assert_eq!(at, utc("2026-10-03T15:45:00Z"));
        assert_eq!(
            at.with_timezone(&chrono_tz::Australia::Lord_Howe)
                .format("%H:%M")
                .to_string(),
            "02:45"
        );
    }

    #[test]
    fn a_repeated_time_means_the_earlier_instant() {
        // 01:30 happens twice on 2026-11-01 in New York; the first is EDT
        let at = resolve_local(chrono_tz::America::New_York, local("2026-11-01 01:30:00"));
        assert_eq!(at, utc("2026-11-01T05:30:00Z"));
        // Lord Howe repeats 01:30–02:00 on 2026-04-05 (+11:00 then +10:30)
        let at = resolve_local(
            chrono_tz::Australia::Lord_Howe,
            local("2026-04-05 01:45:00"),
        );
        assert_eq!(at, utc("2026-04-04T14:45:00Z"));
    }

    #[test]
    fn kolkata_has_no_transitions() {
        for day in 0..365 {
            let at = resolve_day(
                chrono_tz::Asia::Kolkata,
                NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                day,
            )
            .unwrap();
            assert_eq!(at.format("%H:%M").to_string(), "03:30");
        }
    }

    #[test]
    fn daily_times_across_a_transition_keep_the_wall_clock() {
        let start = NaiveDate::from_ymd_opt(2026, 3, 6).unwrap();
        let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
        let fires: Vec<String> = (0..4)
            .map(|day| {
                resolve_day(chrono_tz::America::New_York, start, nine, day)
                    .unwrap()
                    .to_rfc3339()
            })
            .collect();
        assert_eq!(
            fires,
            [
                "2026-03-06T14:00:00+00:00",
                "2026-03-07T14:00:00+00:00",
                "2026-03-08T13:00:00+00:00",
                "2026-03-09T13:00:00+00:00"
            ]
        );
    }

    #[test]
    fn zones_and_date_times_are_parsed_strictly() {
        assert!(parse_zone("Europe/London").is_ok());
        assert!(parse_zone("UTC").is_ok());
        assert!(parse_zone("EST").is_err());
        assert!(parse_zone("EST5EDT").is_err());
        assert!(parse_zone("EST5EDT-nope").is_err());
        assert!(parse_zone("Mars/Olympus").is_err());
        assert!(parse_local("2026-03-08T09:00:00").is_err());
        assert!(parse_local("2026-02-30 09:00:00").is_err());
    }
}
