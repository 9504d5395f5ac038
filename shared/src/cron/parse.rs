//! Parsing crontab(5) expressions by hand: the `cron` crate numbers weekdays differently and
//! combines the two day fields differently, so its grammar is not ours.
//!
//! An item is `*`, `N`, `A-B`, `*/S`, `A-B/S` or `N/S` (Vixie cron's shorthand for `N-max/S`);
//! a field is a comma-separated list of items. Months and weekdays also take three-letter
//! English names (`jan`, `mon`), in any case and inside ranges. Ranges do not wrap around, as
//! in Vixie cron: `fri-sun` is refused (write `fri-7` or `5-7`).

use super::calendar::{Bits, Fields};
use super::{Field, Kind, ParseError};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The longest each month can be (February in a leap year).
const LONGEST_MONTH: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// What one field accepts.
struct Spec {
    field: Field,
    min: u32,
    max: u32,
    /// Names for `min`, `min + 1`, …
    names: &'static [&'static str],
}

const SECOND: Spec = Spec {
    field: Field::Second,
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Spec = Spec {
    field: Field::Minute,
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Spec = Spec {
    field: Field::Hour,
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Spec = Spec {
    field: Field::DayOfMonth,
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Spec = Spec {
    field: Field::Month,
    min: 1,
    max: 12,
    names: &MONTHS,
};
/// 0–7 as in Vixie cron: both 0 and 7 are Sunday, so `*` covers 0–7 and `N/S` runs up to 7.
const DAY_OF_WEEK: Spec = Spec {
    field: Field::DayOfWeek,
    min: 0,
    max: 7,
    names: &WEEKDAYS,
};

/// Parses an expression into its fields and kind.
pub(super) fn parse(expression: &str) -> Result<(Fields, Kind), ParseError> {
    let trimmed = expression.trim();
    let text = match trimmed.strip_prefix('@') {
        Some(name) => expand_macro(name)?,
        None => trimmed,
    };
    let parts: Vec<&str> = text.split_whitespace().collect();
    let (second, [minute, hour, day_of_month, month, day_of_week]) = match parts[..] {
        [mi, h, dom, mo, dow] => ("0", [mi, h, dom, mo, dow]),
        [s, mi, h, dom, mo, dow] => (s, [mi, h, dom, mo, dow]),
        _ => {
            return Err(ParseError {
                field: Field::Expression,
                reason: format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with a \
                     leading second, found {}",
                    parts.len()
                ),
            });
        }
    };

    let mut days_of_week = field(&DAY_OF_WEEK, day_of_week)?;
    if days_of_week.contains(7) {
        days_of_week = Bits((days_of_week.0 & !(1 << 7)) | 1);
    }
    let fields = Fields {
        seconds: field(&SECOND, second)?,
        minutes: field(&MINUTE, minute)?,
        hours: field(&HOUR, hour)?,
        days_of_month: field(&DAY_OF_MONTH, day_of_month)?,
        months: field(&MONTH, month)?,
        days_of_week,
        // crontab(5): "If both fields are restricted (i.e., do not start with *)", either may
        // match; so `*/2` counts as unrestricted here, as in Vixie cron.
        either_day: !day_of_month.starts_with('*') && !day_of_week.starts_with('*'),
    };
    check_possible(&fields)?;
    // Vixie cron's DST rule looks at the minute and hour fields only; the seconds field does
    // not make a schedule a wildcard one.
    let kind = if minute.starts_with('*') || hour.starts_with('*') {
        Kind::Wildcard
    } else {
        Kind::FixedTime
    };
    Ok((fields, kind))
}

/// The five-field form of `@name` (any case).
fn expand_macro(name: &str) -> Result<&'static str, ParseError> {
    let expansion = match name.to_ascii_lowercase().as_str() {
        "hourly" => "0 * * * *",
        "daily" | "midnight" => "0 0 * * *",
        "weekly" => "0 0 * * 0",
        "monthly" => "0 0 1 * *",
        "yearly" | "annually" => "0 0 1 1 *",
        "reboot" => {
            return Err(ParseError {
                field: Field::Expression,
                reason: "@reboot has no fire times; Herald has no boot to run at".to_owned(),
            });
        }
        _ => {
            return Err(ParseError {
                field: Field::Expression,
                reason: format!(
                    "unknown `@{name}`; expected @hourly, @daily, @midnight, @weekly, \
                     @monthly, @yearly or @annually"
                ),
            });
        }
    };
    Ok(expansion)
}

/// Parses one field: a comma-separated list of items.
fn field(spec: &Spec, text: &str) -> Result<Bits, ParseError> {
    let mut bits = 0;
    for item in text.split(',') {
        bits |= item_bits(spec, item).map_err(|reason| ParseError {
            field: spec.field,
            reason,
        })?;
    }
    Ok(Bits(bits))
}

fn item_bits(spec: &Spec, item: &str) -> Result<u64, String> {
    if item.is_empty() {
        return Err("empty list item (a comma with nothing after or before it)".to_owned());
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(spec, step)?)),
        None => (item, None),
    };
    let (low, high) = if range == "*" {
        (spec.min, spec.max)
    } else if let Some((low, high)) = range.split_once('-') {
        let (low, high) = (value(spec, low)?, value(spec, high)?);
        if low > high {
            return Err(format!(
                "range `{range}` goes backwards; ranges do not wrap around"
            ));
        }
        (low, high)
    } else {
        let low = value(spec, range)?;
        // `N/S` is Vixie cron's shorthand for `N-max/S`.
        (low, if step.is_some() { spec.max } else { low })
    };
    let step = step.unwrap_or(1);
    Ok((low..=high)
        .filter(|v| (v - low) % step == 0)
        .fold(0, |bits, v| bits | 1 << v))
}

fn parse_step(spec: &Spec, text: &str) -> Result<u32, String> {
    let out_of_range = || format!("step `{text}` is out of range 1–{}", spec.max);
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("step `{text}` is not a number"));
    }
    match text.parse::<u32>() {
        Ok(step) if (1..=spec.max).contains(&step) => Ok(step),
        _ => Err(out_of_range()),
    }
}

/// One number, or a name where the field has names.
fn value(spec: &Spec, text: &str) -> Result<u32, String> {
    let range = format!("{}–{}", spec.min, spec.max);
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(n) if (spec.min..=spec.max).contains(&n) => Ok(n),
            _ => Err(format!("{text} is out of range {range}")),
        };
    }
    let lower = text.to_ascii_lowercase();
    match spec
        .names
        .iter()
        .zip(spec.min..)
        .find(|(name, _)| **name == lower)
    {
        Some((_, n)) => Ok(n),
        None if spec.names.is_empty() => Err(format!("`{text}` is not a number")),
        None => Err(format!(
            "`{text}` is not a number ({range}) or a name ({}–{})",
            spec.names[0],
            spec.names[spec.names.len() - 1]
        )),
    }
}

/// Refuses an expression that can never fire. Only the day of the month can rule out every
/// date: every month has every weekday, and a given month and day falls on each of the seven
/// weekdays over the years (29 February included, over the 400-year Gregorian cycle). So only
/// when the day fields must both match (`either_day` false) can the day of the month leave
/// nothing, e.g. `0 0 30 2 *`; `0 0 30 2 1` still fires on Mondays in February.
fn check_possible(fields: &Fields) -> Result<(), ParseError> {
    if fields.either_day {
        return Ok(());
    }
    let months: Vec<u32> = (1..=12).filter(|m| fields.months.contains(*m)).collect();
    let days: Vec<u32> = (1..=31)
        .filter(|d| fields.days_of_month.contains(*d))
        .collect();
    let longest = |month: u32| LONGEST_MONTH[month as usize - 1];
    if months
        .iter()
        .any(|&m| days.iter().any(|&d| d <= longest(m)))
    {
        return Ok(());
    }
    let days = join(days.iter().map(u32::to_string));
    let (noun, verb) = if days.contains(',') {
        ("days", "occur")
    } else {
        ("day", "occurs")
    };
    let months = join(
        months
            .iter()
            .map(|&m| MONTH_NAMES[m as usize - 1].to_owned()),
    );
    Err(ParseError {
        field: Field::DayOfMonth,
        reason: format!("{noun} {days} never {verb} in {months}, so this never fires"),
    })
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}
