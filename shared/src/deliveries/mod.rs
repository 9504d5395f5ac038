//! Planning a course delivery: when each student gets each message.
//!
//! Day k (1-based) goes out at the start's wall-clock time on the start date + (k − 1) days,
//! read in the student's own zone (or the delivery's zone when one is given), resolved by
//! `time_rules::resolve_local` (gap → shifted forward, repeated hour → earlier instant). A
//! day's text is message 0; its questions follow, in order, `QUESTION_SPACING` apart, so they
//! reach the provider after the text. Pure functions: the API plans, previews and re-plans
//! (resume, a student's new zone) with them.

pub mod lifecycle;
pub mod plan;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

use crate::time_rules;

/// Gap between a day's consecutive messages, so the questions follow the text in order.
pub const QUESTION_SPACING: chrono::Duration = chrono::Duration::seconds(2);

/// A student as the planner sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    pub student_id: Uuid,
    pub zone: Tz,
}

/// When a delivery's day 1 starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The wall-clock start as typed.
    pub local: NaiveDateTime,
    /// Everyone's clock (`Some`) or each student's own (`None`).
    pub zone: Option<Tz>,
}

impl Start {
    /// The zone a student's messages are planned in.
    pub fn zone_for(&self, recipient: &Recipient) -> Tz {
        self.zone.unwrap_or(recipient.zone)
    }

    /// The instant of `day` (1-based) for a student.
    pub fn day_instant(&self, recipient: &Recipient, day: u32) -> Option<DateTime<Utc>> {
        let days_after = u64::from(day.checked_sub(1)?);
        time_rules::resolve_day(
            self.zone_for(recipient),
            self.local.date(),
            self.local.time(),
            days_after,
        )
    }

    /// The first instant at or after `after` at which the start's wall-clock time occurs in
    /// the student's zone: where a resumed delivery continues.
    pub fn next_send_time(
        &self,
        recipient: &Recipient,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let zone = self.zone_for(recipient);
        let local_today = after.with_timezone(&zone).date_naive();
        (0..3).find_map(|offset| {
            let at = time_rules::resolve_day(zone, local_today, self.local.time(), offset)?;
            (at >= after).then_some(at)
        })
    }
}

/// The messages of one course day: its text, then its questions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayMessages {
    pub day: u32,
    /// `(seq, body, question_id)`; seq 0 is the day's text.
    pub messages: Vec<(u32, String, Option<Uuid>)>,
}

/// One message of a student's plan: which day and message, and when it goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub day: u32,
    pub seq: u32,
    pub at: DateTime<Utc>,
}

/// Why a delivery cannot be planned as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    /// Day 1 is already past on this clock (and catch-up was not asked for).
    StartPassed,
    /// The date arithmetic left the supported range.
    OutOfRange,
}

/// The instant of every message for a student whose clock is `zone` (the delivery's zone, when
/// it has one, wins). Every student on the same clock gets the same plan, so a delivery plans
/// once per zone, not once per student. With `catch_up`, days already past are due at `now`
/// (in order, `QUESTION_SPACING` apart); without it, a day 1 in the past is an error.
pub fn plan_zone(
    start: &Start,
    zone: Tz,
    days: &[DayMessages],
    now: DateTime<Utc>,
    catch_up: bool,
) -> Result<Vec<Slot>, PlanError> {
    let recipient = Recipient {
        student_id: Uuid::nil(),
        zone,
    };
    if !catch_up
        && start
            .day_instant(&recipient, 1)
            .ok_or(PlanError::OutOfRange)?
            < now
    {
        return Err(PlanError::StartPassed);
    }
    let mut slots = Vec::with_capacity(days.iter().map(|d| d.messages.len()).sum());
    let mut catch_up_slot = 0;
    for day in days {
        let instant = start
            .day_instant(&recipient, day.day)
            .ok_or(PlanError::OutOfRange)?;
        for (seq, _, _) in &day.messages {
            let at = if instant < now {
                let at = now + QUESTION_SPACING * catch_up_slot;
                catch_up_slot += 1;
                at
            } else {
                instant + QUESTION_SPACING * i32::try_from(*seq).unwrap_or(0)
            };
            slots.push(Slot {
                day: day.day,
                seq: *seq,
                at,
            });
        }
    }
    Ok(slots)
}

/// A held (unsent) message of a paused delivery, for re-planning on resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldMessage {
    pub effect_id: Uuid,
    pub recipient: Recipient,
    pub day: u32,
    pub seq: u32,
}

/// New instants for a resumed delivery's held messages: per student, the first held day goes
/// out at the next occurrence of the student's send time after `now`, each later held day one
/// day after the previous — no day is skipped and none are burst out at once.
pub fn replan_held(
    start: &Start,
    held: &[HeldMessage],
    now: DateTime<Utc>,
) -> Vec<(Uuid, DateTime<Utc>)> {
    let mut by_student: std::collections::BTreeMap<Uuid, Vec<&HeldMessage>> =
        std::collections::BTreeMap::new();
    for message in held {
        by_student
            .entry(message.recipient.student_id)
            .or_default()
            .push(message);
    }
    let mut replanned = Vec::with_capacity(held.len());
    for messages in by_student.values_mut() {
        messages.sort_by_key(|m| (m.day, m.seq));
        let Some(first) = messages.first() else {
            continue;
        };
        let recipient = first.recipient;
        let Some(first_at) = start.next_send_time(&recipient, now) else {
            continue;
        };
        let first_day = first.day;
        let zone = start.zone_for(&recipient);
        let first_local = first_at.with_timezone(&zone).date_naive();
        for message in messages.iter() {
            let offset = u64::from(message.day.saturating_sub(first_day));
            let day_at = time_rules::resolve_day(zone, first_local, start.local.time(), offset)
                .unwrap_or(first_at);
            let at = day_at + QUESTION_SPACING * i32::try_from(message.seq).unwrap_or(0);
            replanned.push((message.effect_id, at));
        }
    }
    replanned
}

/// A student moved from `old` to `new`: an unsent message keeps its wall-clock date and time,
/// now read in the new zone (resolved by the single-time rule); one that would then be in the
/// past is due at `now`.
pub fn shift_zone(at: DateTime<Utc>, old: Tz, new: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let wall_clock = at.with_timezone(&old).naive_local();
    time_rules::resolve_local(new, wall_clock).max(now)
}

#[cfg(test)]
mod tests {
    use chrono_tz::{America, Asia, Australia, Europe};

    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn start(local: &str, zone: Option<Tz>) -> Start {
        Start {
            local: time_rules::parse_local(local).unwrap(),
            zone,
        }
    }

    fn recipient(zone: Tz) -> Recipient {
        Recipient {
            student_id: Uuid::new_v4(),
            zone,
        }
    }

    fn days(count: u32, questions: u32) -> Vec<DayMessages> {
        (1..=count)
            .map(|day| DayMessages {
                day,
                messages: (0..=questions)
                    .map(|seq| (seq, format!("d{day}m{seq}"), None))
                    .collect(),
            })
            .collect()
    }

    /// The instants of a plan on `zone`'s clock.
    fn times(
        start: &Start,
        zone: Tz,
        days: &[DayMessages],
        now: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        plan_zone(start, zone, days, now, false)
            .unwrap()
            .iter()
            .map(|slot| slot.at)
            .collect()
    }

    #[test]
    fn each_student_gets_each_day_at_the_local_time_in_their_own_zone() {
        let start = start("2026-03-07 09:00:00", None);
        let now = utc("2026-03-01T00:00:00Z");
        // New York springs forward on 2026-03-08: 09:00 EST, then 09:00 EDT
        assert_eq!(
            times(&start, America::New_York, &days(3, 0), now),
            [
                utc("2026-03-07T14:00:00Z"),
                utc("2026-03-08T13:00:00Z"),
                utc("2026-03-09T13:00:00Z")
            ]
        );
        assert_eq!(
            times(&start, Asia::Kolkata, &days(3, 0), now),
            [
                utc("2026-03-07T03:30:00Z"),
                utc("2026-03-08T03:30:00Z"),
                utc("2026-03-09T03:30:00Z")
            ]
        );
    }

    #[test]
    fn a_start_in_the_gap_or_the_repeated_hour_follows_the_single_time_rule() {
        let gap = start("2026-03-08 02:30:00", None);
        let planned = times(
            &gap,
            America::New_York,
            &days(1, 0),
            utc("2026-03-01T00:00:00Z"),
        );
        assert_eq!(planned[0], utc("2026-03-08T07:30:00Z"));
        let repeated = start("2026-10-25 01:30:00", None);
        let planned = times(
            &repeated,
            Europe::London,
            &days(1, 0),
            utc("2026-10-01T00:00:00Z"),
        );
        assert_eq!(
            planned[0],
            utc("2026-10-25T00:30:00Z"),
            "BST, the earlier 01:30"
        );
        let lord_howe = start("2026-10-04 02:10:00", None);
        let planned = times(
            &lord_howe,
            Australia::Lord_Howe,
            &days(1, 0),
            utc("2026-10-01T00:00:00Z"),
        );
        assert_eq!(planned[0], utc("2026-10-03T15:40:00Z"), "02:40 LHDT");
    }

    #[test]
    fn with_a_delivery_zone_everyone_gets_the_same_instants() {
        let start = start("2026-06-01 09:00:00", Some(Europe::London));
        let now = utc("2026-05-01T00:00:00Z");
        for zone in [America::New_York, Asia::Kolkata] {
            assert_eq!(
                times(&start, zone, &days(1, 0), now),
                [utc("2026-06-01T08:00:00Z")]
            );
        }
    }

    #[test]
    fn questions_follow_the_text_in_order() {
        let start = start("2026-06-01 09:00:00", Some(Asia::Kolkata));
        let planned = plan_zone(
            &start,
            Asia::Kolkata,
            &days(1, 2),
            utc("2026-05-01T00:00:00Z"),
            false,
        )
        .unwrap();
        let times: Vec<_> = planned.iter().map(|p| (p.seq, p.at)).collect();
        assert_eq!(
            times,
            [
                (0, utc("2026-06-01T03:30:00Z")),
                (1, utc("2026-06-01T03:30:02Z")),
                (2, utc("2026-06-01T03:30:04Z"))
            ]
        );
    }

    #[test]
    fn a_past_first_day_is_refused_unless_catching_up() {
        let start = start("2026-06-01 09:00:00", None);
        let now = utc("2026-06-01T05:00:00Z");
        // Kolkata's 09:00 is 03:30Z, already past at 05:00Z; New York's is 13:00Z, ahead
        let refused = plan_zone(&start, Asia::Kolkata, &days(2, 1), now, false).unwrap_err();
        assert_eq!(refused, PlanError::StartPassed);
        assert!(plan_zone(&start, America::New_York, &days(2, 1), now, false).is_ok());
        let late_times: Vec<_> = plan_zone(&start, Asia::Kolkata, &days(2, 1), now, true)
            .unwrap()
            .iter()
            .map(|p| p.at)
            .collect();
        assert_eq!(
            late_times,
            [
                now,
                now + QUESTION_SPACING,
                utc("2026-06-02T03:30:00Z"),
                utc("2026-06-02T03:30:02Z")
            ],
            "day 1 is sent now, day 2 at its time"
        );
    }

    #[test]
    fn a_date_beyond_the_calendar_is_out_of_range() {
        let start = Start {
            local: NaiveDateTime::MAX,
            zone: None,
        };
        let now = utc("2026-06-01T05:00:00Z");
        assert_eq!(
            plan_zone(&start, Asia::Kolkata, &days(2, 0), now, true),
            Err(PlanError::OutOfRange)
        );
    }

    #[test]
    fn a_new_zone_keeps_the_wall_clock_time() {
        let at = utc("2026-06-01T13:00:00Z"); // 09:00 in New York
        let moved = shift_zone(
            at,
            America::New_York,
            Asia::Kolkata,
            utc("2026-05-01T00:00:00Z"),
        );
        assert_eq!(moved, utc("2026-06-01T03:30:00Z"), "09:00 in Kolkata");
        let now = utc("2026-06-01T05:00:00Z");
        assert_eq!(
            shift_zone(at, America::New_York, Asia::Kolkata, now),
            now,
            "already past: now"
        );
    }

    #[test]
    fn resume_continues_with_the_next_unsent_day_at_the_next_send_time() {
        let start = start("2026-06-01 09:00:00", None);
        let student = recipient(America::New_York);
        let held: Vec<HeldMessage> = [(3, 0), (3, 1), (4, 0)]
            .into_iter()
            .map(|(day, seq)| HeldMessage {
                effect_id: Uuid::new_v4(),
                recipient: student,
                day,
                seq,
            })
            .collect();
        // resumed on 2026-06-10 at 15:00 New York time: 09:00 has passed, so 06-11 09:00
        let replanned = replan_held(&start, &held, utc("2026-06-10T19:00:00Z"));
        let times: Vec<_> = replanned.iter().map(|(_, at)| *at).collect();
        assert_eq!(
            times,
            [
                utc("2026-06-11T13:00:00Z"),
                utc("2026-06-11T13:00:02Z"),
                utc("2026-06-12T13:00:00Z")
            ]
        );
        // resumed before 09:00: the same day
        let replanned = replan_held(&start, &held, utc("2026-06-10T12:00:00Z"));
        assert_eq!(replanned[0].1, utc("2026-06-10T13:00:00Z"));
    }
}
