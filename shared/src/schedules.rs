//! Planning schedules (recurring group messages): which fires fall in the planning horizon,
//! in which zones, to which students. The API plans the first horizon when a schedule is
//! created, changed or resumed; every worker replica's planner extends it as time passes
//! (`claim_to_plan` hands each schedule to one replica at a time).
//!
//! A fire is planned ahead as effect rows due at its instant, so the dispatcher starts it on
//! time like any other message: no work happens at the fire instant except sending. With
//! `timezone = recipient` a schedule fires separately in each zone its subscribed students
//! live in, at that zone's wall-clock time. Decisions, written down:
//! - Students are read when a fire is planned (up to `horizon` ahead), and again when the
//!   API adds, re-subscribes or moves a student ([`refill`]): the group's planned future
//!   fires then gain that student's messages at once. An unsubscribed or removed student is
//!   skipped at send time.
//! - A student whose zone changed after a fire was planned is skipped by the old zone's fire
//!   (the handler compares zones) and gets the new zone's — unless the schedule fires at that
//!   same instant in the new zone: the message key is the same, so the old message is sent. A move west can repeat a local
//!   date's fire the student already got; a move east can skip one.
//! - One pass writes at most `max_messages` per schedule, in whole instants, so planning a
//!   frequent schedule to a large group never holds one long transaction. Missed fires (no
//!   messages) count one each and are not held to `max_fires_per_zone`, so a per-second
//!   schedule after hours of downtime records them in a few passes, not hundreds.
//! - A fire found later than `catch_up` after its instant (every worker was down) is recorded
//!   as `missed` and sends nothing; within `catch_up` it is sent at once.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::config::SchedulesConfig;
use crate::cron::Schedule;
use crate::db::schedules::{self, NewFire, ScheduleRow};
use crate::time_rules::parse_zone;

/// The literal that means "each recipient's own zone" in the API.
pub const RECIPIENT_ZONE: &str = "recipient";

/// How far ahead and how late fires are planned.
#[derive(Debug, Clone)]
pub struct PlanSettings {
    /// Fires up to this far ahead of now are planned.
    pub horizon: Duration,
    /// A fire found this late still sends; later ones are `missed`.
    pub catch_up: Duration,
    /// At most this many fires per zone in one planning pass (a per-second schedule plans
    /// its horizon over several passes).
    pub max_fires_per_zone: usize,
    /// At most about this many messages per schedule in one pass: whole instants, the first
    /// always (a frequent schedule to a large group plans its horizon over several passes).
    pub max_messages: usize,
    /// The queue of `message` effects (from jobs.toml).
    pub queue: String,
}

impl PlanSettings {
    pub fn new(config: &SchedulesConfig, queue: &str) -> Self {
        Self {
            horizon: Duration::from_secs(config.horizon_secs),
            catch_up: Duration::from_secs(config.catch_up_secs),
            max_fires_per_zone: config.max_fires_per_zone,
            max_messages: config.max_messages_per_pass,
            queue: queue.to_owned(),
        }
    }
}

/// What one planning pass wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Fires looked at (planned now, already planned, or missed).
    pub fires: usize,
    pub missed: usize,
    /// Message (and effect) rows written.
    pub messages: u64,
}

/// Why a schedule could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The stored definition no longer parses (never written by the API; kept for safety).
    #[error("schedule {id}: {reason}")]
    Invalid { id: Uuid, reason: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Plans the schedule's fires after its plan's end, up to `now + horizon`, inside the
/// caller's transaction. Paused schedules plan nothing.
pub async fn plan(
    conn: &mut PgConnection,
    schedule: &ScheduleRow,
    now: DateTime<Utc>,
    settings: &PlanSettings,
) -> Result<Planned, PlanError> {
    if schedule.status != "active" {
        return Ok(Planned::default());
    }
    let start = schedule.active_from.max(schedule.planned_until);
    let horizon = chrono::Duration::from_std(settings.horizon).unwrap_or(chrono::Duration::MAX);
    let catch_up = chrono::Duration::from_std(settings.catch_up).unwrap_or(chrono::Duration::MAX);
    let until = now.checked_add_signed(horizon).unwrap_or(now);
    let send_from = now.checked_sub_signed(catch_up).unwrap_or(now);
    let (fires, planned_until) =
        fires_between(conn, schedule, start, until, send_from, settings).await?;
    let messages = schedules::write_fires(conn, schedule, &settings.queue, &fires).await?;
    schedules::set_planned_until(&mut *conn, schedule.id, planned_until).await?;
    Ok(Planned {
        fires: fires.len(),
        missed: fires.iter().filter(|f| !f.send).count(),
        messages,
    })
}

/// [`refill`] for every active schedule of the group, locked until the caller's transaction
/// ends: called after students are added, re-subscribed or moved to another zone, so they do
/// not wait for the next plan.
pub async fn refill_group(
    conn: &mut PgConnection,
    group_id: Uuid,
    settings: &PlanSettings,
) -> Result<(), PlanError> {
    let schedules = schedules::lock_active_for_group(&mut *conn, group_id).await?;
    if schedules.is_empty() {
        return Ok(());
    }
    let now = crate::db::now(&mut *conn).await?;
    for schedule in &schedules {
        refill(conn, schedule, now, settings).await?;
    }
    Ok(())
}

/// Brings the schedule's already planned future fires (after `now`, up to the plan's end)
/// up to date with its group as it is now, inside the caller's transaction: a student added,
/// re-subscribed or moved to another zone gets the messages of those fires at once instead
/// of from the next plan on. Nothing already planned changes.
pub async fn refill(
    conn: &mut PgConnection,
    schedule: &ScheduleRow,
    now: DateTime<Utc>,
    settings: &PlanSettings,
) -> Result<Planned, PlanError> {
    if schedule.status != "active" || schedule.planned_until <= now {
        return Ok(Planned::default());
    }
    let start = schedule.active_from.max(now);
    let (fires, _) =
        fires_between(conn, schedule, start, schedule.planned_until, now, settings).await?;
    let messages = schedules::write_fires(conn, schedule, &settings.queue, &fires).await?;
    Ok(Planned {
        fires: fires.len(),
        missed: 0,
        messages,
    })
}

/// The schedule's fires after `start` up to `until` in each zone of its audience, fires
/// before `send_from` marked missed, within the pass's limits; with the instant the plan
/// reaches (`until` unless a limit cut it short).
async fn fires_between(
    conn: &mut PgConnection,
    schedule: &ScheduleRow,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
    send_from: DateTime<Utc>,
    settings: &PlanSettings,
) -> Result<(Vec<NewFire>, DateTime<Utc>), PlanError> {
    let invalid = |reason: String| PlanError::Invalid {
        id: schedule.id,
        reason,
    };
    let cron = Schedule::parse(&schedule.cron).map_err(|err| invalid(err.to_string()))?;
    let audiences = audiences(conn, schedule).await?;
    // A missed fire is one row with no messages, so after a long downtime a frequent
    // schedule records its missed fires in large steps (bounded by the message budget, which
    // counts each as one) and reaches the fires it still sends within a few passes.
    let max_missed_per_zone =
        (settings.max_messages / audiences.len().max(1)).max(settings.max_fires_per_zone);
    let mut planned_until = until;
    let mut fires = Vec::new();
    for (zone, students) in audiences {
        let tz = parse_zone(&zone).map_err(invalid)?;
        let (mut sending, mut missed) = (0, 0);
        for at in cron.fires(tz, start).take_while(|at| *at <= until) {
            let send = at >= send_from;
            fires.push(NewFire {
                timezone: zone.clone(),
                fire_at: at,
                local_time: at.with_timezone(&tz).naive_local(),
                send,
                students: if send { students.clone() } else { Vec::new() },
            });
            if send {
                sending += 1;
            } else {
                missed += 1;
            }
            if sending == settings.max_fires_per_zone || missed == max_missed_per_zone {
                // the rest of this zone's horizon comes in the next pass
                planned_until = planned_until.min(at);
                break;
            }
        }
    }
    if let Some(cut) = within_budget(&mut fires, settings.max_messages) {
        planned_until = planned_until.min(cut);
    }
    Ok((fires, planned_until))
}

/// Keeps the earliest instants whose messages fit in `budget` (the first instant whole,
/// whatever its size; a fire without messages, missed or to nobody, counts as one) and
/// returns the last instant kept when later ones were dropped: the plan ends there and the
/// next pass goes on from it.
fn within_budget(fires: &mut Vec<NewFire>, budget: usize) -> Option<DateTime<Utc>> {
    fires.sort_by(|a, b| (a.fire_at, &a.timezone).cmp(&(b.fire_at, &b.timezone)));
    let mut total = 0;
    let mut index = 0;
    while index < fires.len() {
        let at = fires[index].fire_at;
        let end = index + fires[index..].partition_point(|f| f.fire_at == at);
        let size: usize = fires[index..end]
            .iter()
            .map(|f| f.students.len().max(1))
            .sum();
        if index > 0 && total + size > budget {
            let kept = fires[index - 1].fire_at;
            fires.truncate(index);
            return Some(kept);
        }
        total += size;
        index = end;
    }
    None
}

/// The zones the schedule fires in, each with the students it sends to there.
async fn audiences(
    conn: &mut PgConnection,
    schedule: &ScheduleRow,
) -> Result<BTreeMap<String, Vec<Uuid>>, sqlx::Error> {
    let recipients = schedules::recipients(&mut *conn, schedule.group_id).await?;
    let mut audiences: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    match &schedule.timezone {
        // a fixed zone fires (and is recorded) even for an empty group
        Some(zone) => {
            audiences.insert(zone.clone(), recipients.iter().map(|r| r.id).collect());
        }
        None => {
            for recipient in recipients {
                audiences
                    .entry(recipient.timezone)
                    .or_default()
                    .push(recipient.id);
            }
        }
    }
    Ok(audiences)
}

/// The zone a schedule's cron is read in, as stored (`None`: each recipient's) from the API's
/// `timezone` value.
pub fn parse_schedule_zone(value: &str) -> Result<Option<Tz>, String> {
    if value == RECIPIENT_ZONE {
        return Ok(None);
    }
    parse_zone(value).map(Some).map_err(|reason| {
        format!("{reason}, or \"{RECIPIENT_ZONE}\" for each recipient's own zone")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(zone: &str, minute: u32, students: usize) -> NewFire {
        let at = DateTime::parse_from_rfc3339(&format!("2026-03-08T07:{minute:02}:00Z"))
            .unwrap()
            .with_timezone(&Utc);
        NewFire {
            timezone: zone.to_owned(),
            fire_at: at,
            local_time: at.naive_utc(),
            send: true,
            students: (0..students).map(|_| Uuid::new_v4()).collect(),
        }
    }

    fn kept(fires: &[NewFire]) -> Vec<(String, u32)> {
        use chrono::Timelike;
        fires
            .iter()
            .map(|f| (f.timezone.clone(), f.fire_at.minute()))
            .collect()
    }

    #[test]
    fn a_budget_keeps_whole_instants_in_time_order() {
        let mut fires = vec![
            fire("B", 2, 3),
            fire("A", 1, 3),
            fire("B", 1, 3),
            fire("A", 2, 3),
            fire("A", 3, 3),
        ];
        // 6 at :01, 12 with :02, 15 with :03: a budget of 13 ends the plan at :02
        let cut = within_budget(&mut fires, 13);
        assert_eq!(
            cut.map(|at| at.to_rfc3339()),
            Some("2026-03-08T07:02:00+00:00".into())
        );
        assert_eq!(
            kept(&fires),
            [("A", 1), ("B", 1), ("A", 2), ("B", 2)].map(|(z, m)| (z.to_owned(), m))
        );
    }

    #[test]
    fn the_first_instant_is_planned_whole_even_over_the_budget() {
        let mut fires = vec![fire("A", 1, 50), fire("B", 1, 50), fire("A", 2, 1)];
        let cut = within_budget(&mut fires, 10);
        assert_eq!(
            cut.map(|at| at.to_rfc3339()),
            Some("2026-03-08T07:01:00+00:00".into())
        );
        assert_eq!(fires.len(), 2);
    }

    #[test]
    fn fires_without_messages_count_one_each() {
        let mut fires: Vec<NewFire> = (1..=5)
            .map(|minute| NewFire {
                send: false,
                ..fire("A", minute, 0)
            })
            .collect();
        let cut = within_budget(&mut fires, 3);
        assert_eq!(
            cut.map(|at| at.to_rfc3339()),
            Some("2026-03-08T07:03:00+00:00".into())
        );
        assert_eq!(fires.len(), 3);
    }

    #[test]
    fn fires_within_the_budget_are_all_kept() {
        let mut fires = vec![fire("A", 1, 5), fire("A", 2, 5)];
        assert_eq!(within_budget(&mut fires, 10), None);
        assert_eq!(fires.len(), 2);
    }
}
