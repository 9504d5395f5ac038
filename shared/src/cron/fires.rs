//! From matching local date-times to fire instants, by DESIGN.md's DST rules.
//!
//! Real time is cut into *pieces* over which the zone's UTC offset is constant; inside one, a
//! local time maps to exactly one instant (`local − offset`), in order. The search walks
//! forward piece by piece and asks the calendar for the first matching local time in each:
//!
//! - a **wildcard** schedule fires at every instant of the piece whose local time matches, so
//!   nothing fires in a gap and both occurrences of a repeated time fire;
//! - a **fixed-time** schedule fires once per matching local date-time at
//!   `time_rules::resolve_local`'s instant: a piece that starts by moving the clock back skips
//!   the local times the previous piece already showed (the earlier instant fired), and a
//!   piece that starts by moving the clock forward also fires the gap's local times, each
//!   shifted forward by the gap (`gap time − offset before`), which lands in the piece's first
//!   moments. Fires are the set of those instants in time order, each once: a shifted gap time
//!   and an equal real time fire once, and a real time just after the gap that comes before a
//!   shifted one (Lord Howe's 30-minute gap: 02:10 → 02:40, and 02:35) still fires, in order.
//!
//! chrono-tz does not expose its transitions, so they are found by probing the offset once a
//! [`PROBE`] and bisecting where it changed. That relies on consecutive transitions being more
//! than a probe apart; in the bundled tz database the closest are about seven days apart.

use chrono::{DateTime, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;

use super::Kind;
use super::calendar::Fields;
use crate::time_rules;

/// Offset probe spacing, in seconds (see the module docs). Also the look-back for the
/// transition that started the current piece, which covers every gap and repeat in the tz
/// database (the longest are Samoa's and Alaska's whole days).
const PROBE: i64 = 86_400;

/// A change of offset at an instant.
#[derive(Debug, Clone, Copy)]
struct Transition {
    at: i64,
    offset_before: i64,
}

/// The first fire strictly after `after` (Unix seconds), in Unix seconds.
pub(super) fn next_fire(fields: &Fields, kind: Kind, zone: Tz, after: i64) -> Option<i64> {
    let mut from = after.checked_add(1)?;
    let mut offset = offset_at(zone, from)?;
    let mut previous = recent_transition(zone, from, offset);
    loop {
        let candidate = match kind {
            Kind::Wildcard => next_local(fields, from + offset)? - offset,
            Kind::FixedTime => fixed_candidate(fields, zone, from, offset, previous)?,
        };
        // The candidate assumed the offset holds until it; if it changes first, the next piece
        // starts there and is searched afresh.
        match first_change(zone, from, candidate, offset) {
            None => return Some(candidate),
            Some(change) => {
                previous = Some(Transition {
                    at: change,
                    offset_before: offset,
                });
                offset = offset_at(zone, change)?;
                from = change;
            }
        }
    }
}

/// The first fixed-time fire at or after `from`, assuming `offset` holds from `from` on. Which
/// local times to consider is this module's business; the instant a local time fires at is
/// `time_rules::resolve_local`'s, the rule deliveries use too.
fn fixed_candidate(
    fields: &Fields,
    zone: Tz,
    from: i64,
    offset: i64,
    previous: Option<Transition>,
) -> Option<i64> {
    let mut local_from = from + offset;
    let mut shifted = None;
    if let Some(Transition { at, offset_before }) = previous {
        if offset_before > offset {
            // The clock went back: local times before `at + offset_before` were shown by the
            // previous piece, and fired at their earlier instant there.
            local_from = local_from.max(at + offset_before);
        } else {
            // The clock went forward: local times in the gap fire too, shifted forward by the
            // gap (at `gap time − offset before`, between `at` and `at + gap`).
            let gap_end = at + offset;
            shifted = next_local(fields, from + offset_before)
                .filter(|&local| local < gap_end)
                .and_then(|local| resolve(zone, local));
        }
    }
    let regular = next_local(fields, local_from).and_then(|local| resolve(zone, local));
    [regular, shifted].into_iter().flatten().min()
}

/// The instant a fixed-time schedule fires for a local date-time (wall-clock seconds).
fn resolve(zone: Tz, local: i64) -> Option<i64> {
    let local = DateTime::from_timestamp(local, 0)?.naive_utc();
    Some(time_rules::resolve_local(zone, local).timestamp())
}

/// The first matching local date-time at or after `local` (both as seconds since the epoch of
/// the wall clock).
fn next_local(fields: &Fields, local: i64) -> Option<i64> {
    let from = DateTime::from_timestamp(local, 0)?.naive_utc();
    fields.next_local(from).map(local_seconds)
}

fn local_seconds(local: NaiveDateTime) -> i64 {
    local.and_utc().timestamp()
}

/// The zone's offset from UTC at `at`, in seconds.
fn offset_at(zone: Tz, at: i64) -> Option<i64> {
    let utc = DateTime::from_timestamp(at, 0)?.naive_utc();
    Some(i64::from(
        zone.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
    ))
}

/// The transition that started the piece holding `at`, if it was less than a probe ago (older
/// ones no longer matter: no gap or repeat lasts longer).
fn recent_transition(zone: Tz, at: i64, offset: i64) -> Option<Transition> {
    let back = at.checked_sub(PROBE)?;
    let offset_before = offset_at(zone, back)?;
    (offset_before != offset).then(|| Transition {
        at: bisect(zone, back, at, offset_before),
        offset_before,
    })
}

/// The first instant in `(from, to]` whose offset is not `offset`.
fn first_change(zone: Tz, from: i64, to: i64, offset: i64) -> Option<i64> {
    let mut low = from;
    while low < to {
        let high = low.saturating_add(PROBE).min(to);
        if offset_at(zone, high) != Some(offset) {
            return Some(bisect(zone, low, high, offset));
        }
        low = high;
    }
    None
}

/// The first instant in `(low, high]` whose offset is not `offset`, given that `low` has it and
/// `high` does not, and at most one transition lies between.
fn bisect(zone: Tz, mut low: i64, mut high: i64, offset: i64) -> i64 {
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if offset_at(zone, middle) == Some(offset) {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}
