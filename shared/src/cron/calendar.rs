//! The wall-clock side of a schedule: which local date-times match, and the first match at or
//! after a given local date-time. The search skips whole months, days, hours and minutes that
//! cannot match, so a `@yearly` schedule costs about as much as an every-minute one.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// A set of small numbers (0–63), one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bits(pub(super) u64);

impl Bits {
    pub(super) fn contains(self, value: u32) -> bool {
        value < 64 && self.0 & (1 << value) != 0
    }

    /// The smallest member that is `value` or more.
    pub(super) fn first_from(self, value: u32) -> Option<u32> {
        if value >= 64 {
            return None;
        }
        let rest = self.0 & (u64::MAX << value);
        (rest != 0).then(|| rest.trailing_zeros())
    }
}

/// The parsed fields of an expression, as sets of the values they accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fields {
    pub(super) seconds: Bits,
    pub(super) minutes: Bits,
    pub(super) hours: Bits,
    pub(super) days_of_month: Bits,
    pub(super) months: Bits,
    /// Sunday is 0; a `7` in the expression is stored as 0.
    pub(super) days_of_week: Bits,
    /// Both day fields are restricted (neither starts with `*`), so a day matching either
    /// fires; otherwise a day must match both.
    pub(super) either_day: bool,
}

impl Fields {
    /// Whether a date matches the month and day fields.
    pub(super) fn date_matches(&self, date: NaiveDate) -> bool {
        if !self.months.contains(date.month()) {
            return false;
        }
        let by_month_day = self.days_of_month.contains(date.day());
        let by_weekday = self
            .days_of_week
            .contains(date.weekday().num_days_from_sunday());
        if self.either_day {
            by_month_day || by_weekday
        } else {
            by_month_day && by_weekday
        }
    }

    /// The first matching local date-time at or after `from` (whole seconds; `None` only past
    /// the end of the calendar chrono can represent).
    pub(super) fn next_local(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut date = from.date();
        let mut start = (from.hour(), from.minute(), from.second());
        loop {
            if !self.months.contains(date.month()) {
                date = self.next_month(date)?;
            } else if !self.date_matches(date) {
                date = date.succ_opt()?;
            } else if let Some(time) = self.time_from(start) {
                return Some(date.and_time(time));
            } else {
                date = date.succ_opt()?;
            }
            start = (0, 0, 0);
        }
    }

    /// The first day of the next month in the month field after `date`'s month.
    fn next_month(&self, date: NaiveDate) -> Option<NaiveDate> {
        match self.months.first_from(date.month() + 1) {
            Some(month) => NaiveDate::from_ymd_opt(date.year(), month, 1),
            None => {
                NaiveDate::from_ymd_opt(date.year().checked_add(1)?, self.months.first_from(1)?, 1)
            }
        }
    }

    /// The first matching time of day at or after `(hour, minute, second)`.
    fn time_from(&self, (hour, minute, second): (u32, u32, u32)) -> Option<NaiveTime> {
        let mut next_hour = self.hours.first_from(hour)?;
        if next_hour == hour {
            if let Some((m, s)) = self.minute_from(minute, second) {
                return NaiveTime::from_hms_opt(hour, m, s);
            }
            next_hour = self.hours.first_from(hour + 1)?;
        }
        // A later hour starts at its first matching minute and second.
        NaiveTime::from_hms_opt(
            next_hour,
            self.minutes.first_from(0)?,
            self.seconds.first_from(0)?,
        )
    }

    /// The first matching minute and second within an hour at or after `(minute, second)`.
    fn minute_from(&self, minute: u32, second: u32) -> Option<(u32, u32)> {
        let mut next_minute = self.minutes.first_from(minute)?;
        if next_minute == minute {
            if let Some(s) = self.seconds.first_from(second) {
                return Some((minute, s));
            }
            next_minute = self.minutes.first_from(minute + 1)?;
        }
        Some((next_minute, self.seconds.first_from(0)?))
    }
}
